// LayerTiffs: the directory of flattened layer TIFFs of a .ppm surface (what scroll2zarr's
// ppm_to_layers.py writes), served as a Tree: 00.tif .. NN.tif and stack.tif.
//
// Sampling rule (matches ppm_to_layers.py's pixels; see README "Layer TIFFs"):
// - point and normal of each .ppm pixel are rounded to float32 (the original converts them with
//   astype(np.float32)); a pixel whose float32 normal is all zero is invalid and 0 in every file;
// - layer k (0 <= k < n, n = 2 * (layers_count / 2) + 1, h = n / 2) samples level 0 of the view at
//   p = point + (k - h) * normal, computed in double precision per axis;
// - trilinear interpolation over the 8 voxels floor(p) + {0,1}^3, with the original's weights and
//   its order of operations in double (so the results are bit-identical), then clamped to
//   0..max (65535 for uint16, 255 for uint8) and truncated to an integer;
// - a sample whose 8 neighbours are not all inside the volume (p < 0 or p >= dim - 1 on an axis) is
//   0, and only that sample (deliberately unlike the original, which zeroes the whole 100x100 pixel
//   block when one sample crosses the far edge, and reads wrapped voxels for negative coordinates);
// - stack.tif is the per-pixel max of the inner 2 * (stack_count / 2) + 1 layers.
//
// Files: classic little-endian TIFF, one uncompressed strip per band of rows, samples of the
// view's dtype (uint16; uint8 with bytes=1 or a uint8 source). Sizes and header bytes follow from
// the geometry alone, so Stat computes nothing; a read computes only the bands it touches. A band
// (rows [b*R, (b+1)*R) of every layer and the stack at once) is computed from the level-0 chunks of
// the engine (each decoded chunk cached, so a source chunk is read once per band sweep), its strips
// kept in an LRU and the disk cache, and computed once for concurrent readers (single-flight).
// Failed bands are not cached.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/chunk_engine.h"
#include "core/store/disk_cache.h"
#include "core/surface/ppm.h"
#include "core/sync/lru_cache.h"
#include "core/sync/single_flight.h"
#include "core/sync/thread_pool.h"
#include "core/tree/tree.h"

namespace oz {

struct LayerTiffsParams {
  int layers_count = 65;
  int stack_count = 25;            // must be <= layers_count
  uint64_t memory = 128ull << 20;  // decoded chunks (half) and computed strips (half)
  // Computed strips are also kept in the engine's disk cache (if any) under keys of the engine's
  // source fingerprint and options, `ppm_id` (path, size, mtime) and the counts, so a reader
  // that reads the files one after another computes each band once.
  std::string ppm_id;
  ThreadPool* pool = nullptr;  // parallel chunk fetch and band rows; nullptr = inline
};

// The sampled value at p (z, y, x in voxels) as the rule above: 0 when a neighbour is outside
// `shape`, else the clamped, truncated trilinear value of the 8 voxels that corners(i, v) puts
// into v[4 dz + 2 dy + dx] for voxel i + (dz, dy, dx). Pure; exposed for tests.
inline bool SampleInside(const double p[3], const Vec3& shape);
template <typename CornersFn>
uint32_t SampleTrilinear(const double p[3], const Vec3& shape, uint32_t max_value, CornersFn&& corners);

class LayerTiffs final : public Tree {
 public:
  // engine: level 0 of the view is sampled (must outlive this). Errors: kInvalidArgument
  // (stack_count > layers_count; a TIFF over 4 GiB), errors of reading the .ppm. *outside_share
  // (if given) receives the share of valid pixels with a sample outside the volume.
  static Result<std::unique_ptr<LayerTiffs>> Make(std::unique_ptr<PpmFile> ppm, ChunkEngine* engine,
                                                  const LayerTiffsParams& params, double* outside_share = nullptr);
  ~LayerTiffs() override;

  Result<NodeInfo> Stat(std::string_view path) override;
  Result<std::vector<DirEntry>> List(std::string_view path) override;
  Result<std::shared_ptr<FileContent>> Open(std::string_view path) override;

