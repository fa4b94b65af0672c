// The labels metadata members, shared by the 0.4 and 0.5 trees.
#include "core/format/ome/labels.h"

namespace oz {

using nlohmann::json;

json ImageLabelJson(const std::string& version) {
  json j = {{"source", {{"image", "../../"}}}};
  if (!version.empty()) j["version"] = version;
  return j;
}

json LabelsListJson(const std::vector<std::string>& names) { return json{{"labels", names}}; }

}  // namespace oz
