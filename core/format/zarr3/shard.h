// zarr v3 `sharding_indexed` shards as omezarrfs writes them: inner chunks back to back in C order
// of the shard's inner grid (empty ones left out), then the index at the end: for every inner
// chunk (C order) two little-endian uint64 (offset, nbytes), 2^64-1 for both when the chunk is
// absent, followed by the CRC-32C of those bytes (codecs `bytes` little endian + `crc32c`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/codec/shard_index.h"
#include "core/tree/tree.h"

namespace oz {

// The index (kShardAbsent, EncodeShardIndex) is core/codec/shard_index.h, shared with the reader.

// The whole shard file from its inner chunks (nullptr = absent); "" when all are absent.
std::string AssembleZarr3Shard(const std::vector<ChunkBytes>& inner);

// A shard served by byte range without assembling it: the index is computed from the inner
// chunks' sizes, and a range read fetches only the inner chunks it overlaps.
class ShardContent final : public FileContent {
 public:
  // fetch(i): the bytes of inner chunk i (C order); must be sizes[i] bytes long.
  using Fetch = std::function<Result<ChunkBytes>(size_t i)>;
  ShardContent(std::vector<uint64_t> sizes, Fetch fetch);
  uint64_t size() const override { return size_; }
  // Errors: a fetch error; kInternal when an inner chunk's size is not the indexed one (never
  // served as wrong bytes).
  Result<size_t> ReadAt(uint64_t offset, size_t n, char* out) override;

 private:
  std::vector<uint64_t> sizes_;
  std::vector<uint64_t> offsets_;  // per inner chunk; kShardAbsent when absent
  std::vector<size_t> order_;      // present inner chunks, by offset
  std::string index_;
  uint64_t data_bytes_ = 0;
  uint64_t size_ = 0;
  Fetch fetch_;
};

}  // namespace oz
