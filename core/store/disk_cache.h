// DiskCache: a persistent, checksummed, LRU-bounded key -> bytes store in a directory it owns.
// Keys are arbitrary strings (callers put the format version, source fingerprint, options,
// level and chunk index in them); files are named by a hash of the key, never a raw path.
//
// Layout: DIR/lock (flock + the owner's pid and state), DIR/v1/ab/cdef... (32 hex digits = the first 128 bits of
// SHA-256(key), split 2 + 30). Each file: a 32-byte header (magic "OZC1", version, XXH64
// checksum over flags, lengths, key and data) + the key + the data; the format is documented in
// disk_cache.cc. The stored key is compared on Get, so even a hash collision reads as a miss.
// A future format goes to DIR/v2 and leaves v1 alone.
// Memory: about 120 bytes of index per entry.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/stats.h"
#include "core/base/status.h"
#include "core/store/mountinfo.h"

namespace oz {

struct DiskCacheOptions {
  std::string dir;                   // created if missing
  uint64_t max_bytes = 10ull << 30;  // LRU budget over entry file sizes
  Stats* stats = nullptr;            // not owned; may be nullptr
  bool fsync = false;                // fsync entries (off: a crash may lose recent entries, but
                                     // never yields a corrupt read: checksums catch torn files)
  // Open: how long to wait for a lock holder that is shutting down (see Open).
  std::chrono::milliseconds exiting_owner_wait{30000};
};

struct CacheEntry {
  uint32_t flags = 0;  // caller-defined bits stored with the entry (e.g. "chunk is empty")
  std::string data;
};

// Thread-safe: any number of threads may call any method concurrently. File I/O runs outside
// the index mutex; concurrent Puts of one key are serialized, Puts of different keys are not.
class DiskCache {
 public:
  // Opens (creating) the directory, takes an exclusive lock file so a second process (or a second
  // DiskCache in this one) on the same directory gets kUnavailable naming the directory and the
  // lock holder's pid. A holder that is shutting down (it called MarkExiting, or the mount it
  // declared with MarkServing is no longer in its mount table: unmounted) is waited for, up to
  // options.exiting_owner_wait, with one info line saying so; any other holder (starting, serving
  // a mount, or not a mount at all) is refused at once. Then Open scans existing entries to rebuild the LRU index (by
  // mtime; contents are checked on Get, not here), sweeps every temp file (the lock makes each one a dead writer's),
  // removes files with invalid names from the fan-out directories, and evicts down to max_bytes.
  // Errors: directory cannot be created or written: kPermission/kNotDirectory/kIoError naming it;
  // empty dir: kInvalidArgument. The lock is released by destruction or process exit (any kind).
  static Result<std::unique_ptr<DiskCache>> Open(const DiskCacheOptions& options);

  // Opens an existing cache directory for reading only, e.g. the cache of a running mount, which
  // holds the lock: takes no lock and never changes anything on disk (no sweep, no eviction, no
  // touch on hit, corrupt entries are misses left in place, Put fails with kReadOnly). The index
  // is a snapshot of the entries present now: entries the owner adds later are misses, entries it
  // evicts meanwhile are misses when read. max_bytes is ignored.
  // Errors: kNotFound when DIR holds no cache (no DIR/v1), kNotDirectory, or from errno.
  static Result<std::unique_ptr<DiskCache>> OpenReadOnly(const DiskCacheOptions& options);
  ~DiskCache();

  // What the lock holder tells a process that finds the cache locked (the record in DIR/lock).
  // MarkServing: this process serves FUSE mount `mount`; while that mount exists, Open elsewhere
  // is refused at once, and once it is gone (unmounted) Open waits for this process to exit.
  // MarkExiting: this process is shutting down and will release the lock soon; Open waits.
  // Errors: kReadOnly for a cache opened read-only; from errno if the record cannot be written.
  Status MarkServing(const MountId& mount);
  Status MarkExiting();

  // Returns the entry, or nullopt on a miss. A corrupt entry (bad header, checksum, key
  // mismatch, truncation) is deleted, counted in stats->cache_corrupt, logged as a warning and
  // reported as a miss. Never fails: I/O errors are misses. Marks the entry recently used, and
  // at most once a minute per entry sets its file mtime so recency survives restarts.
  // Only entries in the index are read: files added behind the cache's back are not seen.
  // make_buffer, if given, supplies the string the entry's data is read into (called with the
  // data's size once the header checks out; any contents, they are overwritten): a pooled buffer
  // of the right size saves zeroing megabytes that the read overwrites at once.
  using BufferFn = std::function<std::string(size_t n)>;
  std::optional<CacheEntry> Get(std::string_view key, const BufferFn& make_buffer = nullptr);

  // True if an entry exists for key (no read, no checksum). Cheap.
  bool Contains(std::string_view key);

  // Stores the entry atomically (temp + rename), replacing any entry for key, then evicts
  // least-recently-used entries until the total is within max_bytes. An entry larger than
  // max_bytes is not stored (OK status). Recreates a missing fan-out directory (the cache
  // directory deleted while running); on ENOSPC evicts some entries and tries once more.
  // Errors (ENOSPC, read-only dir, ...) are returned for the caller to log as a warning, and
  // counted in stats->cache_put_failures; the index still matches the directory.
  Status Put(std::string_view key, const CacheEntry& entry);
  // The same, from the caller's bytes (no copy of a chunk to make an entry).
  Status Put(std::string_view key, uint32_t flags, std::string_view data);

  uint64_t total_bytes() const;  // sum of entry file sizes (header + key + data) in the index
  uint64_t entry_count() const;
  const std::string& dir() const;

  struct Impl;

 private:
  explicit DiskCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Default cache root: $XDG_CACHE_HOME/omezarrfs (if set and non-empty) or
// $HOME/.cache/omezarrfs. Error kInvalidArgument ("pass -o cache=DIR") if neither is set.
Result<std::string> DefaultCacheRoot();

}  // namespace oz
