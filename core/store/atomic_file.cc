// Atomic file writes (temp + rename), whole-file reads, mkdir -p and temp sweeping.
#include "core/store/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <utility>

#include "core/base/fault.h"

namespace oz {
namespace {

constexpr std::string_view kTempPrefix = ".tmp.";

// Directory part of `path` ("." if none); the temp file must live there so rename is atomic.
std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// 64 random bits for temp names. getrandom can only fail on ancient kernels; the fallback still
// differs per call and per process, and O_EXCL catches the rest.
// Temp name bits: a per-thread generator (splitmix64) seeded once from getrandom, so a write costs
// no system call for its name (materialize writes thousands of files); collisions across threads
// and processes are still caught by O_EXCL and retried.
uint64_t RandomBits() {
  thread_local uint64_t state = [] {
    uint64_t v = 0;
    if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof v)) v = 0;
    static std::atomic<uint64_t> counter{0};
    return v ^ static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           (static_cast<uint64_t>(::getpid()) << 32) ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  }();
  uint64_t v = (state += 0x9E3779B97F4A7C15ull);
  v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
  v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
  return v ^ (v >> 31);
}

// Closes fd on scope exit; close errors are checked explicitly where they matter.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// write() everything, retrying on EINTR and short writes. Returns 0 or an errno.
int WriteAll(int fd, std::string_view data) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    // Linux caps one write at ~2 GiB; larger requests are short writes, handled by the loop.
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress and no error: do not spin
    p += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

int FsyncRetry(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

Status FsyncDir(const std::string& dir, const std::string& path) {
  FdCloser d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0) {
    int err = errno;
    return ErrnoError(err, "open directory " + dir + " to fsync after writing " + path);
  }
  if (int err = FsyncRetry(d.fd)) return ErrnoError(err, "fsync directory " + dir + " after writing " + path);
  return OkStatus();
}

}  // namespace

Result<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path, const AtomicWriteOptions& options) {
  AtomicFileWriter w;
  w.path_ = path;
  w.dir_ = DirName(path);
  w.options_ = options;
  // O_EXCL never reuses a name; a collision of 64 random bits is retried, not trusted.
  for (int attempt = 0; attempt < 8 && w.fd_ < 0; ++attempt) {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(RandomBits()));
    w.tmp_ = w.dir_ + "/" + std::string(kTempPrefix) + suffix;
    w.fd_ = ::open(w.tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, options.mode);
    if (w.fd_ < 0 && errno != EEXIST) {
      int err = errno;
      return ErrnoError(err, "write " + path + ": cannot create temp file in " + w.dir_);
    }
  }
  if (w.fd_ < 0) return IoError("write " + path + ": no unused temp file name in " + w.dir_);
  if (options.fault_site) FaultPoint(options.fault_site, "created");
  return w;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept { *this = std::move(other); }

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& other) noexcept {
  if (this != &other) {
    Abort();
    path_ = std::move(other.path_);
    dir_ = std::move(other.dir_);
    tmp_ = std::move(other.tmp_);
    options_ = other.options_;
    fd_ = std::exchange(other.fd_, -1);
    written_ = other.written_;
    committed_ = other.committed_;
    other.tmp_.clear();
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() { Abort(); }

// Removes the temp file of an uncommitted writer (idempotent).
void AtomicFileWriter::Abort() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

Status AtomicFileWriter::Append(std::string_view data) {
  if (fd_ < 0) return InternalError("write " + path_ + ": the file was already committed or failed");
  if (int err = WriteAll(fd_, data)) {
    Abort();
    return ErrnoError(err, "write " + path_);
  }
  written_ += data.size();
  return OkStatus();
}

Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return InternalError("write " + path_ + ": the file was already committed or failed");
  auto fail = [&](int err, const char* what) {
    Abort();
    return ErrnoError(err, std::string(what) + " " + path_);
  };
  if (options_.fault_site) FaultPoint(options_.fault_site, "written");
  if (options_.fsync_file) {
    if (int err = FsyncRetry(fd_)) return fail(err, "fsync");
  } else if (options_.start_writeback) {
    (void)::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  // close() can report deferred write errors (NFS, quota); never retried (the fd is gone).
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 && errno != EINTR) {
    int err = errno;
    return fail(err, "close");
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    return fail(err, "rename temp file to");
  }
  committed_ = true;
  tmp_.clear();
  if (options_.fault_site) FaultPoint(options_.fault_site, "renamed");
  if (options_.fsync_dir) return FsyncDir(dir_, path_);
  return OkStatus();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, const AtomicWriteOptions& options) {
  return WriteFileAtomic(path, {data}, options);
}

Status WriteFileAtomic(const std::string& path, std::initializer_list<std::string_view> pieces,
                       const AtomicWriteOptions& options) {
  OZ_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path, options));
  // With faults enabled the write is split so a test can stop it half way ("half_written").
  uint64_t total = 0;
  for (std::string_view p : pieces) total += p.size();
  const uint64_t half = total / 2;
  bool split = options.fault_site && FaultsEnabled() && half > 0;  // done <= half until split
  uint64_t done = 0;
  for (std::string_view p : pieces) {
    if (split && half - done < p.size()) {
      const size_t first = static_cast<size_t>(half - done);
      if (first) OZ_RETURN_IF_ERROR(w.Append(p.substr(0, first)));
      FaultPoint(options.fault_site, "half_written");
      p.remove_prefix(first);
      done += first;
      split = false;
    }
    OZ_RETURN_IF_ERROR(w.Append(p));
    done += p.size();
  }
  return w.Commit();
}

Result<std::string> ReadFile(const std::string& path) {
  FdCloser f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) {
    int err = errno;
    return ErrnoError(err, "open " + path);
  }
  struct stat st;
  if (::fstat(f.fd, &st) != 0) {
    int err = errno;
    return ErrnoError(err, "stat " + path);
  }
  std::string out;
  try {
    // Size is a hint: the loop reads to EOF, so a file that grows or shrinks is read as it is.
    out.resize(st.st_size > 0 ? static_cast<size_t>(st.st_size) : 4096);
    size_t got = 0;
    for (;;) {
      if (got == out.size()) out.resize(out.size() * 2);
      ssize_t n = ::read(f.fd, out.data() + got, out.size() - got);
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        return ErrnoError(err, "read " + path);
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("read " + path + ": out of memory for " + std::to_string(st.st_size) + " bytes");
  }
  return out;
}

Status MakeDirs(const std::string& path, unsigned mode) {
  if (path.empty()) return InvalidArgumentError("MakeDirs: empty path");
  // Create each prefix in turn; EEXIST is fine only if it is a directory (or a link to one).
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix.back() == '/') continue;  // "//" or trailing slash
    if (::mkdir(prefix.c_str(), mode) == 0) continue;
    int err = errno;
    struct stat st;
    if (::stat(prefix.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      return ErrnoError(ENOTDIR, "create directory " + path + ": " + prefix + " exists and is not a directory");
    }
    return ErrnoError(err, "create directory " + prefix);
  }
  return OkStatus();
}

int SweepTempFiles(const std::string& dir, int min_age_seconds) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  const time_t now = ::time(nullptr);
  int removed = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name.substr(0, kTempPrefix.size()) != kTempPrefix) continue;
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) continue;
    // Young temps may belong to a writer still at work (e.g. another materialize run).
    if (now - st.st_mtime < min_age_seconds) continue;
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

}  // namespace oz
