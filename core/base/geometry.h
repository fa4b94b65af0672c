// Shapes, boxes and checked integer math. Axis order is always z, y, x (index 0, 1, 2).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace oz {

using Vec3 = std::array<int64_t, 3>;  // z, y, x

// ceil(a / b) for a >= 0, b > 0.
constexpr int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

// a * b, or nullopt on overflow.
inline std::optional<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Product of the three extents, or nullopt on overflow / negative extents.
inline std::optional<int64_t> CheckedVolume(const Vec3& s) {
  if (s[0] < 0 || s[1] < 0 || s[2] < 0) return std::nullopt;
  auto a = CheckedMul(s[0], s[1]);
  if (!a) return std::nullopt;
  return CheckedMul(*a, s[2]);
}

// Half-open box [lo, hi) per axis.
struct Box {
  Vec3 lo{0, 0, 0};
  Vec3 hi{0, 0, 0};

  Vec3 shape() const { return {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]}; }
  int64_t volume() const {
    if (empty()) return 0;
    Vec3 s = shape();
    return s[0] * s[1] * s[2];
  }
  bool empty() const { return hi[0] <= lo[0] || hi[1] <= lo[1] || hi[2] <= lo[2]; }
  Box Intersect(const Box& o) const {
    Box r;
    for (int i = 0; i < 3; ++i) {
      r.lo[i] = std::max(lo[i], o.lo[i]);
      r.hi[i] = std::max(r.lo[i], std::min(hi[i], o.hi[i]));
    }
    return r;
  }
  bool Contains(const Box& o) const {
    for (int i = 0; i < 3; ++i)
      if (o.lo[i] < lo[i] || o.hi[i] > hi[i]) return false;
    return true;
  }
  bool operator==(const Box& o) const { return lo == o.lo && hi == o.hi; }
  std::string ToString() const;  // "[z0:z1, y0:y1, x0:x1]"
};

inline Box BoxFromShape(const Vec3& shape) { return Box{{0, 0, 0}, shape}; }

std::string ToString(const Vec3& v);  // "(z, y, x)"

// The one box copy: copies `region` voxels of `bpv` bytes from src (dense C order, shape
// src_shape) at src_off to dst (dense, dst_shape) at dst_off, one memcpy per row.
void CopyRegion(const uint8_t* src, const Vec3& src_shape, const Vec3& src_off, uint8_t* dst, const Vec3& dst_shape,
                const Vec3& dst_off, const Vec3& region, size_t bpv);

// Copies the part of a dense chunk covering `chunk_box` that lies inside `box` into out (dense
// over box). data == nullptr (an absent chunk) writes the bpv-byte value `fill` there instead.
void CopyChunkIntoBox(const uint8_t* data, const Box& chunk_box, const uint8_t* fill, const Box& box, uint8_t* out,
                      size_t bpv);

}  // namespace oz
