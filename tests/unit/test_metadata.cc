// Metadata documents: .zgroup, .zarray fields, .zattrs multiscales (scales, translations, units).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/codec/codec.h"
#include "core/format/zarr2/zarr2_format.h"

namespace oz {
namespace {

using nlohmann::json;

TEST_CASE(".zgroup and .zarray") {
  CHECK(json::parse(ZgroupJson()) == json{{"zarr_format", 2}});
  Options o;
  o.compression = Compression::kBlosc;
  o.blosc_cname = "zstd";
  auto codec = ChunkCodec::Make(o, DType::kUint16);
  REQUIRE(codec.ok());
  json z = json::parse(ZarrayJson({67, 130, 257}, 32, DType::kUint16, codec->CompressorJson()));
  CHECK(z["zarr_format"] == 2);
  CHECK(z["shape"] == json::array({67, 130, 257}));
  CHECK(z["chunks"] == json::array({32, 32, 32}));
  CHECK(z["dtype"] == "<u2");
  CHECK(z["fill_value"] == 0);
  CHECK(z["order"] == "C");
  CHECK(z["filters"].is_null());
  CHECK(z["dimension_separator"] == "/");
  CHECK(z["compressor"] == json{{"id", "blosc"}, {"cname", "zstd"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}});
  json raw = json::parse(ZarrayJson({1, 2, 3}, 4, DType::kUint8, nullptr));
  CHECK(raw["dtype"] == "|u1");
  CHECK(raw["compressor"].is_null());
}

TEST_CASE(".zattrs multiscales: scales, translations for mean and max only, unit") {
  auto p = Pyramid::Make({100, 200, 300}, 3, 64);
  REQUIRE(p.ok());
  for (Algorithm a : {Algorithm::kMean, Algorithm::kNearest, Algorithm::kMax}) {
    Options o;
    o.algorithm = a;
    o.voxel_size = {2.0, 3.0, 4.0};
    o.unit = "micrometer";
    json ms = json::parse(ZattrsJson(*p, o, "/data/x", DType::kUint16))["multiscales"][0];
    CHECK(ms["version"] == "0.4");
    CHECK(ms["type"] == std::string(AlgorithmName(a)));
    REQUIRE(ms["axes"].size() == 3);
    CHECK(ms["axes"][0] == json{{"name", "z"}, {"type", "space"}, {"unit", "micrometer"}});
    CHECK(ms["axes"][2]["name"] == "x");
    REQUIRE(ms["datasets"].size() == 3);
    for (int l = 0; l < 3; ++l) {
      const json& d = ms["datasets"][l];
      CHECK(d["path"] == std::to_string(l));
      const double f = 1 << l;
      CHECK(d["coordinateTransformations"][0] == json{{"type", "scale"}, {"scale", {2.0 * f, 3.0 * f, 4.0 * f}}});
      const bool translated = a != Algorithm::kNearest && l > 0;
      REQUIRE(d["coordinateTransformations"].size() == (translated ? 2u : 1u));
      if (translated) {
        const double t = (f - 1) / 2;
        CHECK(d["coordinateTransformations"][1] ==
              json{{"type", "translation"}, {"translation", {2.0 * t, 3.0 * t, 4.0 * t}}});
      }
    }
    CHECK(ms["metadata"]["options"]["algorithm"] == std::string(AlgorithmName(a)));
  }
  Options plain;
  json ms = json::parse(ZattrsJson(*p, plain, "src", DType::kUint16))["multiscales"][0];
  CHECK_FALSE(ms["axes"][0].contains("unit"));
}

}  // namespace
}  // namespace oz
