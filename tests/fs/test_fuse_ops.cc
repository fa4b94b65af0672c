// The FUSE ops driven without a kernel: errno choices, listings, reads, the stats xattr.
#define CATCH_CONFIG_MAIN
#include <fcntl.h>
#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <set>

#include "../unit/mem_volume.h"
#include "core/engine/chunk_engine.h"
#include "core/format/zarr2/zarr2_format.h"
#include "fs/fuse_ops.h"

namespace oz {
namespace {

struct Fixture {
  std::shared_ptr<testing::MemVolume> mem;
  ThreadPool pool{2};
  Stats stats;
  std::unique_ptr<ChunkEngine> engine;
  std::unique_ptr<FormatTree> tree;
  FsContext ctx;

  explicit Fixture(int levels = 3, EmptyPolicy empty = EmptyPolicy::kOmit) {
    Options o;
    o.chunk = 4;
    o.levels = levels;
    o.empty = empty;
    mem = std::make_shared<testing::MemVolume>(Vec3{8, 8, 16}, DType::kUint16, 1, 0.5);  // x < 8 zero
    auto g = ComputeViewGeometry(mem->shape(), o);
    auto view = std::make_shared<ViewVolume>(mem, *g, false);
    ChunkEngineConfig c;
    c.options = o;
    c.pool = &pool;
    c.stats = &stats;
    engine = std::move(ChunkEngine::Make(view, c)).value();
    tree = MakeZarr2Tree(engine.get(), "mem");
    ctx.tree = tree.get();
    ctx.stats = &stats;
  }
};

std::set<std::string> List(FsContext& ctx, const char* path, int* rc) {
  std::set<std::string> names;
  *rc = fsops::Readdir(ctx, path, &names,
                       [](void* buf, const char* name, const struct stat*, off_t, fuse_fill_dir_flags) {
                         static_cast<std::set<std::string>*>(buf)->insert(name);
                         return 0;
                       });
  return names;
}

TEST_CASE("errno table") {
  CHECK(ErrnoFromStatus(NotFoundError("x")) == ENOENT);
  CHECK(ErrnoFromStatus(IoError("x")) == EIO);
  CHECK(ErrnoFromStatus(CorruptError("x")) == EIO);
  CHECK(ErrnoFromStatus(UnsupportedError("x")) == EIO);
  CHECK(ErrnoFromStatus(InternalError("x")) == EIO);
  CHECK(ErrnoFromStatus(Status(ErrorCode::kReadOnly, "x")) == EROFS);
  CHECK(ErrnoFromStatus(Status(ErrorCode::kNotDirectory, "x")) == ENOTDIR);
  CHECK(ErrnoFromStatus(Status(ErrorCode::kNameTooLong, "x")) == ENAMETOOLONG);
  CHECK(ErrnoFromStatus(ResourceExhaustedError("x")) == ENOMEM);
  CHECK(ErrnoFromStatus(Status(ErrorCode::kCancelled, "x")) == ECONNABORTED);  // shutdown, not a retry
}

TEST_CASE("getattr: metadata, directories, chunks, absent names") {
  Fixture f;
  struct stat st;
  REQUIRE(fsops::Getattr(f.ctx, "/", &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 0777) == 0555);
  REQUIRE(fsops::Getattr(f.ctx, "/.zgroup", &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 0777) == 0444);
  REQUIRE(fsops::Getattr(f.ctx, "/2/.zarray", &st) == 0);
  REQUIRE(fsops::Getattr(f.ctx, "/0/1/1", &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  REQUIRE(fsops::Getattr(f.ctx, "/0/1/1/3", &st) == 0);
  CHECK(st.st_size == 4 * 4 * 4 * 2);
  CHECK(fsops::Getattr(f.ctx, "/0/1/1/0", &st) == -ENOENT);  // empty chunk omitted
  CHECK(fsops::Getattr(f.ctx, "/0/1/1/4", &st) == -ENOENT);  // outside the grid
  CHECK(fsops::Getattr(f.ctx, "/3", &st) == -ENOENT);        // no such level
  CHECK(fsops::Getattr(f.ctx, "/0/01", &st) == -ENOENT);     // non-canonical index
  CHECK(fsops::Getattr(f.ctx, "/.zarray", &st) == -ENOENT);  // a group has no root .zarray
  CHECK(fsops::Getattr(f.ctx, "/.zgroup/x", &st) == -ENOTDIR);
  CHECK(fsops::Getattr(f.ctx, "/0/1/1/3/x", &st) == -ENOTDIR);
  CHECK(fsops::Getattr(f.ctx, "/0/1/1/0/x", &st) == -ENOENT);
  CHECK(fsops::Getattr(f.ctx, ("/" + std::string(300, 'a')).c_str(), &st) == -ENAMETOOLONG);
}

TEST_CASE("readdir lists what stats, and only non-empty chunks") {
  Fixture f;
  int rc;
  CHECK(List(f.ctx, "/", &rc) == std::set<std::string>{".", "..", ".zgroup", ".zattrs", "0", "1", "2"});
  CHECK(rc == 0);
  CHECK(List(f.ctx, "/0", &rc) == std::set<std::string>{".", "..", ".zarray", "0", "1"});
  CHECK(List(f.ctx, "/0/1/0", &rc) == std::set<std::string>{".", "..", "2", "3"});
  List(f.ctx, "/.zattrs", &rc);
  CHECK(rc == -ENOTDIR);
  List(f.ctx, "/7", &rc);
  CHECK(rc == -ENOENT);
  // Every listed chunk stats and reads with the stat size.
  for (std::string name : {"2", "3"}) {
    std::string p = "/0/1/0/" + name;
    struct stat st;
    REQUIRE(fsops::Getattr(f.ctx, p.c_str(), &st) == 0);
    fuse_file_info fi = {};
    fi.flags = O_RDONLY;
    REQUIRE(fsops::Open(f.ctx, p.c_str(), &fi) == 0);
    std::vector<char> buf(st.st_size + 100);
    int n = fsops::Read(f.ctx, p.c_str(), buf.data(), buf.size(), 0, &fi);
    CHECK(n == st.st_size);
    CHECK(fsops::Read(f.ctx, p.c_str(), buf.data(), buf.size(), st.st_size, &fi) == 0);
    CHECK(fsops::Release(f.ctx, p.c_str(), &fi) == 0);
  }
}

TEST_CASE("levels=1 is a plain array at the root") {
  Fixture f(1);
  int rc;
  CHECK(List(f.ctx, "/", &rc) == std::set<std::string>{".", "..", ".zarray", "0", "1"});
  struct stat st;
  CHECK(fsops::Getattr(f.ctx, "/.zgroup", &st) == -ENOENT);
  CHECK(fsops::Getattr(f.ctx, "/1/1/3", &st) == 0);
}

TEST_CASE("open for writing is EROFS; reads return the bytes; access") {
  Fixture f;
  fuse_file_info fi = {};
  fi.flags = O_WRONLY;
  CHECK(fsops::Open(f.ctx, "/.zgroup", &fi) == -EROFS);
  fi.flags = O_RDWR;
  CHECK(fsops::Open(f.ctx, "/0/1/1/3", &fi) == -EROFS);
  fi.flags = O_RDONLY;
  REQUIRE(fsops::Open(f.ctx, "/.zgroup", &fi) == 0);
  char buf[64] = {};
  int n = fsops::Read(f.ctx, "/.zgroup", buf, sizeof buf, 0, &fi);
  CHECK(std::string(buf, n).find("\"zarr_format\": 2") != std::string::npos);
  fsops::Release(f.ctx, "/.zgroup", &fi);
  fi.flags = O_RDONLY;
  CHECK(fsops::Open(f.ctx, "/0", &fi) == -EISDIR);
  CHECK(fsops::Access(f.ctx, "/", W_OK) == -EROFS);
  CHECK(fsops::Access(f.ctx, "/", R_OK | X_OK) == 0);
  CHECK(fsops::Access(f.ctx, "/nope", F_OK) == -ENOENT);
}

TEST_CASE("a source failure is EIO and is not remembered") {
  Fixture f;
  f.mem->fail = true;
  struct stat st;
  CHECK(fsops::Getattr(f.ctx, "/0/0/0/3", &st) == -EIO);
  fuse_file_info fi = {};
  fi.flags = O_RDONLY;
  CHECK(fsops::Open(f.ctx, "/0/0/0/3", &fi) == -EIO);
  f.mem->fail = false;
  CHECK(fsops::Getattr(f.ctx, "/0/0/0/3", &st) == 0);
}

TEST_CASE("stats xattr on the root only") {
  Fixture f;
  struct stat st;
  fsops::Getattr(f.ctx, "/0/0/0/3", &st);
  int size = fsops::Getxattr(f.ctx, "/", kStatsXattr, nullptr, 0);
  REQUIRE(size > 0);
  std::string v(size, '\0');
  REQUIRE(fsops::Getxattr(f.ctx, "/", kStatsXattr, v.data(), v.size()) == size);
  CHECK(v.find("chunks_computed 1\n") != std::string::npos);
  CHECK(fsops::Getxattr(f.ctx, "/", kStatsXattr, v.data(), 3) == -ERANGE);
  CHECK(fsops::Getxattr(f.ctx, "/.zgroup", kStatsXattr, nullptr, 0) == -ENODATA);
  CHECK(fsops::Getxattr(f.ctx, "/nope", "user.x", nullptr, 0) == -ENOENT);
}

TEST_CASE("the ops table refuses every mutation with EROFS") {
  const fuse_operations& ops = GetFuseOperations();
  CHECK(ops.mkdir("/x", 0755) == -EROFS);
  CHECK(ops.unlink("/.zgroup") == -EROFS);
  CHECK(ops.rmdir("/0") == -EROFS);
  CHECK(ops.rename("/0", "/9", 0) == -EROFS);
  CHECK(ops.symlink("/a", "/b") == -EROFS);
  CHECK(ops.link("/a", "/b") == -EROFS);
  CHECK(ops.chmod("/0", 0777, nullptr) == -EROFS);
  CHECK(ops.chown("/0", 0, 0, nullptr) == -EROFS);
  CHECK(ops.truncate("/.zgroup", 0, nullptr) == -EROFS);
  CHECK(ops.write("/.zgroup", "x", 1, 0, nullptr) == -EROFS);
  CHECK(ops.create("/new", 0644, nullptr) == -EROFS);
  CHECK(ops.setxattr("/", "user.x", "v", 1, 0) == -EROFS);
  CHECK(ops.removexattr("/", "user.x") == -EROFS);
  CHECK(ops.mknod("/n", S_IFIFO | 0644, 0) == -EROFS);
  CHECK(ops.utimens("/", nullptr, nullptr) == -EROFS);
}

}  // namespace
}  // namespace oz
