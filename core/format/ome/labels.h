// OME-NGFF labels (the "labels" group and "image-label" metadata of 0.4 and 0.5): a label image
// is a multiscales group under labels/NAME whose "image-label" says which image it labels
// ("source": {"image": "../../"}, the image group two levels up). No "colors" are written: the
// ids carry no colour of their own, and readers colour them themselves.
//   0.4: labels/.zgroup, labels/.zattrs {"labels": [names]}; labels/NAME/.zattrs
//        {"multiscales": [...], "image-label": {"version": "0.4", "source": {"image": "../../"}}}
//   0.5: labels/zarr.json (group, attributes.ome {"version": "0.5", "labels": [names]});
//        labels/NAME/zarr.json attributes.ome {"version": "0.5", "multiscales": [...],
//        "image-label": {"source": {"image": "../../"}}}
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace oz {

// The "image-label" member; version: "0.4" puts a "version" in it, "" leaves it out (0.5 has it
// in attributes.ome).
nlohmann::json ImageLabelJson(const std::string& version);

// {"labels": [names]} (0.4 .zattrs, and the members of 0.5's attributes.ome besides "version").
nlohmann::json LabelsListJson(const std::vector<std::string>& names);

}  // namespace oz
