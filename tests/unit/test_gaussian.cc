// The gaussian kernel and its halo: weights, the kernel against a brute-force reference (every
// dtype, odd and tiny shapes), sub-box evaluation, the footprint box math, and the engine's three
// paths (mount with a cache, without one, ComputeTree) against a brute-force pyramid.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/engine/chunk_engine.h"
#include "core/pyramid/downsample.h"
#include "core/pyramid/pyramid.h"
#include "core/source/view.h"
#include "mem_volume.h"

namespace oz {
namespace {

using testing::MemVolume;

int64_t MirrorRef(int64_t j, int64_t n) {
  // Half-sample symmetric: the sequence a b c | c b a a b c | c b a ... has period 2n.
  int64_t m = ((j % (2 * n)) + 2 * n) % (2 * n);
  return m < n ? m : 2 * n - 1 - m;
}

// Brute force: every output voxel on its own, nested sums in the header's order (x innermost).
template <typename T>
std::vector<T> RefGaussian(const std::vector<T>& in, const Vec3& s) {
  const Vec3 o = DownsampledShape(s);
  const auto& w = GaussianWeights();
  std::vector<T> out(static_cast<size_t>(o[0] * o[1] * o[2]));
  for (int64_t k = 0; k < o[0]; ++k)
    for (int64_t j = 0; j < o[1]; ++j)
      for (int64_t i = 0; i < o[2]; ++i) {
        double az = 0;
        for (int tz = 0; tz < 6; ++tz) {
          const int64_t z = MirrorRef(2 * k - 2 + tz, s[0]);
          double ay = 0;
          for (int ty = 0; ty < 6; ++ty) {
            const int64_t y = MirrorRef(2 * j - 2 + ty, s[1]);
            double ax = 0;
            for (int tx = 0; tx < 6; ++tx) {
              const int64_t x = MirrorRef(2 * i - 2 + tx, s[2]);
              ax += w[tx] * static_cast<double>(in[static_cast<size_t>((z * s[1] + y) * s[2] + x)]);
            }
            ay += w[ty] * ax;
          }
          az += w[tz] * ay;
        }
        T r;
        if constexpr (std::is_floating_point_v<T>) {
          r = static_cast<T>(az);
        } else {
          const double n = std::nearbyint(az);
          const double lo = static_cast<double>(std::numeric_limits<T>::min());
          const double hi = static_cast<double>(std::numeric_limits<T>::max());
          r = n <= lo ? std::numeric_limits<T>::min() : n >= hi ? std::numeric_limits<T>::max() : static_cast<T>(n);
        }
        out[static_cast<size_t>((k * o[1] + j) * o[2] + i)] = r;
      }
  return out;
}

template <typename T>
std::vector<T> Random(const Vec3& s, uint32_t seed, double lo, double hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(static_cast<size_t>(s[0] * s[1] * s[2]));
  for (auto& x : v) x = static_cast<T>(std::floor(d(rng)));
  return v;
}

template <typename T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <typename T>
void CheckKernel(DType dt, double lo, double hi) {
  for (const Vec3& s : {Vec3{1, 1, 1}, Vec3{1, 1, 7}, Vec3{2, 3, 5}, Vec3{3, 1, 2}, Vec3{9, 8, 11}, Vec3{13, 6, 4}}) {
    INFO("shape " << ToString(s) << " dtype " << DTypeName(dt));
    auto in = Random<T>(s, 11, lo, hi);
    std::vector<T> out(static_cast<size_t>(DownsampledShape(s)[0] * DownsampledShape(s)[1] * DownsampledShape(s)[2]));
    Downsample2x(Algorithm::kGaussian, dt, in.data(), s, out.data());
    CHECK(SameBits(out, RefGaussian(in, s)));
  }
}

TEST_CASE("gaussian weights: sigma 1 at offsets -2.5..2.5, normalised, symmetric", "[gaussian]") {
  const auto& w = GaussianWeights();
  double sum = 0;
  for (int t = 0; t < 6; ++t) sum += w[t];
  CHECK(std::abs(sum - 1) < 1e-15);
  for (int t = 0; t < 3; ++t) CHECK(w[t] == w[5 - t]);
  // exp(-d^2/2) for d = 0.5, 1.5, 2.5, over their sum (computed here with long double).
  long double g[3] = {std::exp(-0.125L), std::exp(-1.125L), std::exp(-3.125L)};
  const long double total = 2 * (g[0] + g[1] + g[2]);
  CHECK(std::abs(static_cast<double>(g[0] / total) - w[2]) < 1e-16);
  CHECK(std::abs(static_cast<double>(g[1] / total) - w[1]) < 1e-16);
  CHECK(std::abs(static_cast<double>(g[2] / total) - w[0]) < 1e-16);
  // The literals are exp(-d^2/2) / sum in double, the sum left to right.
  double e[6], es = 0;
  for (int t = 0; t < 6; ++t) e[t] = std::exp(-(t - 2.5) * (t - 2.5) / 2);
  for (int t = 0; t < 6; ++t) es += e[t];
  for (int t = 0; t < 6; ++t) CHECK(std::abs(e[t] / es - w[t]) <= 1e-17);
  CHECK(std::abs(w[2] - 0.3526923) < 1e-7);
  CHECK(std::abs(w[0] - 0.0175595) < 1e-7);
  CHECK(KernelFor(Algorithm::kGaussian).halo == 2);
  CHECK(KernelFor(Algorithm::kGaussian).name == "gaussian");
  CHECK(KernelFor(Algorithm::kMode).halo == 0);
  CHECK(KernelFor(Algorithm::kMean).name == "mean");
}

TEST_CASE("gaussian kernel equals the brute force for every dtype, odd and tiny shapes", "[gaussian]") {
  CheckKernel<uint8_t>(DType::kUint8, 0, 256);
  CheckKernel<uint16_t>(DType::kUint16, 0, 65536);
  CheckKernel<uint32_t>(DType::kUint32, 0, 4294967296.0);
  CheckKernel<uint64_t>(DType::kUint64, 0, 9007199254740992.0);
  CheckKernel<int16_t>(DType::kInt16, -32768, 32768);
  CheckKernel<float>(DType::kFloat32, -1e6, 1e6);
}

TEST_CASE("gaussian kernel: the README's worked example", "[gaussian]") {
  const uint8_t row[7] = {0, 0, 100, 100, 100, 100, 100};
  uint8_t out[4];
  Downsample2x(Algorithm::kGaussian, DType::kUint8, row, {1, 1, 7}, out);
  CHECK(std::vector<int>(out, out + 4) == std::vector<int>{15, 85, 100, 100});
}

TEST_CASE("gaussian kernel: constants stay, the extremes clamp, NaN and inf propagate", "[gaussian]") {
  const Vec3 s{5, 4, 3};
  const Vec3 o = DownsampledShape(s);
  const size_t n = 60, m = static_cast<size_t>(o[0] * o[1] * o[2]);
  std::vector<uint16_t> c(n, 65535), co(m);
  Downsample2x(Algorithm::kGaussian, DType::kUint16, c.data(), s, co.data());
  for (auto v : co) CHECK(v == 65535);  // sum(w) may round above 1: clamped
  std::vector<int16_t> neg(n, -32768), no(m);
  Downsample2x(Algorithm::kGaussian, DType::kInt16, neg.data(), s, no.data());
  for (auto v : no) CHECK(v == -32768);
  // float32 on 12^3: output plane k reads input planes 2k-2 .. 2k+3 (mirrored), so a NaN at the
  // first voxel reaches planes 0-1 only and an inf at the last voxel planes 4-5.
  const Vec3 fs{12, 12, 12};
  std::vector<float> f(12 * 12 * 12, 1.5f), fo(6 * 6 * 6);
  f[0] = std::nanf("");
  f.back() = INFINITY;
  Downsample2x(Algorithm::kGaussian, DType::kFloat32, f.data(), fs, fo.data());
  CHECK(std::isnan(fo[0]));
  CHECK(std::isinf(fo.back()));
  CHECK_FALSE(std::isnan(fo.back()));
  for (size_t i = 2 * 36; i < 4 * 36; ++i) CHECK(fo[i] == 1.5f);
}

TEST_CASE("gaussian DownsampleBox: any out box from its footprint (or a larger box) equals the whole level",
          "[gaussian]") {
  const Vec3 s{11, 9, 14};
  auto in = Random<uint16_t>(s, 5, 0, 65536);
  const Vec3 o = DownsampledShape(s);
  std::vector<uint16_t> whole(static_cast<size_t>(o[0] * o[1] * o[2]));
  Downsample2x(Algorithm::kGaussian, DType::kUint16, in.data(), s, whole.data());
  auto py = Pyramid::Make(s, 2, 4);
  REQUIRE(py.ok());
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    Box ob;
    for (int a = 0; a < 3; ++a) {
      ob.lo[a] = std::uniform_int_distribution<int64_t>(0, o[a] - 1)(rng);
      ob.hi[a] = std::uniform_int_distribution<int64_t>(ob.lo[a] + 1, o[a])(rng);
    }
    Box ib = py->Footprint(ob, 1, kGaussianHalo);
    if (trial % 2)
      ib = ib.Intersect(Box{{ib.lo[0] - 1, ib.lo[1] - 2, ib.lo[2]}, {ib.hi[0] + 1, ib.hi[1], ib.hi[2] + 3}});
    std::vector<uint16_t> sub(static_cast<size_t>(ib.volume())), out(static_cast<size_t>(ob.volume()));
    CopyRegion(reinterpret_cast<const uint8_t*>(in.data()), s, ib.lo, reinterpret_cast<uint8_t*>(sub.data()),
               ib.shape(), {0, 0, 0}, ib.shape(), 2);
    DownsampleBox(Algorithm::kGaussian, DType::kUint16, sub.data(), ib, s, ob, out.data());
    std::vector<uint16_t> want(out.size());
    CopyRegion(reinterpret_cast<const uint8_t*>(whole.data()), o, ob.lo, reinterpret_cast<uint8_t*>(want.data()),
               ob.shape(), {0, 0, 0}, ob.shape(), 2);
    INFO("out box " << ob.ToString() << " in box " << ib.ToString());
    REQUIRE(out == want);
    // A block kernel through the same entry point.
    Box mb = py->Footprint(ob, 1, 0);
    std::vector<uint16_t> msub(static_cast<size_t>(ib.volume())), mout(out.size()), mwhole(whole.size());
    DownsampleBox(Algorithm::kMax, DType::kUint16, sub.data(), ib, s, ob, mout.data());
    Downsample2x(Algorithm::kMax, DType::kUint16, in.data(), s, mwhole.data());
    CopyRegion(reinterpret_cast<const uint8_t*>(mwhole.data()), o, ob.lo, reinterpret_cast<uint8_t*>(want.data()),
               ob.shape(), {0, 0, 0}, ob.shape(), 2);
    REQUIRE(mb.volume() <= ib.volume());
    REQUIRE(mout == want);
  }
}

TEST_CASE("gaussian halo, Pyramid::Footprint: 2 lo - h, 2 hi + h, clipped; through levels one at a time",
          "[gaussian]") {
  auto py = Pyramid::Make({100, 37, 9}, 5, 8);
  REQUIRE(py.ok());
  // shapes: (100,37,9) (50,19,5) (25,10,3) (13,5,2) (7,3,1)
  CHECK(py->Footprint(Box{{3, 2, 1}, {5, 4, 2}}, 1, 2) == Box{{4, 2, 0}, {12, 10, 6}});
  CHECK(py->Footprint(Box{{0, 0, 0}, {1, 1, 1}}, 1, 2) == Box{{0, 0, 0}, {4, 4, 4}});
  CHECK(py->Footprint(Box{{48, 18, 4}, {50, 19, 5}}, 1, 2) == Box{{94, 34, 6}, {100, 37, 9}});
  CHECK(py->Footprint(Box{{3, 2, 1}, {5, 4, 2}}, 1, 0) == py->BoxAtLowerLevel(Box{{3, 2, 1}, {5, 4, 2}}, 1, 0));
  // Level 2 -> 0 one level at a time: z [4, 8) -> [6, 18) -> [10, 38); y [0, 1) -> [0, 4) -> [0, 10).
  CHECK(py->FootprintAtLowerLevel(Box{{4, 0, 0}, {8, 1, 1}}, 2, 0, 2) == Box{{10, 0, 0}, {38, 10, 9}});
  CHECK(py->FootprintAtLowerLevel(Box{{6, 2, 1}, {7, 3, 2}}, 4, 0, 2) == Box{{66, 2, 0}, {100, 37, 9}});
  // A chunk reads its two children per axis whole and `halo` voxels of the next ones.
  const Box cb = py->ChunkBox(1, {1, 1, 0});  // [8,16) [8,16) [0,5)
  CHECK(py->Footprint(cb, 1, 2) == Box{{14, 14, 0}, {34, 34, 9}});
}

// ---- engine ----

std::string TempDir(const std::string& tag) {
  std::string d =
      (std::filesystem::temp_directory_path() / ("oz-gauss-" + tag + "-" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// The brute-force pyramid of a MemVolume read whole, as the dtype's values.
template <typename T>
std::vector<std::vector<T>> RefPyramid(MemVolume& mem, int levels, std::vector<Vec3>* shapes) {
  Vec3 s = mem.shape();
  std::vector<T> l0(static_cast<size_t>(s[0] * s[1] * s[2]));
  REQUIRE(mem.ReadBox(BoxFromShape(s), l0.data()).ok());
  std::vector<std::vector<T>> out{l0};
  shapes->assign(1, s);
  for (int l = 1; l < levels; ++l) {
    out.push_back(RefGaussian(out.back(), s));
    s = DownsampledShape(s);
    shapes->push_back(s);
  }
  return out;
}

template <typename T>
std::vector<T> ChunkOfRef(const std::vector<T>& level, const Vec3& s, const Box& cb, int64_t c) {
  std::vector<T> chunk(static_cast<size_t>(c * c * c), T{});
  CopyRegion(reinterpret_cast<const uint8_t*>(level.data()), s, cb.lo, reinterpret_cast<uint8_t*>(chunk.data()),
             {c, c, c}, {0, 0, 0}, cb.shape(), sizeof(T));
  return chunk;
}

template <typename T>
void CheckEngine(DType dt, int64_t chunk, Vec3 shape, double zero_fraction) {
  Options o;
  o.chunk = chunk;
  o.levels = 4;
  o.algorithm = Algorithm::kGaussian;
  o.empty = EmptyPolicy::kOmit;
  auto mem = std::make_shared<MemVolume>(shape, dt, 9, zero_fraction);
  std::vector<Vec3> shapes;
  auto ref = RefPyramid<T>(*mem, o.levels, &shapes);
  auto g = ComputeViewGeometry(shape, o);
  REQUIRE(g.ok());
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(3);
  const std::string dir = TempDir("engine");
  Stats stats;
  auto cache = DiskCache::Open(DiskCacheOptions{dir, 1 << 30, &stats});
  REQUIRE(cache.ok());
  auto make = [&](DiskCache* dc) {
    ChunkEngineConfig cfg;
    cfg.options = o;
    cfg.pool = &pool;
    cfg.stats = &stats;
    cfg.cache = dc;
    auto e = ChunkEngine::Make(view, cfg);
    REQUIRE(e.ok());
    return std::move(e).value();
  };
  auto cached = make(cache->get());
  auto plain = make(nullptr);
  auto tree = make(nullptr);
  const Pyramid& py = cached->pyramid();
  // ComputeTree over every top unit, all levels.
  std::map<std::string, std::string> from_tree;
  std::mutex tree_mu;
  const int top = o.levels - 1;
  for (int64_t zc = 0; zc < py.grid(top)[0]; ++zc)
    for (int64_t yc = 0; yc < py.grid(top)[1]; ++yc)
      REQUIRE(tree->ComputeTree(top, zc, yc, 0,
                                [&](int l, const Vec3& idx, const Result<ChunkBytes>& r, int) {
                                  std::lock_guard<std::mutex> lock(tree_mu);  // sinks run concurrently
                                  const std::string k = std::to_string(l) + "/" + ToString(idx);
                                  CHECK(from_tree.count(k) == 0);  // exactly once
                                  from_tree[k] = r.ok() ? **r : std::string("-");
                                  return OkStatus();
                                })
                  .ok());
  // Coarsest first through the cache (the halo comes from cached neighbours), then every chunk.
  for (int l = top; l >= 0; --l) {
    const Vec3 gr = py.grid(l);
    for (int64_t z = 0; z < gr[0]; ++z)
      for (int64_t y = 0; y < gr[1]; ++y) {
        auto listed = cached->ListRow(l, z, y);
        REQUIRE(listed.ok());
        for (int64_t x = 0; x < gr[2]; ++x) {
          const Vec3 idx{z, y, x};
          INFO("level " << l << " chunk " << ToString(idx) << " chunk size " << chunk);
          auto want = ChunkOfRef(ref[l], shapes[l], py.ChunkBox(l, idx), chunk);
          const bool empty = std::all_of(want.begin(), want.end(), [](T v) { return v == T{}; }) &&
                             std::memcmp(want.data(), std::vector<T>(want.size()).data(), want.size() * sizeof(T)) == 0;
          for (ChunkEngine* e : {cached.get(), plain.get()}) {
            auto r = e->GetChunk(l, idx);
            if (empty) {
              CHECK(r.status().code() == ErrorCode::kNotFound);
            } else {
              REQUIRE(r.ok());
              REQUIRE((*r)->size() == want.size() * sizeof(T));
              CHECK(std::memcmp((*r)->data(), want.data(), (*r)->size()) == 0);
            }
          }
          CHECK((std::find(listed->begin(), listed->end(), x) != listed->end()) == !empty);
          const std::string k = std::to_string(l) + "/" + ToString(idx);
          REQUIRE(from_tree.count(k) == 1);
          if (empty)
            CHECK(from_tree[k] == "-");
          else
            CHECK(std::memcmp(from_tree[k].data(), want.data(), want.size() * sizeof(T)) == 0);
          std::vector<T> unc(want.size());
          REQUIRE(plain->ComputeUncached(l, idx, unc.data()).ok());
          CHECK(SameBits(unc, want));
        }
      }
  }
  cached.reset();
  cache->reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("Engine gaussian: every chunk of every level, three paths, equals the brute force", "[gaussian]") {
  SECTION("uint16, chunk 8, zeros on the left") { CheckEngine<uint16_t>(DType::kUint16, 8, {37, 29, 45}, 0.3); }
  SECTION("uint16, odd chunk 5") { CheckEngine<uint16_t>(DType::kUint16, 5, {23, 19, 17}, 0.0); }
  SECTION("float32, chunk 6") { CheckEngine<float>(DType::kFloat32, 6, {21, 13, 30}, 0.4); }
  SECTION("uint8, chunk 4, thin axes") { CheckEngine<uint8_t>(DType::kUint8, 4, {1, 9, 2}, 0.0); }
}

TEST_CASE("Engine gaussian: a coarse chunk through the cache reads level 0 about once", "[gaussian]") {
  Options o;
  o.chunk = 8;
  o.levels = 4;
  o.algorithm = Algorithm::kGaussian;
  auto mem = std::make_shared<MemVolume>(Vec3{64, 64, 64}, DType::kUint16, 2);
  auto g = ComputeViewGeometry(mem->shape(), o);
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(2);
  const std::string dir = TempDir("once");
  Stats stats;
  auto cache = DiskCache::Open(DiskCacheOptions{dir, 1 << 30, &stats});
  REQUIRE(cache.ok());
  ChunkEngineConfig cfg;
  cfg.options = o;
  cfg.pool = &pool;
  cfg.stats = &stats;
  cfg.cache = cache->get();
  auto e = ChunkEngine::Make(view, cfg);
  REQUIRE(e.ok());
  REQUIRE((*e)->GetChunk(3, {0, 0, 0}).ok());
  // Every level-1 chunk reads its footprint once: per axis 18 + 20 + 20 + 18 = 76 voxels for the
  // 4 chunks (16 of level 0 each, plus the halo of 2 where it exists), nothing else.
  CHECK(mem->voxels_read.load() == 76 * 76 * 76);
  e->reset();  // drains the cache writes
  cache->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace oz

namespace oz {
namespace {

TEST_CASE("Engine gaussian: concurrent readers in random order, and a failed read is not remembered", "[gaussian]") {
  Options o;
  o.chunk = 6;
  o.levels = 4;
  o.algorithm = Algorithm::kGaussian;
  const Vec3 shape{31, 26, 40};
  auto mem = std::make_shared<MemVolume>(shape, DType::kUint16, 4, 0.2);
  std::vector<Vec3> shapes;
  auto ref = RefPyramid<uint16_t>(*mem, o.levels, &shapes);
  auto g = ComputeViewGeometry(shape, o);
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(3);
  const std::string dir = TempDir("conc");
  Stats stats;
  auto cache = DiskCache::Open(DiskCacheOptions{dir, 1 << 30, &stats});
  REQUIRE(cache.ok());
  ChunkEngineConfig cfg;
  cfg.options = o;
  cfg.pool = &pool;
  cfg.stats = &stats;
  cfg.cache = cache->get();
  auto e = ChunkEngine::Make(view, cfg);
  REQUIRE(e.ok());
  // A source failure fails the coarse chunk and is not cached: the next read succeeds.
  mem->fail = true;
  auto bad = (*e)->GetChunk(3, {0, 0, 0});
  CHECK(!bad.ok());
  CHECK(bad.status().code() == ErrorCode::kIoError);
  mem->fail = false;
  std::vector<std::pair<int, Vec3>> all;
  for (int l = 0; l < o.levels; ++l) {
    const Vec3 gr = (*e)->pyramid().grid(l);
    for (int64_t z = 0; z < gr[0]; ++z)
      for (int64_t y = 0; y < gr[1]; ++y)
        for (int64_t x = 0; x < gr[2]; ++x) all.push_back({l, {z, y, x}});
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t)
    readers.emplace_back([&, t] {
      auto order = all;
      std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<uint32_t>(t)));
      for (auto& [l, idx] : order) {
        auto want = ChunkOfRef(ref[l], shapes[l], (*e)->pyramid().ChunkBox(l, idx), o.chunk);
        const bool empty = std::all_of(want.begin(), want.end(), [](uint16_t v) { return v == 0; });
        auto r = (*e)->GetChunk(l, idx);
        if (empty ? r.status().code() != ErrorCode::kNotFound
                  : !r.ok() || std::memcmp((*r)->data(), want.data(), want.size() * 2) != 0)
          wrong++;
      }
    });
  for (auto& r : readers) r.join();
  CHECK(wrong.load() == 0);
  e->reset();
  cache->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace oz
