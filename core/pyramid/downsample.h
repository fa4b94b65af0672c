// 2x downsampling kernels (pure functions, one per algorithm and dtype).
//
// Output voxel (z, y, x) is computed from the input block starting at (2z, 2y, 2x), truncated at
// odd edges to the voxels that exist (1, 2, 4 or 8 voxels):
//  - mean: arithmetic mean of the existing voxels, rounded half to even (numpy's round), computed
//    exactly in integers;
//  - nearest: the voxel at (2z, 2y, 2x);
//  - max: the maximum of the existing voxels.
// These are bit-exact with scroll_to_ome / zarr_to_ome (which pad odd edges symmetrically, giving
// every existing voxel equal weight, and then round with numpy).
#pragma once

#include "core/base/dtype.h"
#include "core/base/geometry.h"
#include "core/base/options.h"

namespace oz {

// Output shape for an input shape: ceil(in / 2) per axis.
inline Vec3 DownsampledShape(const Vec3& in) { return {CeilDiv(in[0], 2), CeilDiv(in[1], 2), CeilDiv(in[2], 2)}; }

// in: dense C-order array of shape `in_shape`; out: dense array of DownsampledShape(in_shape).
// in and out must not overlap.
void Downsample2x(Algorithm algorithm, DType dtype, const void* in, const Vec3& in_shape, void* out);

}  // namespace oz
