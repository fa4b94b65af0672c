// FNV-1a with two offset bases; a second lane mixes in position so the lanes stay independent.
#include "core/base/hash.h"

#include <bit>
#include <cstdio>
#include <cstring>

namespace oz {
namespace {

// XXH64 (Yann Collet's xxHash, 64-bit), the reference algorithm: fast (several GB/s) and
// detects torn writes and bit flips with 2^-64 odds.
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull,
                   kP4 = 0x85EBCA77C2B2AE63ull, kP5 = 0x27D4EB2F165667C5ull;
uint64_t XxRound(uint64_t acc, uint64_t input) { return std::rotl(acc + input * kP2, 31) * kP1; }
uint64_t XxMerge(uint64_t h, uint64_t v) { return (h ^ XxRound(0, v)) * kP1 + kP4; }

}  // namespace

uint64_t Xxh64(std::string_view in, uint64_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const unsigned char* const end = p + in.size();
  uint64_t h;
  if (in.size() >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    for (; end - p >= 32; p += 32) {
      v1 = XxRound(v1, LoadLe64(p));
      v2 = XxRound(v2, LoadLe64(p + 8));
      v3 = XxRound(v3, LoadLe64(p + 16));
      v4 = XxRound(v4, LoadLe64(p + 24));
    }
    h = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
    h = XxMerge(XxMerge(XxMerge(XxMerge(h, v1), v2), v3), v4);
  } else {
    h = seed + kP5;
  }
  h += in.size();
  for (; end - p >= 8; p += 8) h = std::rotl(h ^ XxRound(0, LoadLe64(p)), 27) * kP1 + kP4;
  if (end - p >= 4) {
    h = std::rotl(h ^ (LoadLe32(p) * kP1), 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) h = std::rotl(h ^ (*p * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  return h ^ (h >> 32);
}

std::string Hash128Hex(std::string_view data) {
  uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
  const uint64_t p = 0x100000001b3ull;
  uint64_t i = 0;
  for (unsigned char c : data) {
    a = (a ^ c) * p;
    b = (b ^ (c + (i++ & 0xff))) * p;
    b ^= b >> 29;
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace oz
