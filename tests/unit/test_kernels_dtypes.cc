// Every 2x kernel (mean, nearest, max, min, mode) for every DType against a brute-force reference
// written independently of core/pyramid/downsample.cc: exact rational mean with long division in
// __int128, counting mode over a std::map, odd shapes, ties and float specials (NaN, inf, -0.0).
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "core/pyramid/downsample.h"

namespace oz {
namespace {

__extension__ typedef __int128 I128;

// round(num / n) half to even, exact, for any sign of num.
I128 RoundDiv(I128 num, I128 n) {
  I128 q = num / n, r = num % n;  // truncating
  if (r < 0) {
    r += n;
    q -= 1;
  }
  if (2 * r > n || (2 * r == n && (q % 2 != 0))) ++q;
  return q;
}

// Total-order rank of a float's bits (signed comparison trick), independent of the kernel's key.
int32_t FloatRank(float f) {
  int32_t i = std::bit_cast<int32_t>(f);
  return i ^ ((i >> 31) & 0x7fffffff);
}

template <typename T>
T RefReduce(Algorithm a, const std::vector<T>& v) {
  if (a == Algorithm::kNearest) return v[0];
  if constexpr (std::is_floating_point_v<T>) {
    if (a == Algorithm::kMode) {
      std::map<int32_t, int> count;
      for (T x : v) count[FloatRank(x)]++;
      int32_t best = 0;
      int bc = 0;
      for (auto [k, c] : count)
        if (c > bc) bc = c, best = k;
      int32_t bits = best ^ ((best >> 31) & 0x7fffffff);
      return std::bit_cast<float>(bits);
    }
    for (T x : v)
      if (std::isnan(x)) return std::numeric_limits<T>::quiet_NaN();
    if (a == Algorithm::kMean) {
      long double s = 0;
      for (T x : v) s += x;
      return static_cast<T>(static_cast<double>(s / v.size()));
    }
    T m = v[0];  // total order: -0.0 < +0.0
    for (T x : v) m = (a == Algorithm::kMax) == (FloatRank(x) > FloatRank(m)) ? x : m;
    return m;
  } else {
    if (a == Algorithm::kMean) {
      I128 s = 0;
      for (T x : v) s += static_cast<I128>(x);
      return static_cast<T>(RoundDiv(s, static_cast<I128>(v.size())));
    }
    if (a == Algorithm::kMode) {
      std::map<T, int> count;
      for (T x : v) count[x]++;
      T best{};
      int bc = 0;
      for (auto [k, c] : count)  // ascending, so only a strictly larger count replaces: ties -> smallest
        if (c > bc) bc = c, best = k;
      return best;
    }
    T m = v[0];
    for (T x : v) m = (a == Algorithm::kMax) ? std::max(m, x) : std::min(m, x);
    return m;
  }
}

template <typename T>
std::vector<T> RefLevel(Algorithm a, const std::vector<T>& in, const Vec3& s) {
  Vec3 o{(s[0] + 1) / 2, (s[1] + 1) / 2, (s[2] + 1) / 2};
  std::vector<T> out;
  for (int64_t z = 0; z < o[0]; ++z)
    for (int64_t y = 0; y < o[1]; ++y)
      for (int64_t x = 0; x < o[2]; ++x) {
        std::vector<T> v;
        for (int dz = 0; dz < 2; ++dz)
          for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx) {
              int64_t iz = 2 * z + dz, iy = 2 * y + dy, ix = 2 * x + dx;
              if (iz < s[0] && iy < s[1] && ix < s[2])
                v.push_back(in[static_cast<size_t>((iz * s[1] + iy) * s[2] + ix)]);
            }
        out.push_back(RefReduce(a, v));
      }
  return out;
}

template <typename T>
bool Same(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return std::memcmp(&a, &b, sizeof a) == 0;
  }
  return a == b;
}

// Values: extremes (overflow), a small alphabet (ties for mode), and random values.
template <typename T>
std::vector<T> MakeInput(size_t n, uint32_t seed, bool specials) {
  std::mt19937_64 rng(seed);
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = rng();
    if constexpr (std::is_floating_point_v<T>) {
      const float pool[] = {0.0f, -0.0f, 1.5f, -2.25f, 1e30f, -1e30f, 3.0f};
      if (specials && r % 29 == 0)
        v[i] = std::numeric_limits<float>::quiet_NaN();
      else if (specials && r % 31 == 0)
        v[i] = (r & 64) ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
      else if (r % 3 == 0)
        v[i] = pool[(r >> 8) % 7];
      else
        v[i] = static_cast<float>(static_cast<double>(static_cast<int64_t>(r >> 20) % 2000001 - 1000000) / 1024.0);
    } else {
      if (r % 7 == 0)
        v[i] = std::numeric_limits<T>::max();
      else if (r % 11 == 0)
        v[i] = std::numeric_limits<T>::min();
      else if (r % 3 == 0)
        v[i] = static_cast<T>((r >> 8) % 3);  // ties
      else
        v[i] = static_cast<T>(r >> 7);
    }
  }
  return v;
}

