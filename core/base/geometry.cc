// Formatting and copying for geometry types.
#include "core/base/geometry.h"

#include <cstring>

namespace oz {

std::string Box::ToString() const {
  std::string s = "[";
  for (int i = 0; i < 3; ++i) {
    if (i) s += ", ";
    s += std::to_string(lo[i]) + ":" + std::to_string(hi[i]);
  }
  return s + "]";
}

std::string ToString(const Vec3& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " + std::to_string(v[2]) + ")";
}

void CopyRegion(const uint8_t* src, const Vec3& src_shape, const Vec3& src_off, uint8_t* dst, const Vec3& dst_shape,
                const Vec3& dst_off, const Vec3& region, size_t bpv) {
  const size_t row = static_cast<size_t>(region[2]) * bpv;
  for (int64_t z = 0; z < region[0]; ++z)
    for (int64_t y = 0; y < region[1]; ++y) {
      const int64_t si = ((src_off[0] + z) * src_shape[1] + (src_off[1] + y)) * src_shape[2] + src_off[2];
      const int64_t di = ((dst_off[0] + z) * dst_shape[1] + (dst_off[1] + y)) * dst_shape[2] + dst_off[2];
      std::memcpy(dst + di * bpv, src + si * bpv, row);
    }
}

}  // namespace oz
