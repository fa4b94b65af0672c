// CachedKvStore over a fake store: hits across reopen, absent entries, errors not cached,
// metadata not cached, generation and source in the key, entry format, limits, single-flight.
#include <stdlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/store/cached_kv_store.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

// Counts reads per key; values, absences and failures are scripted. Optionally blocks reads
// until released (to hold concurrent readers inside one fetch).
struct FakeStore : KvStore {
  std::string where = "http://example.org/a.zarr";
  std::map<std::string, KvValue> values;
  std::map<std::string, Status> failures;
  std::mutex mu;
  std::map<std::string, int> reads;  // guarded by mu
  std::condition_variable cv;
  bool gate_open = true;  // guarded by mu
  int waiting = 0;        // guarded by mu

  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    std::string k(key);
    {
      std::unique_lock<std::mutex> l(mu);
      reads[k]++;
      ++waiting;
      cv.notify_all();
      cv.wait(l, [this] { return gate_open; });
      --waiting;
    }
    if (auto f = failures.find(k); f != failures.end()) return f->second;
    auto v = values.find(k);
    if (v == values.end()) return std::optional<KvValue>();
    if (v->second.data.size() > max_bytes) return CorruptError("too big");
    return std::optional<KvValue>(v->second);
  }
  std::string Describe() const override { return where; }
  int Reads(const std::string& k) {
    std::lock_guard<std::mutex> l(mu);
    return reads[k];
  }
};

struct Fixture {
  TempDir dir;
  Stats stats;
  std::unique_ptr<DiskCache> cache;
  FakeStore* fake = nullptr;  // owned by store
  std::unique_ptr<CachedKvStore> store;

  Fixture() { Reopen({}); }
  void Reopen(CachedKvStoreOptions options, std::string where = "http://example.org/a.zarr") {
    store.reset();
    cache.reset();
    DiskCacheOptions co;
    co.dir = dir.path;
    co.stats = &stats;
    auto c = DiskCache::Open(co);
    REQUIRE(c.ok());
    cache = std::move(c).value();
    auto f = std::make_unique<FakeStore>();
    f->where = std::move(where);
    f->values["0/0.0.0"] = KvValue{std::string(1000, 'x'), "\"etag-1\""};
    f->values["0/1.0.0"] = KvValue{"small", ""};
    f->values["0/.zarray"] = KvValue{"{}", ""};
    f->failures["0/9.9.9"] = UnavailableError("server down");
    fake = f.get();
    store = std::make_unique<CachedKvStore>(std::move(f), cache.get(), &stats, std::move(options));
  }
};

TEST_CASE("cached kv: values and absences survive a reopen; the second run reads nothing") {
  Fixture fx;
  for (const char* k : {"0/0.0.0", "0/1.0.0", "0/5.5.5"}) REQUIRE(fx.store->Read(k, 1 << 20).ok());
  CHECK(fx.fake->Reads("0/0.0.0") == 1);
  CHECK(fx.fake->Reads("0/5.5.5") == 1);
  CHECK(fx.stats.source_fetches == 3);

  fx.Reopen({});
  auto v = fx.store->Read("0/0.0.0", 1 << 20);
  REQUIRE(v.ok());
  REQUIRE(v->has_value());
  CHECK((*v)->data == std::string(1000, 'x'));
  CHECK((*v)->validator == "\"etag-1\"");  // the validator is stored with the value
  auto small = fx.store->Read("0/1.0.0", 1 << 20);
  REQUIRE(small.ok());
  CHECK((*small)->data == "small");
  auto absent = fx.store->Read("0/5.5.5", 1 << 20);
  REQUIRE(absent.ok());
  CHECK_FALSE(absent->has_value());
  CHECK(fx.fake->Reads("0/0.0.0") == 0);
  CHECK(fx.fake->Reads("0/1.0.0") == 0);
  CHECK(fx.fake->Reads("0/5.5.5") == 0);
  CHECK(fx.stats.source_cache_hits == 3);
}

TEST_CASE("cached kv: absences are not cached with cache_absent=false") {
  Fixture fx;
  CachedKvStoreOptions o;
  o.cache_absent = false;
  fx.Reopen(o);
  REQUIRE(fx.store->Read("0/5.5.5", 100).ok());
  REQUIRE(fx.store->Read("0/5.5.5", 100).ok());
  CHECK(fx.fake->Reads("0/5.5.5") == 2);
}

TEST_CASE("cached kv: failures and metadata are never cached") {
  Fixture fx;
  for (int i = 0; i < 2; ++i) {
    auto r = fx.store->Read("0/9.9.9", 100);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kUnavailable);
    REQUIRE(fx.store->Read("0/.zarray", 100).ok());
  }
  CHECK(fx.fake->Reads("0/9.9.9") == 2);
  CHECK(fx.fake->Reads("0/.zarray") == 2);
  CHECK(fx.cache->entry_count() == 0);
  CHECK(IsChunkKey("0/1.2.3"));
  CHECK(IsChunkKey("zarray"));
  for (const char* k : {".zarray", "a/.zattrs", ".zgroup", ".zmetadata", "x/zarr.json"}) CHECK_FALSE(IsChunkKey(k));
}

