// ValidateKey (the table of safe and unsafe keys) and FileStore (reads, absence, confinement to the
// root, size limits, non-regular files).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "core/store/file_store.h"
#include "core/store/kv_store.h"

namespace oz {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "oz_store_XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

void Spit(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f << data;
}

TEST_CASE("ValidateKey accepts relative zarr keys") {
  for (const char* k : {".zarray", "0/.zarray", "0/1.2.3", "0/1/2/3", "a/b.c/d-e_f", "s0/.zattrs", "0.0.0", "..a",
                        "a..", "a/..b/c", ".hidden", "x y"}) {
    INFO(k);
    CHECK(ValidateKey(k).ok());
  }
}

TEST_CASE("ValidateKey refuses keys that could leave the store, naming the key and the reason") {
  struct Case {
    std::string key;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"/etc/passwd", "absolute"},
      {"..", "'..' segment"},
      {"../x", "'..' segment"},
      {"a/../../x", "'..' segment"},
      {"a/..", "'..' segment"},
      {".", "'.' segment"},
      {"a/./b", "'.' segment"},
      {"a//b", "empty segment"},
      {"a/", "ends with '/'"},
      {"a\\..\\b", "backslash"},
      {std::string("a\0b", 3), "control character"},
      {"a\nb", "control character"},
      {"a\x7f", "control character"},
      {"a?x=1", "'?'"},
      {"a#frag", "'#'"},
      {"%2e%2e/x", "'%'"},
      {std::string(5000, 'a'), "longer than 4096"},
      {std::string(300, 'a') + "/b", "segment longer than 255"},
  };
  for (const Case& c : cases) {
    INFO(c.key);
    Status s = ValidateKey(c.key);
    CHECK(s.code() == ErrorCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains(c.why));
    CHECK_THAT(s.message(), Catch::Contains("refusing store key"));
    // Control characters never reach the message raw.
    CHECK(s.message().find('\n') == std::string::npos);
  }
}

TEST_CASE("FileStore reads files, reports absence, validates keys") {
  TempDir t;
  Spit(t / "root/.zarray", "{}");
  Spit(t / "root/0/1/2", "chunk");
  auto store = FileStore::Open(t / "root/");
  REQUIRE(store.ok());
  CHECK((*store)->Describe() == t / "root");

  auto v = (*store)->Read("0/1/2", 100);
  REQUIRE(v.ok());
  REQUIRE(v->has_value());
  CHECK((*v)->data == "chunk");
  CHECK_THAT((*v)->validator, Catch::StartsWith("5:"));

  auto absent = (*store)->Read("0/1/3", 100);
  REQUIRE(absent.ok());
  CHECK(!absent->has_value());
  // A path through a file (0/1/2 is a file) is absent too.
  auto through = (*store)->Read("0/1/2/x", 100);
  REQUIRE(through.ok());
  CHECK(!through->has_value());

  auto bad = (*store)->Read("../root/.zarray", 100);
  CHECK(bad.status().code() == ErrorCode::kInvalidArgument);

  auto big = (*store)->Read("0/1/2", 4);
  CHECK(big.status().code() == ErrorCode::kCorrupt);
  CHECK_THAT(big.status().message(), Catch::Contains(t / "root/0/1/2"));
  CHECK_THAT(big.status().message(), Catch::Contains("limit of 4"));

  auto dir = (*store)->Read("0/1", 100);
  CHECK(dir.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(dir.status().message(), Catch::Contains("is a directory"));
}

TEST_CASE("FileStore follows symlinks inside the root and refuses those that leave it") {
  TempDir t;
  Spit(t / "secret", "outside");
  Spit(t / "root/real/c", "inside");
  REQUIRE(symlink("real", (t / "root/alias").c_str()) == 0);
  REQUIRE(symlink((t / "secret").c_str(), (t / "root/abs").c_str()) == 0);
  REQUIRE(symlink("../secret", (t / "root/rel").c_str()) == 0);
  REQUIRE(symlink("..", (t / "root/up").c_str()) == 0);
  for (bool use_openat2 : {true, false}) {
    INFO("openat2 " << use_openat2);
    auto store = FileStore::Open(t / "root", use_openat2);
    REQUIRE(store.ok());
    auto plain = (*store)->Read("real/c", 100);
    REQUIRE(plain.ok());
    REQUIRE(plain->has_value());
    CHECK((*plain)->data == "inside");

    auto in = (*store)->Read("alias/c", 100);
    if (use_openat2) {
      REQUIRE(in.ok());
      REQUIRE(in->has_value());
      CHECK((*in)->data == "inside");
    } else {
      // The segment walk refuses every symlink, even one that stays inside.
      CHECK(in.status().code() == ErrorCode::kPermission);
    }
    for (const char* k : {"abs", "rel", "up/secret"}) {
      INFO(k);
      auto r = (*store)->Read(k, 100);
      CHECK(r.status().code() == ErrorCode::kPermission);
      CHECK_THAT(r.status().message(), Catch::Contains("outside the zarr store"));
    }
    auto absent = (*store)->Read("real/none", 100);
    REQUIRE(absent.ok());
    CHECK(!absent->has_value());
  }
}

TEST_CASE("FileStore: a FIFO at a key is refused without blocking; a missing root is kNotFound") {
  TempDir t;
  fs::create_directories(t / "root");
  REQUIRE(mkfifo((t / "root/.zarray").c_str(), 0600) == 0);
  auto store = FileStore::Open(t / "root");
  REQUIRE(store.ok());
  auto r = (*store)->Read(".zarray", 100);
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("not a regular file"));

  CHECK(FileStore::Open(t / "nope").status().code() == ErrorCode::kNotFound);
  Spit(t / "file", "x");
  CHECK(FileStore::Open(t / "file").status().code() == ErrorCode::kNotDirectory);
}

}  // namespace
}  // namespace oz