  // "00.tif" .. and "stack.tif", in file order.
  const std::vector<std::string>& names() const { return names_; }
  int rows_per_strip() const { return rows_; }
  uint64_t file_size() const { return header_.size() + pixel_bytes_; }

  struct Band;
  class Content;

 private:
  LayerTiffs() = default;
  int FileIndex(std::string_view name) const;
  using Strip = std::string;
  // The strip of `file` in band b: memory LRU, then the disk cache, then the band's computation
  // (which stores every file's strip of the band in both).
  Result<std::shared_ptr<const Strip>> GetStrip(int file, int64_t b);
  Result<std::shared_ptr<const Band>> ComputeBand(int64_t b);
  std::string DiskKey(int file, int64_t b) const;
  using ChunkData = std::vector<uint8_t>;
  Result<std::shared_ptr<const ChunkData>> GetChunk(const Vec3& idx);
  Status ReadFile(int file, uint64_t offset, size_t n, char* out);

  std::unique_ptr<PpmFile> ppm_;
  ChunkEngine* engine_ = nullptr;
  LayerTiffsParams params_;
  Vec3 shape_{};  // level 0 of the view
  Vec3 grid_{};   // level-0 chunk grid
  int64_t chunk_ = 0;
  int files_ = 0;
  int in_bytes_ = 2, out_bytes_ = 2;
  int layers_ = 0, half_ = 0, stack_half_ = 0;
  int rows_ = 1;  // rows per strip (= per band)
  int64_t bands_ = 0;
  std::vector<std::string> names_;
  std::string header_;  // TIFF header, IFD and strip tables: identical for every file
  uint64_t pixel_bytes_ = 0;
  std::shared_ptr<const ChunkData> zero_chunk_;
  std::unique_ptr<LruCache<int64_t, const Strip>> strip_cache_;  // key: b * files + file
  DiskCache* disk_ = nullptr;
  std::string disk_prefix_;
  SingleFlight<int64_t, std::shared_ptr<const Band>> band_flights_;
  std::unique_ptr<LruCache<int64_t, const ChunkData>> chunk_cache_;
  SingleFlight<int64_t, std::shared_ptr<const ChunkData>> chunk_flights_;
};

// ---------------------------------------------------------------------------------------------

// True if the 8 neighbours of p are inside shape: 0 <= p < dim - 1 on every axis (NaN: false).
inline bool SampleInside(const double p[3], const Vec3& shape) {
  for (int a = 0; a < 3; ++a)
    if (!(p[a] >= 0.0 && p[a] < static_cast<double>(shape[a] - 1))) return false;
  return true;
}

template <typename CornersFn>
uint32_t SampleTrilinear(const double p[3], const Vec3& shape, uint32_t max_value, CornersFn&& corners) {
  if (!SampleInside(p, shape)) return 0;
  int64_t i[3];
  double f[3];
  for (int a = 0; a < 3; ++a) {
    i[a] = static_cast<int64_t>(p[a]);
    f[a] = p[a] - static_cast<double>(i[a]);
  }
  const double a = f[0], b = f[1], c = f[2];  // z, y, x fractions (the original's x, y, z)
  double v[8];                                // v[4 dz + 2 dy + dx] = voxel i + (dz, dy, dx)
  corners(i, v);
  const double v000 = v[0], v001 = v[1], v010 = v[2], v011 = v[3];
  const double v100 = v[4], v101 = v[5], v110 = v[6], v111 = v[7];
  // The original's terms and order, left to right (no fused multiply-add: see CMakeLists.txt).
  double r = v000 * (1 - a) * (1 - b) * (1 - c);
  r = r + v100 * a * (1 - b) * (1 - c);
  r = r + v010 * (1 - a) * b * (1 - c);
  r = r + v001 * (1 - a) * (1 - b) * c;
  r = r + v101 * a * (1 - b) * c;
  r = r + v011 * (1 - a) * b * c;
  r = r + v110 * a * b * (1 - c);
  r = r + v111 * a * b * c;
  if (!(r > 0.0)) return 0;
  if (r >= static_cast<double>(max_value)) return max_value;
  return static_cast<uint32_t>(r);
}

}  // namespace oz
