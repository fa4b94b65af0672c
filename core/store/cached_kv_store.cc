// CachedKvStore: disk cache + single-flight in front of a KvStore (contract in the header).
#include "core/store/cached_kv_store.h"

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/sync/single_flight.h"

namespace oz {
namespace {

std::string EncodeEntry(const KvValue& v) {
  std::string out;
  out.reserve(4 + v.validator.size() + v.data.size());
  const auto n = static_cast<uint32_t>(v.validator.size());
  for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += v.validator;
  out += v.data;
  return out;
}

// nullopt if the entry is malformed (a format bug or a foreign writer; checksums already
// excluded torn files), which the caller treats as a miss.
std::optional<KvValue> DecodeEntry(std::string& data) {
  if (data.size() < 4) return std::nullopt;
  unsigned char len[4];
  std::memcpy(len, data.data(), 4);
  const uint32_t n = LoadLe32(len);
  if (n > data.size() - 4) return std::nullopt;
  KvValue v;
  v.validator = data.substr(4, n);
  data.erase(0, 4 + static_cast<size_t>(n));
  v.data = std::move(data);
  return v;
}

}  // namespace

bool IsChunkKey(std::string_view key) {
  size_t slash = key.rfind('/');
  std::string_view last = slash == std::string_view::npos ? key : key.substr(slash + 1);
  return !(last == ".zarray" || last == ".zattrs" || last == ".zgroup" || last == ".zmetadata" || last == "zarr.json");
}

struct CachedKvStore::Impl {
  using Value = Result<std::optional<KvValue>>;

  std::unique_ptr<KvStore> base;
  DiskCache* cache;
  Stats* stats;
  CachedKvStoreOptions options;
  std::string prefix;  // "src1|" + Describe() + "|" + generation + "|"

  SingleFlight<std::string, std::optional<KvValue>> flights;             // keyed by max_bytes|key
  SingleFlight<std::string, std::optional<KvRangeValue>> range_flights;  // keyed by key#range

  using RangeResult = Result<std::optional<KvRangeValue>>;

  // A range entry: flags kRangeFlag (| kAbsentFlag when the key was absent); data = EncodeEntry
  // of {validator, u64 LE offset, u64 LE object size, the bytes}.
  std::string RangeKey(std::string_view key, const ByteRange& range) const {
    return prefix + std::string(key) + "#" + range.ToString();
  }

  std::optional<std::optional<KvRangeValue>> LookupRange(std::string_view key, const ByteRange& range) {
    if (cache == nullptr || !Cacheable(key)) return std::nullopt;
    std::optional<CacheEntry> e = cache->Get(RangeKey(key, range));
    if (!e || !(e->flags & kRangeFlag)) return std::nullopt;
    if (e->flags & kAbsentFlag) {
      if (!options.cache_absent) return std::nullopt;
      if (stats != nullptr) stats->source_cache_hits++;
      return std::optional<std::optional<KvRangeValue>>(std::optional<KvRangeValue>());
    }
    std::optional<KvValue> v = DecodeEntry(e->data);
    if (!v || v->data.size() < 16) return std::nullopt;
    KvRangeValue r;
    r.offset = LoadLe64(reinterpret_cast<const unsigned char*>(v->data.data()));
    r.object_size = LoadLe64(reinterpret_cast<const unsigned char*>(v->data.data() + 8));
    r.data = v->data.substr(16);
    r.validator = std::move(v->validator);
    if (stats != nullptr) stats->source_cache_hits++;
    return std::optional<std::optional<KvRangeValue>>(std::optional<KvRangeValue>(std::move(r)));
  }

  void StoreRange(std::string_view key, const ByteRange& range, const std::optional<KvRangeValue>& value) {
    if (cache == nullptr || !Cacheable(key) || (!value && !options.cache_absent)) return;
    CacheEntry e;
    e.flags = kRangeFlag;
    if (value) {
      KvValue v;
      v.validator = value->validator;
      v.data.reserve(16 + value->data.size());
      for (uint64_t x : {value->offset, value->object_size})
        for (int i = 0; i < 8; ++i) v.data += static_cast<char>((x >> (8 * i)) & 0xff);
      v.data += value->data;
      e.data = EncodeEntry(v);
    } else {
      e.flags |= kAbsentFlag;
    }
    if (Status st = cache->Put(RangeKey(key, range), e); !st.ok()) {
      static RateLimiter limiter;
      uint64_t suppressed = 0;
      if (limiter.Allow(&suppressed))
        LogWarning("could not cache " + base->Describe() + "/" + std::string(key) + " " + range.ToString() + ": " +
                   st.message() +
                   (suppressed ? " (" + std::to_string(suppressed) + " similar messages suppressed)" : ""));
    }
  }

