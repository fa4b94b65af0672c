// Materialize reusing existing chunks: DEST's own files of earlier runs (only while they match a
// manifest of this tree) and a mount's cache opened read-only (corrupt and foreign entries never
// copied). A source that fails every read proves where the bytes came from.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>

#include "core/base/log.h"
#include "core/format/zarr2/zarr2_format.h"
#include "core/session/materialize.h"
#include "core/source/view.h"
#include "mem_volume.h"
#include "testing/mem_session.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

namespace fs = std::filesystem;
using testing::MemVolume;

using testing::TempDir;

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

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
}

using testing::MemSession;

MaterializeReport Run(Session& s, const std::string& dest, int lo, int hi, const std::string& cache_dir = "") {
  MaterializeOptions mo;
  mo.dest = dest;
  mo.min_level = lo;
  mo.max_level = hi;
  mo.fsync = false;
  mo.cache_dir = cache_dir;
  auto r = Materialize(s, mo, nullptr);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  for (const std::string& f : r->failed) INFO("failed: " << f);
  CHECK(r->failed.empty());
  return *r;
}

// rel path -> bytes of every file under dir (without the state dir), optionally one level only.
std::map<std::string, std::string> Files(const std::string& dir, const std::string& under = "") {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir + (under.empty() ? "" : "/" + under))) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (rel.rfind(".omezarr-materialize", 0) == 0 || !e.is_regular_file()) continue;
    out[rel] = Slurp(e.path().string());
  }
  return out;
}

Options TestOptions() {
  Options o;
  o.chunk = 8;
  o.levels = 4;
  return o;
}

TEST_CASE("Materialize --levels 1-3 after 0-0 builds on DEST's level 0, never reading the source") {
  TempDir t;
  const Options o = TestOptions();
  auto mem = std::make_shared<MemVolume>(Vec3{37, 30, 45}, DType::kUint16, 3, 0.2);
  auto s = MemSession(mem, o);
  Run(*s, t.path + "/full", 0, 3);
  Run(*s, t.path + "/split", 0, 0);
  mem->fail = true;  // any source read fails its unit
  auto r = Run(*s, t.path + "/split", 1, 3);
  CHECK(r.counts.lower_from_dest > 0);
  CHECK(r.counts.lower_from_cache == 0);
  CHECK(Files(t.path + "/split") == Files(t.path + "/full"));
  // Levels 2-3 again (another range): every file checked and kept in place.
  r = Run(*s, t.path + "/split", 2, 3);
  CHECK(r.counts.chunks_written == 0);
  CHECK(r.counts.chunks_kept + r.counts.chunks_empty == r.counts.chunks_total);
  CHECK(Files(t.path + "/split") == Files(t.path + "/full"));
}

TEST_CASE("Materialize uses a DEST file only while it matches a manifest of this tree") {
  TempDir t;
  const Options o = TestOptions();
  auto mem = std::make_shared<MemVolume>(Vec3{37, 30, 45}, DType::kUint16, 3);
  auto s = MemSession(mem, o);
  Run(*s, t.path + "/full", 0, 3);
  const std::string dest = t.path + "/split", units = dest + "/.omezarr-materialize/units";
  Run(*s, dest, 0, 0);
  // Changed after its run (same size): checksum mismatch.
  std::string f = Slurp(dest + "/0/1/1/2");
  f[f.size() / 2] ^= 0x5a;
  Spit(dest + "/0/1/1/2", f);
  // Deleted.
  REQUIRE(fs::remove(dest + "/0/2/3/0"));
  // A manifest of another tree (other options or source state): its files are not trusted.
  std::string m = Slurp(units + "/L0-z3-y0-levels0-0");
  const size_t at = m.find("\ntree ") + 6;
  m[at] = m[at] == '0' ? '1' : '0';
  Spit(units + "/L0-z3-y0-levels0-0", m);
  // Not a manifest, and a damaged one: ignored.
  Spit(units + "/notes", "hello");
  std::string bad = Slurp(units + "/L0-z0-y0-levels0-0");
  bad.replace(bad.rfind(' ') + 1, 4, "zzzz");
  Spit(units + "/L0-z0-y0-levels0-0", bad);

  LogCapture log;
  const int reads = mem->reads;
  auto r = Run(*s, dest, 1, 3);
  CHECK(mem->reads > reads);  // the units above were computed from the source
  CHECK(r.counts.lower_from_dest > 0);
  CHECK(Files(dest, "1") == Files(t.path + "/full", "1"));
  CHECK(Files(dest, "2") == Files(t.path + "/full", "2"));
  CHECK(Files(dest, "3") == Files(t.path + "/full", "3"));
  CHECK_THAT(log.All(), Catch::Contains("0/1/1/2 does not match its manifest entry"));
  CHECK_THAT(log.All(), Catch::Contains("0/2/3/0 does not match its manifest entry"));
}

