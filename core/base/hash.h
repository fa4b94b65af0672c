// Non-cryptographic 128-bit content hash for cache-key material (fingerprints, option strings).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace oz {

// Two independent 64-bit FNV-1a lanes, as 32 hex digits. Not for adversarial input.
std::string Hash128Hex(std::string_view data);

// Little-endian loads (any alignment, any host byte order).
// One unaligned load (and a byte swap on a big-endian host): the hash loops run at memory speed.
inline uint64_t LoadLe64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}
inline uint32_t LoadLe32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

// XXH64 (xxHash, 64-bit), the reference algorithm: several GB/s; for checksums of cache entries
// and materialized files.
uint64_t Xxh64(std::string_view data, uint64_t seed = 0);

}  // namespace oz
