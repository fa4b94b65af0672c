// WriteFileAtomic, ReadFile, MakeDirs and SweepTempFiles against a real temp directory.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/store/atomic_file.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void SetMtimeAgo(const std::string& path, int seconds) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = ::time(nullptr) - seconds;
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

TEST_CASE("WriteFileAtomic writes the content and leaves no temp file") {
  TempDir t;
  const std::string path = t.path + "/out.bin";
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);

  REQUIRE(WriteFileAtomic(path, "").ok());
  CHECK(Slurp(path).empty());
  REQUIRE(WriteFileAtomic(path, big).ok());
  CHECK(Slurp(path) == big);
  AtomicWriteOptions no_sync;
  no_sync.fsync_file = false;
  no_sync.fsync_dir = false;
  REQUIRE(WriteFileAtomic(path, "replaced", no_sync).ok());
  CHECK(Slurp(path) == "replaced");
  CHECK(Names(t.path) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("WriteFileAtomic of pieces writes them one after another") {
  TempDir t;
  const std::string path = t.path + "/out.bin";
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 13 + i / 997);
  AtomicWriteOptions wo;
  wo.fsync_file = false;
  wo.start_writeback = true;
  REQUIRE(WriteFileAtomic(path, {"head:", payload, "", ":tail"}, wo).ok());
  CHECK(Slurp(path) == "head:" + payload + ":tail");
  REQUIRE(WriteFileAtomic(path, {"", ""}).ok());
  CHECK(Slurp(path).empty());
  CHECK(Names(t.path) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("WriteFileAtomic applies the mode (minus umask)") {
  TempDir t;
  const mode_t old_umask = ::umask(022);
  ::umask(old_umask);
  AtomicWriteOptions o;
  o.mode = 0600;
  REQUIRE(WriteFileAtomic(t.path + "/m", "x", o).ok());
  struct stat st;
  REQUIRE(::stat((t.path + "/m").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == (0600 & ~old_umask));
}

TEST_CASE("WriteFileAtomic into a missing directory fails naming the path") {
  TempDir t;
  const std::string path = t.path + "/missing/out.bin";
  Status s = WriteFileAtomic(path, "data");
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == ErrorCode::kNotFound);
  CHECK_THAT(s.message(), Catch::Contains(path));
  CHECK(Names(t.path).empty());
}

TEST_CASE("WriteFileAtomic failing mid-write removes the temp and keeps the old file") {
  // RLIMIT_FSIZE makes write() fail with EFBIG after a short write: a deterministic stand-in
  // for ENOSPC that also exercises the short-write path.
  TempDir t;
  const std::string path = t.path + "/out.bin";
  REQUIRE(WriteFileAtomic(path, "old content").ok());

  struct rlimit saved;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  Status s = WriteFileAtomic(path, std::string(1 << 20, 'x'));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);

  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains(path));
  CHECK(Slurp(path) == "old content");
  CHECK(Names(t.path) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("AtomicFileWriter streams pieces, publishes only on Commit, and cleans up when dropped") {
  TempDir t;
  const std::string path = t.path + "/streamed.bin";
  REQUIRE(WriteFileAtomic(path, "old").ok());
  std::string expect;
  {
    auto w = AtomicFileWriter::Create(path);
    REQUIRE(w.ok());
    for (int i = 0; i < 5; ++i) {
      std::string piece((1 << 18) + i, static_cast<char>('a' + i));
      REQUIRE(w->Append(piece).ok());
      expect += piece;
      CHECK(Slurp(path) == "old");  // nothing visible before Commit
    }
    CHECK(w->bytes_written() == expect.size());
    CHECK(Names(t.path).size() == 2);  // the file and one temp
    REQUIRE(w->Commit().ok());
    CHECK_FALSE(w->Commit().ok());  // a second Commit is an error, not a second rename
    CHECK_FALSE(w->Append("x").ok());
  }
  CHECK(Slurp(path) == expect);
  CHECK(Names(t.path) == std::vector<std::string>{"streamed.bin"});
  {
    auto w = AtomicFileWriter::Create(path);
    REQUIRE(w.ok());
    REQUIRE(w->Append("abandoned").ok());
    AtomicFileWriter moved = std::move(*w);  // the temp follows the move, removed once
    CHECK(Names(t.path).size() == 2);
  }
  CHECK(Slurp(path) == expect);
  CHECK(Names(t.path) == std::vector<std::string>{"streamed.bin"});
  auto missing = AtomicFileWriter::Create(t.path + "/nodir/x");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("nodir/x"));
}

TEST_CASE("ReadFile reads whole files and reports absence as kNotFound") {
  TempDir t;
  std::string data(100000, 'q');
  data[5] = '\0';
  REQUIRE(WriteFileAtomic(t.path + "/f", data).ok());
  auto r = ReadFile(t.path + "/f");
  REQUIRE(r.ok());
  CHECK(*r == data);
  REQUIRE(WriteFileAtomic(t.path + "/empty", "").ok());
  auto e = ReadFile(t.path + "/empty");
  REQUIRE(e.ok());
  CHECK(e->empty());

  auto missing = ReadFile(t.path + "/nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains(t.path + "/nope"));
  auto dir = ReadFile(t.path);
  REQUIRE_FALSE(dir.ok());
  CHECK(dir.status().code() == ErrorCode::kIsDirectory);
}

TEST_CASE("MakeDirs creates parents, accepts existing dirs, rejects files in the way") {
  TempDir t;
  REQUIRE(MakeDirs(t.path + "/a/b/c").ok());
  CHECK(fs::is_directory(t.path + "/a/b/c"));
  REQUIRE(MakeDirs(t.path + "/a/b/c").ok());
  REQUIRE(MakeDirs(t.path + "/a//b/d/").ok());
  CHECK(fs::is_directory(t.path + "/a/b/d"));
  REQUIRE(WriteFileAtomic(t.path + "/file", "x").ok());
  Status s = MakeDirs(t.path + "/file/sub");
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == ErrorCode::kNotDirectory);
  CHECK_THAT(s.message(), Catch::Contains(t.path + "/file"));
}

TEST_CASE("SweepTempFiles removes only old .tmp. files") {
  TempDir t;
  for (const char* n : {".tmp.old1", ".tmp.old2", ".tmp.young", "old-regular"}) {
    REQUIRE(WriteFileAtomic(t.path + "/" + n, "x").ok());
  }
  SetMtimeAgo(t.path + "/.tmp.old1", 3600);
  SetMtimeAgo(t.path + "/.tmp.old2", 3600);
  SetMtimeAgo(t.path + "/old-regular", 3600);
  CHECK(SweepTempFiles(t.path, 60) == 2);
  CHECK(Names(t.path) == std::vector<std::string>{".tmp.young", "old-regular"});
  CHECK(SweepTempFiles(t.path + "/missing", 60) == 0);
}

}  // namespace
}  // namespace oz
