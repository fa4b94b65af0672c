// Formatting for geometry types.
#include "core/base/geometry.h"

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

}  // namespace oz
