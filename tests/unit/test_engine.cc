// ChunkEngine against a brute-force reference: every chunk of every level, with views, algorithms,
// both dtypes, empty-chunk policy, single-flight and error propagation.
#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "core/base/log.h"
#include "core/engine/chunk_engine.h"
#include "core/source/view.h"
#include "mem_volume.h"

namespace oz {
namespace {

using testing::MemVolume;
using testing::RefDownsample;

// Reference level 0 of the view (naive, voxel by voxel, from the view semantics).
std::vector<uint32_t> RefView(const MemVolume& v, const Options& o, Vec3* shape) {
  auto g = ComputeViewGeometry(v.shape(), o);
  REQUIRE(g.ok());
  *shape = g->shape;
  std::vector<uint32_t> out(static_cast<size_t>(g->shape[0] * g->shape[1] * g->shape[2]), 0);
  for (int64_t z = 0; z < g->shape[0]; ++z)
    for (int64_t y = 0; y < g->shape[1]; ++y)
      for (int64_t x = 0; x < g->shape[2]; ++x) {
        int64_t s[3] = {z - o.shift[0], y - o.shift[1], x - o.shift[2]};
        bool in = true;
        for (int a = 0; a < 3; ++a) in = in && s[a] >= g->source_window.lo[a] && s[a] < g->source_window.hi[a];
        if (!in) continue;
        uint32_t val = v.at(s[0], s[1], s[2]);
        if (o.bytes1 && v.dtype() == DType::kUint16) val /= 256;
        out[static_cast<size_t>((z * g->shape[1] + y) * g->shape[2] + x)] = val;
      }
  return out;
}

struct Harness {
  std::shared_ptr<MemVolume> mem;
  std::shared_ptr<ViewVolume> view;
  ThreadPool pool{3};
  Stats stats;
  std::unique_ptr<ChunkEngine> engine;

