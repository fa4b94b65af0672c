// Surface meshes: the engine of omezarr-surface-to-obj (cli/surface_to_obj_main.cc).
//
// Reproduces scroll2zarr's surface_to_obj.py (its code, not its README, is the reference): a
// .ppm / .vcps grid of points is (for .vcps) smoothed, decimated on a grid, triangulated in uv by
// an "embayed" Delaunay triangulation (qhull, as scipy runs it), windowed, and written as .obj
// with vt = (column, row); a surface of several connected components is also written one file per
// component. A .obj input is read, windowed and written again. Also writes the Neuroglancer
// precomputed legacy mesh format (one segment per component).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace oz {

// A grid of surface points: height rows x width columns, xyz as doubles in C order, and per
// point whether it is valid (.ppm: normal not all zero; .vcps: every point).
struct SurfaceGrid {
  int64_t height = 0, width = 0;
  std::vector<double> xyz;     // height * width * 3
  std::vector<uint8_t> valid;  // height * width
};

// .vcps: text header lines "key: value" up to the line "<>", then height * width * 3 doubles
// (little-endian, C order). Required: width, height, dim 3, ordered true, type double, version 1.
// Errors: kInvalidArgument naming `name`, the field or the byte count and what was expected.
Result<SurfaceGrid> ParseVcps(std::string_view bytes, const std::string& name);

// .ppm (core/surface/ppm's header rules): the points (doubles, not rounded) and validity.
Result<SurfaceGrid> ParsePpmGrid(std::string_view bytes, const std::string& name);

// A triangle mesh: n vertices (xyz, uv) and triangles of vertex indices. `single_precision`: the
// values came from a .obj (read as float32, as the original does) and are written as float32.
struct SurfaceMesh {
  std::vector<double> xyz;  // 3n
  std::vector<double> uv;   // 2n
  std::vector<std::array<int32_t, 3>> tri;
  bool single_precision = false;
  size_t vertices() const { return xyz.size() / 3; }
};

// .obj: "v x y z" (or with 3 colour values), "vt u v", "f a b c" with a, a/t, a/t/n or a//n
// (1-based); other lines, other counts and '#' comments are skipped, as the original does. A
// vertex's uv is that of the last face corner naming it (0, 0 if none). Errors name the file and
// line: unparsable numbers, indices out of range, a face without a texture vertex to use.
Result<SurfaceMesh> ParseObj(std::string_view bytes, const std::string& name);

struct GridMeshOptions {
  int zstep = 24;        // decimation step in rows; 0: none
  double zsmooth = 6.0;  // Gaussian sigma across columns (rows: always 16); 0: none
  bool smooth = true;    // false for .ppm (the original never smooths a .ppm)
};

// The grid pipeline: point spacing, smoothing (in place, so the second spacing sees it, as the
// original's does), grid decimation, the embayed Delaunay triangulation. The mesh's vertices are
// the valid decimated points in row-major order; uv = (column, row) of the full grid.
// Errors: kInvalidArgument (no two adjacent valid points, a step that rounds to 0, fewer than
// three points), kInternal (qhull failed; its message).
Result<SurfaceMesh> TriangulateGrid(SurfaceGrid grid, const GridMeshOptions& opt);

// cv2.GaussianBlur(img, (0, 0), sigma_x, sigmaY=sigma_y) on a CV_64F image, border reflect-101:
// kernel size round(8 sigma + 1) | 1 per axis, rows filtered first. In place.
void GaussianBlur64(double* img, int64_t height, int64_t width, double sigma_x, double sigma_y);

// scipy.spatial.Delaunay(points).simplices: qhull "d Qbb Qc Qz Q12 Qt", lower Delaunay facets in
// qhull's facet order, clockwise facets with their first two vertices swapped.
Result<std::vector<std::array<int32_t, 3>>> Delaunay2d(const std::vector<double>& xy);

// A closed range per coordinate. ParseWindow reads the original's syntax: DIM comma-separated
// parts, each empty (the default), "A" (up to A, an integer), "A:B" or "A:B:1" (either may be
// empty). Defaults: the points' min - 0.001 and max + 0.001. Errors name `option`.
struct Window {
  std::vector<double> lo, hi;
};
Result<Window> ParseWindow(std::string_view text, int dim, const std::vector<double>& pts, bool single_precision,
                           const std::string& option);

// Keeps the triangles with any vertex inside `w` (pts: dim values per vertex).
void ApplyWindow(const std::vector<double>& pts, int dim, const Window& w, SurfaceMesh* mesh);

// Drops the vertices no triangle uses, keeping the others' order, and renumbers the triangles.
void CompactMesh(SurfaceMesh* mesh);

// Connected components by shared edges (a triangle sharing only a vertex is not connected), in
// the order of their first triangle, each compacted.
std::vector<SurfaceMesh> SplitComponents(const SurfaceMesh& mesh);

// The .obj text: "v x y z", then "vt u v", then "f a b c" (1-based), numbers as Python prints
// them (shortest round trip; float32 values as numpy prints float32).
std::string FormatObj(const SurfaceMesh& mesh);

// Python's str() of a double (or of a float32, as numpy prints it): "1.0", "0.1", "1e-05".
std::string PyFloat(double v);
std::string PyFloat32(float v);

// Neuroglancer precomputed legacy meshes in `dir` (created if absent): info, and per segment
// (ids first_id, first_id + 1, ...) the manifest "<id>:0" and the fragment "<id>.frag":
// uint32le vertex count, float32le xyz per vertex, uint32le vertex indices per triangle.
Status WritePrecomputedMeshes(const std::string& dir, const std::vector<SurfaceMesh>& segments, uint64_t first_id);

}  // namespace oz
