// Downsampling kernels. Every output voxel gathers its block (at most 8 values) and reduces it
// with one Reduce<T, A>; full interior blocks use a fixed n = 8 so the compiler unrolls them,
// edges pass the voxels that exist.
#include "core/pyramid/downsample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace oz {
namespace {

// log2(n) for n in {1, 2, 4, 8}.
constexpr int Log2(int n) { return n == 8 ? 3 : n == 4 ? 2 : n == 2 ? 1 : 0; }

// Round q + r / n half to even, 0 <= r < n, n a power of two.
template <typename Q>
inline Q RoundHalfEven(Q q, uint64_t r, int n) {
  const uint64_t twice = 2 * r;
  if (twice > static_cast<uint64_t>(n) || (twice == static_cast<uint64_t>(n) && (q & 1))) ++q;
  return q;
}

template <typename T>
inline T Mean(const T* v, int n) {
  const int s = Log2(n);
  if constexpr (std::is_floating_point_v<T>) {
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += static_cast<double>(v[i]);
    return static_cast<T>(sum / n);
  } else if constexpr (sizeof(T) <= 2 && std::is_unsigned_v<T>) {
    uint32_t sum = 0;
    for (int i = 0; i < n; ++i) sum += v[i];
    return static_cast<T>(RoundHalfEven<uint32_t>(sum >> s, sum & (n - 1), n));
  } else if constexpr (std::is_signed_v<T>) {
    int64_t sum = 0;
    for (int i = 0; i < n; ++i) sum += v[i];
    // Arithmetic shift = floor division; the remainder sum - q * n is in [0, n).
    const int64_t q = sum >> s;
    return static_cast<T>(RoundHalfEven<int64_t>(q, static_cast<uint64_t>(sum - q * n), n));
  } else if constexpr (sizeof(T) == 4) {
    uint64_t sum = 0;
    for (int i = 0; i < n; ++i) sum += v[i];
    return static_cast<T>(RoundHalfEven<uint64_t>(sum >> s, sum & (n - 1), n));
  } else {
    // uint64: sum the high parts (v >> s) and the low parts (v mod n) apart; neither overflows.
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < n; ++i) {
      hi += v[i] >> s;
      lo += v[i] & (n - 1);
    }
    return RoundHalfEven<uint64_t>(hi + (lo >> s), lo & (n - 1), n);
  }
}

template <typename T>
struct ModeKey;

template <typename T, bool kMax>
inline T Extreme(const T* v, int n) {
  if constexpr (std::is_floating_point_v<T>) {
    // NaN first (it propagates); then the IEEE total order, so -0.0 < +0.0 deterministically.
    for (int i = 0; i < n; ++i)
      if (std::isnan(v[i])) return v[i];
    using MK = ModeKey<T>;
    typename MK::K m = MK::To(v[0]);
    for (int i = 1; i < n; ++i) m = kMax ? std::max(m, MK::To(v[i])) : std::min(m, MK::To(v[i]));
    return MK::From(m);
  } else {
    T m = v[0];
    for (int i = 1; i < n; ++i) m = kMax ? std::max(m, v[i]) : std::min(m, v[i]);
    return m;
  }
}

// Mode works on unsigned keys whose order is the value order: uintN as is, int16 with the sign
// bit flipped, float32 by the IEEE total order key.
template <typename T>
struct ModeKey {
  using K = T;
  static K To(T v) { return v; }
  static T From(K k) { return k; }
};
template <>
struct ModeKey<int16_t> {
  using K = uint16_t;
  static K To(int16_t v) { return static_cast<uint16_t>(static_cast<uint16_t>(v) ^ 0x8000u); }
  static int16_t From(K k) { return static_cast<int16_t>(static_cast<uint16_t>(k ^ 0x8000u)); }
};
template <>
struct ModeKey<float> {
  using K = uint32_t;
  static K To(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  }
  static float From(K k) {
    uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float v;
    std::memcpy(&v, &b, 4);
    return v;
  }
};

template <typename K>
inline void CompareSwap(K& a, K& b) {
  const K lo = std::min(a, b), hi = std::max(a, b);
  a = lo;
  b = hi;
}

