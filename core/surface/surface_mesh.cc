#include "core/surface/surface_mesh.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <utility>

#include "core/store/atomic_file.h"
#include "core/surface/ppm.h"

extern "C" {
#include "libqhull_r/qhull_ra.h"
}

namespace oz {
namespace {

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n\v\f";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return {};
  const size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::strchr(" \t\r\n\v\f", s[i]) != nullptr && s[i] != '\0') ++i;
    size_t j = i;
    while (j < s.size() && (std::strchr(" \t\r\n\v\f", s[j]) == nullptr || s[j] == '\0')) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A finite double from all of `s` (as Python's float() reads it, less nan/inf).
bool ParseDouble(std::string_view s, double* out) {
  if (s.empty() || s.size() > 400) return false;
  const std::string t(s);
  if (t.find_first_of("xXnN") != std::string::npos) return false;  // no hex floats, nan, inf
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::string Quote(std::string_view s) {
  std::string t(s.substr(0, 60));
  for (char& c : t)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return "'" + t + (s.size() > 60 ? "...'" : "'");
}

// numpy's pairwise summation (the order np.sum / np.average add a contiguous float64 array in).
double PairwiseSum(const double* a, size_t n) {
  if (n < 8) {
    double r = -0.0;
    for (size_t i = 0; i < n; ++i) r += a[i];
    return r;
  }
  if (n <= 128) {
    double r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int k = 0; k < 8; ++k) r[k] += a[i + k];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return PairwiseSum(a, n2) + PairwiseSum(a + n2, n - n2);
}

// pointSpacing: the mean 3-D distance between valid neighbours down the rows (d0) and along
// them (d1).
Status PointSpacing(const SurfaceGrid& g, double* d0, double* d1) {
  std::vector<double> dist;
  auto at = [&](int64_t r, int64_t c) { return &g.xyz[static_cast<size_t>((r * g.width + c) * 3)]; };
  auto d = [](const double* p, const double* q) {
    const double a = q[0] - p[0], b = q[1] - p[1], c = q[2] - p[2];
    double s = a * a;
    s += b * b;
    s += c * c;
    return std::sqrt(s);
  };
  for (int64_t r = 0; r + 1 < g.height; ++r)
    for (int64_t c = 0; c < g.width; ++c)
      if (g.valid[r * g.width + c] && g.valid[(r + 1) * g.width + c]) dist.push_back(d(at(r, c), at(r + 1, c)));
  if (dist.empty())
    return InvalidArgumentError("the surface has no two valid points in adjacent rows (" + std::to_string(g.height) +
                                " x " + std::to_string(g.width) + " points): cannot measure its point spacing");
  *d0 = PairwiseSum(dist.data(), dist.size()) / static_cast<double>(dist.size());
  dist.clear();
  for (int64_t r = 0; r < g.height; ++r)
    for (int64_t c = 0; c + 1 < g.width; ++c)
      if (g.valid[r * g.width + c] && g.valid[r * g.width + c + 1]) dist.push_back(d(at(r, c), at(r, c + 1)));
  if (dist.empty())
    return InvalidArgumentError("the surface has no two valid points in adjacent columns (" + std::to_string(g.height) +
                                " x " + std::to_string(g.width) + " points): cannot measure its point spacing");
  *d1 = PairwiseSum(dist.data(), dist.size()) / static_cast<double>(dist.size());
  // Coincident points (spacing 0) or coordinates so large that distances overflow leave no
  // usable row/column spacing ratio.
  if (!(*d0 > 0) || !(*d1 > 0) || !std::isfinite(*d0) || !std::isfinite(*d1) || !std::isfinite(*d0 / *d1))
    return InvalidArgumentError("the surface's mean point spacing is " + std::to_string(*d0) + " between rows and " +
                                std::to_string(*d1) +
                                " between columns: points coincide or their coordinates overflow; check the input");
  return OkStatus();
}

// OpenCV's borderInterpolate for BORDER_REFLECT_101 ("gfedcb|abcdefgh|gfedcba").
int64_t Reflect101(int64_t p, int64_t n) {
  if (n == 1) return 0;
  while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
  return p;
}

std::vector<double> GaussianKernel(double sigma) {
  const int n = static_cast<int>(std::nearbyint(sigma * 4 * 2 + 1)) | 1;
  std::vector<double> k(static_cast<size_t>(n));
  const double scale2 = -0.5 / (sigma * sigma);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const double x = i - (n - 1) * 0.5;
    k[i] = std::exp(scale2 * x * x);
    sum += k[i];
  }
  sum = 1.0 / sum;
  for (double& v : k) v *= sum;
  return k;
}

// The cells of a uv raster at Chebyshev distance exactly 2 from the surface's region (the cells
// holding a point and every cell not 4-connected to the raster's corner): the original's
// outsidePoints, in its order (row-major over u, v).
std::vector<double> OutsidePoints(const std::vector<double>& uv, double step) {
  const size_t n = uv.size() / 2;
  double mn[2] = {uv[0], uv[1]}, mx[2] = {uv[0], uv[1]};
  for (size_t i = 1; i < n; ++i)
    for (int a = 0; a < 2; ++a) {
      mn[a] = std::min(mn[a], uv[2 * i + a]);
      mx[a] = std::max(mx[a], uv[2 * i + a]);
    }
  int64_t id0[2], size[2];
  for (int a = 0; a < 2; ++a) {
    id0[a] = static_cast<int32_t>(std::floor(mn[a] / step - 5));
    const int64_t id1 = static_cast<int32_t>(std::ceil(mx[a] / step + 5));
    size[a] = id1 - id0[a];
  }
  const int64_t W = size[1];
  std::vector<uint8_t> inside(static_cast<size_t>(size[0] * size[1]), 0);  // 1: a point's cell
  for (size_t i = 0; i < n; ++i) {
    const auto a = static_cast<int64_t>(std::floor(uv[2 * i] / step - static_cast<double>(id0[0])));
    const auto b = static_cast<int64_t>(std::floor(uv[2 * i + 1] / step - static_cast<double>(id0[1])));
    inside[a * W + b] = 1;
  }
  // Flood the outside from (0, 0) through empty cells, 4-connected.
  std::vector<uint8_t> outside(inside.size(), 0);
  std::vector<int64_t> stack{0};
  outside[0] = 1;
  while (!stack.empty()) {
    const int64_t p = stack.back();
    stack.pop_back();
    const int64_t r = p / W, c = p % W;
    const int64_t nb[4][2] = {{r - 1, c}, {r + 1, c}, {r, c - 1}, {r, c + 1}};
    for (const auto& q : nb) {
      if (q[0] < 0 || q[0] >= size[0] || q[1] < 0 || q[1] >= W) continue;
      const int64_t k = q[0] * W + q[1];
      if (inside[k] || outside[k]) continue;
      outside[k] = 1;
      stack.push_back(k);
    }
  }
  // Chebyshev distance to the region: 1 (3x3 dilation) or 2 (5x5) or more.
  auto near = [&](int64_t r, int64_t c, int rad) {
    for (int64_t i = std::max<int64_t>(0, r - rad); i <= std::min(size[0] - 1, r + rad); ++i)
      for (int64_t j = std::max<int64_t>(0, c - rad); j <= std::min(W - 1, c + rad); ++j)
        if (!outside[i * W + j]) return true;
    return false;
  };
  std::vector<double> pts;
  for (int64_t r = 0; r < size[0]; ++r)
    for (int64_t c = 0; c < W; ++c) {
      if (!outside[r * W + c]) continue;
      if (near(r, c, 2) && !near(r, c, 1)) {
        pts.push_back(static_cast<double>(r + id0[0]) * step);
        pts.push_back(static_cast<double>(c + id0[1]) * step);
      }
    }
  return pts;
}

}  // namespace

Result<SurfaceGrid> ParseVcps(std::string_view bytes, const std::string& name) {
  std::vector<std::pair<std::string, std::string>> kv;
  size_t pos = 0;
  bool end = false;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    const size_t next = nl == std::string_view::npos ? bytes.size() : nl + 1;
    const std::string_view line = Trim(bytes.substr(pos, next - pos));
    pos = next;
    if (line == "<>") {
      end = true;
      break;
    }
    const auto w = Words(line);
    if (w.size() != 2 || w[0].size() < 2 || w[0].back() != ':') continue;  // the original skips these
    kv.emplace_back(std::string(w[0].substr(0, w[0].size() - 1)), std::string(w[1]));
  }
  if (!end)
    return InvalidArgumentError(name + ": no '<>' line ending the .vcps header (not a .vcps file, or truncated)");
  auto get = [&](const std::string& k) -> const std::string* {
    const std::string* v = nullptr;
    for (const auto& [key, val] : kv)
      if (key == k) v = &val;  // the last one wins, as in the original's dict
    return v;
  };
  int64_t wh[2] = {0, 0};
  const char* dims[2] = {"width", "height"};
  for (int i = 0; i < 2; ++i) {
    const std::string* v = get(dims[i]);
    if (v == nullptr) return InvalidArgumentError(name + ": the .vcps header has no '" + dims[i] + ":' line");
    if (!ParseInt(*v, &wh[i]) || wh[i] <= 0 || wh[i] > (int64_t{1} << 31))
      return InvalidArgumentError(name + ": .vcps header field " + dims[i] + " is " + Quote(*v) +
                                  ", expected a positive integer");
  }
  const std::pair<const char*, const char*> expected[] = {
      {"dim", "3"}, {"ordered", "true"}, {"type", "double"}, {"version", "1"}};
  for (const auto& [k, want] : expected) {
    const std::string* v = get(k);
    if (v == nullptr)
      return InvalidArgumentError(name + ": the .vcps header has no '" + k + ":' line (expected " + want + ")");
    if (*v != want)
      return InvalidArgumentError(name + ": .vcps header field " + k + " is " + Quote(*v) + ", expected " + want +
                                  " (only ordered 3-D double point sets are supported)");
  }
  SurfaceGrid g;
  g.width = wh[0];
  g.height = wh[1];
  const uint64_t count = static_cast<uint64_t>(g.width) * static_cast<uint64_t>(g.height) * 3;
  const uint64_t have = bytes.size() - pos;
  if (count > (uint64_t{1} << 40) / 8 || have != count * 8)
    return InvalidArgumentError(name + ": expected " + std::to_string(count * 8) + " bytes of points (" +
                                std::to_string(g.height) + " x " + std::to_string(g.width) +
                                " x 3 doubles) after the header, found " + std::to_string(have) +
                                (have < count * 8 ? " (truncated?)" : ""));
  g.xyz.resize(static_cast<size_t>(count));
  std::memcpy(g.xyz.data(), bytes.data() + pos, count * 8);
  for (size_t i = 0; i < g.xyz.size(); ++i)
    if (!std::isfinite(g.xyz[i]))
      return InvalidArgumentError(name + ": point (row " + std::to_string(i / 3 / g.width) + ", column " +
                                  std::to_string(i / 3 % g.width) + ") has a non-finite coordinate");
  g.valid.assign(static_cast<size_t>(g.width * g.height), 1);
  return g;
}

