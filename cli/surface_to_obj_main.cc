// omezarr-surface-to-obj: a .ppm / .vcps / .obj surface to .obj (and Neuroglancer precomputed
// legacy meshes), as scroll2zarr's surface_to_obj.py does (core only, no FUSE).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/store/atomic_file.h"
#include "core/surface/surface_mesh.h"
#include "core/version.h"

namespace {

const char kHelp[] =
    "usage: omezarr-surface-to-obj INPUT OUTPUT.obj [options]\n"
    "\n"
    "Writes the surface INPUT (.ppm, .vcps or .obj, by its suffix) as a triangulated .obj, as\n"
    "scroll2zarr's surface_to_obj.py does: a .ppm / .vcps grid is decimated (and a .vcps smoothed),\n"
    "triangulated in uv (embayed Delaunay), windowed, and written with vt = (column, row). When the\n"
    "result has several connected components, each is also written as OUTPUTnnn.obj (001, 002, ...).\n"
    "\n"
    "options:\n"
    "  --zstep N        row decimation step, 0: none (default 24); the column step is N times the\n"
    "                   ratio of row to column point spacing, rounded (.ppm, .vcps)\n"
    "  --zsmooth S      Gaussian sigma across columns, 0: none (default 6; the sigma across rows is\n"
    "                   always 16, as in the original); .vcps only: a .ppm is never smoothed\n"
    "  --xyzwindow W    keep the triangles with a vertex in this xyz range: A:B,A:B,A:B (any part may\n"
    "                   be empty, e.g. 2500:3000,,:5500; a single number A means :A)\n"
    "  --uvwindow W     the same in (u, v) = (column, row), e.g. 2000:4000,:\n"
    "  --precomputed DIR  also write Neuroglancer precomputed legacy meshes into DIR: info,\n"
    "                   <id>:0 manifests and <id>.frag fragments, one segment per component, in\n"
    "                   voxel units\n"
    "  --first-id N     segment id of the first component (default 1)\n"
    "  -q, --quiet      print nothing on success\n"
    "  -h, --help       this text;  -V, --version  the version\n"
    "\n"
    "Exit status: 0 on success; 1 for bad input or an empty window (nothing is written); 2 for\n"
    "usage errors.\n";

void Err(const std::string& m) { std::fprintf(stderr, "omezarr-surface-to-obj: %s\n", m.c_str()); }

int Usage(const std::string& m) {
  Err(m + " (see --help)");
  return 2;
}

bool ParseIntArg(const std::string& s, long long* out) {
  char* end = nullptr;
  errno = 0;
  *out = std::strtoll(s.c_str(), &end, 10);
  return !s.empty() && end == s.c_str() + s.size() && errno == 0;
}

std::string Suffix(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0) return "";
  return base.substr(dot);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  long long zstep = 24, first_id = 1;
  double zsmooth = 6.0;
  std::optional<std::string> xyzwin, uvwin, precomputed;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kHelp, stdout);
      return 0;
    }
    if (a == "-V" || a == "--version") {
      std::printf("omezarr-surface-to-obj %s\n", OMEZARRFS_VERSION);
      return 0;
    }
    if (a == "-q" || a == "--quiet") {
      quiet = true;
      continue;
    }
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a, val;
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        val = a.substr(eq + 1);
      } else {
        if (name != "--zstep" && name != "--zsmooth" && name != "--xyzwindow" && name != "--uvwindow" &&
            name != "--precomputed" && name != "--first-id")
          return Usage("unknown option " + a);
        if (i + 1 >= argc) return Usage(name + " needs a value");
        val = argv[++i];
      }
      if (name == "--zstep") {
        if (!ParseIntArg(val, &zstep) || zstep < 0 || zstep > 1000000)
          return Usage("--zstep " + val + ": expected an integer >= 0 (0: no decimation)");
      } else if (name == "--zsmooth") {
        char* end = nullptr;
        zsmooth = std::strtod(val.c_str(), &end);
        if (val.empty() || end != val.c_str() + val.size() || !std::isfinite(zsmooth) || zsmooth < 0 || zsmooth > 10000)
          return Usage("--zsmooth " + val + ": expected a number >= 0 (0: no smoothing)");
      } else if (name == "--xyzwindow") {
        xyzwin = val;
      } else if (name == "--uvwindow") {
        uvwin = val;
      } else if (name == "--precomputed") {
        if (val.empty()) return Usage("--precomputed needs a directory");
        precomputed = val;
      } else if (name == "--first-id") {
        if (!ParseIntArg(val, &first_id) || first_id < 1)
          return Usage("--first-id " + val + ": expected an integer >= 1");
      } else {
        return Usage("unknown option " + a);
      }
      continue;
    }
    pos.push_back(a);
  }
  if (pos.size() != 2) return Usage("expected INPUT and OUTPUT.obj, got " + std::to_string(pos.size()) + " arguments");
  const std::string& input = pos[0];
  const std::string& output = pos[1];
  const std::string suffix = Suffix(input);
  if (suffix != ".ppm" && suffix != ".vcps" && suffix != ".obj")
    return Usage(input + ": unknown surface type '" + suffix + "' (expected a .ppm, .vcps or .obj file)");

  auto bytes = oz::ReadFile(input);
  if (!bytes.ok()) {
    Err(bytes.status().message());
    return 1;
  }
  oz::SurfaceMesh mesh;
  if (suffix == ".obj") {
    auto m = oz::ParseObj(*bytes, input);
    if (!m.ok()) {
      Err(m.status().message());
      return 1;
    }
    mesh = std::move(*m);
  } else {
    auto g = suffix == ".ppm" ? oz::ParsePpmGrid(*bytes, input) : oz::ParseVcps(*bytes, input);
    if (!g.ok()) {
      Err(g.status().message());
      return 1;
    }
    bytes->clear();
    bytes->shrink_to_fit();
    oz::GridMeshOptions opt;
    opt.zstep = static_cast<int>(zstep);
    opt.zsmooth = zsmooth;
    opt.smooth = suffix == ".vcps";
    auto m = oz::TriangulateGrid(std::move(*g), opt);
    if (!m.ok()) {
      Err(input + ": " + m.status().message());
      return 1;
    }
    mesh = std::move(*m);
  }
  // Windows: uv first, then xyz (each keeps a triangle with any vertex inside).
  auto uw = oz::ParseWindow(uvwin ? std::string_view(*uvwin) : std::string_view(), 2, mesh.uv, mesh.single_precision,
                            "--uvwindow");
  if (!uw.ok()) return Usage(uw.status().message());
  auto xw = oz::ParseWindow(xyzwin ? std::string_view(*xyzwin) : std::string_view(), 3, mesh.xyz, mesh.single_precision,
                            "--xyzwindow");
  if (!xw.ok()) return Usage(xw.status().message());
  oz::ApplyWindow(mesh.uv, 2, *uw, &mesh);
  oz::ApplyWindow(mesh.xyz, 3, *xw, &mesh);
  if (mesh.tri.empty()) {
    std::string why = input + ": no triangles to export";
    if (uvwin || xyzwin) {
      why += ": the window (";
      if (uvwin) why += "--uvwindow " + *uvwin + (xyzwin ? ", " : "");
      if (xyzwin) why += "--xyzwindow " + *xyzwin;
      why += ") holds no vertex of the surface; nothing written";
    } else {
      why += " (the surface has no triangles); nothing written";
    }
    Err(why);
    return 1;
  }
  oz::CompactMesh(&mesh);
  oz::AtomicWriteOptions wo;
  wo.fsync_file = wo.fsync_dir = false;
  auto write = [&](const std::string& path, const oz::SurfaceMesh& m) {
    oz::Status s = oz::WriteFileAtomic(path, oz::FormatObj(m), wo);
    if (!s.ok()) {
      Err(s.message());
      return false;
    }
    if (!quiet) std::printf("wrote %s: %zu vertices, %zu triangles\n", path.c_str(), m.vertices(), m.tri.size());
    return true;
  };
  if (!write(output, mesh)) return 1;
  std::vector<oz::SurfaceMesh> comps = oz::SplitComponents(mesh);
  if (comps.size() > 1) {
    const std::string osuf = Suffix(output);
    const std::string stem = output.substr(0, output.size() - osuf.size());
    for (size_t i = 0; i < comps.size(); ++i) {
      char num[32];
      std::snprintf(num, sizeof(num), "%03zu", i + 1);
      if (!write(stem + num + osuf, comps[i])) return 1;
    }
  }
  if (precomputed) {
    if (comps.size() == 1) comps[0] = mesh;
    oz::Status s = oz::WritePrecomputedMeshes(*precomputed, comps, static_cast<uint64_t>(first_id));
    if (!s.ok()) {
      Err(s.message());
      return 1;
    }
    if (!quiet)
      std::printf("wrote %s: %zu segment%s, ids %lld..%lld\n", precomputed->c_str(), comps.size(),
                  comps.size() == 1 ? "" : "s", first_id, first_id + static_cast<long long>(comps.size()) - 1);
  }
  return 0;
}
