// .ppm header parsing and data checks, the trilinear sampling rule against hand-computed values,
// and MountTree routing of an extra directory.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>

#include "core/surface/layer_tiffs.h"
#include "core/surface/ppm.h"
#include "core/tree/mount_tree.h"
#include "testing/mem_session.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

const char* kGood = "width: 2\nheight: 3\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n";

TEST_CASE("ppm header: fields and errors name the file and field") {
  auto h = ParsePpmHeader(kGood, "a.ppm");
  REQUIRE(h.ok());
  CHECK(h->width == 2);
  CHECK(h->height == 3);
  CHECK(h->data_offset == std::strlen(kGood));
  auto bad = [](std::string text, const char* word) {
    auto r = ParsePpmHeader(text, "b.ppm");
    REQUIRE(!r.ok());
    CHECK(r.status().message().find("b.ppm") != std::string::npos);
    CHECK(r.status().message().find(word) != std::string::npos);
  };
  std::string g = kGood;
  bad(g.substr(0, g.size() - 3), "<>");
  bad("height: 3\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n", "width");
  bad("width: -2\nheight: 3\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n", "width");
  bad("width: 2\nheight: 0\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n", "height");
  bad("width: 2\nheight: 3\ndim: 3\nordered: true\ntype: double\nversion: 1\n<>\n", "dim");
  bad("width: 2\nheight: 3\ndim: 6\nordered: true\ntype: float\nversion: 1\n<>\n", "type");
  bad("width: 2\nheight: 3\ndim: 6\nordered: true\ntype: double\n<>\n", "version");
}

TEST_CASE("ppm data: non-finite values name pixel and component") {
  PpmHeader h;
  h.width = 2;
  h.height = 1;
  double v[12] = {1, 2, 3, 0, 0, 1, 4, 5, 6, 0, 0, 1};
  std::string data(reinterpret_cast<const char*>(v), sizeof v);
  CHECK(CheckPpmData(h, data, 0, "c.ppm").ok());
  v[7] = 1e39;  // finite double, infinite float32
  data.assign(reinterpret_cast<const char*>(v), sizeof v);
  auto s = CheckPpmData(h, data, 5, "c.ppm");
  REQUIRE(!s.ok());
  CHECK(s.message().find("y of pixel (row 5, column 1)") != std::string::npos);
}

TEST_CASE("trilinear rule: weights, clamping, neighbours outside") {
  const Vec3 shape{2, 2, 2};
  // voxel value = 100 z + 10 y + x: trilinear of a linear function is exact.
  auto lin = [](const int64_t i[3], double v[8]) {
    for (int k = 0; k < 8; ++k) v[k] = 100.0 * (i[0] + k / 4) + 10.0 * (i[1] + k / 2 % 2) + (i[2] + k % 2);
  };
  const double p[3] = {0.5, 0.25, 0.75};
  CHECK(SampleTrilinear(p, shape, 65535, lin) == 53);  // 50 + 2.5 + 0.75 = 53.25, truncated
  const double q[3] = {0.0, 0.0, 0.0};
  CHECK(SampleTrilinear(q, shape, 65535, lin) == 0);
  const double edge[3] = {1.0, 0.5, 0.5};  // z + 1 = 2 is outside a 2-voxel axis
  CHECK(SampleTrilinear(edge, shape, 65535, lin) == 0);
  const double neg[3] = {-0.001, 0.5, 0.5};
  CHECK(SampleTrilinear(neg, shape, 65535, lin) == 0);
  auto big = [](const int64_t*, double v[8]) {
    for (int k = 0; k < 8; ++k) v[k] = 70000.0;  // above both ranges: clamped
  };
  const double mid[3] = {0.3, 0.6, 0.9};
  CHECK(SampleTrilinear(mid, shape, 255, big) == 255);
  CHECK(SampleTrilinear(mid, shape, 65535, big) == 65535);
}