Result<SurfaceGrid> ParsePpmGrid(std::string_view bytes, const std::string& name) {
  OZ_ASSIGN_OR_RETURN(PpmHeader h, ParsePpmHeader(bytes, name));
  const uint64_t need = static_cast<uint64_t>(h.width) * static_cast<uint64_t>(h.height) * 48;
  const uint64_t have = bytes.size() - h.data_offset;
  if (have != need)
    return InvalidArgumentError(".ppm file " + name + ": expected " + std::to_string(need) + " bytes of data (" +
                                std::to_string(h.height) + " x " + std::to_string(h.width) +
                                " x 6 doubles) after the header, found " + std::to_string(have) +
                                (have < need ? " (truncated?)" : ""));
  OZ_RETURN_IF_ERROR(CheckPpmData(h, bytes.substr(h.data_offset), 0, name));
  SurfaceGrid g;
  g.height = h.height;
  g.width = h.width;
  const size_t n = static_cast<size_t>(h.width * h.height);
  g.xyz.resize(n * 3);
  g.valid.resize(n);
  const char* p = bytes.data() + h.data_offset;
  double px[6];
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(px, p + i * 48, 48);
    g.xyz[3 * i] = px[0];
    g.xyz[3 * i + 1] = px[1];
    g.xyz[3 * i + 2] = px[2];
    g.valid[i] = px[3] != 0 || px[4] != 0 || px[5] != 0;
  }
  return g;
}

