// zarr v2 / OME-Zarr 0.4 (the default format): documents .zgroup, .zattrs and per level
// .zarray; chunk files L/z/y/x (dimension_separator "/"). With levels == 1 the root is a plain
// array (.zarray, z/y/x). Each chunk file is an engine chunk, bytes as the numcodecs compressor
// writes them.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/dtype.h"
#include "core/base/options.h"
#include "core/format/format.h"
#include "core/pyramid/pyramid.h"

namespace oz {

// {"zarr_format": 2}
std::string ZgroupJson();

// A level's .zarray: shape, cubic chunks, dtype, compressor, fill_value 0, order C, filters null,
// dimension_separator "/".
std::string ZarrayJson(const Vec3& shape, int64_t chunk, DType dtype, const nlohmann::json& compressor);

// The root .zattrs: {"multiscales": [MultiscaleJson + "version": "0.4"]}.
// `served`: the tree's dtype (for the omero window; see OmeroJson).
std::string ZattrsJson(const Pyramid& pyramid, const Options& options, const std::string& source, DType served);

// Registry hooks.
Status PrepareZarr2(Options* options, DType served);
std::unique_ptr<FormatTree> MakeZarr2Tree(ChunkEngine* engine, const std::string& source);
// Label images (core/format/ome/labels.h): labels/NAME is a group (also with levels=1) whose
// .zattrs has the multiscales entry (name NAME) and image-label version 0.4.
Status PrepareZarr2Labels(Options* options, DType ids);
std::unique_ptr<FormatTree> MakeZarr2LabelTree(ChunkEngine* engine, const std::string& name, const std::string& source);
std::vector<std::pair<std::string, std::string>> Zarr2LabelsGroupDocs(const std::vector<std::string>& names);

}  // namespace oz