class OneFile final : public Tree {
 public:
  Result<NodeInfo> Stat(std::string_view path) override {
    if (path == "/" || path.empty()) return NodeInfo{NodeKind::kDirectory, 0};
    if (path == "/f") return NodeInfo{NodeKind::kFile, 3};
    return NotFoundError(std::string(path));
  }
  Result<std::vector<DirEntry>> List(std::string_view) override {
    return std::vector<DirEntry>{{"f", NodeKind::kFile}};
  }
  Result<std::shared_ptr<FileContent>> Open(std::string_view path) override {
    OZ_ASSIGN_OR_RETURN(NodeInfo i, Stat(path));
    (void)i;
    return std::shared_ptr<FileContent>(std::make_shared<BytesContent>(std::make_shared<const std::string>("abc")));
  }
};

TEST_CASE("mount tree: extra directories beside the base") {
  OneFile base;
  MountTree m(&base);
  REQUIRE(m.Add("layers", std::make_unique<OneFile>()).ok());
  CHECK(!m.Add("layers", std::make_unique<OneFile>()).ok());
  CHECK(!m.Add("f", std::make_unique<OneFile>()).ok());  // the base has it
  auto root = m.List("/");
  REQUIRE(root.ok());
  REQUIRE(root->size() == 2);
  CHECK((*root)[1].name == "layers");
  CHECK(m.Stat("/layers")->kind == NodeKind::kDirectory);
  CHECK(m.Stat("/layers/f")->size == 3);
  CHECK(m.Stat("/layers/g").status().code() == ErrorCode::kNotFound);
  CHECK(*m.Read("/layers/f").value() == "abc");
  auto files = m.ExtraFiles();
  REQUIRE(files.ok());
  CHECK(*files == std::vector<std::string>{"layers/f"});
}

}  // namespace
}  // namespace oz

namespace oz {
namespace {

// Layer files of a tilted plane across a volume 8 chunks wide, with a chunk budget of 8 decoded
// chunks (a band needs 16: it is sampled in column segments) and with a large budget (one segment).
std::vector<std::string> LayerFiles(uint64_t memory) {
  testing::TempDir dir;
  const int64_t h = 12, w = 60;
  std::string text = "width: 60\nheight: 12\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n";
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      const double v[6] = {1.5 + static_cast<double>(c),
                           2.25 + 0.5 * static_cast<double>(r),
                           7.3 + 0.01 * static_cast<double>(c),
                           0.1,
                           0.0,
                           0.995};
      text.append(reinterpret_cast<const char*>(v), sizeof v);
    }
  const std::string path = dir.path + "/s.ppm";
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(std::fwrite(text.data(), 1, text.size(), f) == text.size());
  std::fclose(f);
  Options o;
  o.chunk = 8;
  o.levels = 1;
  auto s = testing::MemSession(std::make_shared<testing::MemVolume>(Vec3{16, 16, 64}, DType::kUint16, 7), o);
  auto ppm = PpmFile::Open(path);
  REQUIRE(ppm.ok());
  LayerTiffsParams p;
  p.layers_count = 5;
  p.stack_count = 3;
  p.memory = memory;
  p.pool = s->pool.get();
  auto t = LayerTiffs::Make(std::move(ppm).value(), s->engine.get(), p);
  REQUIRE(t.ok());
  std::vector<std::string> out;
  for (const std::string& name : (*t)->names()) {
    auto bytes = (*t)->Read("/" + name);
    REQUIRE(bytes.ok());
    REQUIRE((*bytes)->size() == (*t)->file_size());
    out.push_back(**bytes);
  }
  return out;
}

TEST_CASE("layer tiffs: sampling in column segments under a small chunk budget gives the same bytes") {
  const auto small = LayerFiles(16 << 10);  // 8 KiB of 1 KiB chunks: the minimum of 8 pinned
  const auto large = LayerFiles(64 << 20);
  REQUIRE(small.size() == 6);
  CHECK(small == large);
  bool nonzero = false;
  for (char ch : small[2].substr(small[2].size() - 60 * 12 * 2)) nonzero |= ch != 0;
  CHECK(nonzero);
}

}  // namespace
}  // namespace oz
