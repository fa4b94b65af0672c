// Pyramid geometry. Everything here is integer math on shapes; see the header for the rounding rule.
#include "core/pyramid/pyramid.h"

namespace oz {

Result<Pyramid> Pyramid::Make(const Vec3& level0, int levels, int64_t chunk) {
  if (levels < 1 || levels > 40)
    return InvalidArgumentError("levels must be between 1 and 40, got " + std::to_string(levels));
  if (chunk < 1) return InvalidArgumentError("chunk must be positive, got " + std::to_string(chunk));
  for (int a = 0; a < 3; ++a) {
    if (level0[a] < 1)
      return InvalidArgumentError("the volume is empty: level-0 shape " + ToString(level0) +
                                  " (check window= and shift=)");
    if (level0[a] > (int64_t{1} << 40)) return InvalidArgumentError("level-0 shape too large: " + ToString(level0));
  }
  Pyramid p;
  p.chunk_ = chunk;
  Vec3 s = level0;
  for (int l = 0; l < levels; ++l) {
    p.shapes_.push_back(s);
    for (auto& v : s) v = CeilDiv(v, 2);
  }
  return p;
}

Vec3 Pyramid::grid(int level) const {
  const Vec3& s = shapes_[level];
  return {CeilDiv(s[0], chunk_), CeilDiv(s[1], chunk_), CeilDiv(s[2], chunk_)};
}

bool Pyramid::ValidChunk(int level, const Vec3& idx) const {
  if (level < 0 || level >= levels()) return false;
  Vec3 g = grid(level);
  for (int a = 0; a < 3; ++a)
    if (idx[a] < 0 || idx[a] >= g[a]) return false;
  return true;
}

Box Pyramid::ChunkBox(int level, const Vec3& idx) const {
  Box b;
  for (int a = 0; a < 3; ++a) {
    b.lo[a] = idx[a] * chunk_;
    b.hi[a] = std::min(b.lo[a] + chunk_, shapes_[level][a]);
  }
  return b;
}

Box Pyramid::BoxAtLowerLevel(const Box& box, int from, int to) const {
  int k = from - to;
  Box b;
  for (int a = 0; a < 3; ++a) {
    b.lo[a] = box.lo[a] << k;
    b.hi[a] = std::min(box.hi[a] << k, shapes_[to][a]);
  }
  return b;
}

Box Pyramid::BoxAtHigherLevel(const Box& box, int from, int to) const {
  int k = to - from;
  int64_t f = int64_t{1} << k;
  Box b;
  for (int a = 0; a < 3; ++a) {
    b.lo[a] = box.lo[a] >> k;
    b.hi[a] = std::min(CeilDiv(box.hi[a], f), shapes_[to][a]);
  }
  return b;
}

Box Pyramid::Footprint(const Box& box, int level, int halo) const {
  Box b;
  for (int a = 0; a < 3; ++a) {
    b.lo[a] = std::max<int64_t>(0, 2 * box.lo[a] - halo);
    b.hi[a] = std::min(2 * box.hi[a] + halo, shapes_[level - 1][a]);
  }
  return b;
}

Box Pyramid::FootprintAtLowerLevel(const Box& box, int from, int to, int halo) const {
  Box b = box;
  for (int l = from; l > to; --l) b = Footprint(b, l, halo);
  return b;
}

}  // namespace oz
