// Non-cryptographic 128-bit content hash for cache-key material (fingerprints, option strings).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace oz {

// Two independent 64-bit FNV-1a lanes, as 32 hex digits. Not for adversarial input.
std::string Hash128Hex(std::string_view data);

// XXH64 (xxHash, 64-bit), the reference algorithm: several GB/s; for checksums of cache entries
// and materialized files.
uint64_t Xxh64(std::string_view data, uint64_t seed = 0);

}  // namespace oz
