// ValueMap: the conversions of the view, one loop per source type.
#include "core/source/value_map.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "core/source/volume.h"

namespace oz {
namespace {

template <typename T>
double AsDouble(T v) {
  return static_cast<double>(v);
}

template <typename In, typename Out>
void Linear(const In* in, Out* out, size_t n, double lo, double hi) {
  const double m = static_cast<double>(std::numeric_limits<Out>::max());
  const double scale = m / (hi - lo);
  for (size_t i = 0; i < n; ++i) {
    const double v = AsDouble(in[i]);
    if (!(v > lo)) {  // NaN too
      out[i] = 0;
    } else if (v >= hi) {
      out[i] = std::numeric_limits<Out>::max();
    } else {
      out[i] = static_cast<Out>(std::nearbyint((v - lo) * scale));
    }
  }
}

template <typename In>
void LinearTo(const ValueMap& m, const In* in, void* out, size_t n) {
  if (m.out == DType::kUint8)
    Linear(in, static_cast<uint8_t*>(out), n, m.lo, m.hi);
  else
    Linear(in, static_cast<uint16_t*>(out), n, m.lo, m.hi);
}

template <typename T>
void AppendSample(const std::vector<uint8_t>& buf, std::vector<double>* vals) {
  const T* p = reinterpret_cast<const T*>(buf.data());
  const size_t n = buf.size() / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(p[i]);
    if (!std::isnan(v)) vals->push_back(v);
  }
}

std::string Num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

}  // namespace

std::string ValueMap::Tag() const {
  if (kind != Kind::kLinear) return "";
  return ";map=linear:" + std::string(DTypeName(out)) + ":" + Num(lo) + ":" + Num(hi);
}

DType ServedDType(DType source, const Options& o) {
  if (o.out_dtype) return *o.out_dtype;
  if (o.bytes1 && source == DType::kUint16) return DType::kUint8;
  return source;
}

Result<ValueMap> MakeValueMap(DType source, const Options& o) {
  ValueMap m;
  m.in = source;
  m.out = ServedDType(source, o);
  if (o.bytes1 && o.out_dtype)
    return InvalidArgumentError("bytes=1 and dtype= conflict: use only dtype=uint8 with range=LO:HI (or range=auto)");
  if (o.bytes1) {
    if (source == DType::kUint16) m.kind = ValueMap::Kind::kShift8;
    if (source != DType::kUint16 && source != DType::kUint8)
      return InvalidArgumentError("bytes=1 divides uint16 values by 256 and this source is " +
                                  std::string(DTypeName(source)) +
                                  "; use dtype=uint8 with range=LO:HI (the values to map onto 0..255) or range=auto");
    return m;
  }
  if (!o.out_dtype) return m;
  if (o.range_given) {
    m.lo = o.range_lo;
    m.hi = o.range_hi;
  } else if (DTypeIsInteger(source)) {
    switch (source) {
      case DType::kUint8: m.hi = 255; break;
      case DType::kUint16: m.hi = 65535; break;
      case DType::kUint32: m.hi = 4294967295.0; break;
      case DType::kUint64: m.hi = 18446744073709551615.0; break;
      case DType::kInt16: m.lo = -32768, m.hi = 32767; break;
      default: break;
    }
  } else {
    return InvalidArgumentError("dtype=" + std::string(DTypeName(*o.out_dtype)) + " on a " +
                                std::string(DTypeName(source)) +
                                " source needs the values to map: add range=LO:HI or range=auto");
  }
  if (!(m.lo < m.hi)) return InvalidArgumentError("range=" + Num(m.lo) + ":" + Num(m.hi) + ": LO must be below HI");
  // Identity (same type, full range of an integer type onto itself): nothing to do.
  if (source == m.out && !o.range_given) return m;
  m.kind = ValueMap::Kind::kLinear;
  return m;
}

void MapValues(const ValueMap& m, const void* in, void* out, size_t n) {
  if (m.kind == ValueMap::Kind::kShift8) {
    const auto* s = static_cast<const uint16_t*>(in);
    auto* d = static_cast<uint8_t*>(out);
    for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(s[i] >> 8);
    return;
  }
  switch (m.in) {
    case DType::kUint8: LinearTo(m, static_cast<const uint8_t*>(in), out, n); break;
    case DType::kUint16: LinearTo(m, static_cast<const uint16_t*>(in), out, n); break;
    case DType::kUint32: LinearTo(m, static_cast<const uint32_t*>(in), out, n); break;
    case DType::kUint64: LinearTo(m, static_cast<const uint64_t*>(in), out, n); break;
    case DType::kInt16: LinearTo(m, static_cast<const int16_t*>(in), out, n); break;
    case DType::kFloat32: LinearTo(m, static_cast<const float*>(in), out, n); break;
  }
}

Status SampleRange(Volume& v, double* lo, double* hi, std::string* how) {
  const Vec3 s = v.shape();
  const int64_t ny = std::min(s[1], kAutoRangeEdge), nx = std::min(s[2], kAutoRangeEdge);
  const int64_t y0 = (s[1] - ny) / 2, x0 = (s[2] - nx) / 2;
  std::vector<int64_t> zs;
  for (int i = 0; i < kAutoRangeSlices; ++i) {
    const int64_t z = static_cast<int64_t>((2 * i + 1) * s[0] / (2 * kAutoRangeSlices));
    if (zs.empty() || zs.back() != z) zs.push_back(z);
  }
  std::vector<double> vals;
  std::vector<uint8_t> buf(static_cast<size_t>(ny * nx) * DTypeSize(v.dtype()));
  for (int64_t z : zs) {
    OZ_RETURN_IF_ERROR(v.ReadBox(Box{{z, y0, x0}, {z + 1, y0 + ny, x0 + nx}}, buf.data()));
    switch (v.dtype()) {
      case DType::kUint8: AppendSample<uint8_t>(buf, &vals); break;
      case DType::kUint16: AppendSample<uint16_t>(buf, &vals); break;
      case DType::kUint32: AppendSample<uint32_t>(buf, &vals); break;
      case DType::kUint64: AppendSample<uint64_t>(buf, &vals); break;
      case DType::kInt16: AppendSample<int16_t>(buf, &vals); break;
      case DType::kFloat32: AppendSample<float>(buf, &vals); break;
    }
  }
  if (vals.empty())
    return InvalidArgumentError("range=auto: the sample of the source has only NaN values; give range=LO:HI");
  const size_t n = vals.size();
  const size_t ilo = static_cast<size_t>(std::floor(0.005 * static_cast<double>(n - 1)));
  const size_t ihi = static_cast<size_t>(std::ceil(0.995 * static_cast<double>(n - 1)));
  std::nth_element(vals.begin(), vals.begin() + static_cast<long>(ilo), vals.end());
  *lo = vals[ilo];
  std::nth_element(vals.begin(), vals.begin() + static_cast<long>(ihi), vals.end());
  *hi = vals[ihi];
  if (!(*lo < *hi)) *hi = *lo + 1;
  *how = "range=auto: " + Num(*lo) + ":" + Num(*hi) + " (0.5th and 99.5th percentiles of " + std::to_string(n) +
         " voxels: " + std::to_string(zs.size()) + " z-slices, centred " + std::to_string(ny) + "x" +
         std::to_string(nx) + " boxes)";
  return OkStatus();
}

}  // namespace oz