template <typename T>
inline T Mode(const T* v, int n) {
  using MK = ModeKey<T>;
  using K = typename MK::K;
  K k[8];
  K diff = 0;
  for (int i = 0; i < n; ++i) {
    k[i] = MK::To(v[i]);
    diff |= k[i] ^ k[0];
  }
  if (diff == 0) return v[0];  // one value (most blocks of a label volume)
  if (n == 8) {
    // Batcher's odd-even merge sort for 8 inputs: 19 comparators, branch-free.
    CompareSwap(k[0], k[1]), CompareSwap(k[2], k[3]), CompareSwap(k[4], k[5]), CompareSwap(k[6], k[7]);
    CompareSwap(k[0], k[2]), CompareSwap(k[1], k[3]), CompareSwap(k[4], k[6]), CompareSwap(k[5], k[7]);
    CompareSwap(k[1], k[2]), CompareSwap(k[5], k[6]);
    CompareSwap(k[0], k[4]), CompareSwap(k[1], k[5]), CompareSwap(k[2], k[6]), CompareSwap(k[3], k[7]);
    CompareSwap(k[2], k[4]), CompareSwap(k[3], k[5]);
    CompareSwap(k[1], k[2]), CompareSwap(k[3], k[4]), CompareSwap(k[5], k[6]);
  } else {
    for (int i = 1; i < n; ++i)
      for (int j = i; j > 0 && k[j - 1] > k[j]; --j) std::swap(k[j - 1], k[j]);
  }
  // Longest run in ascending order; only a strictly longer run replaces the best, so a tie keeps
  // the smaller value. Conditional moves, no data-dependent branches.
  K best = k[0];
  int best_len = 1, len = 1;
  for (int i = 1; i < n; ++i) {
    len = k[i] == k[i - 1] ? len + 1 : 1;
    const bool take = len > best_len;
    best_len = take ? len : best_len;
    best = take ? k[i] : best;
  }
  return MK::From(best);
}

template <typename T, Algorithm A>
inline T Reduce(const T* v, int n) {
  if constexpr (A == Algorithm::kMean) return Mean(v, n);
  if constexpr (A == Algorithm::kMax) return Extreme<T, true>(v, n);
  if constexpr (A == Algorithm::kMin) return Extreme<T, false>(v, n);
  if constexpr (A == Algorithm::kMode) return Mode(v, n);
  return v[0];
}

// Mean of the full 2x2x2 blocks of one output row, for 8- and 16-bit integers: each pair of
// neighbouring voxels is loaded as one integer of twice the width and its halves are added, so
// every load is contiguous and the loop vectorises (this file is built with -O3). Rounding as in
// Mean(): q + 1 exactly when the remainder r of sum / 8 is > 4, or == 4 with q odd, i.e.
// floor((sum + 3 + (q & 1)) / 8), which holds for negative (floored) sums too.
template <typename T>
void MeanRowSmall(const T* r00, const T* r01, const T* r10, const T* r11, int64_t n, T* o) {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 2);
  using Pair = std::conditional_t<sizeof(T) == 1, uint16_t, uint32_t>;
  using Half = std::make_signed_t<Pair>;  // only for the sign extension of signed halves
  using S = std::conditional_t<std::is_signed_v<T>, int32_t, uint32_t>;
  constexpr int kBits = 8 * sizeof(T);
  constexpr Pair kLow = static_cast<Pair>((Pair{1} << kBits) - 1);
  auto halves = [](const T* p) -> S {
    Pair v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::is_signed_v<T>) {
      return S{static_cast<T>(static_cast<Half>(v & kLow))} + S{static_cast<T>(static_cast<Half>(v >> kBits))};
    } else {
      return S{static_cast<Pair>(v & kLow)} + S{static_cast<Pair>(v >> kBits)};
    }
  };
  for (int64_t x = 0; x < n; ++x) {
    const int64_t i = 2 * x;
    const S sum = halves(r00 + i) + halves(r01 + i) + halves(r10 + i) + halves(r11 + i);
    o[x] = static_cast<T>((sum + 3 + ((sum >> 3) & 1)) >> 3);
  }
}