Result<SurfaceMesh> ParseObj(std::string_view bytes, const std::string& name) {
  std::vector<float> v, vt;
  std::vector<std::array<int64_t, 6>> faces;  // v0 v1 v2 t0 t1 t2, 0-based; line number in [5] below
  std::vector<int64_t> face_line;
  size_t pos = 0;
  int64_t lineno = 0;
  while (pos < bytes.size()) {
    size_t nl = bytes.find_first_of("\r\n", pos);
    size_t next = nl == std::string_view::npos ? bytes.size() : nl + 1;
    if (nl != std::string_view::npos && bytes[nl] == '\r' && next < bytes.size() && bytes[next] == '\n') ++next;
    const std::string_view line = bytes.substr(pos, (nl == std::string_view::npos ? bytes.size() : nl) - pos);
    pos = next;
    ++lineno;
    const auto w = Words(line);
    if (w.empty() || w[0][0] == '#') continue;
    auto bad = [&](std::string_view what) {
      return InvalidArgumentError(name + ": line " + std::to_string(lineno) + ": " + std::string(what) + " in " +
                                  Quote(Trim(line)));
    };
    if (w[0] == "v" && (w.size() == 4 || w.size() == 7)) {
      for (int i = 1; i <= 3; ++i) {
        double d;
        if (!ParseDouble(w[i], &d)) return bad("unparsable vertex coordinate " + Quote(w[i]));
        if (!std::isfinite(static_cast<float>(d)))
          return bad("vertex coordinate " + Quote(w[i]) + " that is not a finite 32-bit float");
        v.push_back(static_cast<float>(d));
      }
    } else if (w[0] == "vt" && w.size() == 3) {
      for (int i = 1; i <= 2; ++i) {
        double d;
        if (!ParseDouble(w[i], &d)) return bad("unparsable texture coordinate " + Quote(w[i]));
        if (!std::isfinite(static_cast<float>(d)))
          return bad("texture coordinate " + Quote(w[i]) + " that is not a finite 32-bit float");
        vt.push_back(static_cast<float>(d));
      }
    } else if (w[0] == "f" && w.size() == 4) {
      std::array<int64_t, 6> f{};
      for (int i = 0; i < 3; ++i) {
        const std::string_view c = w[i + 1];
        const size_t s1 = c.find('/');
        int64_t a, t;
        if (!ParseInt(c.substr(0, s1), &a)) return bad("unparsable face vertex " + Quote(c));
        t = a;
        if (s1 != std::string_view::npos) {
          const std::string_view rest = c.substr(s1 + 1);
          const std::string_view ts = rest.substr(0, rest.find('/'));
          if (!ts.empty() && !ParseInt(ts, &t)) return bad("unparsable face texture index " + Quote(c));
        }
        f[i] = a - 1;
        f[i + 3] = t - 1;
      }
      faces.push_back(f);
      face_line.push_back(lineno);
    }
  }
  SurfaceMesh m;
  m.single_precision = true;
  const int64_t nv = static_cast<int64_t>(v.size() / 3), nt = static_cast<int64_t>(vt.size() / 2);
  m.xyz.assign(v.begin(), v.end());
  m.uv.assign(static_cast<size_t>(nv) * 2, 0.0);
  m.tri.reserve(faces.size());
  for (size_t k = 0; k < faces.size(); ++k) {
    const auto& f = faces[k];
    for (int i = 0; i < 3; ++i) {
      const std::string where = name + ": line " + std::to_string(face_line[k]) + ": face ";
      if (f[i] < 0 || f[i] >= nv)
        return InvalidArgumentError(where + "vertex " + std::to_string(f[i] + 1) + " is not among the " +
                                    std::to_string(nv) + " 'v' lines (1-based; relative indices are not supported)");
      if (f[i + 3] < 0 || f[i + 3] >= nt)
        return InvalidArgumentError(where + "texture vertex " + std::to_string(f[i + 3] + 1) + " is not among the " +
                                    std::to_string(nt) + " 'vt' lines (every face corner needs a vt)");
      m.uv[2 * f[i]] = vt[2 * f[i + 3]];
      m.uv[2 * f[i] + 1] = vt[2 * f[i + 3] + 1];
    }
    m.tri.push_back({static_cast<int32_t>(f[0]), static_cast<int32_t>(f[1]), static_cast<int32_t>(f[2])});
  }
  if (nv > INT32_MAX) return InvalidArgumentError(name + ": too many vertices");
  return m;
}

