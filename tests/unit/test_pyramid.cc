// Pyramid shapes, chunk boxes and level mapping (tables with odd sizes), and the 2x kernels
// against a brute-force reference.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "core/pyramid/downsample.h"
#include "core/pyramid/pyramid.h"
#include "mem_volume.h"

namespace oz {
namespace {

TEST_CASE("Pyramid level shapes use ceil(n/2)") {
  auto p = Pyramid::Make({67, 130, 257}, 5, 32);
  REQUIRE(p.ok());
  CHECK(p->shape(0) == Vec3{67, 130, 257});
  CHECK(p->shape(1) == Vec3{34, 65, 129});
  CHECK(p->shape(2) == Vec3{17, 33, 65});
  CHECK(p->shape(3) == Vec3{9, 17, 33});
  CHECK(p->shape(4) == Vec3{5, 9, 17});
  CHECK(p->grid(0) == Vec3{3, 5, 9});
  CHECK(p->grid(4) == Vec3{1, 1, 1});
  CHECK(p->ChunkBox(0, {2, 4, 8}) == Box{{64, 128, 256}, {67, 130, 257}});
  CHECK(p->ChunkBox(1, {1, 2, 4}) == Box{{32, 64, 128}, {34, 65, 129}});
  CHECK(p->ValidChunk(0, {2, 4, 8}));
  CHECK_FALSE(p->ValidChunk(0, {3, 0, 0}));
  CHECK_FALSE(p->ValidChunk(5, {0, 0, 0}));
  CHECK_FALSE(p->ValidChunk(0, {-1, 0, 0}));
}

TEST_CASE("Pyramid maps boxes between levels with truncation at odd edges") {
  auto p = Pyramid::Make({67, 130, 257}, 4, 32);
  REQUIRE(p.ok());
  // Level-2 chunk (0,1,2) covers level-2 voxels [0:17, 32:33, 64:65] (clipped).
  Box b2 = p->ChunkBox(2, {0, 1, 2});
  CHECK(b2 == Box{{0, 32, 64}, {17, 33, 65}});
  CHECK(p->BoxAtLowerLevel(b2, 2, 0) == Box{{0, 128, 256}, {67, 130, 257}});
  CHECK(p->BoxAtLowerLevel(b2, 2, 1) == Box{{0, 64, 128}, {34, 65, 129}});
  CHECK(p->BoxAtHigherLevel(Box{{3, 5, 7}, {9, 10, 11}}, 0, 1) == Box{{1, 2, 3}, {5, 5, 6}});
}

TEST_CASE("Pyramid rejects bad parameters") {
  CHECK_FALSE(Pyramid::Make({0, 1, 1}, 2, 4).ok());
  CHECK_FALSE(Pyramid::Make({1, 1, 1}, 0, 4).ok());
  CHECK_FALSE(Pyramid::Make({1, 1, 1}, 2, 0).ok());
}

template <typename T>
void CheckKernel(Algorithm a, DType dt, Vec3 s, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t n = static_cast<size_t>(s[0] * s[1] * s[2]);
  std::vector<T> in(n);
  std::vector<uint32_t> in32(n);
  const uint32_t maxv = dt == DType::kUint8 ? 255 : 65535;
  for (size_t i = 0; i < n; ++i) {
    // Mix extremes (overflow checks) with random values and ties.
    uint32_t v = (i % 7 == 0) ? maxv : (i % 5 == 0 ? 0 : rng() % (maxv + 1));
    in[i] = static_cast<T>(v);
    in32[i] = v;
  }
  Vec3 os;
  auto ref = testing::RefDownsample(in32, s, a, &os);
  CHECK(os == DownsampledShape(s));
  std::vector<T> out(ref.size());
  Downsample2x(a, dt, in.data(), s, out.data());
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) bad += out[i] != ref[i];
  INFO("algorithm " << AlgorithmName(a) << " shape " << ToString(s));
  CHECK(bad == 0);
}

TEST_CASE("Downsample kernels match brute force on odd and even shapes") {
  const Vec3 shapes[] = {{1, 1, 1}, {2, 2, 2}, {3, 5, 7}, {4, 6, 8}, {1, 9, 2}, {5, 1, 1}, {7, 13, 33}, {2, 3, 1}};
  uint32_t seed = 1;
  for (Algorithm a : {Algorithm::kMean, Algorithm::kNearest, Algorithm::kMax})
    for (const Vec3& s : shapes) {
      CheckKernel<uint8_t>(a, DType::kUint8, s, seed++);
      CheckKernel<uint16_t>(a, DType::kUint16, s, seed++);
    }
}

TEST_CASE("Mean rounds half to even") {
  // 2 voxels: (1+2)/2 = 1.5 -> 2; (2+3)/2 = 2.5 -> 2; 4 voxels summing to 10 -> 2.5 -> 2; 14 -> 3.5 -> 4.
  uint8_t a[2] = {1, 2}, b[2] = {2, 3};
  uint8_t o = 0;
  Downsample2x(Algorithm::kMean, DType::kUint8, a, {1, 1, 2}, &o);
  CHECK(o == 2);
  Downsample2x(Algorithm::kMean, DType::kUint8, b, {1, 1, 2}, &o);
  CHECK(o == 2);
  uint8_t c[4] = {2, 2, 3, 3}, d[4] = {3, 3, 4, 4};
  Downsample2x(Algorithm::kMean, DType::kUint8, c, {1, 2, 2}, &o);
  CHECK(o == 2);
  Downsample2x(Algorithm::kMean, DType::kUint8, d, {1, 2, 2}, &o);
  CHECK(o == 4);
  uint16_t e[8] = {65535, 65535, 65535, 65535, 65535, 65535, 65535, 65534};
  uint16_t o16 = 0;
  Downsample2x(Algorithm::kMean, DType::kUint16, e, {2, 2, 2}, &o16);
  CHECK(o16 == 65535);  // 65534.875 -> 65535, no overflow
}

}  // namespace
}  // namespace oz
