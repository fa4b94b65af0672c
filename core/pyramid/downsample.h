// 2x downsampling kernels (pure functions, one per algorithm and dtype).
//
// Output voxel (z, y, x) is computed from the input block starting at (2z, 2y, 2x), truncated at
// odd edges to the voxels that exist (n = 1, 2, 4 or 8 voxels). Rules, per algorithm:
//  - mean, integer types (uint8/16/32/64, int16): the arithmetic mean of the n voxels rounded
//    half to even (numpy's round), computed exactly in integers (no overflow for any value, uint64
//    included). Signed sums are divided with floor, so -2.5 rounds to -2 and -3.5 to -4.
//  - mean, float32: the n values converted to double and summed in block order (z, then y, then x
//    ascending), divided by n in double, then rounded to the nearest float (ties to even). A NaN
//    anywhere gives NaN; +inf and -inf together give NaN (IEEE arithmetic).
//  - nearest: the voxel at (2z, 2y, 2x) (bit copy, floats included).
//  - max / min: the largest / smallest of the n voxels. float32: a NaN anywhere in the block
//    gives NaN (like numpy.max/min: the first NaN in block order); otherwise values compare in
//    the IEEE total order, so -0.0 < +0.0 (max of {-0.0, +0.0} is +0.0, min is -0.0).
//  - mode: the most frequent value of the n voxels; a tie goes to the smallest value. Zeros count
//    like any other value. float32 values are compared by bit pattern and ordered by the IEEE
//    total order (-NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN), so -0.0 and +0.0 are
//    two values and each NaN payload is its own value. Computed with a sorting network on the 8
//    values (no hash map).
// Integer mean, nearest and max are bit-exact with scroll_to_ome / zarr_to_ome (which pad odd
// edges symmetrically, giving every existing voxel equal weight, and then round with numpy).
#pragma once

#include "core/base/dtype.h"
#include "core/base/geometry.h"
#include "core/base/options.h"

namespace oz {

// Output shape for an input shape: ceil(in / 2) per axis.
inline Vec3 DownsampledShape(const Vec3& in) { return {CeilDiv(in[0], 2), CeilDiv(in[1], 2), CeilDiv(in[2], 2)}; }

// in: dense C-order array of shape `in_shape` (native-endian values of `dtype`); out: dense
// array of DownsampledShape(in_shape). in and out must not overlap.
void Downsample2x(Algorithm algorithm, DType dtype, const void* in, const Vec3& in_shape, void* out);

}  // namespace oz
