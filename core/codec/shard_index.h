// The zarr v3 `sharding_indexed` shard index, one implementation for the writer (core/format/
// zarr3) and the reader (core/source/zarr3_source): for every inner chunk, in C order of the
// shard's inner grid, two little-endian uint64 (offset, nbytes), followed by the CRC-32C of those
// bytes when the index codecs are `bytes` (little endian) + `crc32c` (the only index codecs the
// reader accepts besides `bytes` alone).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace oz {

// offset and nbytes of an absent inner chunk (the spec's "empty": read as the fill value).
inline constexpr uint64_t kShardAbsent = ~uint64_t{0};
// The offset of a Vesuvius "zero chunk" entry (with nbytes 0): read as the fill value.
inline constexpr uint64_t kShardZeroChunk = ~uint64_t{0} - 1;

struct ShardIndexEntry {
  uint64_t offset = kShardAbsent;
  uint64_t nbytes = kShardAbsent;
  // Absent or a zero chunk: the inner chunk is the fill value, nothing is read.
  bool fill() const {
    return (offset == kShardAbsent && nbytes == kShardAbsent) || (offset == kShardZeroChunk && nbytes == 0);
  }
};

// Bytes of the index (16 * sizes.size() + 4) for inner chunks of these sizes (kShardAbsent for
// an absent one), laid out in order from offset 0, with the CRC-32C.
std::string EncodeShardIndex(const std::vector<uint64_t>& sizes);

// Bytes of an index of n entries: 16 n (+ 4 with crc32c).
inline uint64_t ShardIndexBytes(uint64_t n, bool crc32c) { return 16 * n + (crc32c ? 4 : 0); }

// Decodes an index of n entries from exactly ShardIndexBytes(n, crc32c) bytes, verifying the
// CRC-32C when present. Entries are returned as stored (not checked against a shard size: see
// CheckShardEntry). Errors: kCorrupt ("the shard index is N bytes, expected M" / "the shard
// index fails its crc32c check").
Result<std::vector<ShardIndexEntry>> DecodeShardIndex(std::string_view bytes, uint64_t n, bool crc32c);

// OK if entry e (of inner chunk i) is a fill entry or lies inside [0, data_end) (the shard's
// bytes without the index, as offsets from the shard's start: an index at the start occupies
// [0, index_bytes) and entries must not point into it). Errors: kCorrupt naming the entry.
Status CheckShardEntry(const ShardIndexEntry& e, uint64_t i, uint64_t data_begin, uint64_t data_end);

}  // namespace oz
