// FileStore: openat2 confinement, pread into a buffer sized by fstat (never mmap: a file
// truncated under a mapping would SIGBUS).
#include "core/store/file_store.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>

namespace oz {
namespace {

constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

Result<std::unique_ptr<FileStore>> FileStore::Open(const std::string& root_in, bool use_openat2) {
  std::string root = root_in;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return NotFoundError("zarr store " + root + " does not exist; check the path");
    if (e == ENOTDIR) return Status(ErrorCode::kNotDirectory, "zarr store " + root + " is not a directory");
    return ErrnoError(e, "cannot open zarr store " + root);
  }
  return std::unique_ptr<FileStore>(new FileStore(root, fd, use_openat2));
}

FileStore::~FileStore() { ::close(dir_fd_); }

int FileStore::OpenBeneath(const std::string& key) const {
  if (!no_openat2_.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = kOpenFlags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, dir_fd_, key.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != ENOSYS && errno != EPERM) return -errno;
    no_openat2_.store(true, std::memory_order_relaxed);
  }
  // Fallback: one segment at a time, no symlinks at all (ValidateKey already ruled out "..").
  int dir = dir_fd_;
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    const bool last = slash == std::string::npos;
    std::string seg = key.substr(start, last ? std::string::npos : slash - start);
    int fd =
        ::openat(dir, seg.c_str(), last ? kOpenFlags | O_NOFOLLOW : O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    if (fd < 0 && e == ENOTDIR) {
      // O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR: say it was a symlink.
      struct stat st;
      if (::fstatat(dir, seg.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) e = ELOOP;
    }
    if (dir != dir_fd_) ::close(dir);
    if (fd < 0) return e == ELOOP ? -EXDEV : -e;
    if (last) return fd;
    dir = fd;
    start = slash + 1;
  }
}

// Opens the regular file at `key` (see Read for the errors); fd -1 = absent.
Result<int> FileStore::OpenRegular(const std::string& key, const std::string& where, struct stat* st) const {
  int fd = OpenBeneath(key);
  if (fd < 0) {
    const int e = -fd;
    if (e == ENOENT || e == ENOTDIR) return -1;
    if (e == EXDEV || e == ELOOP)
      return Status(ErrorCode::kPermission, where +
                                                " is a symbolic link that leads outside the zarr store (or, on "
                                                "kernels before 5.6, any symbolic link); omezarrfs reads only "
                                                "inside SOURCE: replace the link by the file");
    return ErrnoError(e, "cannot open " + where);
  }
  Fd file(fd);
  if (::fstat(fd, st) != 0) return ErrnoError(errno, "cannot stat " + where);
  if (!S_ISREG(st->st_mode))
    return InvalidArgumentError(where + (S_ISDIR(st->st_mode) ? " is a directory" : " is not a regular file") +
                                ", expected a zarr metadata or chunk file");
  return file.Release();
}

namespace {

// Reads n bytes at `offset` into out; the count read (short at the end of the file).
Result<uint64_t> PreadAll(int fd, char* out, uint64_t n, uint64_t offset, const std::string& where) {
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot read " + where);
    }
    if (r == 0) break;
    done += static_cast<uint64_t>(r);
  }
  return done;
}

std::string FileValidator(const struct stat& st) {
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return std::to_string(st.st_size) + ":" + std::to_string(mtime_ns);
}

}  // namespace

Result<std::optional<KvValue>> FileStore::Read(std::string_view key_in, uint64_t max_bytes) {
  OZ_RETURN_IF_ERROR(ValidateKey(key_in));
  const std::string key(key_in);
  const std::string where = root_ + "/" + key;
  struct stat st;
  OZ_ASSIGN_OR_RETURN(int fd, OpenRegular(key, where, &st));
  if (fd < 0) return std::optional<KvValue>();
  Fd file(fd);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    return CorruptError(where + " has " + std::to_string(size) + " bytes, more than the limit of " +
                        std::to_string(max_bytes) + " for this key; the store is damaged or not a zarr store");
  KvValue v;
  try {
    v.data.resize(size);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading " + std::to_string(size) + " bytes of " + where);
  }
  OZ_ASSIGN_OR_RETURN(uint64_t done, PreadAll(fd, v.data.data(), size, 0, where));
  if (done != size)
    return IoError(where + " shrank while being read (" + std::to_string(size) + " -> " + std::to_string(done) +
                   " bytes); is something rewriting the store?");
  v.validator = FileValidator(st);
  return std::optional<KvValue>(std::move(v));
}

Result<std::optional<KvRangeValue>> FileStore::ReadRange(std::string_view key_in, const ByteRange& range,
                                                         uint64_t /*max_object_bytes*/) {
  OZ_RETURN_IF_ERROR(ValidateKey(key_in));
  const std::string key(key_in);
  const std::string where = root_ + "/" + key;
  if (range.length > kMaxRangeBytes || range.length == 0)
    return InvalidArgumentError(where + ": range " + range.ToString() + " is empty or larger than 1 GiB");
  struct stat st;
  OZ_ASSIGN_OR_RETURN(int fd, OpenRegular(key, where, &st));
  if (fd < 0) return std::optional<KvRangeValue>();
  Fd file(fd);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  KvRangeValue v;
  v.object_size = size;
  v.validator = FileValidator(st);
  uint64_t n = 0;
  if (range.suffix) {
    n = std::min(range.length, size);
    v.offset = size - n;
  } else {
    v.offset = range.offset;
    n = range.offset < size ? std::min(range.length, size - range.offset) : 0;
  }
  try {
    v.data.resize(n);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading " + std::to_string(n) + " bytes of " + where);
  }
  OZ_ASSIGN_OR_RETURN(uint64_t done, PreadAll(fd, v.data.data(), n, v.offset, where));
  if (done != n)
    return IoError(where + " shrank while being read (" + range.ToString() + " of " + std::to_string(size) +
                   " bytes); is something rewriting the store?");
  return std::optional<KvRangeValue>(std::move(v));
}

}  // namespace oz
