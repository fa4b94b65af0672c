// Shard layout. The mount (ShardContent) and materialize (AssembleZarr3Shard) share
// EncodeShardIndex, so both produce the same bytes from the same inner chunks.
#include "core/format/zarr3/shard.h"

#include <algorithm>
#include <cstring>

namespace oz {

std::string AssembleZarr3Shard(const std::vector<ChunkBytes>& inner) {
  std::vector<uint64_t> sizes(inner.size(), kShardAbsent);
  uint64_t total = 0;
  for (size_t i = 0; i < inner.size(); ++i)
    if (inner[i]) total += sizes[i] = inner[i]->size();
  if (std::all_of(sizes.begin(), sizes.end(), [](uint64_t s) { return s == kShardAbsent; })) return {};
  std::string out;
  out.reserve(total + inner.size() * 16 + 4);
  for (const ChunkBytes& b : inner)
    if (b) out += *b;
  out += EncodeShardIndex(sizes);
  return out;
}

ShardContent::ShardContent(std::vector<uint64_t> sizes, Fetch fetch)
    : sizes_(std::move(sizes)), offsets_(sizes_.size(), kShardAbsent), fetch_(std::move(fetch)) {
  for (size_t i = 0; i < sizes_.size(); ++i) {
    if (sizes_[i] == kShardAbsent) continue;
    offsets_[i] = data_bytes_;
    order_.push_back(i);
    data_bytes_ += sizes_[i];
  }
  index_ = EncodeShardIndex(sizes_);
  size_ = data_bytes_ + index_.size();
}

Result<size_t> ShardContent::ReadAt(uint64_t offset, size_t n, char* out) {
  if (offset >= size_) return size_t{0};
  const uint64_t end = std::min<uint64_t>(size_, offset + n);
  size_t done = 0;
  // First inner chunk ending after `offset` (inner chunks are in file order).
  auto it = std::upper_bound(order_.begin(), order_.end(), offset,
                             [&](uint64_t off, size_t i) { return off < offsets_[i] + sizes_[i]; });
  uint64_t pos = offset;
  for (; it != order_.end() && pos < std::min(end, data_bytes_); ++it) {
    const size_t i = *it;
    OZ_ASSIGN_OR_RETURN(ChunkBytes b, fetch_(i));
    if (b->size() != sizes_[i])
      return InternalError("inner chunk " + std::to_string(i) + " is " + std::to_string(b->size()) +
                           " bytes but the shard index says " + std::to_string(sizes_[i]));
    const uint64_t from = pos - offsets_[i];
    const uint64_t k = std::min<uint64_t>(sizes_[i] - from, end - pos);
    std::memcpy(out + done, b->data() + from, k);
    done += k;
    pos += k;
  }
  if (pos < end) {  // the index
    const uint64_t from = pos - data_bytes_;
    const uint64_t k = end - pos;
    std::memcpy(out + done, index_.data() + from, k);
    done += k;
  }
  return done;
}

}  // namespace oz
