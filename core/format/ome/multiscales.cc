// The multiscales entry. Its members are a JSON object (sorted keys), so both versions print it
// the same way.
#include "core/format/ome/multiscales.h"

#include <limits>

#include "core/version.h"

namespace oz {

using nlohmann::json;

static json SliceJson(const SliceRange& r) {
  return json{{"start", r.start ? json(*r.start) : json(nullptr)}, {"stop", r.stop ? json(*r.stop) : json(nullptr)}};
}

json MultiscaleJson(const Pyramid& pyramid, const Options& o, const std::string& source) {
  json axes = json::array();
  for (const char* name : {"z", "y", "x"}) {
    json a = {{"name", name}, {"type", "space"}};
    if (!o.unit.empty()) a["unit"] = o.unit;
    axes.push_back(a);
  }
  const bool centred = o.algorithm != Algorithm::kNearest;
  json datasets = json::array();
  for (int l = 0; l < pyramid.levels(); ++l) {
    const double f = static_cast<double>(int64_t{1} << l);
    json scale = json::array(), trans = json::array();
    for (int a = 0; a < 3; ++a) {
      scale.push_back(o.voxel_size[a] * f);
      trans.push_back(o.voxel_size[a] * (f - 1) / 2);
    }
    json ct = json::array({{{"type", "scale"}, {"scale", scale}}});
    if (centred && l > 0) ct.push_back({{"type", "translation"}, {"translation", trans}});
    datasets.push_back({{"path", std::to_string(l)}, {"coordinateTransformations", ct}});
  }
  std::string method;
  switch (o.algorithm) {
    case Algorithm::kMean:
      method = "2x2x2 mean of existing voxels, rounded half to even, each level from the previous";
      break;
    case Algorithm::kNearest: method = "2x2x2 nearest: voxel at (2z, 2y, 2x), each level from the previous"; break;
    case Algorithm::kMax: method = "2x2x2 max of existing voxels, each level from the previous"; break;
    case Algorithm::kMin: method = "2x2x2 min of existing voxels, each level from the previous"; break;
    case Algorithm::kMode:
      method = "2x2x2 mode of existing voxels (most frequent; ties to the smallest), each level from the previous";
      break;
    case Algorithm::kGaussian:
      method =
          "gaussian: separable 6-tap filter, sigma 1 voxel, centred on the 2x2x2 block, half-sample symmetric edges, "
          "then 2x subsampling, each level from the previous";
      break;
  }
  json meta = {
      {"method", method},
      {"version", std::string("omezarrfs ") + OMEZARRFS_VERSION},
      {"source", source},
      {"options",
       {{"chunk", o.chunk},
        {"levels", o.levels},
        {"algorithm", std::string(AlgorithmName(o.algorithm))},
        {"window_zyx", {SliceJson(o.window[0]), SliceJson(o.window[1]), SliceJson(o.window[2])}},
        {"shift_zyx", {o.shift[0], o.shift[1], o.shift[2]}},
        {"bytes", o.bytes1 ? 1 : 2}}},
  };
  if (o.out_dtype) meta["options"]["dtype"] = std::string(DTypeName(*o.out_dtype));
  if (o.range_given) {
    meta["options"]["range"] = {o.range_lo, o.range_hi};
    if (o.range_auto) meta["options"]["range_auto"] = "0.5th and 99.5th percentiles of a sample (see README)";
  }
  return json{
      {"name", "/"},      {"axes", axes}, {"datasets", datasets}, {"type", std::string(AlgorithmName(o.algorithm))},
      {"metadata", meta},
  };
}

json OmeroJson(DType served, const Options& o) {
  const bool plain = served == DType::kUint8 || served == DType::kUint16;
  if (plain && !o.out_dtype && !o.range_given) return nullptr;
  double tmin = 0, tmax = 0;
  switch (served) {
    case DType::kUint8: tmax = 255; break;
    case DType::kUint16: tmax = 65535; break;
    case DType::kUint32: tmax = 4294967295.0; break;
    case DType::kUint64: tmax = 18446744073709551615.0; break;
    case DType::kInt16: tmin = -32768, tmax = 32767; break;
    case DType::kFloat32:
      tmin = -std::numeric_limits<float>::max();
      tmax = std::numeric_limits<float>::max();
      break;
  }
  double start = tmin, end = tmax;
  if (o.range_given && !o.out_dtype) start = o.range_lo, end = o.range_hi;
  json window = {{"start", start}, {"end", end}, {"min", tmin}, {"max", tmax}};
  json channel = {{"label", "0"},       {"color", "FFFFFF"}, {"active", true},  {"coefficient", 1},
                  {"family", "linear"}, {"inverted", false}, {"window", window}};
  return json{{"channels", json::array({channel})}, {"rdefs", {{"model", "greyscale"}}}};
}

}  // namespace oz
