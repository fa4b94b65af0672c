// FUSE callbacks. Errors are logged here once, at their level, rate-limited: ENOENT is normal
// traffic (viewers probe for absent chunks) and is never logged.
#include "fs/fuse_ops.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "core/base/log.h"

namespace oz {

int ErrnoFromStatus(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kOk: return 0;
    case ErrorCode::kNotFound: return ENOENT;
    case ErrorCode::kInvalidArgument: return EINVAL;
    case ErrorCode::kNoSpace: return ENOSPC;
    case ErrorCode::kPermission: return EACCES;
    case ErrorCode::kReadOnly: return EROFS;
    case ErrorCode::kNotDirectory: return ENOTDIR;
    case ErrorCode::kIsDirectory: return EISDIR;
    case ErrorCode::kNameTooLong: return ENAMETOOLONG;
    case ErrorCode::kResourceExhausted: return ENOMEM;
    case ErrorCode::kCancelled: return ECONNABORTED;  // shutting down: as the kernel answers after
    case ErrorCode::kIoError:
    case ErrorCode::kCorrupt:
    case ErrorCode::kUnsupported:
    case ErrorCode::kUnavailable:
    case ErrorCode::kInternal: return EIO;
  }
  return EIO;
}

namespace {

// Open file: its path, and its content once the first read asks for it. Opening the content
// lazily matters: with keep_cache the kernel usually serves re-reads from its page cache and
// never calls read, so open must not load (and checksum) the chunk again. The content serves byte
// ranges: a chunk holds its bytes once per open file, a shard only the index (its inner chunks
// come from the engine's caches per read).
struct Handle {
  std::string path;
  std::mutex mu;
  std::shared_ptr<FileContent> content;  // guarded by mu
};

int Fail(const char* op, const char* path, const Status& s) {
  const int err = ErrnoFromStatus(s);
  if (err == EIO || err == ENOMEM || err == ENOSPC || err == EACCES) {  // failures, not user mistakes
    static RateLimiter rl(20, std::chrono::seconds(10));
    uint64_t suppressed = 0;
    if (rl.Allow(&suppressed)) {
      std::string m = std::string(op) + " " + path + ": " + s.ToString();
      if (suppressed) m += " (" + std::to_string(suppressed) + " similar messages suppressed)";
      LogError(m);
    }
  }
  return -err;
}

void FillStat(const FsContext& ctx, const NodeInfo& n, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  if (n.kind == NodeKind::kDirectory) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = static_cast<off_t>(n.size);
    st->st_blocks = static_cast<blkcnt_t>((n.size + 511) / 512);
  }
  st->st_blksize = 1 << 20;
  st->st_mtime = st->st_ctime = st->st_atime = ctx.mount_time;
}

FsContext& Ctx() { return *static_cast<FsContext*>(fuse_get_context()->private_data); }

// Runs fn, turning any escaping exception into an errno.
template <typename F>
auto Guard(const char* op, const char* path, F&& fn) noexcept -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (const std::exception& e) {
    return Fail(op, path, InternalError(e.what()));
  } catch (...) {
    return -EIO;
  }
}

}  // namespace

namespace fsops {

int Getattr(FsContext& ctx, const char* path, struct stat* st) {
  auto r = ctx.tree->Stat(path);
  if (!r.ok()) return Fail("stat", path, r.status());
  FillStat(ctx, *r, st);
  return 0;
}

int Readdir(FsContext& ctx, const char* path, void* buf, fuse_fill_dir_t filler) {
  auto r = ctx.tree->List(path);
  if (!r.ok()) return Fail("readdir", path, r.status());
  filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  for (const DirEntry& e : *r) {
    struct stat st = {};
    st.st_mode = e.kind == NodeKind::kDirectory ? S_IFDIR : S_IFREG;
    if (filler(buf, e.name.c_str(), &st, 0, static_cast<fuse_fill_dir_flags>(0))) break;
  }
  return 0;
}

int Open(FsContext& ctx, const char* path, fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT))) return -EROFS;
  auto r = ctx.tree->Stat(path);  // cheap once the entry is known (lookup came first)
  if (!r.ok()) return Fail("open", path, r.status());
  if (r->kind == NodeKind::kDirectory) return -EISDIR;
  auto* h = new Handle;
  h->path = path;
  fi->fh = reinterpret_cast<uint64_t>(h);
  fi->keep_cache = 1;  // content never changes during a mount
  return 0;
}

int Read(FsContext& ctx, const char*, char* buf, size_t size, off_t offset, fuse_file_info* fi) {
  auto* h = reinterpret_cast<Handle*>(fi->fh);
  if (!h) return -EIO;
  if (offset < 0) return -EINVAL;
  std::shared_ptr<FileContent> content;
  {
    std::lock_guard<std::mutex> l(h->mu);
    if (!h->content) {
      auto r = ctx.tree->Open(h->path);
      if (!r.ok()) return Fail("read", h->path.c_str(), r.status());
      h->content = std::move(r).value();
    }
    content = h->content;
  }
  auto n = content->ReadAt(static_cast<uint64_t>(offset), size, buf);
  if (!n.ok()) return Fail("read", h->path.c_str(), n.status());
  return static_cast<int>(*n);
}

