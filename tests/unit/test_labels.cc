// Label images: the compressed_segmentation encoder against a decoder written from the format's
// text (google/neuroglancer .../compressed_segmentation/README.md), the labels= and
// label_algorithm= options, and the labels group tree.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/codec/compressed_segmentation.h"
#include "core/tree/group_tree.h"
#include "mountopts/mount_options.h"

namespace oz {
namespace {

uint32_t Word(const std::string& b, size_t i) {
  REQUIRE((i + 1) * 4 <= b.size());
  uint32_t v = 0;
  for (int k = 0; k < 4; ++k) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[i * 4 + k])) << (8 * k);
  return v;
}

// Spec decoder: one channel, volume `shape` (z, y, x), block edge `bs`, ids of out_bytes.
std::vector<uint64_t> Decode(const std::string& b, const Vec3& shape, int64_t bs, size_t out_bytes) {
  REQUIRE(b.size() % 4 == 0);
  const size_t base = Word(b, 0);  // offset of channel 0
  REQUIRE(base == 1);
  const int64_t gz = (shape[0] + bs - 1) / bs, gy = (shape[1] + bs - 1) / bs, gx = (shape[2] + bs - 1) / bs;
  std::vector<uint64_t> out(static_cast<size_t>(shape[0] * shape[1] * shape[2]));
  for (int64_t z = 0; z < shape[0]; ++z)
    for (int64_t y = 0; y < shape[1]; ++y)
      for (int64_t x = 0; x < shape[2]; ++x) {
        const int64_t bx = x / bs, by = y / bs, bz = z / bs;
        const size_t h = base + 2 * static_cast<size_t>(bx + gx * (by + gy * bz));
        const uint32_t w0 = Word(b, h), w1 = Word(b, h + 1);
        const uint32_t table = w0 & 0xFFFFFF, bits = w0 >> 24;
        REQUIRE((bits == 0 || bits == 1 || bits == 2 || bits == 4 || bits == 8 || bits == 16 || bits == 32));
        const int64_t ix = x % bs, iy = y % bs, iz = z % bs;
        const uint64_t bit = bits * static_cast<uint64_t>(ix + bs * (iy + bs * iz));
        uint64_t k = 0;
        if (bits) {
          const uint32_t word = Word(b, base + w1 + bit / 32);
          k = (word >> (bit % 32)) & (bits == 32 ? 0xFFFFFFFFu : ((1u << bits) - 1));
        }
        uint64_t v = Word(b, base + table + k * (out_bytes / 4));
        if (out_bytes == 8) v |= static_cast<uint64_t>(Word(b, base + table + k * 2 + 1)) << 32;
        out[static_cast<size_t>((z * shape[1] + y) * shape[2] + x)] = v;
      }
  (void)gz;
  return out;
}

std::vector<uint8_t> Pack(const std::vector<uint64_t>& ids, size_t bytes) {
  std::vector<uint8_t> out(ids.size() * bytes);
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(out.data() + i * bytes, &ids[i], bytes);  // little endian
  return out;
}

}  // namespace

TEST_CASE("labels: compressed_segmentation of one voxel is the spec's four words") {
  const uint32_t id = 7;
  auto enc = EncodeCompressedSegmentation(&id, {1, 1, 1}, 4, 4, 8);
  REQUIRE(enc.ok());
  // channel offset 1; header: table at word 2 of the channel, 0 bits; values at 2; table [7].
  REQUIRE(enc->size() == 16);
  CHECK(Word(*enc, 0) == 1);
  CHECK(Word(*enc, 1) == 2);
  CHECK(Word(*enc, 2) == 2);
  CHECK(Word(*enc, 3) == 7);
}

TEST_CASE("labels: compressed_segmentation round-trips through the spec decoder") {
  std::mt19937_64 rng(14);
  struct Case {
    Vec3 shape;
    size_t in_bytes, out_bytes;
    uint64_t distinct;  // ids drawn from this many values
  };
  const Case cases[] = {{{8, 8, 8}, 4, 4, 1},        {{8, 8, 8}, 4, 4, 2},    {{16, 16, 16}, 2, 4, 3},
                        {{9, 17, 5}, 1, 4, 5},       {{13, 7, 20}, 2, 4, 17}, {{16, 8, 24}, 4, 4, 300},
                        {{10, 10, 10}, 8, 8, 70000}, {{8, 8, 8}, 8, 8, 2},    {{3, 30, 11}, 1, 4, 256},
                        {{24, 24, 24}, 2, 4, 40000}};
  for (const Case& c : cases) {
    const size_t n = static_cast<size_t>(c.shape[0] * c.shape[1] * c.shape[2]);
    const uint64_t mask = c.in_bytes == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * c.in_bytes)) - 1;
    std::vector<uint64_t> palette(c.distinct);
    for (auto& p : palette) p = rng() & mask;
    std::vector<uint64_t> ids(n);
    // Smooth regions (runs of one id) as segmentations have, plus noise.
    for (size_t i = 0; i < n; ++i) ids[i] = palette[(i / 37 + (rng() % 8 == 0 ? rng() : 0)) % c.distinct];
    const std::vector<uint8_t> packed = Pack(ids, c.in_bytes);
    auto enc = EncodeCompressedSegmentation(packed.data(), c.shape, c.in_bytes, c.out_bytes, 8);
    INFO("shape " << ToString(c.shape) << " in " << c.in_bytes << " out " << c.out_bytes << " distinct " << c.distinct);
    REQUIRE(enc.ok());
    CHECK(Decode(*enc, c.shape, 8, c.out_bytes) == ids);
  }
}

