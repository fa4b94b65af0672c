// Concurrency of the engine, the disk cache and the TIFF strip cache, under many threads: the
// cases scripts/test.sh runs again in a ThreadSanitizer build (tag [concurrency]).
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "core/engine/chunk_engine.h"
#include "core/source/tiff_stack.h"
#include "core/source/view.h"
#include "core/store/disk_cache.h"
#include "mem_volume.h"
#include "tests/unit/tiff_writer.h"

namespace oz {
namespace {

namespace fs = std::filesystem;
using testing::MemVolume;

struct TempDir {
  explicit TempDir(const std::string& tag) {
    std::string tmpl = (fs::temp_directory_path() / ("oz_conc_" + tag + "_XXXXXX")).string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// A MemVolume whose reads take a while, so computations overlap; counts reads in flight.
class SlowVolume : public Volume {
 public:
  SlowVolume(Vec3 shape, int delay_ms) : mem_(shape, DType::kUint16, 5), delay_ms_(delay_ms) {}
  Vec3 shape() const override { return mem_.shape(); }
  DType dtype() const override { return mem_.dtype(); }
  Status ReadBox(const Box& box, void* out) override {
    reads++;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    return mem_.ReadBox(box, out);
  }
  std::string Fingerprint() const override { return mem_.Fingerprint(); }
  std::string Describe() const override { return "slow memory volume"; }
  MemVolume mem_;
  std::atomic<int> reads{0};

 private:
  int delay_ms_;
};

struct Rig {
  std::shared_ptr<SlowVolume> vol;
  ThreadPool pool{3};
  Stats stats;
  std::unique_ptr<DiskCache> cache;
  std::unique_ptr<ChunkEngine> engine;

  Rig(const Options& o, Vec3 shape, int delay_ms, const std::string& cache_dir, uint64_t cache_bytes = 1 << 30,
      uint64_t hot_bytes = 64 << 10) {
    vol = std::make_shared<SlowVolume>(shape, delay_ms);
    auto g = ComputeViewGeometry(shape, o);
    REQUIRE(g.ok());
    auto view = std::make_shared<ViewVolume>(vol, *g, false);
    if (!cache_dir.empty()) {
      auto c = DiskCache::Open(DiskCacheOptions{cache_dir, cache_bytes, &stats});
      REQUIRE(c.ok());
      cache = std::move(c).value();
    }
    ChunkEngineConfig cfg;
    cfg.options = o;
    cfg.pool = &pool;
    cfg.stats = &stats;
    cfg.cache = cache.get();
    cfg.work_memory = 8 << 20;
    cfg.hot_bytes = hot_bytes;  // small: most reads go to the disk cache or recompute
    auto e = ChunkEngine::Make(view, cfg);
    REQUIRE(e.ok());
    engine = std::move(e).value();
  }
  ~Rig() { engine.reset(); }  // drains cache writes before the cache goes
};

Options SmallOptions() {
  Options o;
  o.chunk = 8;
  o.levels = 3;
  o.empty = EmptyPolicy::kKeep;
  return o;
}

TEST_CASE("16 readers of one cold chunk: one computation, one source read, same bytes [concurrency]", "[concurrency]") {
  TempDir dir("sixteen");
  for (int level : {0, 2}) {
    INFO("level " << level);
    const Vec3 idx = level == 0 ? Vec3{0, 1, 1} : Vec3{0, 0, 0};
    Rig one(SmallOptions(), {32, 32, 32}, 0, dir.path + "/one" + std::to_string(level));
    auto first = one.engine->GetChunk(level, idx);
    REQUIRE(first.ok());
    Rig rig(SmallOptions(), {32, 32, 32}, 200, dir.path + "/" + std::to_string(level));
    std::vector<ChunkBytes> got(16);
    std::vector<std::thread> ts;
    std::atomic<int> ready{0};
    for (int i = 0; i < 16; ++i)
      ts.emplace_back([&, i] {
        ready++;
        while (ready < 16) std::this_thread::yield();  // start together
        auto r = rig.engine->GetChunk(level, idx);
        if (r.ok()) got[i] = *r;
      });
    for (auto& t : ts) t.join();
    for (auto& g : got) {
      REQUIRE(g);
      CHECK(*g == **first);
    }
    CHECK(rig.stats.chunks_computed == one.stats.chunks_computed);  // level 2 caches its children too
    CHECK(rig.vol->reads == one.vol->reads);
    CHECK(rig.stats.singleflight_waits >= 1);  // the others joined it, or came after it
  }
}

TEST_CASE("Readers of a row, its chunks and their parent at once: each chunk computed once [concurrency]",
          "[concurrency]") {
  TempDir dir("row");
  Options o = SmallOptions();
  o.empty = EmptyPolicy::kOmit;
  Rig rig(o, {16, 24, 40}, 20, dir.path);
  const Vec3 g0 = rig.engine->pyramid().grid(0);
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 12; ++i)
    ts.emplace_back([&, i] {
      std::mt19937 rng(i);
      for (int k = 0; k < 20; ++k) {
        const int64_t z = rng() % g0[0], y = rng() % g0[1], x = rng() % g0[2];
        bool ok;
        switch ((i + k) % 3) {
          case 0: ok = rig.engine->ListRow(0, z, y).ok(); break;
          case 1: ok = rig.engine->GetChunk(1, {z / 2, y / 2, x / 2}).status().code() != ErrorCode::kIoError; break;
          default: {
            auto r = rig.engine->ChunkSize(0, {z, y, x});
            ok = r.ok() || r.status().code() == ErrorCode::kNotFound;
          }
        }
        if (!ok) failures++;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  uint64_t chunks = 0;
  for (int l = 0; l < 2; ++l) {
    const Vec3 g = rig.engine->pyramid().grid(l);
    chunks += static_cast<uint64_t>(g[0] * g[1] * g[2]);
  }
  CHECK(rig.stats.chunks_computed <= chunks);  // never a chunk twice
}

TEST_CASE("Cancel stops computations in flight and later ones; served chunks stay [concurrency]", "[concurrency]") {
  Options o = SmallOptions();
  o.levels = 4;
  Rig rig(o, {64, 64, 64}, 30, "");
  auto warm = rig.engine->GetChunk(0, {0, 0, 0});
  REQUIRE(warm.ok());
  std::atomic<int> cancelled{0}, other{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&, i] {
      auto r = rig.engine->GetChunk(3, {0, 0, 0});  // 64 level-0 units: ~2 s uncancelled
      if (i % 2) r = rig.engine->GetChunk(2, {0, i % 2, 1});
      if (r.status().code() == ErrorCode::kCancelled || r.status().code() == ErrorCode::kUnavailable)
        cancelled++;
      else if (!r.ok())
        other++;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  rig.engine->Cancel();
  for (auto& t : ts) t.join();
  CHECK(cancelled > 0);
  CHECK(other == 0);
  CHECK(rig.vol->reads < 64);  // stopped early
  CHECK(rig.engine->GetChunk(1, {1, 1, 1}).status().code() == ErrorCode::kCancelled);
  auto again = rig.engine->GetChunk(0, {0, 0, 0});  // hot: still served
  REQUIRE(again.ok());
  CHECK(**again == **warm);
}

TEST_CASE("Engine over a tiny disk cache: 8 threads, eviction, every chunk right [concurrency]", "[concurrency]") {
  TempDir dir("tiny");
  Options o = SmallOptions();
  Rig rig(o, {24, 24, 24}, 0, dir.path, 16 << 10, 0);  // a few entries only, no hot chunks
  Rig ref(o, {24, 24, 24}, 0, "");
  std::vector<std::pair<int, Vec3>> all;
  for (int l = 0; l < o.levels; ++l) {
    const Vec3 g = rig.engine->pyramid().grid(l);
    for (int64_t z = 0; z < g[0]; ++z)
      for (int64_t y = 0; y < g[1]; ++y)
        for (int64_t x = 0; x < g[2]; ++x) all.push_back({l, {z, y, x}});
  }
  std::map<std::pair<int, std::string>, std::string> want;
  for (auto& [l, idx] : all) {
    auto r = ref.engine->GetChunk(l, idx);
    REQUIRE(r.ok());
    want[{l, ToString(idx)}] = **r;
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int k = 0; k < 200; ++k) {
        auto& [l, idx] = all[rng() % all.size()];
        auto r = rig.engine->GetChunk(l, idx);
        if (!r.ok() || **r != want.at({l, ToString(idx)})) wrong++;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(wrong == 0);
  rig.engine.reset();  // drains the cache writes
  CHECK(rig.stats.cache_evictions > 0);
  CHECK(rig.stats.cache_corrupt == 0);
}

TEST_CASE("TIFF strip cache: decodes larger than the budget run one at a time, all right [concurrency]",
          "[concurrency]") {
  TempDir dir("strips");
  testing::TiffSpec spec;
  spec.compression = COMPRESSION_ADOBE_DEFLATE;
  spec.rows_per_strip = 65;  // two strips of 67x65x2 = 8710 bytes
  auto pattern = [](int64_t z) {
    return [z](int64_t y, int64_t x) { return static_cast<uint64_t>(z * 7 + y * 3 + x); };
  };
  for (int z = 0; z < 8; ++z) testing::WriteTiff(dir.path + "/" + std::to_string(z) + ".tif", spec, pattern(z));
  ThreadPool pool(4);
  TiffStackOptions so;
  so.pool = &pool;
  so.memory_bytes = 9000;  // one strip fits, two do not
  auto stack = TiffStack::Open(dir.path, so);
  REQUIRE(stack.ok());
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int k = 0; k < 30; ++k) {
        const int64_t y0 = rng() % 130, y1 = y0 + 1 + rng() % (130 - y0);
        Box b{{0, y0, 0}, {8, y1, 67}};
        std::vector<uint16_t> buf(static_cast<size_t>(b.volume()));
        if (!(*stack)->ReadBox(b, buf.data()).ok()) {
          wrong++;
          continue;
        }
        size_t i = 0;
        for (int64_t z = 0; z < 8; ++z)
          for (int64_t y = y0; y < y1; ++y)
            for (int64_t x = 0; x < 67; ++x, ++i)
              if (buf[i] != static_cast<uint16_t>(z * 7 + y * 3 + x)) wrong++;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(wrong == 0);
}

}  // namespace
}  // namespace oz
