// VolumeGrid: a directory of cubic cell TIFFs as one volume, the layout of the older Vesuvius
// releases (volume_grids/<scan>/cell_yxz_YYY_XXX_ZZZ.tif: 500x500x500 multi-page cells).
//
// Naming: cell_yxz_<Y>_<X>_<Z>.tif (or .tiff, any case), indices decimal and 1-based; cell
// (y, x, z) covers voxels [(i-1)*edge, i*edge) on each axis, its pages are z, its rows y, its
// columns x. The cell edge (per axis: pages, height, width) is taken from the cell with the
// lowest indices; the volume extent is (highest index) * edge on each axis. Missing cells read as
// zeros (one warning lists them). Other files in the directory are ignored.
//
// Checks: at Open every cell's first page header is read (in parallel, one header each, as a
// slice directory's are) and a cell whose width or height differs from the edge is refused,
// naming it and both shapes. A cell's pages are counted when the cell is first read (walking a
// 500-page IFD chain for thousands of cells at mount would make mounting a scroll slow): a cell
// with the wrong page count or data type then fails that read with kCorrupt naming the cell and
// both shapes, and is logged; nothing is cached for it.
//
// Reads: a box is split by cells; each cell is a TiffStack over its one multi-page file (pages
// indexed once, on first use), read for just the pages, strips and rows the box needs. Open
// cells are kept in an LRU (at most kMaxOpenCells, each with memory/kMaxOpenCells of decoded
// strip cache); a cell opened by several readers at once is opened once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/source/tiff_stack.h"

namespace oz {

struct GridCellName {
  int64_t y = 0, x = 0, z = 0;  // 1-based, as in the name
};

// "cell_yxz_001_002_003.tif" -> {1, 2, 3}; nullopt for any other name (index 0, a non-digit, a
// missing part, an index above 10^9, another extension).
std::optional<GridCellName> ParseGridCellName(const std::string& name);

// True if `dir` is a directory holding at least one cell file (and so is a volume grid).
bool LooksLikeVolumeGrid(const std::string& dir);

class VolumeGrid : public Volume {
 public:
  static constexpr int kMaxOpenCells = 32;

  // options: as for a TiffStack (bad_slices, memory, pool, stats); page/channel/t are refused
  // (a cell's pages are its z). Errors name the directory or cell and the fix.
  static Result<std::unique_ptr<VolumeGrid>> Open(const std::string& dir, const TiffStackOptions& options);
  ~VolumeGrid() override;

  Vec3 shape() const override;
  DType dtype() const override;
  Status ReadBox(const Box& box, void* out) override;
  Status ReadBoxStrided(const Box& box, int64_t step, void* out) override;
  // The cell edge and every cell's name, size and mtime (from Open).
  std::string Fingerprint() const override;
  std::string Describe() const override;

  Vec3 cell_edge() const;    // z, y, x
  Vec3 cell_counts() const;  // cells per axis (highest index), z, y, x
  const std::vector<std::string>& warnings() const;

  struct Impl;

 private:
  explicit VolumeGrid(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace oz