TEST_CASE("labels: compressed_segmentation shares equal lookup tables and uses the fewest bits") {
  std::vector<uint32_t> ids(16 * 8 * 8, 5);  // two blocks along x, both all 5
  auto enc = EncodeCompressedSegmentation(ids.data(), {8, 8, 16}, 4, 4, 8);
  REQUIRE(enc.ok());
  CHECK(Word(*enc, 1) == Word(*enc, 3));  // same table offset, 0 bits
  CHECK((Word(*enc, 1) >> 24) == 0);
  CHECK(enc->size() == (1 + 4 + 1) * 4);
  ids[0] = 9;  // block 0 now has 2 values: 1 bit, 16 words of values
  enc = EncodeCompressedSegmentation(ids.data(), {8, 8, 16}, 4, 4, 8);
  REQUIRE(enc.ok());
  CHECK((Word(*enc, 1) >> 24) == 1);
  CHECK((Word(*enc, 3) >> 24) == 0);
  CHECK(Decode(*enc, {8, 8, 16}, 8, 4) == std::vector<uint64_t>(ids.begin(), ids.end()));
}

TEST_CASE("labels: compressed_segmentation refuses bad widths") {
  uint64_t id = 1;
  CHECK(EncodeCompressedSegmentation(&id, {1, 1, 1}, 8, 4, 8).status().code() == ErrorCode::kInvalidArgument);
  CHECK(EncodeCompressedSegmentation(&id, {1, 1, 1}, 3, 4, 8).status().code() == ErrorCode::kInvalidArgument);
  CHECK(EncodeCompressedSegmentation(&id, {0, 1, 1}, 4, 4, 8).status().code() == ErrorCode::kInvalidArgument);
}

namespace {

Status ParseInto(const std::string& text, Options* o) {
  MountFlags f;
  return ParseOptionString(text, o, &f);
}

}  // namespace

TEST_CASE("labels: labels= option") {
  Options o;
  REQUIRE(ParseInto("labels=cells:/data/cells,labels=nuclei.v2:/data/n\\,x", &o).ok());
  REQUIRE(o.labels.size() == 2);
  CHECK(o.labels[0] == LabelSpec{"cells", "/data/cells"});
  CHECK(o.labels[1] == LabelSpec{"nuclei.v2", "/data/n,x"});
  // Colons after the first belong to the source (URLs).
  REQUIRE(ParseInto("labels=web:https://h/x.zarr", &o).ok());
  CHECK(o.labels.back() == LabelSpec{"web", "https://h/x.zarr"});

  Options before = o;
  Status st = ParseInto("labels=cells:/other", &o);
  CHECK(st.code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Contains("given twice") && Catch::Contains("cells"));
  CHECK(o == before);
  st = ParseInto("labels=cells", &o);
  CHECK_THAT(st.message(), Catch::Contains("NAME:SOURCE") && Catch::Contains("':' is missing"));
  for (const char* bad : {"labels=a/b:/x", "labels=..:/x", "labels=a b:/x", "labels=:/x"}) {
    st = ParseInto(bad, &o);
    INFO(bad << " -> " << st.ToString());
    CHECK(st.code() == ErrorCode::kInvalidArgument);
    CHECK_THAT(st.message(), Catch::Contains("NAME"));
  }
  CHECK_THAT(ParseInto("labels=x:", &o).message(), Catch::Contains("SOURCE after ':' is empty"));
}

TEST_CASE("labels: label_algorithm accepts only mode") {
  Options o;
  CHECK(ParseInto("label_algorithm=mode", &o).ok());
  Status st = ParseInto("label_algorithm=mean", &o);
  CHECK(st.code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Contains("always downsampled with mode") && Catch::Contains("mean"));
  st = ParseInto("label_algorithm=median", &o);
  CHECK_THAT(st.message(), Catch::Contains("expected one of mean, nearest, max, min, mode"));
  st = ParseInto("algorithm=median", &o);
  CHECK_THAT(st.message(), Catch::Contains("expected one of mean, nearest, max, min, mode"));
}

TEST_CASE("labels: the labels group tree routes documents and subtrees") {
  auto doc = std::make_shared<const std::string>("{\"labels\": [\"a\"]}\n");
  GroupTree inner({{"x.json", std::make_shared<const std::string>("xx")}}, {});
  GroupTree g({{".zattrs", doc}}, {{"a", &inner}});
  auto root = g.List("/");
  REQUIRE(root.ok());
  REQUIRE(root->size() == 2);
  CHECK((*root)[0].name == ".zattrs");
  CHECK((*root)[1].name == "a");
  CHECK((*root)[1].kind == NodeKind::kDirectory);
  CHECK(g.Stat("/.zattrs")->size == doc->size());
  CHECK(*g.Read("/.zattrs").value() == *doc);
  CHECK(*g.Read("/a/x.json").value() == "xx");
  CHECK(g.Stat("/a")->kind == NodeKind::kDirectory);
  CHECK(g.Stat("/b").status().code() == ErrorCode::kNotFound);
  CHECK(g.Stat("/.zattrs/x").status().code() == ErrorCode::kNotDirectory);
  CHECK(g.Open("/").status().code() == ErrorCode::kIsDirectory);
  CHECK(g.List("/a/y").status().code() == ErrorCode::kNotFound);
}

}  // namespace oz