template <typename T, Algorithm A>
void Kernel(const T* in, const Vec3& s, T* out) {
  const int64_t Z = s[0], Y = s[1], X = s[2];
  const int64_t oz = CeilDiv(Z, 2), oy = CeilDiv(Y, 2), ox = CeilDiv(X, 2);
  const int64_t plane = Y * X;
  for (int64_t z = 0; z < oz; ++z) {
    const int64_t z0 = 2 * z, nz = std::min<int64_t>(2, Z - z0);
    for (int64_t y = 0; y < oy; ++y) {
      const int64_t y0 = 2 * y, ny = std::min<int64_t>(2, Y - y0);
      T* orow = out + (z * oy + y) * ox;
      const T* r00 = in + z0 * plane + y0 * X;
      if constexpr (A == Algorithm::kNearest) {
        for (int64_t x = 0; x < ox; ++x) orow[x] = r00[2 * x];
        continue;
      }
      const int64_t full_x = X / 2;  // output columns with both input columns present
      T v[8]{};                      // zeroed once per row: the compiler cannot see that edges fill what they read
      if (nz == 2 && ny == 2) {
        const T* r01 = r00 + X;
        const T* r10 = r00 + plane;
        const T* r11 = r10 + X;
        if constexpr (std::is_integral_v<T> && sizeof(T) <= 2 && A == Algorithm::kMean) {
          MeanRowSmall(r00, r01, r10, r11, full_x, orow);
        } else {
          for (int64_t x = 0; x < full_x; ++x) {
            const int64_t i = 2 * x;
            if constexpr (std::is_integral_v<T> && A == Algorithm::kMax) {
              orow[x] = std::max({r00[i], r00[i + 1], r01[i], r01[i + 1], r10[i], r10[i + 1], r11[i], r11[i + 1]});
            } else if constexpr (std::is_integral_v<T> && A == Algorithm::kMin) {
              orow[x] = std::min({r00[i], r00[i + 1], r01[i], r01[i + 1], r10[i], r10[i + 1], r11[i], r11[i + 1]});
            } else {
              v[0] = r00[i], v[1] = r00[i + 1], v[2] = r01[i], v[3] = r01[i + 1];
              v[4] = r10[i], v[5] = r10[i + 1], v[6] = r11[i], v[7] = r11[i + 1];
              orow[x] = Reduce<T, A>(v, 8);
            }
          }
        }
      } else {
        for (int64_t x = 0; x < full_x; ++x) {
          int n = 0;
          for (int64_t dz = 0; dz < nz; ++dz)
            for (int64_t dy = 0; dy < ny; ++dy) {
              const T* r = r00 + dz * plane + dy * X + 2 * x;
              v[n++] = r[0];
              v[n++] = r[1];
            }
          orow[x] = Reduce<T, A>(v, n);
        }
      }
      if (ox > full_x) {  // last column has a single input column
        const int64_t i = 2 * full_x;
        int n = 0;
        for (int64_t dz = 0; dz < nz; ++dz)
          for (int64_t dy = 0; dy < ny; ++dy) v[n++] = r00[dz * plane + dy * X + i];
        orow[full_x] = Reduce<T, A>(v, n);
      }
    }
  }
}

// Half-sample symmetric mirroring into [0, n), repeated for footprints longer than the axis.
inline int64_t Mirror(int64_t j, int64_t n) {
  while (j < 0 || j >= n) j = j < 0 ? -j - 1 : 2 * n - 1 - j;
  return j;
}

template <typename T>
inline T FromDouble(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    const double r = std::nearbyint(v);  // default rounding mode: half to even
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
    // 2^bits for the unsigned types (uint64's max is not a double); max + 1 for int16.
    constexpr double hi_excl = static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
    if (!(r > lo)) return std::numeric_limits<T>::min();
    if (r >= hi_excl) return std::numeric_limits<T>::max();
    return static_cast<T>(r);
  }
}

