// DiskCache: a persistent, checksummed, LRU-bounded key -> bytes store in a directory it owns.
// Keys are arbitrary strings (callers put the format version, source fingerprint, options,
// level and chunk index in them); files are named by a hash of the key, never a raw path.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/stats.h"
#include "core/status.h"

namespace oz {

struct DiskCacheOptions {
  std::string dir;                   // created if missing
  uint64_t max_bytes = 10ull << 30;  // LRU budget over entry file sizes
  Stats* stats = nullptr;            // not owned; may be nullptr
  bool fsync = false;                // fsync entries (off: a crash may lose recent entries, but
                                     // never yields a corrupt read: checksums catch torn files)
};

struct CacheEntry {
  uint32_t flags = 0;  // caller-defined bits stored with the entry (e.g. "chunk is empty")
  std::string data;
};

class DiskCache {
 public:
  // Opens (creating) the directory, takes an exclusive lock file so a second process on the same
  // directory gets kUnavailable naming the directory and the lock holder, scans existing entries
  // to rebuild the LRU index (by mtime) and sweeps stale temp files.
  // Errors: directory cannot be created or written: kPermission/kIoError naming it.
  static Result<std::unique_ptr<DiskCache>> Open(const DiskCacheOptions& options);
  ~DiskCache();

  // Returns the entry, or nullopt on a miss. A corrupt entry (bad header, checksum, key
  // mismatch, truncation) is deleted, counted in stats->cache_corrupt, logged as a warning and
  // reported as a miss. Never fails: I/O errors are misses. Marks the entry recently used.
  std::optional<CacheEntry> Get(std::string_view key);

  // True if an entry exists for key (no read, no checksum). Cheap.
  bool Contains(std::string_view key);

  // Stores the entry atomically (temp + rename), then evicts least-recently-used entries until
  // the total is within max_bytes. An entry larger than max_bytes is not stored (OK status).
  // Errors (ENOSPC, read-only dir, ...) are returned for the caller to log as a warning; the
  // cache stays consistent.
  Status Put(std::string_view key, const CacheEntry& entry);

  uint64_t total_bytes() const;
  uint64_t entry_count() const;
  const std::string& dir() const;

  struct Impl;

 private:
  explicit DiskCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Default cache root: $XDG_CACHE_HOME/omezarrfs or $HOME/.cache/omezarrfs.
// Error kInvalidArgument ("set -o cache=DIR") if neither variable is set.
Result<std::string> DefaultCacheRoot();

}  // namespace oz
