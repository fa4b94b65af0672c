// KvStore::ReadRange: FileStore (pread), the whole-value fallback, and CachedKvStore (ranges
// cached on disk and shared by a remount), against byte slices of the stored values.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <string>

#include "core/store/cached_kv_store.h"
#include "core/store/file_store.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

using testing::TempDir;

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return s;
}

// A store that only has Read (the KvStore fallback) and counts calls.
struct WholeStore : KvStore {
  std::map<std::string, std::string> data;
  int reads = 0;
  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    ++reads;
    auto it = data.find(std::string(key));
    if (it == data.end()) return std::optional<KvValue>();
    if (it->second.size() > max_bytes) return CorruptError("too big");
    return std::optional<KvValue>(KvValue{it->second, "etag"});
  }
  std::string Describe() const override { return "mem://whole"; }
};

ByteRange At(uint64_t off, uint64_t len) { return ByteRange{off, len, false}; }
ByteRange Suffix(uint64_t len) { return ByteRange{0, len, true}; }

void CheckRanges(KvStore& store, const std::string& key, const std::string& value) {
  auto r = store.ReadRange(key, At(10, 20), 1 << 20);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->data == value.substr(10, 20));
  CHECK((*r)->offset == 10);
  CHECK((*r)->object_size == value.size());
  r = store.ReadRange(key, Suffix(30), 1 << 20);
  REQUIRE((r.ok() && r->has_value()));
  CHECK((*r)->data == value.substr(value.size() - 30));
  CHECK((*r)->offset == value.size() - 30);
  r = store.ReadRange(key, Suffix(value.size() + 50), 1 << 20);  // longer than the value: all of it
  REQUIRE((r.ok() && r->has_value()));
  CHECK((*r)->data == value);
  CHECK((*r)->offset == 0);
  r = store.ReadRange(key, At(value.size() - 5, 100), 1 << 20);  // short at the end
  REQUIRE((r.ok() && r->has_value()));
  CHECK((*r)->data == value.substr(value.size() - 5));
  r = store.ReadRange(key, At(value.size() + 1, 10), 1 << 20);  // past the end: empty
  REQUIRE((r.ok() && r->has_value()));
  CHECK((*r)->data.empty());
  CHECK((*r)->object_size == value.size());
  r = store.ReadRange("absent/key", At(0, 10), 1 << 20);
  REQUIRE(r.ok());
  CHECK(!r->has_value());
  CHECK(store.ReadRange(key, At(0, 0), 1 << 20).status().code() == ErrorCode::kInvalidArgument);
  CHECK(store.ReadRange("../x", At(0, 10), 1 << 20).status().code() == ErrorCode::kInvalidArgument);
}

}  // namespace

TEST_CASE("KvStore::ReadRange: FileStore reads ranges with pread") {
  TempDir dir;
  const std::string value = Bytes(1000);
  std::filesystem::create_directories(dir.path + "/c/0");
  std::ofstream(dir.path + "/c/0/0", std::ios::binary) << value;
  auto store = FileStore::Open(dir.path);
  REQUIRE(store.ok());
  CheckRanges(**store, "c/0/0", value);
}

TEST_CASE("KvStore::ReadRange: the fallback cuts ranges out of the whole value") {
  WholeStore store;
  const std::string value = Bytes(300);
  store.data["k"] = value;
  CheckRanges(store, "k", value);
}

TEST_CASE("CachedKvStore: ranges kept with KeepRange are served by CachedRange after a remount") {
  TempDir dir;
  const std::string value = Bytes(500);
  DiskCacheOptions co;
  co.dir = dir.path + "/cache";
  for (int pass = 0; pass < 2; ++pass) {
    auto cache = DiskCache::Open(co);
    REQUIRE(cache.ok());
    auto base = std::make_unique<WholeStore>();
    base->data["s/c/0"] = value;
    WholeStore* raw = base.get();
    Stats stats;
    CachedKvStore store(std::move(base), cache->get(), &stats, CachedKvStoreOptions{"g1", true, nullptr});
    const ByteRange part = At(100, 50), tail = Suffix(20), absent = At(0, 10);
    if (pass == 0) {
      CHECK(!store.CachedRange("s/c/0", part));
      auto r = store.ReadRange("s/c/0", part, 1 << 20);
      REQUIRE((r.ok() && r->has_value()));
      CHECK((*r)->data == value.substr(100, 50));
      CHECK(!store.CachedRange("s/c/0", part));  // ReadRange alone keeps nothing
      store.KeepRange("s/c/0", part, *r);
      r = store.ReadRange("s/c/0", tail, 1 << 20);
      REQUIRE((r.ok() && r->has_value()));
      store.KeepRange("s/c/0", tail, *r);
      r = store.ReadRange("s/c/9", absent, 1 << 20);
      REQUIRE((r.ok() && !r->has_value()));
      store.KeepRange("s/c/9", absent, *r);
      store.KeepRange("zarr.json", part, *r);  // metadata is never cached
      CHECK(raw->reads == 3);
    } else {
      auto c = store.CachedRange("s/c/0", part);
      REQUIRE((c && c->has_value()));
      CHECK((*c)->data == value.substr(100, 50));
      CHECK((*c)->offset == 100);
      CHECK((*c)->object_size == 500);
      c = store.CachedRange("s/c/0", tail);
      REQUIRE((c && c->has_value()));
      CHECK((*c)->data == value.substr(480));
      CHECK((*c)->offset == 480);
      c = store.CachedRange("s/c/9", absent);
      REQUIRE(c);
      CHECK(!c->has_value());
      CHECK(!store.CachedRange("s/c/0", At(100, 51)));  // another range: not kept
      CHECK(!store.CachedRange("zarr.json", part));
      CHECK(raw->reads == 0);
      CHECK(stats.source_cache_hits == 3);
    }
  }
}

}  // namespace oz
