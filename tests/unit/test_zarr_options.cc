// The -o options a zarr source adds or changes: source_level, zlib_level, compression=zlib|gzip,
// and the "given" marks that let a zarr source supply chunk and compression defaults.
#include <catch2/catch.hpp>

#include "mountopts/mount_options.h"

namespace oz {
namespace {

Options Parse(const std::string& s) {
  Options o;
  MountFlags f;
  Status st = ParseOptionString(s, &o, &f);
  INFO(st.ToString());
  REQUIRE(st.ok());
  return o;
}

TEST_CASE("Zarr options: given marks, source_level, zlib/gzip compression") {
  Options d = Parse("");
  CHECK(d.given == Options::Given{});
  CHECK(d.chunk == 128);
  CHECK(d.compression == Compression::kNone);
  CHECK(d.source_level == 0);
  CHECK(d.zlib_level == 1);

  Options o = Parse("chunk=64,compression=gzip,zlib_level=9,source_level=2");
  CHECK(o.given.chunk);
  CHECK(o.given.compression);
  CHECK(o.given.zlib_level);
  CHECK(!o.given.blosc_cname);
  CHECK(o.chunk == 64);
  CHECK(o.compression == Compression::kGzip);
  CHECK(o.zlib_level == 9);
  CHECK(o.source_level == 2);
  CHECK(Parse("compression=zlib").compression == Compression::kZlib);

  o = Parse("blosc_cname=zstd,blosc_clevel=1,blosc_shuffle=0");
  CHECK(o.given.blosc_cname);
  CHECK(o.given.blosc_clevel);
  CHECK(o.given.blosc_shuffle);
  CHECK(!o.given.compression);

  Options bad;
  MountFlags f;
  CHECK(ParseOptionString("zlib_level=10", &bad, &f).code() == ErrorCode::kInvalidArgument);
  CHECK(ParseOptionString("source_level=-1", &bad, &f).code() == ErrorCode::kInvalidArgument);
  CHECK(ParseOptionString("compression=lzma", &bad, &f).code() == ErrorCode::kInvalidArgument);

  const std::string help = OptionsHelpText();
  CHECK_THAT(help, Catch::Contains("source_level=N"));
  CHECK_THAT(help, Catch::Contains("compression=none|blosc|zlib|gzip"));
  CHECK_THAT(help, Catch::Contains("zarr SOURCE"));
}

}  // namespace
}  // namespace oz
