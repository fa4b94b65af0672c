// compressed_segmentation encoder. Blocks are visited in header order; a block's distinct values
// are found by sorting a copy of its (at most block^3) ids, so the cost is O(n log b^3) per chunk.
#include "core/codec/compressed_segmentation.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

namespace oz {
namespace {

uint64_t LoadId(const uint8_t* p, size_t bytes) {
  switch (bytes) {
    case 1: return *p;
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}

// Fewest bits of {0, 1, 2, 4, 8, 16, 32} that index n distinct values.
uint32_t BitsFor(size_t n) {
  if (n <= 1) return 0;
  uint32_t bits = 1;
  while ((uint64_t{1} << bits) < n) bits *= 2;
  return bits;
}

}  // namespace

Result<std::string> EncodeCompressedSegmentation(const void* voxels, const Vec3& shape, size_t in_bytes,
                                                 size_t out_bytes, int64_t block) {
  if (!(in_bytes == 1 || in_bytes == 2 || in_bytes == 4 || in_bytes == 8) || !(out_bytes == 4 || out_bytes == 8) ||
      in_bytes > out_bytes)
    return InvalidArgumentError("compressed_segmentation: ids of " + std::to_string(in_bytes) +
                                " bytes cannot be stored as " + std::to_string(out_bytes) + "-byte ids");
  if (block <= 0 || block > 64) return InvalidArgumentError("compressed_segmentation: block edge must be 1..64");
  for (int64_t s : shape)
    if (s <= 0) return InvalidArgumentError("compressed_segmentation: empty box " + ToString(shape));
  const auto* in = static_cast<const uint8_t*>(voxels);
  const int64_t gz = (shape[0] + block - 1) / block, gy = (shape[1] + block - 1) / block,
                gx = (shape[2] + block - 1) / block;
  const size_t nblocks = static_cast<size_t>(gx * gy * gz);
  const size_t per_block = static_cast<size_t>(block * block * block);
  std::vector<uint32_t> w;
  w.reserve(1 + 2 * nblocks + nblocks * 8);
  w.push_back(1);  // the one channel's data starts at word 1
  constexpr size_t base = 1;
  w.resize(base + 2 * nblocks, 0);
  std::map<std::vector<uint64_t>, uint32_t> tables;  // lookup table -> its offset (shared)
  std::vector<uint64_t> ids(per_block), table;
  std::vector<uint32_t> index(per_block);
  size_t h = 0;
  for (int64_t bz = 0; bz < gz; ++bz)
    for (int64_t by = 0; by < gy; ++by)
      for (int64_t bx = 0; bx < gx; ++bx, ++h) {
        const int64_t z0 = bz * block, y0 = by * block, x0 = bx * block;
        const int64_t ez = std::min(block, shape[0] - z0), ey = std::min(block, shape[1] - y0),
                      ex = std::min(block, shape[2] - x0);
        // The ids inside the volume; padded positions copy the block's first id.
        const uint64_t first =
            LoadId(in + static_cast<size_t>((z0 * shape[1] + y0) * shape[2] + x0) * in_bytes, in_bytes);
        for (int64_t z = 0; z < block; ++z)
          for (int64_t y = 0; y < block; ++y)
            for (int64_t x = 0; x < block; ++x) {
              const size_t i = static_cast<size_t>((z * block + y) * block + x);
              if (z < ez && y < ey && x < ex) {
                const size_t src = static_cast<size_t>(((z0 + z) * shape[1] + (y0 + y)) * shape[2] + (x0 + x));
                ids[i] = LoadId(in + src * in_bytes, in_bytes);
              } else {
                ids[i] = first;
              }
            }
        table = ids;
        std::sort(table.begin(), table.end());
        table.erase(std::unique(table.begin(), table.end()), table.end());
        const uint32_t bits = BitsFor(table.size());
        // Encoded values first, then the block's table unless an identical one is stored already.
        const size_t values_at = w.size() - base;
        if (bits > 0) {
          const size_t words = (per_block * bits + 31) / 32;
          const size_t start = w.size();
          w.resize(start + words, 0);
          for (size_t i = 0; i < per_block; ++i) {
            const auto k = static_cast<uint32_t>(std::lower_bound(table.begin(), table.end(), ids[i]) - table.begin());
            const size_t bit = i * bits;
            w[start + bit / 32] |= k << (bit % 32);
          }
        }
        uint32_t table_at;
        if (auto it = tables.find(table); it != tables.end()) {
          table_at = it->second;
        } else {
          const size_t at = w.size() - base;
          if (at >= (size_t{1} << 24))
            return UnsupportedError("compressed_segmentation: the chunk " + ToString(shape) +
                                    " needs lookup table offsets past 2^24 words; use a smaller chunk= (<= 128)");
          table_at = static_cast<uint32_t>(at);
          for (uint64_t v : table) {
            w.push_back(static_cast<uint32_t>(v & 0xFFFFFFFFu));
            if (out_bytes == 8) w.push_back(static_cast<uint32_t>(v >> 32));
          }
          tables.emplace(table, table_at);
        }
        w[base + 2 * h] = table_at | (bits << 24);
        w[base + 2 * h + 1] = static_cast<uint32_t>(values_at);
      }
  std::string out(w.size() * 4, '\0');
  for (size_t i = 0; i < w.size(); ++i)
    for (int b = 0; b < 4; ++b) out[i * 4 + b] = static_cast<char>((w[i] >> (8 * b)) & 0xFF);
  return out;
}

}  // namespace oz