void GaussianBlur64(double* img, int64_t height, int64_t width, double sigma_x, double sigma_y) {
  const std::vector<double> kx = GaussianKernel(sigma_x), ky = GaussianKernel(sigma_y);
  const int64_t rx = static_cast<int64_t>(kx.size() / 2), ry = static_cast<int64_t>(ky.size() / 2);
  std::vector<double> tmp(static_cast<size_t>(height * width));
  std::vector<int64_t> ix(static_cast<size_t>(width + 2 * rx));
  for (int64_t j = -rx; j < width + rx; ++j) ix[j + rx] = Reflect101(j, width);
  for (int64_t r = 0; r < height; ++r) {
    const double* row = img + r * width;
    for (int64_t c = 0; c < width; ++c) {
      double s = 0;
      for (size_t k = 0; k < kx.size(); ++k) s += kx[k] * row[ix[c + k]];
      tmp[r * width + c] = s;
    }
  }
  std::vector<int64_t> iy(static_cast<size_t>(height + 2 * ry));
  for (int64_t j = -ry; j < height + ry; ++j) iy[j + ry] = Reflect101(j, height);
  std::vector<double> acc(static_cast<size_t>(width));
  for (int64_t r = 0; r < height; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (size_t k = 0; k < ky.size(); ++k) {
      const double w = ky[k];
      const double* src = &tmp[iy[r + k] * width];
      for (int64_t c = 0; c < width; ++c) acc[c] += w * src[c];
    }
    std::copy(acc.begin(), acc.end(), img + r * width);
  }
}