// The separable gaussian over out_box (see the header for the order of operations). Each input
// plane is smoothed in x and y once per call (a ring of six y-passed planes), then the z pass
// combines six of them per output plane.
template <typename T>
void Gaussian(const T* in, const Box& ib, const Vec3& level, const Box& ob, T* out) {
  constexpr int K = kGaussianTaps;
  const auto& w = GaussianWeights();
  const Vec3 is = ib.shape(), os = ob.shape();
  if (os[0] <= 0 || os[1] <= 0 || os[2] <= 0) return;
  std::array<std::vector<int64_t>, 3> tap;  // local input index of (output i, tap t)
  for (int a = 0; a < 3; ++a) {
    tap[a].resize(static_cast<size_t>(os[a] * K));
    for (int64_t i = 0; i < os[a]; ++i)
      for (int t = 0; t < K; ++t)
        tap[a][i * K + t] = Mirror(2 * (ob.lo[a] + i) - kGaussianHalo + t, level[a]) - ib.lo[a];
  }
  const int64_t iy = is[1], ix = is[2], oy = os[1], ox = os[2];
  std::vector<double> xrows(static_cast<size_t>(iy * ox));
  std::array<std::vector<double>, K> slot;
  std::array<int64_t, K> slot_z;
  slot_z.fill(-1);
  for (auto& p : slot) p.resize(static_cast<size_t>(oy * ox));
  const int64_t* tx = tap[2].data();
  const int64_t* ty = tap[1].data();
  // Interior columns (no mirroring): taps at 2x - 2 + t - lo without the table.
  int64_t x0 = 0, x1 = ox;
  while (x0 < ox && 2 * (ob.lo[2] + x0) - kGaussianHalo < 0) ++x0;
  while (x1 > x0 && 2 * (ob.lo[2] + x1 - 1) - kGaussianHalo + K > level[2]) --x1;
  const int64_t shift = 2 * ob.lo[2] - kGaussianHalo - ib.lo[2];
  std::vector<double> rd(static_cast<size_t>(ix));
  auto plane = [&](int64_t lz, double* dst) {
    const T* src = in + lz * iy * ix;
    for (int64_t y = 0; y < iy; ++y) {
      const T* row = src + y * ix;
      for (int64_t x = 0; x < ix; ++x) rd[x] = static_cast<double>(row[x]);  // each voxel once
      const double* r = rd.data();
      double* xr = xrows.data() + y * ox;
      for (int64_t x = 0; x < x0; ++x) {
        const int64_t* tt = tx + x * K;
        double acc = 0.0;
        for (int t = 0; t < K; ++t) acc += w[t] * r[tt[t]];
        xr[x] = acc;
      }
      for (int64_t x = x0; x < x1; ++x) {
        const double* q = r + 2 * x + shift;
        double acc = 0.0;
        acc += w[0] * q[0];
        acc += w[1] * q[1];
        acc += w[2] * q[2];
        acc += w[3] * q[3];
        acc += w[4] * q[4];
        acc += w[5] * q[5];
        xr[x] = acc;
      }
      for (int64_t x = x1; x < ox; ++x) {
        const int64_t* tt = tx + x * K;
        double acc = 0.0;
        for (int t = 0; t < K; ++t) acc += w[t] * r[tt[t]];
        xr[x] = acc;
      }
    }
    for (int64_t y = 0; y < oy; ++y) {
      double* d = dst + y * ox;
      const int64_t* tt = ty + y * K;
      for (int64_t x = 0; x < ox; ++x) d[x] = 0.0;
      for (int t = 0; t < K; ++t) {
        const double* s = xrows.data() + tt[t] * ox;
        const double wt = w[t];
        for (int64_t x = 0; x < ox; ++x) d[x] += wt * s[x];
      }
    }
  };
  std::vector<double> acc(static_cast<size_t>(oy * ox));
  for (int64_t z = 0; z < os[0]; ++z) {
    const int64_t* tz = tap[0].data() + z * K;
    std::array<const double*, K> src;
    for (int t = 0; t < K; ++t) {
      int found = -1;
      for (int s2 = 0; s2 < K; ++s2)
        if (slot_z[s2] == tz[t]) found = s2;
      if (found < 0) {
        // A slot no tap of this output plane uses.
        for (int s2 = 0; s2 < K && found < 0; ++s2) {
          bool used = false;
          for (int u = 0; u < K; ++u) used |= slot_z[s2] == tz[u];
          if (!used) found = s2;
        }
        plane(tz[t], slot[found].data());
        slot_z[found] = tz[t];
      }
      src[t] = slot[found].data();
    }
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int t = 0; t < K; ++t) {
      const double wt = w[t];
      const double* s2 = src[t];
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += wt * s2[i];
    }
    T* o = out + z * oy * ox;
    for (size_t i = 0; i < acc.size(); ++i) o[i] = FromDouble<T>(acc[i]);
  }
}

template <typename T>
void Dispatch(Algorithm a, const void* in, const Vec3& s, void* out) {
  const T* i = static_cast<const T*>(in);
  T* o = static_cast<T*>(out);
  switch (a) {
    case Algorithm::kMean: Kernel<T, Algorithm::kMean>(i, s, o); break;
    case Algorithm::kNearest: Kernel<T, Algorithm::kNearest>(i, s, o); break;
    case Algorithm::kMax: Kernel<T, Algorithm::kMax>(i, s, o); break;
    case Algorithm::kMin: Kernel<T, Algorithm::kMin>(i, s, o); break;
    case Algorithm::kMode: Kernel<T, Algorithm::kMode>(i, s, o); break;
    case Algorithm::kGaussian: Gaussian<T>(i, BoxFromShape(s), s, BoxFromShape(DownsampledShape(s)), o); break;
  }
}