TEST_CASE("cached kv: a custom predicate decides what is cached") {
  Fixture fx;
  CachedKvStoreOptions o;
  o.cacheable = [](std::string_view k) { return k == "0/.zarray"; };
  fx.Reopen(o);
  REQUIRE(fx.store->Read("0/.zarray", 100).ok());
  REQUIRE(fx.store->Read("0/.zarray", 100).ok());
  REQUIRE(fx.store->Read("0/1.0.0", 100).ok());
  REQUIRE(fx.store->Read("0/1.0.0", 100).ok());
  CHECK(fx.fake->Reads("0/.zarray") == 1);
  CHECK(fx.fake->Reads("0/1.0.0") == 2);
}

TEST_CASE("cached kv: the key holds the source and the generation, never more") {
  Fixture fx;
  CHECK(fx.store->CacheKey("0/1.0.0") == "src1|http://example.org/a.zarr||0/1.0.0");
  REQUIRE(fx.store->Read("0/1.0.0", 100).ok());
  CachedKvStoreOptions g2;
  g2.generation = "meta-v2";
  fx.Reopen(g2);
  CHECK(fx.store->CacheKey("0/1.0.0") == "src1|http://example.org/a.zarr|meta-v2|0/1.0.0");
  REQUIRE(fx.store->Read("0/1.0.0", 100).ok());
  CHECK(fx.fake->Reads("0/1.0.0") == 1);  // a new generation misses
  fx.Reopen({}, "http://example.org/b.zarr");
  REQUIRE(fx.store->Read("0/1.0.0", 100).ok());
  CHECK(fx.fake->Reads("0/1.0.0") == 1);  // another source misses
}

TEST_CASE("cached kv: entry format is flags + u32le validator length + validator + value") {
  Fixture fx;
  REQUIRE(fx.store->Read("0/0.0.0", 1 << 20).ok());
  REQUIRE(fx.store->Read("0/5.5.5", 1 << 20).ok());
  auto e = fx.cache->Get(fx.store->CacheKey("0/0.0.0"));
  REQUIRE(e);
  CHECK(e->flags == 0);
  CHECK(e->data.substr(0, 4) == std::string("\x08\x00\x00\x00", 4));
  CHECK(e->data.substr(4, 8) == "\"etag-1\"");
  CHECK(e->data.substr(12) == std::string(1000, 'x'));
  auto a = fx.cache->Get(fx.store->CacheKey("0/5.5.5"));
  REQUIRE(a);
  CHECK(a->flags == kAbsentFlag);
  CHECK(a->data.empty());
  // A malformed entry reads as a miss and is fetched again.
  REQUIRE(fx.cache->Put(fx.store->CacheKey("0/1.0.0"), CacheEntry{0, std::string("\xff\xff\xff\x7f", 4)}).ok());
  auto r = fx.store->Read("0/1.0.0", 100);
  REQUIRE(r.ok());
  CHECK((*r)->data == "small");
  CHECK(fx.fake->Reads("0/1.0.0") == 1);
}

TEST_CASE("cached kv: a cached value over max_bytes is refused like the source would") {
  Fixture fx;
  REQUIRE(fx.store->Read("0/0.0.0", 1 << 20).ok());
  auto r = fx.store->Read("0/0.0.0", 999);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kCorrupt);
  CHECK(r.status().message().find("http://example.org/a.zarr/0/0.0.0") != std::string::npos);
  CHECK(fx.fake->Reads("0/0.0.0") == 1);
}

TEST_CASE("cached kv: invalid keys are refused before the cache and the source") {
  Fixture fx;
  auto r = fx.store->Read("../x", 100);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK(fx.fake->Reads("../x") == 0);
}

TEST_CASE("cached kv: concurrent readers of one key share one fetch, and its failure") {
  for (const char* key : {"0/0.0.0", "0/9.9.9"}) {
    Fixture fx;
    {
      std::lock_guard<std::mutex> l(fx.fake->mu);
      fx.fake->gate_open = false;
    }
    constexpr int kReaders = 8;
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kReaders; ++i) {
      threads.emplace_back([&] {
        auto r = fx.store->Read(key, 1 << 20);
        (r.ok() ? ok : failed)++;
      });
    }
    {
      // Wait until the one fetch is inside the source, then give the others time to join it.
      std::unique_lock<std::mutex> l(fx.fake->mu);
      fx.fake->cv.wait(l, [&] { return fx.fake->waiting == 1; });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    {
      std::lock_guard<std::mutex> l(fx.fake->mu);
      fx.fake->gate_open = true;
    }
    fx.fake->cv.notify_all();
    for (auto& t : threads) t.join();
    INFO(key);
    // A value: readers that came while the fetch was held joined it, later ones hit the cache, so
    // the source saw one read whatever the timing. A failure is shared with the joiners and not
    // cached, so every reader fails (late ones after their own fetch).
    if (std::string(key) == "0/0.0.0") {
      CHECK(ok == kReaders);
      CHECK(fx.fake->Reads(key) == 1);
    } else {
      CHECK(failed == kReaders);
    }
  }
}

}  // namespace
}  // namespace oz
