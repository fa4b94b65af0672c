// core/surface/surface_mesh: Python number formatting, the cv2-equivalent Gaussian blur against a
// brute-force reference, .vcps / .obj parsing and their errors, Delaunay, windows, components and
// the precomputed legacy mesh bytes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>

#include "core/store/atomic_file.h"
#include "core/surface/surface_mesh.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

TEST_CASE("surface: numbers print as Python and numpy print them", "[surface]") {
  CHECK(PyFloat(1.0) == "1.0");
  CHECK(PyFloat(0.1) == "0.1");
  CHECK(PyFloat(-0.0) == "-0.0");
  CHECK(PyFloat(0.0) == "0.0");
  CHECK(PyFloat(1e-5) == "1e-05");
  CHECK(PyFloat(1.5e-7) == "1.5e-07");
  CHECK(PyFloat(1e16) == "1e+16");
  CHECK(PyFloat(1e15) == "1000000000000000.0");
  CHECK(PyFloat(123.456) == "123.456");
  CHECK(PyFloat(0.0001) == "0.0001");
  CHECK(PyFloat(2.0 / 3.0) == "0.6666666666666666");
  CHECK(PyFloat32(0.1f) == "0.1");
  CHECK(PyFloat32(1e-4f) == "1e-04");  // float32(1e-4) is just below 1e-4
  CHECK(PyFloat32(123456789.0f) == "123456790.0");
  CHECK(PyFloat32(9.9e-5f) == "9.9e-05");
}

TEST_CASE("surface: Gaussian blur equals the reflect-101 convolution it stands for", "[surface]") {
  const int64_t h = 9, w = 13;
  std::vector<double> img(h * w);
  for (int64_t i = 0; i < h * w; ++i) img[i] = std::sin(0.7 * i) * 10 + static_cast<double>(i % 5);
  std::vector<double> got = img;
  GaussianBlur64(got.data(), h, w, 1.3, 16.0);
  auto kernel = [](double s) {
    const int n = static_cast<int>(std::nearbyint(s * 8 + 1)) | 1;
    std::vector<double> k(n);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += k[i] = std::exp(-(i - (n - 1) / 2.0) * (i - (n - 1) / 2.0) / (2 * s * s));
    for (double& v : k) v /= sum;
    return k;
  };
  auto refl = [](int64_t p, int64_t n) {  // gfedcb|abcdefgh|gfedcba, repeated
    const int64_t period = 2 * (n - 1);
    p = ((p % period) + period) % period;
    return p < n ? p : period - p;
  };
  const auto kx = kernel(1.3), ky = kernel(16.0);
  CHECK(kx.size() == 11);
  CHECK(ky.size() == 129);
  double maxdiff = 0;
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      double s = 0;
      for (size_t a = 0; a < ky.size(); ++a)
        for (size_t b = 0; b < kx.size(); ++b)
          s += ky[a] * kx[b] *
               img[refl(r + static_cast<int64_t>(a) - 64, h) * w + refl(c + static_cast<int64_t>(b) - 5, w)];
      maxdiff = std::max(maxdiff, std::fabs(s - got[r * w + c]));
    }
  CHECK(maxdiff < 1e-12);
}

std::string Vcps(int w, int h, const std::string& extra = "") {
  std::string s = "width: " + std::to_string(w) + "\nheight: " + std::to_string(h) +
                  "\ndim: 3\nordered: true\ntype: double\nversion: 1\n" + extra + "<>\n";
  for (int i = 0; i < w * h * 3; ++i) {
    const double v = i * 0.5;
    s.append(reinterpret_cast<const char*>(&v), 8);
  }
  return s;
}

TEST_CASE("surface: .vcps header, size and errors", "[surface]") {
  auto g = ParseVcps(Vcps(3, 2, "junk line\n"), "a.vcps");
  REQUIRE(g.ok());
  CHECK(g->width == 3);
  CHECK(g->height == 2);
  CHECK(g->xyz[17] == 8.5);
  auto bad = [](const std::string& bytes, const char* word) {
    auto r = ParseVcps(bytes, "b.vcps");
    REQUIRE(!r.ok());
    CHECK(r.status().message().find("b.vcps") != std::string::npos);
    CHECK(r.status().message().find(word) != std::string::npos);
  };
  const std::string ok = Vcps(3, 2);
  bad(ok.substr(0, ok.size() - 1), "truncated");
  bad(ok + "x", "found 145");
  bad(ok.substr(0, 20), "'<>'");
  std::string t = ok;
  t.replace(t.find("double"), 6, "float!");
  bad(t, "type");
  t = ok;
  t.replace(t.find("width: 3"), 8, "width: 0");
  bad(t, "width");
}