template <typename T>
void GaussianBox(const void* in, const Box& ib, const Vec3& level, const Box& ob, void* out) {
  Gaussian<T>(static_cast<const T*>(in), ib, level, ob, static_cast<T*>(out));
}

// The kernel table's rows, in Algorithm order.
constexpr KernelInfo kKernels[] = {
    {Algorithm::kMean, "mean", 0}, {Algorithm::kNearest, "nearest", 0},
    {Algorithm::kMax, "max", 0},   {Algorithm::kMin, "min", 0},
    {Algorithm::kMode, "mode", 0}, {Algorithm::kGaussian, "gaussian", kGaussianHalo},
};

}  // namespace

const KernelInfo& KernelFor(Algorithm a) {
  for (const KernelInfo& k : kKernels)
    if (k.algorithm == a) return k;
  return kKernels[0];
}

// exp(-d^2 / 2) / sum, the sum taken left to right in double, written out so that no libm's exp
// (nor numpy's pairwise sum, which differs in the last bit of w[2]) can change a result.
const std::array<double, kGaussianTaps>& GaussianWeights() {
  static constexpr std::array<double, kGaussianTaps> w = {0x1.1fb1f0083f219p-6, 0x1.09b970aa64d06p-3,
                                                          0x1.692828aa49a5bp-2, 0x1.692828aa49a5bp-2,
                                                          0x1.09b970aa64d06p-3, 0x1.1fb1f0083f219p-6};
  return w;
}

void DownsampleBox(Algorithm algorithm, DType dtype, const void* in, const Box& in_box, const Vec3& level_shape,
                   const Box& out_box, void* out) {
  if (out_box.empty()) return;
  if (algorithm == Algorithm::kGaussian) {
    switch (dtype) {
      case DType::kUint8: GaussianBox<uint8_t>(in, in_box, level_shape, out_box, out); break;
      case DType::kUint16: GaussianBox<uint16_t>(in, in_box, level_shape, out_box, out); break;
      case DType::kUint32: GaussianBox<uint32_t>(in, in_box, level_shape, out_box, out); break;
      case DType::kUint64: GaussianBox<uint64_t>(in, in_box, level_shape, out_box, out); break;
      case DType::kInt16: GaussianBox<int16_t>(in, in_box, level_shape, out_box, out); break;
      case DType::kFloat32: GaussianBox<float>(in, in_box, level_shape, out_box, out); break;
    }
    return;
  }
  // Block kernels: the exact 2x2x2 footprint, cut out of in when in_box is larger.
  Box fb;
  for (int a = 0; a < 3; ++a) {
    fb.lo[a] = 2 * out_box.lo[a];
    fb.hi[a] = std::min(2 * out_box.hi[a], level_shape[a]);
  }
  const size_t bpv = DTypeSize(dtype);
  if (fb == in_box) return Downsample2x(algorithm, dtype, in, in_box.shape(), out);
  std::vector<uint8_t> tmp(static_cast<size_t>(fb.volume()) * bpv);
  CopyRegion(static_cast<const uint8_t*>(in), in_box.shape(),
             {fb.lo[0] - in_box.lo[0], fb.lo[1] - in_box.lo[1], fb.lo[2] - in_box.lo[2]}, tmp.data(), fb.shape(),
             {0, 0, 0}, fb.shape(), bpv);
  Downsample2x(algorithm, dtype, tmp.data(), fb.shape(), out);
}

void Downsample2x(Algorithm algorithm, DType dtype, const void* in, const Vec3& in_shape, void* out) {
  if (in_shape[0] <= 0 || in_shape[1] <= 0 || in_shape[2] <= 0) return;
  switch (dtype) {
    case DType::kUint8: Dispatch<uint8_t>(algorithm, in, in_shape, out); break;
    case DType::kUint16: Dispatch<uint16_t>(algorithm, in, in_shape, out); break;
    case DType::kUint32: Dispatch<uint32_t>(algorithm, in, in_shape, out); break;
    case DType::kUint64: Dispatch<uint64_t>(algorithm, in, in_shape, out); break;
    case DType::kInt16: Dispatch<int16_t>(algorithm, in, in_shape, out); break;
    case DType::kFloat32: Dispatch<float>(algorithm, in, in_shape, out); break;
  }
}

}  // namespace oz
