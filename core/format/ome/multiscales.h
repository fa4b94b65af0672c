// The OME-NGFF "multiscales" entry shared by OME-Zarr 0.4 (in .zattrs) and 0.5 (in zarr.json
// attributes.ome): axes z, y, x of type space (with unit if set); datasets "0".."N-1" with
// scale = voxel_size * 2^l and, for mean and max (which move voxel centres to the middle of each
// 2^l block), translation = voxel_size * (2^l - 1) / 2; "type" = the algorithm; "metadata" = the
// method and every option that shapes the data. `source` describes the source for humans.
// Without "version": 0.4 puts it in the entry, 0.5 beside "multiscales".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/base/options.h"
#include "core/pyramid/pyramid.h"

namespace oz {

nlohmann::json MultiscaleJson(const Pyramid& pyramid, const Options& options, const std::string& source);

// The OME-NGFF "omero" rendering settings (one grey channel) for data served as `served`:
// window.min/max = the served type's range; window.start/end = range=LO:HI (or auto) when the
// values are served unchanged, the full 0..max when dtype= mapped them, else the type's range.
// Written (returns non-null) for every served type other than uint8/uint16 and whenever dtype=
// or range= is given; plain uint8/uint16 trees keep their metadata as before (null).
nlohmann::json OmeroJson(DType served, const Options& options);

}  // namespace oz
