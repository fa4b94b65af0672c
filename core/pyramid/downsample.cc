// Downsampling kernels. The interior (full 2x2x2 blocks) runs without per-voxel branches; odd
// edges fall back to a generic loop over the voxels that exist.
#include "core/pyramid/downsample.h"

#include <algorithm>
#include <cstdint>

namespace oz {
namespace {

// round(sum / n) with ties to even, n in {1, 2, 4, 8}.
inline uint32_t RoundHalfEvenDiv(uint32_t sum, uint32_t n) {
  uint32_t q = sum / n, r = sum % n;
  uint32_t twice = 2 * r;
  if (twice > n || (twice == n && (q & 1))) ++q;
  return q;
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
      if (nz == 2 && ny == 2) {
        const T* r01 = r00 + X;
        const T* r10 = r00 + plane;
        const T* r11 = r10 + X;
        for (int64_t x = 0; x < full_x; ++x) {
          const int64_t i = 2 * x;
          if constexpr (A == Algorithm::kMean) {
            uint32_t sum =
                uint32_t{r00[i]} + r00[i + 1] + r01[i] + r01[i + 1] + r10[i] + r10[i + 1] + r11[i] + r11[i + 1];
            orow[x] = static_cast<T>(RoundHalfEvenDiv(sum, 8));
          } else {
            T m = std::max({r00[i], r00[i + 1], r01[i], r01[i + 1], r10[i], r10[i + 1], r11[i], r11[i + 1]});
            orow[x] = m;
          }
        }
      } else {
        for (int64_t x = 0; x < full_x; ++x) {
          uint32_t sum = 0;
          T m = 0;
          for (int64_t dz = 0; dz < nz; ++dz)
            for (int64_t dy = 0; dy < ny; ++dy) {
              const T* r = r00 + dz * plane + dy * X + 2 * x;
              sum += uint32_t{r[0]} + r[1];
              m = std::max({m, r[0], r[1]});
            }
          if constexpr (A == Algorithm::kMean)
            orow[x] = static_cast<T>(RoundHalfEvenDiv(sum, static_cast<uint32_t>(nz * ny * 2)));
          else
            orow[x] = m;
        }
      }
      if (ox > full_x) {  // last column has a single input column
        const int64_t i = 2 * full_x;
        uint32_t sum = 0;
        T m = 0;
        for (int64_t dz = 0; dz < nz; ++dz)
          for (int64_t dy = 0; dy < ny; ++dy) {
            T v = r00[dz * plane + dy * X + i];
            sum += v;
            m = std::max(m, v);
          }
        if constexpr (A == Algorithm::kMean)
          orow[full_x] = static_cast<T>(RoundHalfEvenDiv(sum, static_cast<uint32_t>(nz * ny)));
        else
          orow[full_x] = m;
      }
    }
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
  }
}

}  // namespace

void Downsample2x(Algorithm algorithm, DType dtype, const void* in, const Vec3& in_shape, void* out) {
  if (in_shape[0] <= 0 || in_shape[1] <= 0 || in_shape[2] <= 0) return;
  if (dtype == DType::kUint8)
    Dispatch<uint8_t>(algorithm, in, in_shape, out);
  else
    Dispatch<uint16_t>(algorithm, in, in_shape, out);
}

}  // namespace oz
