// ChunkEngine against a brute-force reference: every chunk of every level, with views, algorithms,
// both dtypes, empty-chunk policy, single-flight and error propagation.
#include <unistd.h>
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "core/chunk_engine.h"
#include "core/view.h"
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
