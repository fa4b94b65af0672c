// FileStore: a local directory as a read-only KvStore (a zarr store on disk).
//
// Confinement: every key passes ValidateKey, then is opened relative to a descriptor of the root
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): symlinks that stay inside the root are
// followed, any that lead outside it (absolute targets, "..") are refused by the kernel, with no
// race between a check and the open. On kernels without openat2 (before Linux 5.6) the key is
// walked one segment at a time with O_NOFOLLOW, so every symlink is refused.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <sys/stat.h>

#include "core/store/kv_store.h"

namespace oz {

class FileStore : public KvStore {
 public:
  // `root` must be an existing directory; it is opened once (the store keeps the descriptor, so
  // a rename of the root after Open does not redirect reads).
  // Errors: kNotFound (missing), kNotDirectory, kPermission, kIoError, naming the path.
  // use_openat2 = false always takes the segment walk (what kernels before 5.6 get; for tests).
  static Result<std::unique_ptr<FileStore>> Open(const std::string& root, bool use_openat2 = true);
  ~FileStore() override;
  FileStore(const FileStore&) = delete;
  FileStore& operator=(const FileStore&) = delete;

  // Reads a regular file. Absent (ENOENT, or a path component that is a file, ENOTDIR): nullopt.
  // A directory, FIFO or device at the key: kInvalidArgument (opened non-blocking, so a FIFO
  // cannot hang). A symlink leaving the root: kPermission. Larger than max_bytes: kCorrupt.
  // validator: "size:mtime_ns".
  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override;
  // pread of the range only (the file's size is fstat's). Errors as Read.
  Result<std::optional<KvRangeValue>> ReadRange(std::string_view key, const ByteRange& range,
                                                uint64_t max_object_bytes) override;
  std::string Describe() const override { return root_; }

 private:
  FileStore(std::string root, int fd, bool use_openat2)
      : root_(std::move(root)), dir_fd_(fd), no_openat2_(!use_openat2) {}
  // Opens key below the root (see the header comment); returns the fd or -errno.
  int OpenBeneath(const std::string& key) const;
  // The descriptor of the regular file at key (the caller closes it), -1 when absent.
  Result<int> OpenRegular(const std::string& key, const std::string& where, struct stat* st) const;

  const std::string root_;
  const int dir_fd_;
  // Set once openat2 turned out to be missing (ENOSYS) or filtered (EPERM from a seccomp policy).
  mutable std::atomic<bool> no_openat2_{false};
};

}  // namespace oz
