// Non-cryptographic 128-bit content hash for cache-key material (fingerprints, option strings).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace oz {

// Two independent 64-bit FNV-1a lanes, as 32 hex digits. Not for adversarial input.
std::string Hash128Hex(std::string_view data);

// Little-endian loads (any alignment, any host byte order).
inline uint64_t LoadLe64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint32_t LoadLe32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// XXH64 (xxHash, 64-bit), the reference algorithm: several GB/s; for checksums of cache entries
// and materialized files.
uint64_t Xxh64(std::string_view data, uint64_t seed = 0);

}  // namespace oz
