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

  // The store's canonical location without credentials (an absolute path or a URL), for
  // messages and as the store's identity in cache keys.
  virtual std::string Describe() const = 0;
};

// OK if `key` is a safe relative key (see the header comment), else kInvalidArgument naming it.
Status ValidateKey(std::string_view key);

}  // namespace oz
