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
//  - gaussian: smoothing then 2x subsampling, with a footprint wider than the block (halo 2).
//    Separable; per axis, output voxel i of level l+1 is sum_t w[t] * v(2i - 2 + t), t = 0..5:
//    six taps at offsets d = t - 2.5 = -2.5 .. +2.5 from the block centre 2i + 0.5, so gaussian and
//    mean sit on the same grid. w[t] = g[t] / sum(g), g[t] = exp(-d^2 / 2): sigma = 1 level-l
//    voxel, truncated at 2.5 sigma, the sum taken left to right; GaussianWeights() holds the
//    exact doubles (0x1.1fb1f0083f219p-6, 0x1.09b970aa64d06p-3, 0x1.692828aa49a5bp-2, mirrored),
//    not recomputed with a libm. Edges: half-sample
//    symmetric mirroring (numpy.pad mode='symmetric', scipy.ndimage mode='reflect': d c b a | a b
//    c d), repeated for axes shorter than the footprint (an axis of 1 voxel is constant).
//    Arithmetic, in double: values converted exactly (uint64: to the nearest double), the x pass
//    over every input row, then the y pass, then the z pass; each pass a sum over t ascending,
//    starting from 0.0, of w[t] * value (multiply then add, no fused multiply-add). Result:
//    integer dtypes round half to even (nearbyint) and clamp to the dtype range; float32 rounds
//    to the nearest float (ties to even). A NaN or inf among the 6x6x6 voxels propagates by IEEE
//    arithmetic (NaN; +inf with -inf gives NaN).
// Integer mean, nearest and max are bit-exact with scroll_to_ome / zarr_to_ome (which pad odd
// edges symmetrically, giving every existing voxel equal weight, and then round with numpy).
#pragma once

#include <array>
#include <string_view>

#include "core/base/dtype.h"
#include "core/base/geometry.h"
#include "core/base/options.h"

namespace oz {

// Output shape for an input shape: ceil(in / 2) per axis.
inline Vec3 DownsampledShape(const Vec3& in) { return {CeilDiv(in[0], 2), CeilDiv(in[1], 2), CeilDiv(in[2], 2)}; }

// The kernel table: one row per Algorithm. halo: level-l voxels read beyond the 2x2x2 block on
// each side (voxel i of level l+1 reads [2i - halo, 2i + 2 + halo) per axis, mirrored at the
// edges); 0 for the block kernels. Pyramid::Footprint turns it into boxes.
struct KernelInfo {
  Algorithm algorithm;
  std::string_view name;
  int halo;
};
const KernelInfo& KernelFor(Algorithm a);

inline constexpr int kGaussianTaps = 6;
inline constexpr int kGaussianHalo = 2;
// The normalised gaussian weights w[0..5] (symmetric, summing to 1 up to rounding).
const std::array<double, kGaussianTaps>& GaussianWeights();

// in: dense C-order array of shape `in_shape` (native-endian values of `dtype`); out: dense
// array of DownsampledShape(in_shape). in and out must not overlap.
// algorithm=gaussian reads the whole input as the level (mirrored at its edges).
void Downsample2x(Algorithm algorithm, DType dtype, const void* in, const Vec3& in_shape, void* out);

// Any kernel over a part of a level: out (dense, out_box.shape()) is the voxels out_box of level
// l+1, computed from in (dense, in_box.shape()), the voxels in_box of level l, whose whole shape is
// level_shape. Precondition: in_box contains Pyramid::Footprint(out_box) for KernelFor(algorithm)
// .halo, i.e. [2 lo - halo, 2 hi + halo) clipped to level_shape on every axis, and out_box lies in
// DownsampledShape(level_shape). Block kernels give exactly Downsample2x's voxels.
void DownsampleBox(Algorithm algorithm, DType dtype, const void* in, const Box& in_box, const Vec3& level_shape,
                   const Box& out_box, void* out);

}  // namespace oz
