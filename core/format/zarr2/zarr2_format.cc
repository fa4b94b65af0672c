// zarr v2 documents. Output is pretty-printed with a trailing newline (as zarr-python writes).
// These bytes are pinned by tests/golden (the tree must not change across refactors).
#include "core/format/zarr2/zarr2_format.h"

#include "core/format/ome/labels.h"
#include "core/format/ome/multiscales.h"
#include "core/format/zarr_tree.h"

namespace oz {

using nlohmann::json;

namespace {

ChunkBytes Doc(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

}  // namespace

std::string ZgroupJson() { return json{{"zarr_format", 2}}.dump(4) + "\n"; }

std::string ZarrayJson(const Vec3& shape, int64_t chunk, DType dtype, const json& compressor) {
  json j = {
      {"zarr_format", 2},
      {"shape", {shape[0], shape[1], shape[2]}},
      {"chunks", {chunk, chunk, chunk}},
      {"dtype", std::string(ZarrDTypeString(dtype))},
      {"compressor", compressor},
      {"fill_value", 0},
      {"order", "C"},
      {"filters", nullptr},
      {"dimension_separator", "/"},
  };
  return j.dump(4) + "\n";
}

std::string ZattrsJson(const Pyramid& pyramid, const Options& o, const std::string& source, DType served) {
  json ms = MultiscaleJson(pyramid, o, source);
  ms["version"] = "0.4";
  json doc = {{"multiscales", json::array({ms})}};
  if (json omero = OmeroJson(served, o); !omero.is_null()) doc["omero"] = std::move(omero);
  return doc.dump(4) + "\n";
}

Status PrepareZarr2(Options* options, DType) {
  if (options->compression == Compression::kJpeg)
    return InvalidArgumentError(
        "compression=jpeg: zarr v2 (format=ome-zarr-0.4) has no jpeg codec; use format=precomputed for jpeg chunks, "
        "or compression=blosc, gzip, zlib or zstd (lossless)");
  if (options->shard > 1)
    return InvalidArgumentError("shard=" + std::to_string(options->shard) +
                                ": zarr v2 (format=ome-zarr-0.4) has no sharding; use format=ome-zarr-0.5 with "
                                "shard=N, or drop shard=");
  options->shard = 1;
  return OkStatus();
}

namespace {

ZarrLayout Zarr2Layout(ChunkEngine* engine, std::string zattrs) {
  const Pyramid& p = engine->pyramid();
  ZarrLayout l;
  l.root_docs = {{".zgroup", Doc(ZgroupJson())}, {".zattrs", Doc(std::move(zattrs))}};
  l.array_doc_name = ".zarray";
  for (int level = 0; level < p.levels(); ++level)
    l.array_docs.push_back(
        Doc(ZarrayJson(p.shape(level), p.chunk(), engine->dtype(), engine->codec().CompressorJson())));
  return l;
}

}  // namespace

std::unique_ptr<FormatTree> MakeZarr2Tree(ChunkEngine* engine, const std::string& source) {
  return std::make_unique<ZarrTree>(
      engine, Zarr2Layout(engine, ZattrsJson(engine->pyramid(), engine->options(), source, engine->dtype())));
}

Status PrepareZarr2Labels(Options* options, DType ids) { return PrepareZarr2(options, ids); }

std::unique_ptr<FormatTree> MakeZarr2LabelTree(ChunkEngine* engine, const std::string& name,
                                               const std::string& source) {
  json ms = MultiscaleJson(engine->pyramid(), engine->options(), source);
  ms["name"] = name;
  ms["version"] = "0.4";
  const json doc = {{"multiscales", json::array({ms})}, {"image-label", ImageLabelJson("0.4")}};
  ZarrLayout l = Zarr2Layout(engine, doc.dump(4) + "\n");
  l.always_group = true;
  l.tag = "label";
  return std::make_unique<ZarrTree>(engine, std::move(l));
}

std::vector<std::pair<std::string, std::string>> Zarr2LabelsGroupDocs(const std::vector<std::string>& names) {
  return {{".zgroup", ZgroupJson()}, {".zattrs", LabelsListJson(names).dump(4) + "\n"}};
}

}  // namespace oz
