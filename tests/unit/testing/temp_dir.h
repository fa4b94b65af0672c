// TempDir: a fresh directory under /tmp for one test, removed with everything in it at scope end.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

namespace oz::testing {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/oz_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace oz::testing