// The entry file of `key` in a cache directory (test-side reading of the v1 header).
std::string EntryFile(const std::string& cache_dir, const std::string& key) {
  for (const auto& e : fs::recursive_directory_iterator(cache_dir + "/v1")) {
    if (!e.is_regular_file()) continue;
    std::string b = Slurp(e.path().string());
    uint32_t len;
    if (b.size() < 32) continue;
    std::memcpy(&len, b.data() + 20, 4);
    if (b.size() >= 32 + len && b.compare(32, len, key) == 0) return e.path().string();
  }
  return "";
}

TEST_CASE("Materialize copies a locked cache's chunks; corrupt and foreign entries are not copied") {
  TempDir t;
  Options o = TestOptions();
  o.compression = Compression::kBlosc;
  auto mem = std::make_shared<MemVolume>(Vec3{37, 30, 45}, DType::kUint16, 3, 0.2);
  const std::string cache_dir = t.path + "/cache";
  // A "mount": its engine fills the cache with levels 2 and 3; it keeps the cache open (locked).
  Stats mount_stats;
  auto cache = DiskCache::Open(DiskCacheOptions{cache_dir, 1 << 30, &mount_stats});
  REQUIRE(cache.ok());
  ThreadPool pool(2);
  {
    auto g = ComputeViewGeometry(mem->shape(), o);
    ChunkEngineConfig ec;
    ec.options = o;
    ec.pool = &pool;
    ec.stats = &mount_stats;
    ec.cache = cache->get();
    auto mount = ChunkEngine::Make(std::make_shared<ViewVolume>(mem, *g, false), ec);
    REQUIRE(mount.ok());
    REQUIRE((*mount)->GetChunk(3, {0, 0, 0}).ok());
  }  // drains its cache writes
  auto s = MemSession(mem, o);
  Run(*s, t.path + "/full", 0, 3);

  SECTION("clean cache: levels 2-3 copied, the source not read") {
    mem->fail = true;
    auto r = Run(*s, t.path + "/top", 2, 3, cache_dir);
    CHECK(r.counts.chunks_from_cache == r.counts.chunks_written);
    CHECK(r.counts.chunks_written + r.counts.chunks_empty == r.counts.chunks_total);
    CHECK(Files(t.path + "/top", "2") == Files(t.path + "/full", "2"));
    CHECK(Files(t.path + "/top", "3") == Files(t.path + "/full", "3"));
    mem->fail = false;
    r = Run(*s, t.path + "/all", 0, 3, cache_dir);
    CHECK(r.counts.chunks_from_cache > 0);
    CHECK(Files(t.path + "/all") == Files(t.path + "/full"));
  }
  SECTION("a corrupt entry and a foreign one (our key, a checksum that matches, not a chunk)") {
    const std::string victim = EntryFile(cache_dir, s->engine->CacheKey(2, {1, 0, 1}));
    REQUIRE(!victim.empty());
    std::string b = Slurp(victim);
    b[b.size() - 3] ^= 0x01;
    Spit(victim, b);
    REQUIRE((*cache)->Put(s->engine->CacheKey(3, {0, 0, 0}), CacheEntry{0, "not a blosc chunk"}).ok());
    LogCapture log;
    auto r = Run(*s, t.path + "/top", 2, 3, cache_dir);
    CHECK(r.counts.chunks_from_cache > 0);
    CHECK(r.counts.chunks_from_cache < r.counts.chunks_written);
    CHECK(Files(t.path + "/top", "2") == Files(t.path + "/full", "2"));
    CHECK(Files(t.path + "/top", "3") == Files(t.path + "/full", "3"));
    CHECK_THAT(log.All(), Catch::Contains("corrupt entry") && Catch::Contains("left in place"));
    CHECK_THAT(log.All(), Catch::Contains("does not decode to a full chunk"));
    CHECK(fs::exists(victim));  // a read-only user never deletes
  }
  SECTION("a cache of other options is never hit") {
    Options other = o;
    other.blosc_cname = "zstd";
    auto s2 = MemSession(mem, other);
    auto r = Run(*s2, t.path + "/other", 0, 3, cache_dir);
    CHECK(r.counts.chunks_from_cache == 0);
  }
}

}  // namespace
}  // namespace oz