Result<std::vector<std::array<int32_t, 3>>> Delaunay2d(const std::vector<double>& xy) {
  const int n = static_cast<int>(xy.size() / 2);
  if (n < 3) return InvalidArgumentError("cannot triangulate " + std::to_string(n) + " points (need at least 3)");
  std::vector<coordT> pts(xy.begin(), xy.end());
  char* errbuf = nullptr;
  size_t errlen = 0;
  FILE* errfile = open_memstream(&errbuf, &errlen);
  qhT qh_storage;
  qhT* qh = &qh_storage;
  qh_zero(qh, errfile);
  char cmd[] = "qhull d Qbb Qc Qz Q12 Qt";
  const int exitcode = qh_new_qhull(qh, 2, n, pts.data(), False, cmd, nullptr, errfile);
  std::vector<std::array<int32_t, 3>> out;
  if (exitcode == 0) {
    qh_triangulate(qh);
    facetT* facet;
    FORALLfacets {
      if (facet->upperdelaunay != qh->UPPERdelaunay) continue;
      std::array<int32_t, 3> t{};
      for (int i = 0; i < 3; ++i) {
        auto* vertex = static_cast<vertexT*>(facet->vertices->e[i].p);
        t[i] = qh_pointid(qh, vertex->point);
      }
      if (facet->toporient == qh_ORIENTclock) std::swap(t[0], t[1]);
      out.push_back(t);
    }
  }
  qh_freeqhull(qh, !qh_ALL);
  int curlong, totlong;
  qh_memfreeshort(qh, &curlong, &totlong);
  std::fclose(errfile);
  std::string err(errbuf != nullptr ? errbuf : "", errlen);
  std::free(errbuf);
  if (exitcode != 0) {
    const size_t nl = err.find('\n', err.find_first_not_of('\n'));
    return InvalidArgumentError(
        "Delaunay triangulation of " + std::to_string(n) +
        " points failed (are they all on a line?): qhull: " + std::string(Trim(err.substr(0, nl))));
  }
  return out;
}