  RangeResult FetchRange(std::string_view key, const ByteRange& range, uint64_t max_object_bytes) {
    if (stats != nullptr) stats->source_fetches++;
    RangeResult r = base->ReadRange(key, range, max_object_bytes);
    if (stats != nullptr && r.ok() && r->has_value()) stats->source_bytes_read += (*r)->data.size();
    return r;
  }

  bool Cacheable(std::string_view key) const { return options.cacheable ? options.cacheable(key) : IsChunkKey(key); }

  // A cached answer for key, or nullopt to fetch.
  std::optional<Value> Lookup(std::string_view key, uint64_t max_bytes) {
    std::optional<CacheEntry> e = cache->Get(prefix + std::string(key));
    if (!e) return std::nullopt;
    if (e->flags & kAbsentFlag) {
      if (!options.cache_absent) return std::nullopt;
      return Value(std::optional<KvValue>());
    }
    std::optional<KvValue> v = DecodeEntry(e->data);
    if (!v) return std::nullopt;
    if (v->data.size() > max_bytes) {
      return Value(CorruptError(base->Describe() + "/" + std::string(key) + ": the value is " +
                                std::to_string(v->data.size()) + " bytes, more than the limit of " +
                                std::to_string(max_bytes) + " bytes"));
    }
    return Value(std::move(v));
  }

  void Store(std::string_view key, const std::optional<KvValue>& v) {
    CacheEntry e;
    if (v) {
      e.data = EncodeEntry(*v);
    } else {
      if (!options.cache_absent) return;
      e.flags = kAbsentFlag;
    }
    Status st = cache->Put(prefix + std::string(key), e);
    if (!st.ok()) {
      static RateLimiter limiter;
      uint64_t suppressed = 0;
      if (limiter.Allow(&suppressed)) {
        LogWarning("could not cache " + base->Describe() + "/" + std::string(key) + ": " + st.message() +
                   (suppressed ? " (" + std::to_string(suppressed) + " similar messages suppressed)" : ""));
      }
    }
  }

  Value Fetch(std::string_view key, uint64_t max_bytes) {
    const bool cacheable = cache != nullptr && Cacheable(key);
    if (cacheable) {
      std::optional<Value> hit = Lookup(key, max_bytes);
      if (hit) {
        if (stats != nullptr) stats->source_cache_hits++;
        return std::move(*hit);
      }
    }
    if (stats != nullptr) stats->source_fetches++;
    Value r = base->Read(key, max_bytes);
    if (stats != nullptr && r.ok() && r->has_value()) stats->source_bytes_read += (*r)->data.size();
    if (cacheable && r.ok()) Store(key, *r);
    return r;
  }
};

CachedKvStore::CachedKvStore(std::unique_ptr<KvStore> base, DiskCache* cache, Stats* stats,
                             CachedKvStoreOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->base = std::move(base);
  impl_->cache = cache;
  impl_->stats = stats;
  impl_->options = std::move(options);
  impl_->prefix = "src1|" + impl_->base->Describe() + "|" + impl_->options.generation + "|";
}

CachedKvStore::~CachedKvStore() = default;

std::string CachedKvStore::Describe() const { return impl_->base->Describe(); }

std::string CachedKvStore::CacheKey(std::string_view key) const { return impl_->prefix + std::string(key); }

Result<std::optional<KvValue>> CachedKvStore::Read(std::string_view key, uint64_t max_bytes) {
  OZ_RETURN_IF_ERROR(ValidateKey(key).WithContext(Describe()));
  const std::string flight_key = std::to_string(max_bytes) + "|" + std::string(key);
  return impl_->flights.Do(flight_key, [&]() -> Impl::Value {
    try {
      return impl_->Fetch(key, max_bytes);
    } catch (const std::bad_alloc&) {
      return ResourceExhaustedError(Describe() + "/" + std::string(key) + ": out of memory");
    }
  });
}

Result<std::optional<KvRangeValue>> CachedKvStore::ReadRange(std::string_view key, const ByteRange& range,
                                                             uint64_t max_object_bytes) {
  OZ_RETURN_IF_ERROR(ValidateKey(key).WithContext(Describe()));
  const std::string flight_key = std::string(key) + "#" + range.ToString();
  return impl_->range_flights.Do(flight_key, [&]() -> Impl::RangeResult {
    try {
      return impl_->FetchRange(key, range, max_object_bytes);
    } catch (const std::bad_alloc&) {
      return ResourceExhaustedError(Describe() + "/" + std::string(key) + ": out of memory");
    }
  });
}

std::optional<std::optional<KvRangeValue>> CachedKvStore::CachedRange(std::string_view key, const ByteRange& range) {
  if (!ValidateKey(key).ok()) return std::nullopt;
  return impl_->LookupRange(key, range);
}

void CachedKvStore::KeepRange(std::string_view key, const ByteRange& range, const std::optional<KvRangeValue>& value) {
  if (!ValidateKey(key).ok()) return;
  impl_->StoreRange(key, range, value);
}

}  // namespace oz
