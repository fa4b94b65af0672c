// Shard index layout (see the header).
#include "core/codec/shard_index.h"

#include "core/base/hash.h"
#include "core/codec/crc32c.h"

namespace oz {
namespace {

void PutLe64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

std::string EncodeShardIndex(const std::vector<uint64_t>& sizes) {
  std::string idx;
  idx.reserve(sizes.size() * 16 + 4);
  uint64_t off = 0;
  for (uint64_t n : sizes) {
    if (n == kShardAbsent) {
      PutLe64(&idx, kShardAbsent);
      PutLe64(&idx, kShardAbsent);
    } else {
      PutLe64(&idx, off);
      PutLe64(&idx, n);
      off += n;
    }
  }
  const uint32_t crc = Crc32c(idx);
  for (int i = 0; i < 4; ++i) idx.push_back(static_cast<char>((crc >> (8 * i)) & 0xFF));
  return idx;
}

Result<std::vector<ShardIndexEntry>> DecodeShardIndex(std::string_view bytes, uint64_t n, bool crc32c) {
  const uint64_t want = ShardIndexBytes(n, crc32c);
  if (bytes.size() != want)
    return CorruptError("the shard index is " + std::to_string(bytes.size()) + " bytes, expected " +
                        std::to_string(want) + " (" + std::to_string(n) + " inner chunks)");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (crc32c) {
    const uint32_t stored = LoadLe32(p + 16 * n);
    const uint32_t actual = Crc32c(p, static_cast<size_t>(16 * n));
    if (stored != actual) return CorruptError("the shard index fails its crc32c check");
  }
  std::vector<ShardIndexEntry> out(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) {
    out[i].offset = LoadLe64(p + 16 * i);
    out[i].nbytes = LoadLe64(p + 16 * i + 8);
  }
  return out;
}

Status CheckShardEntry(const ShardIndexEntry& e, uint64_t i, uint64_t data_begin, uint64_t data_end) {
  if (e.fill()) return OkStatus();
  if (e.offset < data_begin || e.offset > data_end || e.nbytes > data_end - e.offset)
    return CorruptError("shard index entry " + std::to_string(i) + " (offset " + std::to_string(e.offset) +
                        ", nbytes " + std::to_string(e.nbytes) + ") points outside the shard's data (bytes " +
                        std::to_string(data_begin) + " to " + std::to_string(data_end) + ")");
  return OkStatus();
}

}  // namespace oz
