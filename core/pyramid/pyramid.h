// Pyramid geometry: level shapes, chunk grids and the level-to-level box mapping (pure math).
//
// Rounding rule: level l+1 has shape ceil(shape_l / 2) on every axis; voxel i of level l+1 covers
// voxels [2i, min(2i+2, shape_l)) of level l, so blocks at odd edges are truncated to the voxels
// that exist (never padded).
//
// Halo (kernels wider than the block, KernelFor(a).halo = h > 0, e.g. gaussian h = 2): voxels
// [lo, hi) of level l+1 read the level-l voxels [2 lo - h, 2 hi + h), clipped to shape_l (the
// kernel mirrors at the edges, and mirrored voxels lie inside the clipped box). Through k levels
// the footprint is that rule applied k times (before clipping: 2^k lo - (2^k - 1) h). A chunk's
// footprint reaches into its neighbours: a level-l+1 chunk reads whole level-l chunks 2i, 2i+1
// and h voxels of chunks 2i-1 and 2i+2 per axis, so the engine takes those halos from the
// neighbouring level-l chunks (cached) instead of from the source.
#pragma once

#include <vector>

#include "core/base/geometry.h"
#include "core/base/status.h"

namespace oz {

class Pyramid {
 public:
  // level0: shape of level 0 (all extents >= 1); levels >= 1; chunk >= 1.
  // Errors: kInvalidArgument for non-positive extents, levels < 1, chunk < 1, or a chunk grid so
  // large that indices overflow.
  static Result<Pyramid> Make(const Vec3& level0, int levels, int64_t chunk);

  int levels() const { return static_cast<int>(shapes_.size()); }
  int64_t chunk() const { return chunk_; }
  const Vec3& shape(int level) const { return shapes_[level]; }
  // Number of chunks per axis at `level`.
  Vec3 grid(int level) const;
  // True if idx is a valid chunk index at level.
  bool ValidChunk(int level, const Vec3& idx) const;
  // The voxels of chunk `idx` at `level`, clipped to the level shape (non-empty for valid idx).
  Box ChunkBox(int level, const Vec3& idx) const;
  // The box at level `to` (< from) whose voxels feed `box` at level `from`:
  // lo * 2^(from-to), min(hi * 2^(from-to), shape(to)).
  Box BoxAtLowerLevel(const Box& box, int from, int to) const;
  // The box at level `to` (> from) of voxels that depend on `box` at level `from`:
  // floor(lo / 2^k), ceil(hi / 2^k).
  Box BoxAtHigherLevel(const Box& box, int from, int to) const;
  // The level-(level-1) voxels that `box` of `level` (>= 1) reads with a kernel of halo `halo`:
  // [2 lo - halo, 2 hi + halo) clipped to shape(level - 1). halo 0: BoxAtLowerLevel(box, level,
  // level - 1).
  Box Footprint(const Box& box, int level, int halo) const;
  // Footprint applied from level `from` down to level `to` (< from), one level at a time.
  Box FootprintAtLowerLevel(const Box& box, int from, int to, int halo) const;

 private:
  std::vector<Vec3> shapes_;
  int64_t chunk_ = 1;
};

}  // namespace oz
