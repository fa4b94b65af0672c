// Fuzzes the .vcps reader (core/surface/surface_mesh ParseVcps) with hostile files; for a file it
// accepts, the grid must be consistent (sizes, finite points) and, when small, the whole mesh
// pipeline (smoothing, decimation, Delaunay, components, .obj text) must run without a crash.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/surface/surface_mesh.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto g = oz::ParseVcps(bytes, "fuzz.vcps");
  if (!g.ok()) {
    if (g.status().message().find("fuzz.vcps") == std::string::npos) __builtin_trap();  // errors name the file
    return 0;
  }
  if (g->xyz.size() != static_cast<size_t>(g->width * g->height * 3) || g->valid.size() * 3 != g->xyz.size())
    __builtin_trap();
  for (double v : g->xyz)
    if (!std::isfinite(v)) __builtin_trap();
  if (g->width * g->height > 4096) return 0;
  oz::GridMeshOptions opt;
  opt.zstep = static_cast<int>(size % 5);
  opt.zsmooth = static_cast<double>(size % 3);
  auto m = oz::TriangulateGrid(std::move(*g), opt);
  if (!m.ok()) return 0;
  for (const auto& t : m->tri)
    for (int32_t v : t)
      if (v < 0 || static_cast<size_t>(v) >= m->vertices()) __builtin_trap();
  for (const auto& c : oz::SplitComponents(*m)) (void)oz::FormatObj(c);
  return 0;
}
