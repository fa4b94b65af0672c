// OME-Zarr 0.4 / zarr v2 metadata documents of the served tree (.zgroup, .zattrs, .zarray).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/options.h"
#include "core/pyramid.h"

namespace oz {

// {"zarr_format": 2}
std::string ZgroupJson();

// A level's .zarray: shape, cubic chunks, dtype, compressor, fill_value 0, order C, filters null,
// dimension_separator "/".
std::string ZarrayJson(const Vec3& shape, int64_t chunk, DType dtype, const nlohmann::json& compressor);

// The root .zattrs with one "multiscales" entry (version 0.4): axes z, y, x of type space (with
// unit if set); datasets "0".."N-1" with scale = voxel_size * 2^l and, for mean and max (which
// move voxel centres to the middle of each 2^l block), translation = voxel_size * (2^l - 1) / 2;
// "type" = the algorithm; "metadata" = the method and every option that shapes the data.
// `source` describes the source for humans (e.g. the TIFF directory).
std::string ZattrsJson(const Pyramid& pyramid, const Options& options, const std::string& source);

}  // namespace oz