Result<SurfaceMesh> TriangulateGrid(SurfaceGrid g, const GridMeshOptions& opt) {
  if (opt.zstep < 0) return InvalidArgumentError("--zstep must be >= 0");
  double d0, d1;
  OZ_RETURN_IF_ERROR(PointSpacing(g, &d0, &d1));
  double psr = d0 / d1;
  int64_t dec0 = 1, dec1 = 1;
  if (opt.zstep > 0) {
    dec0 = static_cast<int64_t>(opt.zstep + .5);
    const double d = opt.zstep * psr + .5;
    if (!(d >= 1) || d > 1e9)
      return InvalidArgumentError("--zstep " + std::to_string(opt.zstep) + " gives a column step of " +
                                  std::to_string(d) + " (zstep x row/column spacing ratio " + std::to_string(psr) +
                                  "): use a larger --zstep");
    dec1 = static_cast<int64_t>(d);
  }
  if (opt.smooth && opt.zsmooth > 0) {
    std::vector<double> ch(static_cast<size_t>(g.height * g.width));
    for (int a = 0; a < 3; ++a) {
      for (size_t i = 0; i < ch.size(); ++i) ch[i] = g.xyz[3 * i + a];
      GaussianBlur64(ch.data(), g.height, g.width, opt.zsmooth, 16.0);
      for (size_t i = 0; i < ch.size(); ++i) g.xyz[3 * i + a] = ch[i];
    }
    OZ_RETURN_IF_ERROR(PointSpacing(g, &d0, &d1));  // the original measures the smoothed grid again
    psr = d0 / d1;
  }
  SurfaceMesh m;
  std::vector<double> duv;
  for (int64_t r = 0; r < g.height; r += dec0)
    for (int64_t c = 0; c < g.width; c += dec1) {
      const size_t i = static_cast<size_t>(r * g.width + c);
      if (!g.valid[i]) continue;
      m.xyz.insert(m.xyz.end(), {g.xyz[3 * i], g.xyz[3 * i + 1], g.xyz[3 * i + 2]});
      const double u = static_cast<double>(c), v = static_cast<double>(r);
      m.uv.insert(m.uv.end(), {u, v});
      // de-ratioed and nudged, in the original's order (u first, then v from the new u)
      double nu = u / 1.0, nv = v / psr;
      const double du = .00001 * nv;
      nu += du;
      const double dv = .00001 * nu;
      nv += dv;
      duv.insert(duv.end(), {nu, nv});
    }
  const size_t npts = duv.size() / 2;
  if (npts < 3)
    return InvalidArgumentError("only " + std::to_string(npts) + " valid points remain after decimation (--zstep " +
                                std::to_string(opt.zstep) + "): nothing to triangulate; use a smaller --zstep");
  const double bay = 2.0 * opt.zstep;
  if (bay > 0) {
    const std::vector<double> outside = OutsidePoints(duv, bay);
    duv.insert(duv.end(), outside.begin(), outside.end());
  }
  OZ_ASSIGN_OR_RETURN(auto tris, Delaunay2d(duv));
  for (const auto& t : tris)
    if (static_cast<size_t>(t[0]) < npts && static_cast<size_t>(t[1]) < npts && static_cast<size_t>(t[2]) < npts)
      m.tri.push_back(t);
  return m;
}

