// CachedKvStore: a KvStore that keeps what another store returned (values and, optionally,
// absences) in the session's DiskCache, so a remount neither downloads nor recomputes them, and
// that lets concurrent readers of one key share a single fetch.
//
// Cache key: "src1|" + base->Describe() + "|" + options.generation + "|" + key. Describe() never
// holds credentials. `generation` is the caller's fingerprint of what the keys mean (the session
// passes a hash of the array metadata, so a changed .zarray starts a fresh set of entries).
// Entry: flags bit 0 (kAbsentFlag) = the key was absent (data empty); otherwise data =
// u32 little-endian validator length, the validator (ETag / Last-Modified as fetched), the value.
// Entries are trusted without revalidation: the source is taken to be immutable while its
// metadata is unchanged (a revalidating request per chunk would defeat the cache). Failed reads
// are never cached; a failed Put is logged as a rate-limited warning and the value still served.
//
// Only keys accepted by options.cacheable are cached (default IsChunkKey: metadata documents
// are fetched at open and stay fresh). Absent keys are cached unless options.cache_absent is
// false: zarr writers omit empty chunks, so sparse arrays have many, and without this each remount
// would ask the server for every one of them again.
//
// Threading: thread-safe. Concurrent Reads of one (key, max_bytes) wait for the first one's
// result instead of fetching again (single-flight); a failure is shared the same way.
// `base` is owned; `cache` (may be nullptr: single-flight only) and `stats` (may be nullptr) must
// outlive the store. Stats: source_cache_hits, source_fetches; DiskCache counts its own
// cache_hits/cache_misses on the same Stats.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/stats.h"
#include "core/store/disk_cache.h"
#include "core/store/kv_store.h"

namespace oz {

// True unless the key's last segment is a zarr metadata document (.zarray, .zattrs, .zgroup,
// .zmetadata, zarr.json).
bool IsChunkKey(std::string_view key);

struct CachedKvStoreOptions {
  std::string generation;                           // part of every cache key
  bool cache_absent = true;                         // cache 404/410 as "absent"
  std::function<bool(std::string_view)> cacheable;  // nullptr = IsChunkKey
};

inline constexpr uint32_t kAbsentFlag = 1;
// A ReadRange entry (cache key: the key's + "#" + ByteRange::ToString(); '#' is never in a key).
inline constexpr uint32_t kRangeFlag = 2;

class CachedKvStore final : public KvStore {
 public:
  CachedKvStore(std::unique_ptr<KvStore> base, DiskCache* cache, Stats* stats, CachedKvStoreOptions options);
  ~CachedKvStore() override;

  // As KvStore::Read. A cached value larger than max_bytes is refused with kCorrupt, as the
  // base store would refuse it.
  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override;
  // As KvStore::ReadRange, single-flight per (key, range) and counted like Read, but not cached
  // by itself: the caller keeps the parts it will ask for again (KeepRange) and looks them up
  // (CachedRange), so a coalesced fetch is stored as the parts it serves.
  Result<std::optional<KvRangeValue>> ReadRange(std::string_view key, const ByteRange& range,
                                                uint64_t max_object_bytes) override;
  // The disk cache's entry for (key, range) (counted in source_cache_hits), for cacheable keys.
  std::optional<std::optional<KvRangeValue>> CachedRange(std::string_view key, const ByteRange& range) override;
  // Stores a range or (value nullopt, with cache_absent) an absence; a failed Put is logged.
  void KeepRange(std::string_view key, const ByteRange& range, const std::optional<KvRangeValue>& value) override;
  std::string Describe() const override;

  // The DiskCache key used for `key` (for tests and tools).
  std::string CacheKey(std::string_view key) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace oz
