// .ppm header parsing and data checks, the trilinear sampling rule against hand-computed values,
// and MountTree routing of an extra directory.
#include <catch2/catch.hpp>
#include <cstring>

#include "core/surface/layer_tiffs.h"
#include "core/surface/ppm.h"
#include "core/tree/mount_tree.h"

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