Result<Window> ParseWindow(std::string_view text, int dim, const std::vector<double>& pts, bool single_precision,
                           const std::string& option) {
  Window w;
  w.lo.assign(dim, 0.0);
  w.hi.assign(dim, 0.0);
  const size_t n = pts.size() / dim;
  for (int a = 0; a < dim; ++a) {
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; ++i) {
      mn = std::min(mn, pts[i * dim + a]);
      mx = std::max(mx, pts[i * dim + a]);
    }
    w.lo[a] = single_precision ? static_cast<float>(static_cast<float>(mn) - .001f) : mn - .001;
    w.hi[a] = single_precision ? static_cast<float>(static_cast<float>(mx) + .001f) : mx + .001;
  }
  if (text.data() == nullptr) return w;
  const std::string names = dim == 3 ? "x,y,z" : "u,v";
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError(option + " " + Quote(text) + ": " + why + " (expected " + std::to_string(dim) +
                                " comma-separated ranges " + names +
                                ", each A:B, :B, A:, A (meaning :A) or empty, e.g. " +
                                (dim == 3 ? "2500:3000,1500:2000,:" : "2000:4000,:") + ")");
  };
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (true) {
    const size_t c = text.find(',', pos);
    parts.push_back(text.substr(pos, c == std::string_view::npos ? std::string_view::npos : c - pos));
    if (c == std::string_view::npos) break;
    pos = c + 1;
  }
  if (static_cast<int>(parts.size()) != dim) return bad(std::to_string(parts.size()) + " ranges");
  for (int a = 0; a < dim; ++a) {
    const std::string_view p = parts[a];
    if (p.empty()) continue;
    const std::string axis = "range " + std::to_string(a + 1) + " (" + names.substr(2 * a, 1) + ")";
    if (p.find(':') == std::string_view::npos) {
      int64_t v;
      if (!ParseInt(p, &v)) return bad(axis + " " + Quote(p) + " is not an integer");
      w.hi[a] = static_cast<double>(v);
    } else {
      std::vector<std::string_view> f;
      size_t q = 0;
      while (true) {
        const size_t c = p.find(':', q);
        f.push_back(p.substr(q, c == std::string_view::npos ? std::string_view::npos : c - q));
        if (c == std::string_view::npos) break;
        q = c + 1;
      }
      if (f.size() > 3) return bad(axis + " " + Quote(p) + " has more than 3 parts");
      double val[3] = {0, 0, 1};
      for (size_t k = 0; k < f.size(); ++k)
        if (!f[k].empty() && !ParseDouble(f[k], &val[k]))
          return bad(axis + " " + Quote(p) + ": " + Quote(f[k]) + " is not a number");
      if (f.size() == 3 && !f[2].empty() && val[2] != 1) return bad(axis + " " + Quote(p) + ": the step must be 1");
      if (!f[0].empty()) w.lo[a] = val[0];
      if (!f[1].empty()) w.hi[a] = val[1];
    }
    if (single_precision) {
      w.lo[a] = static_cast<float>(w.lo[a]);
      w.hi[a] = static_cast<float>(w.hi[a]);
    }
  }
  return w;
}

void ApplyWindow(const std::vector<double>& pts, int dim, const Window& w, SurfaceMesh* mesh) {
  const size_t n = pts.size() / dim;
  std::vector<uint8_t> in(n);
  for (size_t i = 0; i < n; ++i) {
    bool ok = true;
    for (int a = 0; a < dim; ++a) ok = ok && pts[i * dim + a] >= w.lo[a] && pts[i * dim + a] <= w.hi[a];
    in[i] = ok;
  }
  std::erase_if(mesh->tri, [&](const std::array<int32_t, 3>& t) { return !(in[t[0]] || in[t[1]] || in[t[2]]); });
}

void CompactMesh(SurfaceMesh* m) {
  const size_t n = m->vertices();
  std::vector<int32_t> id(n, -1);
  for (const auto& t : m->tri)
    for (int32_t v : t) id[v] = 0;
  int32_t k = 0;
  SurfaceMesh out;
  out.single_precision = m->single_precision;
  for (size_t i = 0; i < n; ++i) {
    if (id[i] < 0) continue;
    id[i] = k++;
    out.xyz.insert(out.xyz.end(), {m->xyz[3 * i], m->xyz[3 * i + 1], m->xyz[3 * i + 2]});
    out.uv.insert(out.uv.end(), {m->uv[2 * i], m->uv[2 * i + 1]});
  }
  out.tri = std::move(m->tri);
  for (auto& t : out.tri)
    for (int32_t& v : t) v = id[v];
  *m = std::move(out);
}

