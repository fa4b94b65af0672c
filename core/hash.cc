// FNV-1a with two offset bases; a second lane mixes in position so the lanes stay independent.
#include "core/hash.h"

#include <cstdio>

namespace oz {

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
