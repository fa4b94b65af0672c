// Pyramid geometry: level shapes, chunk grids and the level-to-level box mapping (pure math).
//
// Rounding rule: level l+1 has shape ceil(shape_l / 2) on every axis; voxel i of level l+1 covers
// voxels [2i, min(2i+2, shape_l)) of level l, so blocks at odd edges are truncated to the voxels
// that exist (never padded).
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

 private:
  std::vector<Vec3> shapes_;
  int64_t chunk_ = 1;
};

}  // namespace oz