TEST_CASE("surface: .obj vertices, texture corners and errors", "[surface]") {
  auto m = ParseObj(
      "# c\nv 0 0 0\nv 1 0 0 1 1 1\nv 0 1 0\nvt 0.5 0.5\nvt 2 3\nvt 1 2 3\nvt 7 8\nf 1/2 2/1/7 3//4\nf 1 2\n", "a.obj");
  REQUIRE(m.ok());
  CHECK(m->vertices() == 3);
  REQUIRE(m->tri.size() == 1);
  CHECK(m->uv[0] == 2.0);  // vertex 1 -> vt 2
  CHECK(m->uv[2] == 0.5);  // vertex 2 -> vt 1
  CHECK(m->uv[4] == 7.0);  // vertex 3: "3//4" -> vt 3 ("vt 1 2 3" has 3 values: skipped)
  auto bad = [](const std::string& text, const char* word) {
    auto r = ParseObj(text, "b.obj");
    REQUIRE(!r.ok());
    CHECK(r.status().message().find("b.obj") != std::string::npos);
    CHECK(r.status().message().find(word) != std::string::npos);
  };
  bad("v 0 0 0\nf 1 1 1\n", "texture vertex 1");
  bad("v 0 0 0\nvt 0 0\nf 1 1 2\n", "vertex 2");
  bad("v 0 0 0\nvt 0 0\nf -1 1 1\n", "relative");
  bad("v 0 0 x\n", "line 1");
  bad("v 0 0 nan\n", "line 1");
  bad("v 0 0 1e300\n", "finite");  // a double, but infinite as the float32 the mesh stores
  bad("v 0 0 0\nvt 1e300 0\n", "finite");
}

TEST_CASE("surface: coincident points are refused, not divided by zero", "[surface]") {
  auto g = ParseVcps(Vcps(3, 2), "a.vcps");
  REQUIRE(g.ok());
  std::fill(g->xyz.begin(), g->xyz.end(), 1.5);  // every point the same: spacing 0
  auto r = TriangulateGrid(*g, GridMeshOptions{});
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("point spacing") != std::string::npos);
}

TEST_CASE("surface: Delaunay, windows, components", "[surface]") {
  // Two unit squares far apart, nudged off their circles: 2 triangles each, plus bridging ones.
  std::vector<double> xy = {0, 0, 1, 0.001, 0, 1, 1.001, 1};
  auto t = Delaunay2d(xy);
  REQUIRE(t.ok());
  CHECK(t->size() == 2);
  for (const auto& tr : *t) {  // counter-clockwise, as scipy returns them
    const double ax = xy[2 * tr[0]], ay = xy[2 * tr[0] + 1];
    const double cross =
        (xy[2 * tr[1]] - ax) * (xy[2 * tr[2] + 1] - ay) - (xy[2 * tr[1] + 1] - ay) * (xy[2 * tr[2]] - ax);
    CHECK(cross > 0);
  }
  CHECK(!Delaunay2d({0, 0, 1, 1, 2, 2}).ok());  // collinear
  SurfaceMesh m;
  m.xyz = {0, 0, 0, 1, 0, 0, 0, 1, 0, 5, 5, 5, 6, 5, 5, 5, 6, 5, 9, 9, 9};
  m.uv = {0, 0, 1, 0, 0, 1, 5, 5, 6, 5, 5, 6, 9, 9};
  m.tri = {{3, 4, 5}, {0, 1, 2}, {1, 2, 6}};
  auto comps = SplitComponents(m);
  REQUIRE(comps.size() == 2);
  CHECK(comps[0].tri.size() == 1);  // {3,4,5} first: components in the order of their first triangle
  CHECK(comps[0].xyz[0] == 5);
  CHECK(comps[1].tri.size() == 2);
  CHECK(comps[1].vertices() == 4);
  auto w = ParseWindow("5:6,:", 2, m.uv, false, "--uvwindow");
  REQUIRE(w.ok());
  SurfaceMesh mw = m;
  ApplyWindow(m.uv, 2, *w, &mw);
  CHECK(mw.tri.size() == 1);
  w = ParseWindow("8.5:,", 2, m.uv, false, "--uvwindow");
  REQUIRE(w.ok());
  mw = m;
  ApplyWindow(m.uv, 2, *w, &mw);
  CHECK(mw.tri.size() == 1);  // {1,2,6}: one vertex inside is enough
  CompactMesh(&mw);
  CHECK(mw.vertices() == 3);
  CHECK(mw.tri[0] == std::array<int32_t, 3>{0, 1, 2});
  CHECK(!ParseWindow("1:2", 2, m.uv, false, "--uvwindow").ok());
  CHECK(!ParseWindow("1:2:3,", 2, m.uv, false, "--uvwindow").ok());
  CHECK(ParseWindow("1:2,", 2, m.uv, false, "--uvwindow").status().ok());
}

TEST_CASE("surface: precomputed legacy mesh files", "[surface]") {
  testing::TempDir dir;
  SurfaceMesh m;
  m.xyz = {0, 0, 0, 1.5, 0, 0, 0, 2, 3};
  m.uv = {0, 0, 1, 0, 0, 1};
  m.tri = {{0, 1, 2}};
  REQUIRE(WritePrecomputedMeshes(dir.path + "/mesh", {m, m}, 4).ok());
  CHECK(*ReadFile(dir.path + "/mesh/info") == "{\"@type\": \"neuroglancer_legacy_mesh\"}\n");
  CHECK(*ReadFile(dir.path + "/mesh/5:0") == "{\"fragments\": [\"5.frag\"]}\n");
  const std::string f = *ReadFile(dir.path + "/mesh/4.frag");
  REQUIRE(f.size() == 4 + 36 + 12);
  uint32_t n;
  float x1;
  uint32_t last;
  std::memcpy(&n, f.data(), 4);
  std::memcpy(&x1, f.data() + 4 + 12, 4);
  std::memcpy(&last, f.data() + 48, 4);
  CHECK(n == 3);
  CHECK(x1 == 1.5f);
  CHECK(last == 2);
}

}  // namespace
}  // namespace oz
