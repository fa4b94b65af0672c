// Prebuilder (-o prebuild=K): the background pass puts exactly the chunks of levels K..top into
// the disk cache with the bytes GetChunk computes without a cache; a second pass on the same
// cache computes nothing; stats text parsing and the `omezarrfs status` report.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/engine/chunk_engine.h"
#include "core/session/prebuild.h"
#include "core/source/view.h"
#include "mem_volume.h"
#include "mountopts/mount_options.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

using testing::MemVolume;

struct Engine {
  Stats stats;
  std::unique_ptr<DiskCache> cache;
  std::unique_ptr<ChunkEngine> engine;
  Engine(std::shared_ptr<ViewVolume> view, const Options& o, ThreadPool* pool, const std::string& dir) {
    if (!dir.empty()) {
      auto c = DiskCache::Open(DiskCacheOptions{dir, 1 << 30, &stats});
      REQUIRE(c.ok());
      cache = std::move(c).value();
    }
    ChunkEngineConfig cfg;
    cfg.options = o;
    cfg.pool = pool;
    cfg.stats = &stats;
    cfg.cache = cache.get();
    auto e = ChunkEngine::Make(view, cfg);
    REQUIRE(e.ok());
    engine = std::move(e).value();
  }
};

void WaitFinished(Prebuilder& p) {
  for (int i = 0; i < 3000 && !p.finished(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(p.finished());
}

TEST_CASE("prebuild: levels K..top into the cache, same bytes as computed, resume computes nothing") {
  const int64_t chunk = GENERATE(8, 5);
  const EmptyPolicy empty = GENERATE(EmptyPolicy::kOmit, EmptyPolicy::kKeep);
  const int k = GENERATE(0, 1, 3);
  Options o;
  o.chunk = chunk;
  o.levels = 4;
  o.empty = empty;
  auto mem = std::make_shared<MemVolume>(Vec3{29, 30, 41}, DType::kUint16, 5, 0.3);
  auto g = ComputeViewGeometry(mem->shape(), o);
  REQUIRE(g.ok());
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(2);
  testing::TempDir dir;
  Engine ref(view, o, &pool, "");
  const uint64_t total = Prebuilder::TotalChunks(ref.engine->pyramid(), k);
  {
    uint64_t n = 0;
    for (int l = k; l < 4; ++l) {
      const Vec3 gr = ref.engine->pyramid().grid(l);
      n += static_cast<uint64_t>(gr[0] * gr[1] * gr[2]);
    }
    REQUIRE(total == n);
  }
  {
    Engine e(view, o, &pool, dir.path);
    auto p = Prebuilder::Start(e.engine.get(), &e.stats, k);
    REQUIRE(p.ok());
    WaitFinished(**p);
    CHECK(e.stats.prebuild_chunks_total == total);
    CHECK(e.stats.prebuild_chunks_done == total);
    CHECK(e.stats.prebuild_chunks_reused == 0);
    CHECK(e.stats.prebuild_failed == 0);
    CHECK(e.stats.chunks_computed == total);
  }  // the engine drains its cache writes
  Engine e2(view, o, &pool, dir.path);
  auto p = Prebuilder::Start(e2.engine.get(), &e2.stats, k);
  REQUIRE(p.ok());
  WaitFinished(**p);
  CHECK(e2.stats.prebuild_chunks_done == total);
  CHECK(e2.stats.prebuild_chunks_reused == total);
  CHECK(e2.stats.chunks_computed == 0);
  const int reads = mem->reads;
  std::vector<std::pair<Vec3, Result<ChunkBytes>>> got;
  std::vector<int> got_level;
  for (int l = k; l < 4; ++l) {
    const Vec3 gr = e2.engine->pyramid().grid(l);
    for (int64_t z = 0; z < gr[0]; ++z)
      for (int64_t y = 0; y < gr[1]; ++y)
        for (int64_t x = 0; x < gr[2]; ++x) {
          got.emplace_back(Vec3{z, y, x}, e2.engine->GetChunk(l, {z, y, x}));
          got_level.push_back(l);
        }
  }
  CHECK(e2.stats.chunks_computed == 0);  // every chunk of K..top came from the cache
  CHECK(mem->reads == reads);            // ... without reading the source
  for (size_t i = 0; i < got.size(); ++i) {
    auto want = ref.engine->GetChunk(got_level[i], got[i].first);  // computed without a cache
    const Result<ChunkBytes>& have = got[i].second;
    REQUIRE(have.ok() == want.ok());
    if (have.ok())
      REQUIRE(**have == **want);
    else
      REQUIRE(have.status().code() == want.status().code());
  }
}

TEST_CASE("prebuild: a pass stopped mid-way resumes where it stopped") {
  Options o;
  o.chunk = 4;
  o.levels = 3;
  auto mem = std::make_shared<MemVolume>(Vec3{32, 32, 16}, DType::kUint8, 9);
  auto g = ComputeViewGeometry(mem->shape(), o);
  REQUIRE(g.ok());
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(2);
  testing::TempDir dir;
  uint64_t first_done = 0;
  {
    Engine e(view, o, &pool, dir.path);
    auto p = Prebuilder::Start(e.engine.get(), &e.stats, 1);
    REQUIRE(p.ok());
    (*p)->Stop();  // at once: stops at its first or a later unit
    first_done = e.stats.prebuild_chunks_done;
    CHECK(first_done <= e.stats.prebuild_chunks_total);
  }
  Engine e2(view, o, &pool, dir.path);
  auto p = Prebuilder::Start(e2.engine.get(), &e2.stats, 1);
  REQUIRE(p.ok());
  WaitFinished(**p);
  const uint64_t total = e2.stats.prebuild_chunks_total;
  CHECK(e2.stats.prebuild_chunks_done == total);
  CHECK(e2.stats.prebuild_chunks_reused >= first_done);
  CHECK(e2.stats.chunks_computed == total - e2.stats.prebuild_chunks_reused);
}

TEST_CASE("prebuild: K outside the levels or no cache is refused with the fix") {
  Options o;
  o.chunk = 8;
  o.levels = 3;
  auto mem = std::make_shared<MemVolume>(Vec3{16, 16, 16}, DType::kUint8, 1);
  auto g = ComputeViewGeometry(mem->shape(), o);
  REQUIRE(g.ok());
  auto view = std::make_shared<ViewVolume>(mem, *g, false);
  ThreadPool pool(1);
  testing::TempDir dir;
  Engine with(view, o, &pool, dir.path);
  Status s = Prebuilder::Check(*with.engine, 3);
  REQUIRE(!s.ok());
  CHECK(s.message().find("prebuild=3") != std::string::npos);
  CHECK(s.message().find("prebuild=0..2") != std::string::npos);
  CHECK(Prebuilder::Check(*with.engine, 2).ok());
  Engine without(view, o, &pool, "");
  s = Prebuilder::Check(*without.engine, 0);
  REQUIRE(!s.ok());
  CHECK(s.message().find("disk cache") != std::string::npos);
}

TEST_CASE("prebuild: stats text parsing and the status report") {
  Stats st;
  st.prebuild_chunks_total = 200;
  st.prebuild_chunks_done = 50;
  st.prebuild_chunks_reused = 7;
  st.chunks_computed = 43;
  st.source_bytes_read = 3 << 20;
  const auto v = ParseStatsText(st.ToText());
  bool found = false;
  for (auto& [n, x] : v)
    if (n == "prebuild_chunks_done") found = x == 50;
  CHECK(found);
  const std::string r = FormatStatusReport("/mnt/x", st.ToText());
  CHECK(r.find("omezarrfs mount /mnt/x") != std::string::npos);
  CHECK(r.find("prebuild: 50 / 200 chunks (25.0 %), running; 7 were cached already") != std::string::npos);
  CHECK(r.find("computed: 43") != std::string::npos);
  CHECK(r.find("source read: 3.0 MiB") != std::string::npos);
  st.prebuild_chunks_done = 200;
  CHECK(FormatStatusReport("m", st.ToText()).find("200 / 200 chunks (100.0 %), complete") != std::string::npos);
  CHECK(FormatStatusReport("m", "").find("prebuild: off") != std::string::npos);
  // Junk: skipped, never a throw.
  const auto junk = ParseStatsText("a\n b 1\nc 99999999999999999999999\nd x\ne 12\n\n \nf 1 2\n");
  REQUIRE(junk.size() == 1);
  CHECK(junk[0].first == "e");
  CHECK(junk[0].second == 12);
}

TEST_CASE("prebuild: -o prebuild=K parsing") {
  Options o;
  MountFlags f;
  CHECK(o.prebuild == -1);  // off by default
  REQUIRE(ParseOptionString("prebuild=2", &o, &f).ok());
  CHECK(o.prebuild == 2);
  for (const char* bad : {"prebuild=-1", "prebuild=x", "prebuild=", "prebuild=32", "prebuild"}) {
    Options b;
    Status s = ParseOptionString(bad, &b, &f);
    INFO(bad);
    REQUIRE(!s.ok());
    CHECK(s.message().find("prebuild") != std::string::npos);
    CHECK(b.prebuild == -1);
  }
}

}  // namespace
}  // namespace oz