  Harness(Vec3 shape, DType dt, const Options& o, double zero_fraction = 0.0, uint64_t work_memory = 64 << 20) {
    mem = std::make_shared<MemVolume>(shape, dt, 7, zero_fraction);
    auto g = ComputeViewGeometry(shape, o);
    REQUIRE(g.ok());
    view = std::make_shared<ViewVolume>(mem, *g, o.bytes1);
    ChunkEngineConfig cfg;
    cfg.options = o;
    cfg.pool = &pool;
    cfg.stats = &stats;
    cfg.work_memory = work_memory;
    auto e = ChunkEngine::Make(view, cfg);
    REQUIRE(e.ok());
    engine = std::move(e).value();
  }
};

uint32_t Voxel(const std::string& bytes, DType dt, size_t i) {
  if (dt == DType::kUint8) return static_cast<uint8_t>(bytes[i]);
  uint16_t v;
  std::memcpy(&v, bytes.data() + 2 * i, 2);
  return v;
}

// Checks every chunk of every level against the reference pyramid.
void CheckAll(Harness& h, const Options& o) {
  Vec3 s;
  std::vector<uint32_t> level = RefView(*h.mem, o, &s);
  const DType dt = h.engine->dtype();
  const int64_t c = o.chunk;
  for (int l = 0; l < o.levels; ++l) {
    REQUIRE(h.engine->pyramid().shape(l) == s);
    const Vec3 g = h.engine->pyramid().grid(l);
    size_t mismatches = 0;
    for (int64_t cz = 0; cz < g[0]; ++cz)
      for (int64_t cy = 0; cy < g[1]; ++cy)
        for (int64_t cx = 0; cx < g[2]; ++cx) {
          auto r = h.engine->GetChunk(l, {cz, cy, cx});
          bool ref_empty = true;
          for (int64_t z = 0; z < c; ++z)
            for (int64_t y = 0; y < c; ++y)
              for (int64_t x = 0; x < c; ++x) {
                const int64_t gz = cz * c + z, gy = cy * c + y, gx = cx * c + x;
                uint32_t want = 0;
                if (gz < s[0] && gy < s[1] && gx < s[2])
                  want = level[static_cast<size_t>((gz * s[1] + gy) * s[2] + gx)];
                if (want) ref_empty = false;
                if (r.ok()) {
                  uint32_t got = Voxel(**r, dt, static_cast<size_t>((z * c + y) * c + x));
                  if (got != want) ++mismatches;
                }
              }
          if (o.empty == EmptyPolicy::kOmit) {
            INFO("level " << l << " chunk " << ToString({cz, cy, cx}) << " status " << r.status().ToString());
            CHECK(r.ok() == !ref_empty);
            if (!r.ok()) CHECK(r.status().code() == ErrorCode::kNotFound);
          } else {
            REQUIRE(r.ok());
          }
        }
    INFO("level " << l);
    CHECK(mismatches == 0);
    Vec3 next;
    level = RefDownsample(level, s, o.algorithm, &next);
    s = next;
  }
}

TEST_CASE("Engine serves every level bit-exact (uint16, odd shape, all algorithms)") {
  for (Algorithm a : {Algorithm::kMean, Algorithm::kNearest, Algorithm::kMax}) {
    Options o;
    o.chunk = 8;
    o.levels = 4;
    o.algorithm = a;
    o.empty = EmptyPolicy::kKeep;
    Harness h({19, 23, 37}, DType::kUint16, o);
    CheckAll(h, o);
  }
}

TEST_CASE("Engine with window, shift, bytes=1 and empty omission") {
  Options o;
  o.chunk = 6;
  o.levels = 3;
  o.window[2] = SliceRange{3, -2};  // x
  o.window[1] = SliceRange{std::nullopt, 15};
  o.shift = {2, -1, 5};
  o.bytes1 = true;
  Harness h({13, 17, 29}, DType::kUint16, o, 0.4);
  CHECK(h.engine->dtype() == DType::kUint8);
  CheckAll(h, o);
}

TEST_CASE("ReadBoxStrided of a volume (default, row by row) and of views equals ReadBox subsampled") {
  std::mt19937_64 rng(11);
  std::vector<Options> views(4);
  views[1].window[2] = SliceRange{3, -2};
  views[1].window[1] = SliceRange{std::nullopt, 15};
  views[1].shift = {2, -1, 5};
  views[1].bytes1 = true;
  views[2].shift = {-3, 4, -6};
  views[3].window[0] = SliceRange{4, 9};
  views[3].shift = {7, 0, 0};
  for (size_t vi = 0; vi < views.size(); ++vi) {
    INFO("view " << vi);
    auto mem = std::make_shared<MemVolume>(Vec3{13, 17, 29}, DType::kUint16, 3);
    auto g = ComputeViewGeometry(mem->shape(), views[vi]);
    REQUIRE(g.ok());
    ViewVolume view(mem, *g, views[vi].bytes1);
    const size_t bpv = DTypeSize(view.dtype());
    for (int i = 0; i < 60; ++i) {
      Box b;
      for (int a = 0; a < 3; ++a) {
        std::uniform_int_distribution<int64_t> d(0, g->shape[a] - 1);
        int64_t p = d(rng), q = d(rng);
        b.lo[a] = std::min(p, q);
        b.hi[a] = std::max(p, q) + 1;
      }
      const int64_t step = 1 + static_cast<int64_t>(rng() % 6);
      std::vector<uint8_t> all(static_cast<size_t>(b.volume()) * bpv);
      REQUIRE(view.ReadBox(b, all.data()).ok());
      const Vec3 os = StridedShape(b, step), bs = b.shape();
      std::vector<uint8_t> got(static_cast<size_t>(os[0] * os[1] * os[2]) * bpv, 0xCD);
      const int64_t before = mem->voxels_read;
      REQUIRE(view.ReadBoxStrided(b, step, got.data()).ok());
      // The default reads only kept slices and rows, each from its first to its last kept column.
      CHECK(mem->voxels_read - before <= os[0] * os[1] * ((os[2] - 1) * step + 1));
      size_t bad = 0;
      for (int64_t z = 0; z < os[0]; ++z)
        for (int64_t y = 0; y < os[1]; ++y)
          for (int64_t x = 0; x < os[2]; ++x) {
            const size_t o = static_cast<size_t>((z * os[1] + y) * os[2] + x) * bpv;
            const size_t w = static_cast<size_t>(((z * step) * bs[1] + y * step) * bs[2] + x * step) * bpv;
            if (std::memcmp(got.data() + o, all.data() + w, bpv) != 0) ++bad;
          }
      INFO("box " << b.ToString() << " step " << step);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("Engine nearest reads only the level-0 voxels a coarse chunk keeps") {
  for (bool view : {false, true}) {
    Options o;
    o.chunk = 8;
    o.levels = 4;
    o.algorithm = Algorithm::kNearest;
    o.empty = EmptyPolicy::kKeep;
    if (view) o.shift = {1, 2, 3};  // through a (non-identity) view
    Harness h({64, 64, 64}, DType::kUint16, o);
    INFO("view " << view);
    // Level 3 chunk 0 covers all of level 0 (64^3 voxels) and keeps 8x8x8 of them.
    REQUIRE(h.engine->GetChunk(3, {0, 0, 0}).ok());
    CHECK(h.mem->voxels_read <= 8 * 8 * (7 * 8 + 1));  // 8 kept slices x 8 kept rows
    CHECK(h.stats.chunks_computed == 1);               // no intermediate level computed
    h.mem->voxels_read = 0;
    REQUIRE(h.engine->GetChunk(1, {3, 2, 1}).ok());
    CHECK(h.mem->voxels_read <= 8 * 8 * (7 * 2 + 1));
    CheckAll(h, o);
  }
  Options mean;
  mean.chunk = 8;
  mean.levels = 4;
  Harness h({64, 64, 64}, DType::kUint16, mean);
  REQUIRE(h.engine->GetChunk(3, {0, 0, 0}).ok());
  CHECK(h.mem->voxels_read == 64 * 64 * 64);  // mean reads its whole box, as before
}

TEST_CASE("Engine nearest with window, shift, bytes=1 and empty omission") {
  Options o;
  o.chunk = 6;
  o.levels = 4;
  o.algorithm = Algorithm::kNearest;
  o.window[2] = SliceRange{3, -2};
  o.window[1] = SliceRange{std::nullopt, 15};
  o.shift = {2, -1, 5};
  o.bytes1 = true;
  Harness h({13, 17, 29}, DType::kUint16, o, 0.4);
  CheckAll(h, o);
}

TEST_CASE("Engine streams with a tiny memory budget (slabs of 2 planes)") {
  Options o;
  o.chunk = 5;
  o.levels = 4;
  o.empty = EmptyPolicy::kKeep;
  Harness h({21, 11, 26}, DType::kUint8, o, 0.0, /*work_memory=*/1024);
  CheckAll(h, o);
}

TEST_CASE("Engine: empty=keep serves encoded zero chunks, blosc round-trips") {
  Options o;
  o.chunk = 8;
  o.levels = 2;
  o.empty = EmptyPolicy::kKeep;
  o.compression = Compression::kBlosc;
  o.blosc_cname = "zstd";
  Harness h({16, 16, 16}, DType::kUint16, o, 0.6);
  auto r = h.engine->GetChunk(0, {0, 0, 0});  // x < 9.6 is zero: chunk x=0 is empty
  REQUIRE(r.ok());
  std::vector<uint16_t> vox(8 * 8 * 8, 1);
  REQUIRE(h.engine->codec().Decode(**r, vox.data(), vox.size() * 2).ok());
  for (auto v : vox) REQUIRE(v == 0);
  auto r2 = h.engine->GetChunk(0, {1, 1, 1});
  REQUIRE(r2.ok());
  REQUIRE(h.engine->codec().Decode(**r2, vox.data(), vox.size() * 2).ok());
  CHECK(vox[0] == h.mem->at(8, 8, 8));
}

TEST_CASE("Engine: out-of-grid is NotFound, source errors propagate and are not remembered") {
  Options o;
  o.chunk = 4;
  o.levels = 2;
  Harness h({8, 8, 8}, DType::kUint16, o);
  CHECK(h.engine->GetChunk(0, {2, 0, 0}).status().code() == ErrorCode::kNotFound);
  CHECK(h.engine->GetChunk(2, {0, 0, 0}).status().code() == ErrorCode::kNotFound);
  h.mem->fail = true;
  auto r = h.engine->GetChunk(1, {0, 0, 0});
  CHECK(r.status().code() == ErrorCode::kIoError);
  CHECK(r.status().message().find("injected") != std::string::npos);
  h.mem->fail = false;
  CHECK(h.engine->GetChunk(1, {0, 0, 0}).ok());
}

TEST_CASE("Engine: concurrent readers of one cold chunk share one computation") {
  Options o;
  o.chunk = 16;
  o.levels = 3;
  Harness h({32, 32, 32}, DType::kUint16, o);
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i)
    ts.emplace_back([&] {
      if (h.engine->GetChunk(2, {0, 0, 0}).ok()) ok++;
    });
  for (auto& t : ts) t.join();
  CHECK(ok == 16);
  CHECK(h.stats.chunks_computed == 1);
}

TEST_CASE("Engine: ListRow lists non-empty chunks only") {
  Options o;
  o.chunk = 4;
  o.levels = 2;
  Harness h({4, 4, 16}, DType::kUint16, o, 0.5);  // x < 8 is zero
  auto xs = h.engine->ListRow(0, 0, 0);
  REQUIRE(xs.ok());
  CHECK(*xs == std::vector<int64_t>{2, 3});
  CHECK(h.engine->ListRow(0, 5, 0).status().code() == ErrorCode::kNotFound);
  auto size = h.engine->ChunkSize(0, {0, 0, 3});
  REQUIRE(size.ok());
  CHECK(*size == 4 * 4 * 4 * 2);
  CHECK(h.engine->ChunkSize(0, {0, 0, 0}).status().code() == ErrorCode::kNotFound);
}

}  // namespace
}  // namespace oz

namespace oz {
namespace {

std::string TempDir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("oz-engine-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

TEST_CASE("Engine with disk cache: coarsest first fills lower levels, remount serves from cache") {
  const int64_t chunk = GENERATE(8, 5);  // odd chunks: layers and plane pairs do not align
  const std::string dir = TempDir("cache");
  Options o;
  o.chunk = chunk;
  o.levels = 4;
  o.empty = EmptyPolicy::kKeep;
  auto mem = std::make_shared<MemVolume>(Vec3{29, 30, 31}, DType::kUint16, 3, 0.3);
  auto g = ComputeViewGeometry(mem->shape(), o);
  REQUIRE(g.ok());
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(2);
  std::map<std::string, std::string> first;  // "l/z/y/x" -> bytes
  {
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
    // Coarsest level first: its computation reads level 0 once and fills levels 2 (its
    // children and kMinFillLevel) and up; levels 0 and 1 are computed when asked.
    REQUIRE((*e)->GetChunk(3, {0, 0, 0}).ok());
    const int reads_after_top = mem->reads;
    {
      const Vec3 gr = (*e)->pyramid().grid(2);
      for (int64_t z = 0; z < gr[0]; ++z)
        for (int64_t y = 0; y < gr[1]; ++y)
          for (int64_t x = 0; x < gr[2]; ++x) REQUIRE((*e)->GetChunk(2, {z, y, x}).ok());
    }
    CHECK(mem->reads == reads_after_top);  // level 2 came from the fill
    // Then every level, finest last: each chunk is served (from the fill or computed) and the
    // bytes are compared with the uncached reference below.
    for (int l = 2; l >= 0; --l) {
      const Vec3 gr = (*e)->pyramid().grid(l);
      for (int64_t z = 0; z < gr[0]; ++z)
        for (int64_t y = 0; y < gr[1]; ++y)
          for (int64_t x = 0; x < gr[2]; ++x) {
            auto r = (*e)->GetChunk(l, {z, y, x});
            REQUIRE(r.ok());
            first[std::to_string(l) + "/" + ToString({z, y, x})] = **r;
          }
    }
    first["3"] = *(*e)->GetChunk(3, {0, 0, 0}).value();
  }
  // Compare against an engine without cache (reference path), then a remount with a failing source.
  Stats ref_stats;
  ChunkEngineConfig ref_cfg;
  ref_cfg.options = o;
  ref_cfg.pool = &pool;
  ref_cfg.stats = &ref_stats;
  auto ref_engine = ChunkEngine::Make(view, ref_cfg);
  REQUIRE(ref_engine.ok());
  {
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
    mem->fail = true;
    for (auto& [k, v] : first) {
      if (k == "3") continue;
      int l = k[0] - '0';
      Vec3 idx;
      REQUIRE(std::sscanf(k.c_str() + 2, "(%ld, %ld, %ld)", &idx[0], &idx[1], &idx[2]) == 3);
      auto r = (*e)->GetChunk(l, idx);
      REQUIRE(r.ok());
      CHECK(**r == v);
      std::vector<uint8_t> want((*ref_engine)->raw_chunk_bytes());
      mem->fail = false;
      REQUIRE((*ref_engine)->ComputeUncached(l, idx, want.data()).ok());
      mem->fail = true;
      CHECK(std::memcmp(want.data(), v.data(), want.size()) == 0);
    }
    CHECK(stats.chunks_computed == 0);
    mem->fail = false;
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("Engine computes a level from cached children (no source reads)") {
  const std::string dir = TempDir("children");
  Options o;
  o.chunk = 4;
  o.levels = 3;
  o.empty = EmptyPolicy::kKeep;
  auto mem = std::make_shared<MemVolume>(Vec3{8, 8, 8}, DType::kUint8, 5);
  auto g = ComputeViewGeometry(mem->shape(), o);
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(2);
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
  for (int64_t z = 0; z < 2; ++z)
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 2; ++x) REQUIRE((*e)->GetChunk(0, {z, y, x}).ok());
  const int reads = mem->reads;
  auto top = (*e)->GetChunk(1, {0, 0, 0});
  REQUIRE(top.ok());
  CHECK(mem->reads == reads);
  std::vector<uint8_t> want((*e)->raw_chunk_bytes());
  REQUIRE((*e)->ComputeUncached(1, {0, 0, 0}, want.data()).ok());
  CHECK(std::memcmp(want.data(), (*top)->data(), want.size()) == 0);
  e->reset();  // drains the cache writes before the directory goes
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace oz

namespace oz {
namespace {

TEST_CASE("Engine: 8 concurrent readers in random order compute each chunk once") {
  const std::string dir = TempDir("once");
  Options o;
  o.chunk = 8;
  o.levels = 4;
  o.empty = EmptyPolicy::kKeep;
  auto mem = std::make_shared<MemVolume>(Vec3{40, 33, 47}, DType::kUint16, 9);
  auto g = ComputeViewGeometry(mem->shape(), o);
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(3);
  Stats stats;
  auto cache = DiskCache::Open(DiskCacheOptions{dir, 1 << 30, &stats});
  REQUIRE(cache.ok());
  ChunkEngineConfig cfg;
  cfg.options = o;
  cfg.pool = &pool;
  cfg.stats = &stats;
  cfg.cache = cache->get();
  cfg.hot_bytes = 0;  // force the disk cache path
  auto e = ChunkEngine::Make(view, cfg);
  REQUIRE(e.ok());
  std::vector<std::pair<int, Vec3>> all;
  for (int l = 0; l < o.levels; ++l) {
    const Vec3 gr = (*e)->pyramid().grid(l);
    for (int64_t z = 0; z < gr[0]; ++z)
      for (int64_t y = 0; y < gr[1]; ++y)
        for (int64_t x = 0; x < gr[2]; ++x) all.push_back({l, {z, y, x}});
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      auto order = all;
      std::mt19937 rng(t);
      std::shuffle(order.begin(), order.end(), rng);
      if (t % 2) std::stable_sort(order.begin(), order.end(), [](auto& a, auto& b) { return a.first > b.first; });
      for (auto& [l, idx] : order)
        if (!(*e)->GetChunk(l, idx).ok()) failures++;
    });
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  CHECK(stats.chunks_computed == all.size());
  e->reset();  // drains the cache writes before the directory goes
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace oz

namespace oz {
namespace {

using ChunkMap = std::map<std::pair<int, std::array<int64_t, 3>>, std::string>;  // "" = no file (empty)

// Captures log lines while alive (the log sink is process-wide).
struct LogCapture {
  std::mutex mu;
  std::string text;
  LogCapture() {
    SetLogSink([this](LogLevel, std::string_view m) {
      std::lock_guard<std::mutex> l(mu);
      text += std::string(m) + "\n";
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }
  std::string All() {
    std::lock_guard<std::mutex> l(mu);
    return text;
  }
};

std::pair<int, std::array<int64_t, 3>> K(int level, const Vec3& idx) { return {level, {idx[0], idx[1], idx[2]}}; }

// Everything ComputeTree hands to its sink, checking that no chunk comes twice.
struct Collected {
  std::unique_ptr<std::mutex> mu = std::make_unique<std::mutex>();
  ChunkMap chunks;
  std::map<int, int> by_origin;
  int duplicates = 0;
  ChunkEngine::ChunkSink Sink() {
    return [this](int level, const Vec3& idx, const Result<ChunkBytes>& r, int origin) -> Status {
      if (!r.ok() && r.status().code() != ErrorCode::kNotFound) return r.status();
      std::lock_guard<std::mutex> l(*mu);
      if (!chunks.emplace(K(level, idx), r.ok() ? **r : std::string()).second) duplicates++;
      by_origin[origin]++;
      return OkStatus();
    };
  }
};

// Every unit tree of `top` with levels [min_level, top].
Collected RunTree(ChunkEngine& e, int top, int min_level, ChunkProvider* provider) {
  Collected c;
  const Vec3 g = e.pyramid().grid(top);
  for (int64_t z = 0; z < g[0]; ++z)
    for (int64_t y = 0; y < g[1]; ++y) REQUIRE(e.ComputeTree(top, z, y, min_level, c.Sink(), provider).ok());
  CHECK(c.duplicates == 0);
  return c;
}

// A map-backed provider with fault injection and a fetch counter.
struct FakeProvider : ChunkProvider {
  ChunkMap have;                                          // "" = known empty
  std::set<std::pair<int, std::array<int64_t, 3>>> lost;  // claimed by Has, missing at Fetch
  std::atomic<int> fetches{0};
  bool Has(int level, const Vec3& idx) override { return have.count(K(level, idx)) || lost.count(K(level, idx)); }
  ProvidedChunk Fetch(int level, const Vec3& idx) override {
    fetches++;
    ProvidedChunk p;
    auto it = have.find(K(level, idx));
    if (it == have.end()) return p;
    p.origin = 7;
    if (it->second.empty()) {
      p.kind = ProvidedChunk::Kind::kEmpty;
    } else {
      p.kind = ProvidedChunk::Kind::kBytes;
      p.bytes = std::make_shared<const std::string>(it->second);
    }
    return p;
  }
  void AddLevel(const ChunkMap& from, int level) {
    for (auto& [k, v] : from)
      if (k.first == level) have[k] = v;
  }
};

TEST_CASE("ComputeTree with a provider: lower levels read from it, not the source; same bytes") {
  const int64_t chunk = GENERATE(8, 5);
  const bool blosc = GENERATE(false, true);
  Options o;
  o.chunk = chunk;
  o.levels = 4;
  o.window[2] = SliceRange{2, std::nullopt};
  o.shift = {0, 3, 9};  // chunks outside the data region count as provided (empty)
  if (blosc) o.compression = Compression::kBlosc;
  Harness h({29, 30, 31}, DType::kUint16, o, 0.3);
  const int top = o.levels - 1;
  const Collected full = RunTree(*h.engine, top, 0, nullptr);
  const uint64_t computed = h.stats.chunks_computed;

  SECTION("level 0 provided: levels 1..top built from it") {
    FakeProvider p;
    p.AddLevel(full.chunks, 0);
    const int reads = h.mem->reads;
    Collected c = RunTree(*h.engine, top, 1, &p);
    CHECK(h.mem->reads == reads);
    for (auto& [k, v] : c.chunks) CHECK(full.chunks.at(k) == v);
    size_t want = 0;
    for (auto& [k, v] : full.chunks) want += k.first >= 1;
    CHECK(c.chunks.size() == want);
    CHECK(c.by_origin.count(7) == 0);  // nothing of levels 1..top was in the provider
  }
  SECTION("levels 0 and 1 provided: level 1 is the base") {
    FakeProvider p;
    p.AddLevel(full.chunks, 0);
    p.AddLevel(full.chunks, 1);
    const int reads = h.mem->reads;
    Collected c = RunTree(*h.engine, top, 2, &p);
    CHECK(h.mem->reads == reads);
    for (auto& [k, v] : c.chunks) CHECK(full.chunks.at(k) == v);
    const Vec3 g1 = h.engine->pyramid().grid(1);
    CHECK(p.fetches <= static_cast<int>(g1[0] * g1[1] * g1[2]));  // level 0 never fetched
  }
  SECTION("every level provided: all copied, nothing computed or read") {
    FakeProvider p;
    for (int l = 0; l <= top; ++l) p.AddLevel(full.chunks, l);
    const int reads = h.mem->reads;
    Collected c = RunTree(*h.engine, top, 0, &p);
    CHECK(h.mem->reads == reads);
    CHECK(h.stats.chunks_computed == computed);
    CHECK(c.chunks == full.chunks);
    CHECK(c.by_origin[7] > 0);
  }
  SECTION("nothing provided: computed from the source as without a provider") {
    FakeProvider p;
    Collected c = RunTree(*h.engine, top, 0, &p);
    CHECK(c.chunks == full.chunks);
    CHECK(c.by_origin.count(7) == 0);
  }
}

TEST_CASE("ComputeTree with a provider: corrupt, foreign, lost and wrong chunks are never handed on") {
  const bool blosc = GENERATE(false, true);
  Options o;
  o.chunk = 8;
  o.levels = 3;
  o.empty = EmptyPolicy::kKeep;
  if (blosc) o.compression = Compression::kBlosc;
  Harness h({32, 24, 40}, DType::kUint16, o);
  const int top = o.levels - 1;
  const Collected full = RunTree(*h.engine, top, 0, nullptr);
  LogCapture log;

  FakeProvider p;
  for (int l = 0; l <= top; ++l) p.AddLevel(full.chunks, l);
  // Level 0: a truncated chunk (its unit is computed; the rest of the unit is still copied).
  std::string& trunc = p.have.at(K(0, {1, 1, 2}));
  trunc.resize(trunc.size() / 2);
  // Level 1: a chunk claimed but gone at Fetch (evicted meanwhile), so its unit is computed, and
  // in that unit another chunk's bytes (right size and a fine checksum: only the computation can
  // tell; a unit taken whole relies on the provider's checksum).
  p.have.erase(K(1, {1, 1, 1}));
  p.lost.insert(K(1, {1, 1, 1}));
  p.have.at(K(1, {1, 1, 0})) = full.chunks.at(K(1, {1, 0, 0}));
  // Level 2: garbage.
  p.have.at(K(2, {0, 0, 0})) = std::string(100, 'x');

  const int reads = h.mem->reads;
  Collected c = RunTree(*h.engine, top, 0, &p);
  CHECK(c.duplicates == 0);
  CHECK(h.mem->reads > reads);  // the bad units were computed
  for (auto& [k, v] : full.chunks) {
    INFO("level " << k.first << " chunk " << k.second[0] << "," << k.second[1] << "," << k.second[2]);
    CHECK(c.chunks.at(k) == v);
  }
  CHECK(c.by_origin[7] > 0);  // the good ones were still copied
  CHECK_THAT(log.All(), Catch::Contains("does not decode to a full chunk"));
  CHECK_THAT(log.All(), Catch::Contains("differs from the one computed now"));
}

TEST_CASE("ComputeTree shares a mount's disk cache read-only: copies its chunks, same bytes") {
  const std::string dir = TempDir("share");
  Options o;
  o.chunk = 8;
  o.levels = 4;
  o.compression = Compression::kBlosc;
  auto mem = std::make_shared<MemVolume>(Vec3{40, 33, 47}, DType::kUint16, 7, 0.2);  // as Harness's
  auto g = ComputeViewGeometry(mem->shape(), o);
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(2);
  Stats stats;
  auto cache = DiskCache::Open(DiskCacheOptions{dir, 1 << 30, &stats});
  REQUIRE(cache.ok());
  ChunkEngineConfig cfg;
  cfg.options = o;
  cfg.pool = &pool;
  cfg.stats = &stats;
  cfg.cache = cache->get();
  auto mount = ChunkEngine::Make(view, cfg);
  REQUIRE(mount.ok());
  REQUIRE((*mount)->GetChunk(3, {0, 0, 0}).ok());  // fills levels 2 and 3 (and children)
  std::map<std::pair<int, std::array<int64_t, 3>>, std::string> served;
  for (int l = 0; l < 4; ++l) {
    const Vec3 gr = (*mount)->pyramid().grid(l);
    for (int64_t z = 0; z < gr[0]; ++z)
      for (int64_t y = 0; y < gr[1]; ++y)
        for (int64_t x = 0; x < gr[2]; ++x) {
          auto r = (*mount)->GetChunk(l, {z, y, x});
          served[K(l, {z, y, x})] = r.ok() ? **r : std::string();
        }
  }
  mount->reset();  // drains its writes; the cache stays open (locked) as a mount's would

  auto shared = [&](Stats* st) {
    DiskCacheOptions co;
    co.dir = dir;
    co.stats = st;
    auto ro = DiskCache::OpenReadOnly(co);  // while `cache` holds the lock
    REQUIRE(ro.ok());
    return std::move(ro).value();
  };
  SECTION("same options: levels 2..3 copied, no source reads") {
    Stats st;
    auto ro = shared(&st);
    Harness m({40, 33, 47}, DType::kUint16, o, 0.2);
    auto provider = m.engine->MakeCacheProvider(ro.get(), 3);
    const int reads = m.mem->reads;
    Collected c = RunTree(*m.engine, 3, 2, provider.get());
    CHECK(m.mem->reads == reads);
    CHECK(c.by_origin[3] == static_cast<int>(c.chunks.size()));
    for (auto& [k, v] : c.chunks) CHECK(served.at(k) == v);
    Collected all = RunTree(*m.engine, 3, 0, provider.get());
    for (auto& [k, v] : all.chunks) CHECK(served.at(k) == v);
    CHECK(all.chunks.size() == served.size());
    CHECK(all.by_origin[3] > 0);
  }
  SECTION("other options: the cache is never hit") {
    Options other = o;
    other.compression = Compression::kNone;  // (the algorithm alone would still share level 0)
    Stats st;
    auto ro = shared(&st);
    Harness m({40, 33, 47}, DType::kUint16, other, 0.2);
    auto provider = m.engine->MakeCacheProvider(ro.get(), 3);
    Collected c = RunTree(*m.engine, 3, 0, provider.get());
    CHECK(c.by_origin.count(3) == 0);
    CHECK(c.chunks == RunTree(*m.engine, 3, 0, nullptr).chunks);
  }
  cache->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace oz
