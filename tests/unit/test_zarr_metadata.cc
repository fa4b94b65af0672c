// .zarray and .zattrs parsing: what zarr-python writes is accepted; every hostile or unsupported
// variant is refused naming the file and the field.
#include <catch2/catch.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/source/zarr_metadata.h"

namespace oz {
namespace {

using nlohmann::json;

const std::string kWhere = "/data/s.zarr/.zarray";

// As zarr 2.13 writes it (np.uint16, chunks 16, default Blosc).
json Base() {
  return json::parse(R"({
    "chunks": [16, 16, 16],
    "compressor": {"blocksize": 0, "clevel": 5, "cname": "lz4", "id": "blosc", "shuffle": 1},
    "dimension_separator": ".",
    "dtype": "<u2",
    "fill_value": 0,
    "filters": null,
    "order": "C",
    "shape": [37, 50, 61],
    "zarr_format": 2
  })");
}

Result<ZarrArrayMetadata> Parse(const json& j) { return ParseZarray(j.dump(), kWhere); }

TEST_CASE("ParseZarray accepts zarr-python's metadata") {
  auto m = Parse(Base());
  REQUIRE(m.ok());
  CHECK(m->shape3 == Vec3{37, 50, 61});
  CHECK(m->chunks3 == Vec3{16, 16, 16});
  CHECK(m->dtype == DType::kUint16);
  CHECK(!m->big_endian);
  CHECK(!m->fortran_order);
  CHECK(m->compressor.id == ZarrCompressorId::kBlosc);
  CHECK(m->compressor.cname == "lz4");
  CHECK(m->compressor.shuffle == 1);
  CHECK(m->separator == '.');
  CHECK(m->chunk_bytes() == 16 * 16 * 16 * 2);
  CHECK(m->ChunkKey({1, 2, 3}) == "1.2.3");
  CHECK_THAT(m->Summary(), Catch::Contains("shape 37x50x61"));
  CHECK_THAT(m->Summary(), Catch::Contains("blosc(lz4"));
}

TEST_CASE("ParseZarray variants: dtypes, order F, fill_value null, separators, codecs, ranks") {
  json j = Base();
  j["dtype"] = ">u2";
  j["order"] = "F";
  j["fill_value"] = nullptr;
  j["dimension_separator"] = "/";
  j["compressor"] = {{"id", "zlib"}, {"level", 1}};
  j["filters"] = json::array();
  auto m = Parse(j);
  REQUIRE(m.ok());
  CHECK(m->big_endian);
  CHECK(m->fortran_order);
  CHECK(m->fill_bytes == std::array<uint8_t, 8>{});
  CHECK(m->ChunkKey({1, 2, 3}) == "1/2/3");
  CHECK(m->compressor.id == ZarrCompressorId::kZlib);

  j = Base();
  j["dtype"] = "|u1";
  j["fill_value"] = 255;
  j["compressor"] = {{"id", "gzip"}, {"level", 9}};
  j.erase("dimension_separator");  // absent: "."
  m = Parse(j);
  REQUIRE(m.ok());
  CHECK(m->dtype == DType::kUint8);
  CHECK(m->fill_bytes[0] == 255);
  CHECK(m->compressor.id == ZarrCompressorId::kGzip);
  CHECK(m->compressor.level == 9);
  CHECK(m->ChunkKey({0, 0, 4}) == "0.0.4");

  j = Base();
  j["compressor"] = nullptr;
  j["shape"] = {1, 1, 20, 30, 40};  // OME-Zarr t, c, z, y, x
  j["chunks"] = {1, 1, 8, 8, 8};
  m = Parse(j);
  REQUIRE(m.ok());
  CHECK(m->shape3 == Vec3{20, 30, 40});
  CHECK(m->ChunkKey({1, 2, 3}) == "0.0.1.2.3");

  j["shape"] = {30, 40};  // 2-D: one slice
  j["chunks"] = {8, 8};
  m = Parse(j);
  REQUIRE(m.ok());
  CHECK(m->shape3 == Vec3{1, 30, 40});
  CHECK(m->chunks3 == Vec3{1, 8, 8});
  CHECK(m->ChunkKey({0, 2, 3}) == "2.3");

  // Every served dtype, both byte orders, and their fill values as native bytes.
  struct DT {
    const char* text;
    DType dtype;
    bool big;
    json fill;
    std::vector<uint8_t> bytes;
  };
  const DT dts[] = {
      {"<i2", DType::kInt16, false, -2, {0xfe, 0xff}},
      {">i2", DType::kInt16, true, -32768, {0x00, 0x80}},
      {"<u4", DType::kUint32, false, 4294967295u, {0xff, 0xff, 0xff, 0xff}},
      {">u4", DType::kUint32, true, 1, {1, 0, 0, 0}},
      {"<u8", DType::kUint64, false, 18446744073709551615u, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
      {">u8", DType::kUint64, true, 2, {2, 0, 0, 0, 0, 0, 0, 0}},
      {"<f4", DType::kFloat32, false, 1.5, {0, 0, 0xc0, 0x3f}},
      {">f4", DType::kFloat32, true, "-Infinity", {0, 0, 0x80, 0xff}},
      {"<f4", DType::kFloat32, false, "NaN", {0, 0, 0xc0, 0x7f}},
  };
  for (const DT& d : dts) {
    j = Base();
    j["dtype"] = d.text;
    j["fill_value"] = d.fill;
    INFO(d.text << " fill " << d.fill.dump());
    m = Parse(j);
    REQUIRE(m.ok());
    CHECK(m->dtype == d.dtype);
    CHECK(m->big_endian == d.big);
    CHECK(std::vector<uint8_t>(m->fill_bytes.begin(), m->fill_bytes.begin() + static_cast<long>(d.bytes.size())) ==
          d.bytes);
  }

  for (const char* cname : {"blosclz", "lz4", "lz4hc", "zlib", "zstd"}) {
    j = Base();
    j["compressor"]["cname"] = cname;
    j["compressor"]["shuffle"] = -1;
    INFO(cname);
    CHECK(Parse(j).ok());
  }
}

struct Hostile {
  std::string what;
  std::function<void(json&)> edit;
  ErrorCode code;
  std::string field;  // named in the message
};

TEST_CASE("ParseZarray refuses hostile and unsupported metadata, naming the file and the field") {
  const std::vector<Hostile> cases = {
      {"zarr v3", [](json& j) { j["zarr_format"] = 3; }, ErrorCode::kUnsupported, "\"zarr_format\""},
      {"no format", [](json& j) { j.erase("zarr_format"); }, ErrorCode::kInvalidArgument, "\"zarr_format\""},
      {"shape not a list", [](json& j) { j["shape"] = "big"; }, ErrorCode::kInvalidArgument, "\"shape\""},
      {"shape float",
       [](json& j) {
         j["shape"] = {1.5, 2, 3};
       },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"shape zero",
       [](json& j) {
         j["shape"] = {0, 50, 61};
       },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"shape negative",
       [](json& j) {
         j["shape"] = {-5, 50, 61};
       },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"shape huge",
       [](json& j) {
         j["shape"] = {int64_t{1} << 41, 50, 61};
       },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"shape overflowing",
       [](json& j) {
         j["shape"] = {int64_t{1} << 40, int64_t{1} << 40, int64_t{1} << 40};
       },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"shape beyond int64", [](json& j) { j["shape"] = json::parse("[18446744073709551615, 2, 3]"); },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"chunks zero",
       [](json& j) {
         j["chunks"] = {0, 16, 16};
       },
       ErrorCode::kInvalidArgument, "\"chunks\""},
      {"chunks negative",
       [](json& j) {
         j["chunks"] = {16, -16, 16};
       },
       ErrorCode::kInvalidArgument, "\"chunks\""},
      {"chunk over 1 GiB",
       [](json& j) {
         j["chunks"] = {1024, 1024, 1024};
       },
       ErrorCode::kInvalidArgument, "\"chunks\""},
      {"chunk product overflowing",
       [](json& j) {
         j["chunks"] = {int64_t{1} << 40, int64_t{1} << 40, int64_t{1} << 40};
       },
       ErrorCode::kInvalidArgument, "\"chunks\""},
      {"rank mismatch",
       [](json& j) {
         j["chunks"] = {16, 16};
       },
       ErrorCode::kInvalidArgument, "\"chunks\""},
      {"rank 1",
       [](json& j) {
         j["shape"] = {10};
         j["chunks"] = {10};
       },
       ErrorCode::kUnsupported, "\"shape\""},
      {"4-D with real t",
       [](json& j) {
         j["shape"] = {2, 37, 50, 61};
         j["chunks"] = {1, 16, 16, 16};
       },
       ErrorCode::kUnsupported, "\"shape\""},
      {"rank 40",
       [](json& j) {
         j["shape"] = std::vector<int>(40, 1);
         j["chunks"] = std::vector<int>(40, 1);
       },
       ErrorCode::kInvalidArgument, "\"shape\""},
      {"dtype float64", [](json& j) { j["dtype"] = "<f8"; }, ErrorCode::kUnsupported, "\"<f8\""},
      {"dtype int8", [](json& j) { j["dtype"] = "|i1"; }, ErrorCode::kUnsupported, "\"|i1\""},
      {"dtype int32", [](json& j) { j["dtype"] = "<i4"; }, ErrorCode::kUnsupported, "\"<i4\""},
      {"dtype |u2", [](json& j) { j["dtype"] = "|u2"; }, ErrorCode::kUnsupported, "\"|u2\""},
      {"fill_value out of uint16", [](json& j) { j["fill_value"] = 65536; }, ErrorCode::kInvalidArgument, "fill_value"},
      {"fill_value float for uint16", [](json& j) { j["fill_value"] = 1.5; }, ErrorCode::kInvalidArgument,
       "fill_value"},
      {"dtype structured", [](json& j) { j["dtype"] = json::parse(R"([["a", "<u2"]])"); }, ErrorCode::kUnsupported,
       "\"dtype\""},
      {"order K", [](json& j) { j["order"] = "K"; }, ErrorCode::kInvalidArgument, "\"order\""},
      {"fill too big", [](json& j) { j["fill_value"] = 70000; }, ErrorCode::kInvalidArgument, "\"fill_value\""},
      {"fill negative", [](json& j) { j["fill_value"] = -1; }, ErrorCode::kInvalidArgument, "\"fill_value\""},
      {"fill NaN", [](json& j) { j["fill_value"] = "NaN"; }, ErrorCode::kInvalidArgument, "\"fill_value\""},
      {"unknown codec",
       [](json& j) {
         j["compressor"] = {{"id", "lzma"}};
       },
       ErrorCode::kUnsupported, "\"lzma\""},
      {"codec without id",
       [](json& j) {
         j["compressor"] = {{"cname", "lz4"}};
       },
       ErrorCode::kInvalidArgument, "\"compressor\""},
      {"blosc cname unknown", [](json& j) { j["compressor"]["cname"] = "brotli"; }, ErrorCode::kUnsupported,
       "\"compressor.cname\""},
      {"blosc clevel", [](json& j) { j["compressor"]["clevel"] = 12; }, ErrorCode::kInvalidArgument,
       "\"compressor.clevel\""},
      {"blosc shuffle", [](json& j) { j["compressor"]["shuffle"] = 7; }, ErrorCode::kInvalidArgument,
       "\"compressor.shuffle\""},
      {"zlib level",
       [](json& j) {
         j["compressor"] = {{"id", "zlib"}, {"level", 99}};
       },
       ErrorCode::kInvalidArgument, "\"compressor.level\""},
      {"filter", [](json& j) { j["filters"] = json::parse(R"([{"id": "delta", "dtype": "<u2"}])"); },
       ErrorCode::kUnsupported, "\"delta\""},
      {"filters not a list", [](json& j) { j["filters"] = 5; }, ErrorCode::kInvalidArgument, "\"filters\""},
      {"separator", [](json& j) { j["dimension_separator"] = "\\"; }, ErrorCode::kInvalidArgument,
       "\"dimension_separator\""},
  };
  for (const Hostile& h : cases) {
    INFO(h.what);
    json j = Base();
    h.edit(j);
    auto m = Parse(j);
    REQUIRE(!m.ok());
    CHECK(m.status().code() == h.code);
    CHECK_THAT(m.status().message(), Catch::Contains(kWhere));
    CHECK_THAT(m.status().message(), Catch::Contains(h.field));
  }
}

TEST_CASE("ParseZarray refuses bad JSON and non-objects, naming the file") {
  for (const std::string bad : {"", "{", "[1,2", "\"str\"", "42", "{\"a\": }", "\xff\xfe"}) {
    INFO(bad);
    auto m = ParseZarray(bad, kWhere);
    REQUIRE(!m.ok());
    CHECK(m.status().code() == ErrorCode::kInvalidArgument);
    CHECK_THAT(m.status().message(), Catch::Contains(kWhere));
  }
  // Deep nesting (at the top, in a field, in an unknown member) is not a crash.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  CHECK(!ParseZarray(deep, kWhere).ok());
  std::string in_field = Base().dump();
  in_field.replace(in_field.find("[37,50,61]"), 10, deep);
  auto f = ParseZarray(in_field, kWhere);
  REQUIRE(!f.ok());
  CHECK_THAT(f.status().message(), Catch::Contains("\"shape\""));
  std::string unknown = Base().dump();
  unknown.insert(1, "\"extra\": " + deep + ",");
  CHECK(ParseZarray(unknown, kWhere).ok());
}

TEST_CASE("ParseMultiscalesPaths: zarr_to_ome's .zattrs, and unsafe or missing datasets") {
  const std::string where = "/g.zarr/.zattrs";
  auto ok = ParseMultiscalesPaths(
      R"({"multiscales": [{"version": "0.4", "datasets": [{"path": "0"}, {"path": "1"}, {"path": "s2/x"}]},
                          {"datasets": [{"path": "other"}]}]})",
      where);
  REQUIRE(ok.ok());
  CHECK(*ok == std::vector<std::string>{"0", "1", "s2/x"});

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "not valid JSON"},
      {R"({"other": 1})", "\"multiscales\""},
      {R"({"multiscales": []})", "\"multiscales\""},
      {R"({"multiscales": [{}]})", "\"multiscales[0].datasets\""},
      {R"({"multiscales": [{"datasets": []}]})", "\"multiscales[0].datasets\""},
      {R"({"multiscales": [{"datasets": [{"path": 0}]}]})", "\"multiscales[0].datasets[0].path\""},
      {R"({"multiscales": [{"datasets": [{"path": "0"}, {"path": "../../etc"}]}]})",
       "\"multiscales[0].datasets[1].path\""},
      {R"({"multiscales": [{"datasets": [{"path": "/abs"}]}]})", "\"multiscales[0].datasets[0].path\""},
  };
  for (const auto& [text, field] : bad) {
    INFO(text);
    auto r = ParseMultiscalesPaths(text, where);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == ErrorCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(where));
    CHECK_THAT(r.status().message(), Catch::Contains(field));
  }
}

}  // namespace
}  // namespace oz

namespace oz {
namespace {

TEST_CASE("ParseZarray and ParseMultiscalesPaths survive random mutations (never crash)") {
  const std::string zarray = Base().dump();
  const std::string zattrs = R"({"multiscales": [{"datasets": [{"path": "0"}, {"path": "1"}]}]})";
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    for (const std::string* base : {&zarray, &zattrs}) {
      std::string s = *base;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t pos = rng() % s.size();
        switch (rng() % 3) {
          case 0: s[pos] = static_cast<char>(rng() % 256); break;
          case 1: s.erase(pos, 1 + rng() % 3); break;
          default: s.insert(pos, 1, "[]{}\",:-0123456789e."[rng() % 20]); break;
        }
        if (s.empty()) s = "{";
      }
      if (base == &zarray) {
        accepted += ParseZarray(s, kWhere).ok();
      } else {
        (void)ParseMultiscalesPaths(s, kWhere);
      }
    }
  }
  CHECK(accepted < 3000);
}

}  // namespace
}  // namespace oz
