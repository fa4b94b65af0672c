// KvStore: the read-only key -> bytes layer a zarr source reads from (a local directory, an HTTP
// server). Layering follows tensorstore: zarr array driver -> KvStore -> transport.
//
// Keys are relative, '/'-separated paths inside the store ("0/.zarray", "0/3.1.2", "0/3/1/2").
// Every key is checked by ValidateKey before it reaches any store, so no read ever leaves the
// store's root (no "..", no absolute paths, no empty or "." segments, no backslashes or control
// characters) and an HTTP store can append it to its base URL as is (no '?', '#' or '%').
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace oz {

struct KvValue {
  std::string data;
  // Identifies this version of the value, when the store knows one: an HTTP ETag, else
  // Last-Modified; for files "size:mtime_ns". Empty when unknown. Recorded by caches.
  std::string validator;
};

// A byte range of a value: [offset, offset + length), or with `suffix` the last `length` bytes.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool suffix = false;
  // "bytes=0-99" / "bytes=-100" (an HTTP Range header value; also used in cache keys).
  std::string ToString() const;
};

// What a range read returned: the bytes of the range that exist (shorter than asked at the end
// of the value; empty when the range starts at or past the end), where they start, and the size
// of the whole value.
struct KvRangeValue {
  std::string data;
  uint64_t offset = 0;
  uint64_t object_size = 0;
  std::string validator;
};

class KvStore {
 public:
  virtual ~KvStore() = default;

  // Reads `key`. Returns nullopt when the key is truly absent (no such file; HTTP 404/410).
  // Values larger than max_bytes are refused with kCorrupt naming the key and the limit (so
  // hostile metadata or chunks cannot exhaust memory).
  // Errors: kInvalidArgument for a key ValidateKey refuses; kPermission for an authentication or
  // permission failure; kIoError / kUnavailable for failures after the store's own retries.
  // Messages name the key's location (Describe() + "/" + key) and never contain credentials.
  // Thread-safe: may be called concurrently from many threads.
  virtual Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) = 0;

  // Reads part of `key` (a zarr v3 shard index or inner chunks). nullopt when the key is absent.
  // `max_object_bytes` bounds a store that can only read whole values (the default
  // implementation reads the value with Read(key, max_object_bytes) and cuts the range out);
  // FileStore reads with pread and HttpStore with a Range request, so neither reads more than
  // the range. A range longer than 1 GiB is refused (kInvalidArgument). Errors as Read.
  virtual Result<std::optional<KvRangeValue>> ReadRange(std::string_view key, const ByteRange& range,
                                                        uint64_t max_object_bytes);

  // Range caching, for callers that ask for the same parts again (zarr v3 shard indexes and
  // inner chunks, which one read fetches coalesced and another read may fetch otherwise): what
  // KeepRange kept for exactly (key, range): a value, or an absence (nullopt inside), or nothing
  // (outer nullopt). The defaults keep nothing (CachedKvStore keeps them in its disk cache).
  virtual std::optional<std::optional<KvRangeValue>> CachedRange(std::string_view key, const ByteRange& range);
  virtual void KeepRange(std::string_view key, const ByteRange& range, const std::optional<KvRangeValue>& value);

  // The store's canonical location without credentials (an absolute path or a URL), for
  // messages and as the store's identity in cache keys.
  virtual std::string Describe() const = 0;
};

// Largest range ReadRange accepts.
inline constexpr uint64_t kMaxRangeBytes = 1ull << 30;

// Cuts `range` out of a whole value of `data` (the bytes that exist; see KvRangeValue).
KvRangeValue CutRange(std::string_view data, const ByteRange& range, std::string validator);

// OK if `key` is a safe relative key (see the header comment), else kInvalidArgument naming it.
Status ValidateKey(std::string_view key);

}  // namespace oz
