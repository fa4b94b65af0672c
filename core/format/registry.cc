// The registry of output formats: an explicit list (no static registration), the default first.
#include "core/format/format.h"
#include "core/format/precomputed/precomputed_format.h"
#include "core/format/zarr2/zarr2_format.h"
#include "core/format/zarr3/zarr3_format.h"

namespace oz {

const std::vector<FormatSpec>& Formats() {
  static const std::vector<FormatSpec> kFormats = {
      {"ome-zarr-0.4", "zarr v2, OME-NGFF 0.4 (khartes, napari, every zarr reader)", PrepareZarr2, MakeZarr2Tree,
       nullptr, PrepareZarr2Labels, MakeZarr2LabelTree, Zarr2LabelsGroupDocs},
      {"ome-zarr-0.5", "zarr v3, OME-NGFF 0.5, sharded with shard=N", PrepareZarr3, MakeZarr3Tree, nullptr,
       PrepareZarr3Labels, MakeZarr3LabelTree, Zarr3LabelsGroupDocs},
      {"precomputed", "Neuroglancer precomputed: raw, gzip or jpeg chunks", PreparePrecomputed, MakePrecomputedTree,
       PrecomputedCodecOptions, PreparePrecomputedLabels, MakePrecomputedLabelTree, nullptr},
  };
  return kFormats;
}

const FormatSpec* FindFormat(std::string_view name) {
  for (const FormatSpec& f : Formats())
    if (f.name == name) return &f;
  return nullptr;
}

std::string FormatNames(std::string_view separator) {
  std::string s;
  for (const FormatSpec& f : Formats()) s += (s.empty() ? "" : std::string(separator)) + std::string(f.name);
  return s;
}

}  // namespace oz
