// Atomic file writes shared by the disk cache and materialize: a file at its final name is
// always complete.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace oz {

struct AtomicWriteOptions {
  bool fsync_file = true;  // fsync the temp file before rename
  bool fsync_dir = true;   // fsync the directory after rename
  // Without fsync_file: start the data's writeback before close (sync_file_range WRITE, which
  // does not wait for it), so that a later syncfs finds it on its way and the disk works while
  // the caller computes the next file. Best effort: errors are the later sync's to report.
  bool start_writeback = false;
  unsigned mode = 0644;  // of the new file, minus the umask
  // Names this write path for fault injection ("cache", "materialize"; see core/base/fault.h).
  // nullptr: no fault points.
  const char* fault_site = nullptr;
};

// Writes `data` to `path` atomically: a temp file ".tmp.<16 hex>" in the same directory
// (O_CREAT|O_EXCL, so concurrent writers never share one), write all (short writes and EINTR
// retried), optional fsync, rename over `path`, optional fsync of the directory. Readers of
// `path` see the old file or the new one, never a part. The temp file is removed on any failure.
// Thread-safe; concurrent writers of one path: the last rename wins, each file complete.
// Errors: from errno (kNoSpace, kPermission, kNotFound if the directory is missing, kIoError,
// ...) naming `path`. If only the final directory fsync fails, the new file is already in place
// (complete, but maybe not durable after a crash) and the error is still returned.
Status WriteFileAtomic(const std::string& path, std::string_view data, const AtomicWriteOptions& options = {});
// The same for a file whose bytes are the pieces one after another (a header and a payload that
// is not copied next to it).
Status WriteFileAtomic(const std::string& path, std::initializer_list<std::string_view> pieces,
                       const AtomicWriteOptions& options = {});

// The same atomic write for a file produced piece by piece (so it need not be held whole):
// Create makes the temp file, Append writes the next bytes, Commit does the fsync / close /
// rename / directory fsync of WriteFileAtomic. A writer destroyed before a successful Commit (or
// after a failed Append) removes its temp file, so `path` is never seen partly written. Not
// thread-safe (one writer per thread); movable. Errors: as WriteFileAtomic, naming `path`.
class AtomicFileWriter {
 public:
  static Result<AtomicFileWriter> Create(const std::string& path, const AtomicWriteOptions& options = {});
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  Status Append(std::string_view data);
  Status Commit();
  uint64_t bytes_written() const { return written_; }

 private:
  AtomicFileWriter() = default;
  void Abort();

  std::string path_, dir_, tmp_;
  AtomicWriteOptions options_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Reads a whole file (to EOF). Errors: kNotFound if absent, otherwise from errno, naming the path;
// kResourceExhausted if it does not fit in memory.
Result<std::string> ReadFile(const std::string& path);

// Creates `path` and its parents (like mkdir -p). OK if it exists as a directory.
// Errors: kNotDirectory naming the component that is a file; otherwise from errno.
Status MakeDirs(const std::string& path, unsigned mode = 0755);

// Removes ".tmp.*" files whose mtime is at least `min_age_seconds` old directly inside `dir`
// (non-recursive). Younger temps may belong to a writer at work and are kept. Returns the number
// removed; a missing or unreadable `dir` removes nothing.
int SweepTempFiles(const std::string& dir, int min_age_seconds);

}  // namespace oz
