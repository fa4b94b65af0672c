// Formatting and copying for geometry types.
#include "core/base/geometry.h"

#include <cstring>
#include <vector>

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

void CopyChunkIntoBox(const uint8_t* data, const Box& chunk_box, const uint8_t* fill, const Box& box, uint8_t* out,
                      size_t bpv) {
  const Box ib = box.Intersect(chunk_box);
  const Vec3 region = ib.shape();
  const Vec3 dst_off{ib.lo[0] - box.lo[0], ib.lo[1] - box.lo[1], ib.lo[2] - box.lo[2]};
  if (data) {
    CopyRegion(data, chunk_box.shape(),
               {ib.lo[0] - chunk_box.lo[0], ib.lo[1] - chunk_box.lo[1], ib.lo[2] - chunk_box.lo[2]}, out, box.shape(),
               dst_off, region, bpv);
    return;
  }
  std::vector<uint8_t> row(static_cast<size_t>(region[2]) * bpv);
  for (size_t i = 0; i < row.size(); i += bpv) std::memcpy(row.data() + i, fill, bpv);
  for (int64_t z = 0; z < region[0]; ++z)
    for (int64_t y = 0; y < region[1]; ++y)
      CopyRegion(row.data(), {1, 1, region[2]}, {0, 0, 0}, out, box.shape(),
                 {dst_off[0] + z, dst_off[1] + y, dst_off[2]}, {1, 1, region[2]}, bpv);
}

}  // namespace oz
