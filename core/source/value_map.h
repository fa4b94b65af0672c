// ValueMap: how the view turns source values into served values (bytes=1, dtype=, range=), and
// range=auto's sample of a volume.
//
// Rules (any source dtype s, served dtype d):
//  - none: values pass unchanged (d = s). range= without dtype= is this too (it only sets the
//    OME omero.window).
//  - bytes=1 (uint16 sources only): v >> 8 (integer division by 256). On a uint8 source it has no
//    effect; other dtypes are refused (use dtype=uint8,range=...).
//  - dtype=uint8|uint16 (M = 255 or 65535), range [LO, HI] (given, auto, or for an integer source
//    without range= the source type's full range; a float32 source needs range=): in double,
//    out = 0 if v <= LO or v is NaN, M if v >= HI, else nearbyint((v - LO) * M / (HI - LO))
//    (round half to even). uint64 values above 2^53 are rounded to double first. The view's
//    padding (window/shift) stays 0 whatever LO is.
#pragma once

#include <cstddef>
#include <string>

#include "core/base/dtype.h"
#include "core/base/options.h"
#include "core/base/status.h"

namespace oz {

class Volume;

struct ValueMap {
  enum class Kind { kNone, kShift8, kLinear };
  Kind kind = Kind::kNone;
  DType in = DType::kUint8;
  DType out = DType::kUint8;
  double lo = 0, hi = 0;

  // Cache-key text of a conversion that bytes1= in the key does not already express; "" for
  // kNone and kShift8 (so their chunk keys are unchanged).
  std::string Tag() const;
};

// The served dtype for a source dtype under options (dtype=, bytes=1). No checks.
DType ServedDType(DType source, const Options& o);

// The map for a source of dtype `source` under options whose range is resolved (range_auto has
// lo/hi filled in). Errors: kInvalidArgument naming the option and the fix (bytes=1 on a type
// other than uint8/uint16, bytes=1 with dtype=, dtype= on float32 without range=).
Result<ValueMap> MakeValueMap(DType source, const Options& o);

// out[i] = map(in[i]) for n voxels (in: n values of m.in, out: n values of m.out; not kNone).
void MapValues(const ValueMap& m, const void* in, void* out, size_t n);

// range=auto: reads a fixed sample of `v` (kAutoRangeSlices z-slices at z = floor((i + 0.5) *
// Z / kAutoRangeSlices), from each the centred box of at most kAutoRangeEdge x kAutoRangeEdge
// voxels in y, x) and returns the 0.5th and 99.5th percentiles of its non-NaN values, taken as
// numpy.percentile(a, 0.5, method='lower') and numpy.percentile(a, 99.5, method='higher'). If
// they are equal, hi = lo + 1. `how` receives one line for the log. Errors: the volume's read
// errors; kInvalidArgument if the sample has no non-NaN value.
constexpr int kAutoRangeSlices = 8;
constexpr int64_t kAutoRangeEdge = 256;
Status SampleRange(Volume& v, double* lo, double* hi, std::string* how);

}  // namespace oz
