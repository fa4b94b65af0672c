// zarr v3 documents, from the zarr v3 core spec (zarr.json, regular chunk grid, default chunk
// key encoding), its codec specs (bytes, blosc, gzip, crc32c, sharding_indexed) and OME-NGFF 0.5.
#include "core/format/zarr3/zarr3_format.h"

#include "core/format/ome/labels.h"
#include "core/format/ome/multiscales.h"
#include "core/format/zarr_tree.h"

namespace oz {

using nlohmann::json;

namespace {

ChunkBytes Doc(const json& j) { return std::make_shared<const std::string>(j.dump(2) + "\n"); }

json BytesCodec() { return {{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}; }

}  // namespace

json Zarr3CodecsJson(const ChunkCodec& codec, int64_t chunk, int64_t shard) {
  json inner = json::array({BytesCodec()});
  switch (codec.compression()) {
    case Compression::kNone: break;
    case Compression::kBlosc: {
      static const char* const kShuffle[] = {"noshuffle", "shuffle", "bitshuffle"};
      inner.push_back({{"name", "blosc"},
                       {"configuration",
                        {{"cname", codec.blosc_cname()},
                         {"clevel", codec.blosc_clevel()},
                         {"shuffle", kShuffle[std::clamp(codec.blosc_shuffle(), 0, 2)]},
                         {"typesize", codec.typesize()},
                         {"blocksize", 0}}}});
      break;
    }
    case Compression::kGzip:
      inner.push_back({{"name", "gzip"}, {"configuration", {{"level", codec.zlib_level()}}}});
      break;
    case Compression::kZstd:
      inner.push_back({{"name", "zstd"}, {"configuration", {{"level", codec.zstd_level()}, {"checksum", false}}}});
      break;
    case Compression::kZlib:
    case Compression::kJpeg: break;  // refused by PrepareZarr3
  }
  if (shard == 1) return inner;
  return json::array({{{"name", "sharding_indexed"},
                       {"configuration",
                        {{"chunk_shape", {chunk, chunk, chunk}},
                         {"codecs", inner},
                         {"index_codecs", json::array({BytesCodec(), {{"name", "crc32c"}}})},
                         {"index_location", "end"}}}}});
}

Status PrepareZarr3(Options* o, DType served) {
  if (o->compression == Compression::kJpeg)
    return InvalidArgumentError(
        "compression=jpeg: zarr v3 (format=ome-zarr-0.5) has no jpeg codec; use format=precomputed for jpeg chunks, "
        "or compression=blosc, gzip or zstd (lossless)");
  if (o->compression == Compression::kZlib)
    return InvalidArgumentError(
        "compression=zlib: zarr v3 (format=ome-zarr-0.5) has no zlib codec; use compression=gzip (the same deflate "
        "stream with a gzip header) or compression=blosc");
  if (o->shard == 0) o->shard = kDefaultZarr3Shard;
  const int n = o->shard;
  if (n > kMaxZarr3Shard || (n & (n - 1)) != 0)
    return InvalidArgumentError("shard=" + std::to_string(n) +
                                ": inner chunks per shard edge must be a power of two from 1 to " +
                                std::to_string(kMaxZarr3Shard) + " (shards then align with the pyramid's 2x steps)");
  if (n > 1 && o->empty == EmptyPolicy::kKeep)
    return InvalidArgumentError(
        "empty=keep: with shard=" + std::to_string(n) +
        " empty inner chunks are always left out of the shard index (readers fill them with 0); drop empty=keep, or "
        "use shard=1 for all-zero chunk files");
  // Materialize holds one shard's compressed inner chunks at a time per shard in progress; a shard
  // must stay well inside the memory budget.
  const uint64_t edge = static_cast<uint64_t>(o->chunk) * static_cast<uint64_t>(n);
  const uint64_t raw = edge * edge * edge * DTypeSize(served);
  if (n > 1 && raw > o->memory / 2)
    return InvalidArgumentError("shard=" + std::to_string(n) + " with chunk=" + std::to_string(o->chunk) +
                                " makes shards of " + std::to_string(raw >> 20) +
                                " MiB uncompressed, more than half of memory=" + std::to_string(o->memory >> 20) +
                                "M; use a smaller shard= or chunk=, or a larger memory=");
  return OkStatus();
}

namespace {

// The tree with root attributes.ome `ome`.
ZarrLayout Zarr3Layout(ChunkEngine* engine, json ome) {
  const Pyramid& p = engine->pyramid();
  const Options& o = engine->options();
  const int64_t n = o.shard;
  ZarrLayout l;
  l.root_docs = {
      {"zarr.json", Doc({{"zarr_format", 3}, {"node_type", "group"}, {"attributes", {{"ome", std::move(ome)}}}})}};
  l.array_doc_name = "zarr.json";
  for (int level = 0; level < p.levels(); ++level) {
    const Vec3 s = p.shape(level);
    const int64_t edge = p.chunk() * n;
    l.array_docs.push_back(
        Doc({{"zarr_format", 3},
             {"node_type", "array"},
             {"shape", {s[0], s[1], s[2]}},
             {"data_type", std::string(DTypeName(engine->dtype()))},
             {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", {edge, edge, edge}}}}}},
             {"chunk_key_encoding", {{"name", "default"}, {"configuration", {{"separator", "/"}}}}},
             {"fill_value", DTypeIsInteger(engine->dtype()) ? json(0) : json(0.0)},
             {"codecs", Zarr3CodecsJson(engine->codec(), p.chunk(), n)},
             {"dimension_names", {"z", "y", "x"}},
             {"attributes", json::object()}}));
  }
  l.key_prefix = "c";
  l.shard = n;
  l.tag = "ome-zarr-0.5:shard=" + std::to_string(n);
  return l;
}

json Zarr3Multiscale(ChunkEngine* engine, const std::string& source) {
  json ms = MultiscaleJson(engine->pyramid(), engine->options(), source);
  ms["metadata"]["options"]["shard"] = engine->options().shard;
  return ms;
}

}  // namespace

std::unique_ptr<FormatTree> MakeZarr3Tree(ChunkEngine* engine, const std::string& source) {
  json ome = {{"version", "0.5"}, {"multiscales", {Zarr3Multiscale(engine, source)}}};
  if (json omero = OmeroJson(engine->dtype(), engine->options()); !omero.is_null()) ome["omero"] = std::move(omero);
  return std::make_unique<ZarrTree>(engine, Zarr3Layout(engine, std::move(ome)));
}

Status PrepareZarr3Labels(Options* options, DType ids) { return PrepareZarr3(options, ids); }

std::unique_ptr<FormatTree> MakeZarr3LabelTree(ChunkEngine* engine, const std::string& name,
                                               const std::string& source) {
  json ms = Zarr3Multiscale(engine, source);
  ms["name"] = name;
  json ome = {{"version", "0.5"}, {"multiscales", {ms}}, {"image-label", ImageLabelJson("")}};
  ZarrLayout l = Zarr3Layout(engine, std::move(ome));
  l.always_group = true;
  l.tag += ":label";
  return std::make_unique<ZarrTree>(engine, std::move(l));
}

std::vector<std::pair<std::string, std::string>> Zarr3LabelsGroupDocs(const std::vector<std::string>& names) {
  json ome = LabelsListJson(names);
  ome["version"] = "0.5";
  const json doc = {{"zarr_format", 3}, {"node_type", "group"}, {"attributes", {{"ome", ome}}}};
  return {{"zarr.json", doc.dump(2) + "\n"}};
}

}  // namespace oz
