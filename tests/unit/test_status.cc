// Status, Result and geometry basics.
#include <catch2/catch.hpp>
#include <cerrno>

#include "core/base/geometry.h"
#include "core/base/status.h"

namespace oz {
namespace {

Result<int> Half(int v) {
  if (v % 2) return InvalidArgumentError("odd: " + std::to_string(v));
  return v / 2;
}

Result<int> Quarter(int v) {
  OZ_ASSIGN_OR_RETURN(int h, Half(v));
  OZ_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST_CASE("Result propagates errors through OZ_ASSIGN_OR_RETURN") {
  REQUIRE(Quarter(8).ok());
  CHECK(*Quarter(8) == 2);
  auto r = Quarter(6);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK(r.status().message() == "odd: 3");
  CHECK(r.status().WithContext("ctx").message() == "ctx: odd: 3");
}

TEST_CASE("ErrnoError maps errno to codes") {
  CHECK(ErrnoError(ENOENT, "x").code() == ErrorCode::kNotFound);
  CHECK(ErrnoError(ENOSPC, "x").code() == ErrorCode::kNoSpace);
  CHECK(ErrnoError(EIO, "x").code() == ErrorCode::kIoError);
  CHECK(ErrnoError(EACCES, "open a").message().rfind("open a: ", 0) == 0);
}

TEST_CASE("Box arithmetic") {
  Box a{{0, 0, 0}, {10, 20, 30}};
  Box b{{5, 15, 25}, {50, 50, 50}};
  Box i = a.Intersect(b);
  CHECK(i == Box{{5, 15, 25}, {10, 20, 30}});
  CHECK(i.volume() == 5 * 5 * 5);
  CHECK(a.Contains(i));
  CHECK_FALSE(i.Contains(a));
  Box disjoint = a.Intersect(Box{{20, 0, 0}, {30, 5, 5}});
  CHECK(disjoint.empty());
  CHECK(disjoint.volume() == 0);
  CHECK(CeilDiv(7, 2) == 4);
  CHECK(CeilDiv(8, 2) == 4);
  CHECK(CeilDiv(0, 3) == 0);
  CHECK_FALSE(CheckedVolume({1LL << 40, 1LL << 40, 1}).has_value());
}

}  // namespace
}  // namespace oz
