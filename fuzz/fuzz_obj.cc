// Fuzzes the .obj reader (core/surface/surface_mesh ParseObj) with hostile files; for a file it
// accepts, every triangle index must be in range, and windowing, components and the .obj text must
// run without a crash; the text must parse back to the same mesh.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/surface/surface_mesh.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto m = oz::ParseObj(bytes, "fuzz.obj");
  if (!m.ok()) {
    if (m.status().message().find("fuzz.obj") == std::string::npos) __builtin_trap();
    return 0;
  }
  if (m->uv.size() != m->vertices() * 2) __builtin_trap();
  for (const auto& t : m->tri)
    for (int32_t v : t)
      if (v < 0 || static_cast<size_t>(v) >= m->vertices()) __builtin_trap();
  auto w = oz::ParseWindow(std::string_view(), 2, m->uv, true, "--uvwindow");
  if (!w.ok()) __builtin_trap();
  oz::SurfaceMesh k = *m;
  oz::ApplyWindow(m->uv, 2, *w, &k);
  if (k.tri.size() != m->tri.size()) __builtin_trap();  // the default window keeps everything
  oz::CompactMesh(&k);
  const std::string text = oz::FormatObj(k);
  auto back = oz::ParseObj(text, "fuzz.obj");
  if (!back.ok() || back->tri.size() != k.tri.size() || back->vertices() != k.vertices()) __builtin_trap();
  for (size_t i = 0; i < k.xyz.size(); ++i)
    if (back->xyz[i] != k.xyz[i]) __builtin_trap();
  (void)oz::SplitComponents(k);
  return 0;
}