template <typename T>
void CheckAll(DType dt, bool specials) {
  const Vec3 shapes[] = {{1, 1, 1}, {2, 2, 2}, {3, 5, 7}, {4, 6, 8}, {1, 9, 2}, {5, 1, 1}, {7, 13, 33}, {2, 3, 1}};
  uint32_t seed = 7;
  for (Algorithm a : {Algorithm::kMean, Algorithm::kNearest, Algorithm::kMax, Algorithm::kMin, Algorithm::kMode})
    for (const Vec3& s : shapes) {
      // Three levels, each from the previous, like the pyramid.
      std::vector<T> in = MakeInput<T>(static_cast<size_t>(s[0] * s[1] * s[2]), seed++, specials);
      Vec3 cur = s;
      for (int level = 1; level <= 3; ++level) {
        std::vector<T> ref = RefLevel(a, in, cur);
        std::vector<T> out(ref.size());
        Downsample2x(a, dt, in.data(), cur, out.data());
        size_t bad = 0;
        for (size_t i = 0; i < ref.size(); ++i) bad += !Same(out[i], ref[i]);
        INFO(DTypeName(dt) << " " << AlgorithmName(a) << " shape " << ToString(cur) << " level " << level);
        CHECK(bad == 0);
        in = ref;
        cur = DownsampledShape(cur);
      }
    }
}

TEST_CASE("Kernels match brute force for every dtype") {
  CheckAll<uint8_t>(DType::kUint8, false);
  CheckAll<uint16_t>(DType::kUint16, false);
  CheckAll<uint32_t>(DType::kUint32, false);
  CheckAll<uint64_t>(DType::kUint64, false);
  CheckAll<int16_t>(DType::kInt16, false);
  CheckAll<float>(DType::kFloat32, false);
  CheckAll<float>(DType::kFloat32, true);
}

TEST_CASE("Mode: most frequent, ties to the smallest, zeros count") {
  auto mode8 = [](std::vector<uint16_t> v) {
    uint16_t o = 1234;
    Downsample2x(Algorithm::kMode, DType::kUint16, v.data(), {2, 2, 2}, &o);
    return o;
  };
  CHECK(mode8({5, 5, 5, 0, 0, 1, 2, 3}) == 5);
  CHECK(mode8({0, 0, 0, 0, 7, 7, 7, 7}) == 0);  // tie: smallest; zero is a value like others
  CHECK(mode8({9, 8, 7, 6, 5, 4, 3, 2}) == 2);  // all distinct: smallest
  CHECK(mode8({9, 9, 8, 8, 1, 1, 3, 3}) == 1);
  int16_t s[2] = {-3, 4};
  int16_t so = 0;
  Downsample2x(Algorithm::kMode, DType::kInt16, s, {1, 1, 2}, &so);
  CHECK(so == -3);  // negative is smaller
  float f[4] = {0.0f, -0.0f, 2.0f, 3.0f};
  float fo = 1;
  Downsample2x(Algorithm::kMode, DType::kFloat32, f, {1, 2, 2}, &fo);
  CHECK(std::signbit(fo));  // -0.0 < +0.0 in the total order, all counts 1
  uint64_t u[2] = {~uint64_t{0}, ~uint64_t{0} - 1};
  uint64_t uo = 0;
  Downsample2x(Algorithm::kMode, DType::kUint64, u, {1, 1, 2}, &uo);
  CHECK(uo == ~uint64_t{0} - 1);
}

TEST_CASE("Mean is exact at the top of the range and rounds half to even for signed values") {
  uint64_t u[8];
  for (auto& x : u) x = ~uint64_t{0};
  u[7] -= 1;
  uint64_t uo = 0;
  Downsample2x(Algorithm::kMean, DType::kUint64, u, {2, 2, 2}, &uo);
  CHECK(uo == ~uint64_t{0});  // 2^64 - 1.125 -> 2^64 - 1
  int16_t a[2] = {-2, -3}, b[2] = {-3, -4}, c[2] = {-32768, -32767};
  int16_t o = 0;
  Downsample2x(Algorithm::kMean, DType::kInt16, a, {1, 1, 2}, &o);
  CHECK(o == -2);  // -2.5 -> -2
  Downsample2x(Algorithm::kMean, DType::kInt16, b, {1, 1, 2}, &o);
  CHECK(o == -4);  // -3.5 -> -4
  Downsample2x(Algorithm::kMean, DType::kInt16, c, {1, 1, 2}, &o);
  CHECK(o == -32768);  // -32767.5 -> -32768
  float z[2] = {-0.0f, 0.0f}, zo = 1;
  Downsample2x(Algorithm::kMax, DType::kFloat32, z, {1, 1, 2}, &zo);
  CHECK((zo == 0 && !std::signbit(zo)));
  Downsample2x(Algorithm::kMin, DType::kFloat32, z, {1, 1, 2}, &zo);
  CHECK((zo == 0 && std::signbit(zo)));
  float f[2] = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  float fo = 0;
  for (Algorithm alg : {Algorithm::kMean, Algorithm::kMax, Algorithm::kMin}) {
    Downsample2x(alg, DType::kFloat32, f, {1, 1, 2}, &fo);
    CHECK(std::isnan(fo));
  }
}

}  // namespace
}  // namespace oz