int Release(FsContext&, const char*, fuse_file_info* fi) {
  delete reinterpret_cast<Handle*>(fi->fh);
  fi->fh = 0;
  return 0;
}

int Getxattr(FsContext& ctx, const char* path, const char* name, char* value, size_t size) {
  if (std::strcmp(path, "/") != 0 || std::strcmp(name, kStatsXattr) != 0) {
    auto r = ctx.tree->Stat(path);
    if (!r.ok()) return Fail("getxattr", path, r.status());
    return -ENODATA;
  }
  const std::string text = ctx.stats->ToText();
  if (size == 0) return static_cast<int>(text.size());
  if (size < text.size()) return -ERANGE;
  std::memcpy(value, text.data(), text.size());
  return static_cast<int>(text.size());
}

int Access(FsContext& ctx, const char* path, int mask) {
  auto r = ctx.tree->Stat(path);
  if (!r.ok()) return Fail("access", path, r.status());
  if (mask & W_OK) return -EROFS;
  if ((mask & X_OK) && r->kind == NodeKind::kFile) return -EACCES;
  return 0;
}

}  // namespace fsops

namespace {

void* Init(fuse_conn_info* conn, fuse_config* cfg) {
  cfg->kernel_cache = 1;  // content is immutable for the life of the mount
  cfg->entry_timeout = 86400;
  cfg->attr_timeout = 86400;
  cfg->negative_timeout = 86400;
  cfg->use_ino = 0;
  conn->max_readahead = 1u << 20;
  return fuse_get_context()->private_data;
}

int OpGetattr(const char* path, struct stat* st, fuse_file_info*) {
  return Guard("stat", path, [&] { return fsops::Getattr(Ctx(), path, st); });
}
int OpReaddir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, fuse_file_info*, fuse_readdir_flags) {
  return Guard("readdir", path, [&] { return fsops::Readdir(Ctx(), path, buf, filler); });
}
int OpOpen(const char* path, fuse_file_info* fi) {
  return Guard("open", path, [&] { return fsops::Open(Ctx(), path, fi); });
}
int OpRead(const char* path, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  return Guard("read", path ? path : "?", [&] { return fsops::Read(Ctx(), path, buf, size, off, fi); });
}
int OpRelease(const char* path, fuse_file_info* fi) {
  return Guard("release", path ? path : "?", [&] { return fsops::Release(Ctx(), path, fi); });
}
int OpGetxattr(const char* path, const char* name, char* value, size_t size) {
  return Guard("getxattr", path, [&] { return fsops::Getxattr(Ctx(), path, name, value, size); });
}
int OpListxattr(const char*, char*, size_t) { return 0; }
int OpAccess(const char* path, int mask) {
  return Guard("access", path, [&] { return fsops::Access(Ctx(), path, mask); });
}
int OpStatfs(const char*, struct statvfs* st) {
  std::memset(st, 0, sizeof *st);
  st->f_bsize = 1 << 20;
  st->f_frsize = 1 << 20;
  st->f_namemax = 255;
  st->f_flag = ST_RDONLY;
  return 0;
}
// Every mutation: EROFS.
int RoMknod(const char*, mode_t, dev_t) { return -EROFS; }
int RoMkdir(const char*, mode_t) { return -EROFS; }
int RoPath(const char*) { return -EROFS; }
int RoTwoPaths(const char*, const char*) { return -EROFS; }
int RoRename(const char*, const char*, unsigned) { return -EROFS; }
int RoChmod(const char*, mode_t, fuse_file_info*) { return -EROFS; }
int RoChown(const char*, uid_t, gid_t, fuse_file_info*) { return -EROFS; }
int RoTruncate(const char*, off_t, fuse_file_info*) { return -EROFS; }
int RoWrite(const char*, const char*, size_t, off_t, fuse_file_info*) { return -EROFS; }
int RoSetxattr(const char*, const char*, const char*, size_t, int) { return -EROFS; }
int RoRemovexattr(const char*, const char*) { return -EROFS; }
int RoCreate(const char*, mode_t, fuse_file_info*) { return -EROFS; }
int RoUtimens(const char*, const timespec[2], fuse_file_info*) { return -EROFS; }
int RoFallocate(const char*, int, off_t, off_t, fuse_file_info*) { return -EROFS; }

fuse_operations MakeOps() {
  fuse_operations ops = {};
  ops.init = Init;
  ops.getattr = OpGetattr;
  ops.readdir = OpReaddir;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.release = OpRelease;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.access = OpAccess;
  ops.statfs = OpStatfs;
  ops.mknod = RoMknod;
  ops.mkdir = RoMkdir;
  ops.unlink = RoPath;
  ops.rmdir = RoPath;
  ops.symlink = RoTwoPaths;
  ops.link = RoTwoPaths;
  ops.rename = RoRename;
  ops.chmod = RoChmod;
  ops.chown = RoChown;
  ops.truncate = RoTruncate;
  ops.write = RoWrite;
  ops.setxattr = RoSetxattr;
  ops.removexattr = RoRemovexattr;
  ops.create = RoCreate;
  ops.utimens = RoUtimens;
  ops.fallocate = RoFallocate;
  return ops;
}

}  // namespace

const fuse_operations& GetFuseOperations() {
  static const fuse_operations ops = MakeOps();
  return ops;
}

}  // namespace oz