std::vector<SurfaceMesh> SplitComponents(const SurfaceMesh& mesh) {
  const size_t nt = mesh.tri.size();
  std::vector<uint32_t> parent(nt);
  std::iota(parent.begin(), parent.end(), 0u);
  auto find = [&](uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::vector<std::pair<uint64_t, uint32_t>> edges;
  edges.reserve(nt * 3);
  for (size_t t = 0; t < nt; ++t)
    for (int i = 0; i < 3; ++i) {
      uint64_t a = static_cast<uint32_t>(mesh.tri[t][i]), b = static_cast<uint32_t>(mesh.tri[t][(i + 1) % 3]);
      if (a > b) std::swap(a, b);
      edges.emplace_back(a << 32 | b, static_cast<uint32_t>(t));
    }
  std::sort(edges.begin(), edges.end());
  for (size_t i = 1; i < edges.size(); ++i)
    if (edges[i].first == edges[i - 1].first) {
      const uint32_t x = find(edges[i].second), y = find(edges[i - 1].second);
      if (x != y) parent[std::max(x, y)] = std::min(x, y);
    }
  std::vector<int32_t> label(nt, -1), root_label(nt, -1);
  int32_t nc = 0;
  for (size_t t = 0; t < nt; ++t) {
    const uint32_t r = find(static_cast<uint32_t>(t));
    if (root_label[r] < 0) root_label[r] = nc++;
    label[t] = root_label[r];
  }
  std::vector<SurfaceMesh> out(static_cast<size_t>(nc));
  for (auto& c : out) {
    c.xyz = mesh.xyz;
    c.uv = mesh.uv;
    c.single_precision = mesh.single_precision;
  }
  for (size_t t = 0; t < nt; ++t) out[label[t]].tri.push_back(mesh.tri[t]);
  for (auto& c : out) CompactMesh(&c);
  return out;
}

namespace {

// Python's float formatting: shortest round-trip digits, positional for 1e-4 <= |v| < 1e16
// (at least one decimal), else d[.ddd]e[+-]XX.
template <typename F>
std::string PyFormat(F v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string s(buf, r.ptr);
  const size_t e = s.find('e');
  const int exp = std::atoi(s.c_str() + e + 1);
  std::string mant = s.substr(0, e);
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  const double a = std::fabs(static_cast<double>(v));
  std::string out = neg ? "-" : "";
  if (a == 0 || (a >= 1e-4 && a < 1e16)) {
    if (exp >= 0) {
      const size_t ip = static_cast<size_t>(exp) + 1;
      if (digits.size() <= ip) {
        out += digits + std::string(ip - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, ip) + "." + digits.substr(ip);
      }
    } else {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  }
  return out;
}

}  // namespace

std::string PyFloat(double v) { return PyFormat(v); }
std::string PyFloat32(float v) { return PyFormat(v); }

std::string FormatObj(const SurfaceMesh& m) {
  std::string s;
  s.reserve(m.vertices() * 60 + m.tri.size() * 24);
  auto num = [&](double v) {
    s += ' ';
    s += m.single_precision ? PyFloat32(static_cast<float>(v)) : PyFloat(v);
  };
  for (size_t i = 0; i < m.vertices(); ++i) {
    s += 'v';
    for (int a = 0; a < 3; ++a) num(m.xyz[3 * i + a]);
    s += '\n';
  }
  for (size_t i = 0; i < m.vertices(); ++i) {
    s += "vt";
    for (int a = 0; a < 2; ++a) num(m.uv[2 * i + a]);
    s += '\n';
  }
  char buf[64];
  for (const auto& t : m.tri) {
    const int len = std::snprintf(buf, sizeof(buf), "f %d %d %d\n", t[0] + 1, t[1] + 1, t[2] + 1);
    s.append(buf, static_cast<size_t>(len));
  }
  return s;
}

Status WritePrecomputedMeshes(const std::string& dir, const std::vector<SurfaceMesh>& segments, uint64_t first_id) {
  OZ_RETURN_IF_ERROR(MakeDirs(dir));
  AtomicWriteOptions wo;
  wo.fsync_file = wo.fsync_dir = false;
  OZ_RETURN_IF_ERROR(WriteFileAtomic(dir + "/info", "{\"@type\": \"neuroglancer_legacy_mesh\"}\n", wo));
  for (size_t k = 0; k < segments.size(); ++k) {
    const SurfaceMesh& m = segments[k];
    const std::string id = std::to_string(first_id + k);
    std::string frag;
    auto put32 = [&](uint32_t v) {
      char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                   static_cast<char>(v >> 24)};
      frag.append(b, 4);
    };
    frag.reserve(4 + m.vertices() * 12 + m.tri.size() * 12);
    put32(static_cast<uint32_t>(m.vertices()));
    for (double c : m.xyz) {
      const float f = static_cast<float>(c);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      put32(u);
    }
    for (const auto& t : m.tri)
      for (int32_t v : t) put32(static_cast<uint32_t>(v));
    OZ_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + id + ".frag", frag, wo));
    OZ_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + id + ":0", "{\"fragments\": [\"" + id + ".frag\"]}\n", wo));
  }
  return OkStatus();
}

}  // namespace oz
