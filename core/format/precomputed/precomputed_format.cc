// The info document, the option checks and the engine codec of format=precomputed.
#include "core/format/precomputed/precomputed_format.h"

#include <cmath>
#include <cstdio>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/format/ome/multiscales.h"
#include "core/format/precomputed/precomputed_tree.h"

namespace oz {

using nlohmann::json;

namespace {

// The OME-NGFF space units (UDUNITS-2 names, as unit= accepts them), in nanometres.
constexpr std::pair<std::string_view, double> kUnitNm[] = {
    {"angstrom", 0.1},     {"attometer", 1e-9},   {"centimeter", 1e7},
    {"decimeter", 1e8},    {"exameter", 1e27},    {"femtometer", 1e-6},
    {"foot", 3.048e8},     {"gigameter", 1e18},   {"hectometer", 1e11},
    {"inch", 2.54e7},      {"kilometer", 1e12},   {"megameter", 1e15},
    {"meter", 1e9},        {"micrometer", 1e3},   {"mile", 1.609344e12},
    {"millimeter", 1e6},   {"nanometer", 1},      {"parsec", 3.0856775814913673e25},
    {"petameter", 1e24},   {"picometer", 1e-3},   {"terameter", 1e21},
    {"yard", 9.144e8},     {"yoctometer", 1e-15}, {"yottameter", 1e33},
    {"zeptometer", 1e-12}, {"zettameter", 1e30},
};

// 12 significant digits, so that 7.91 um is 7910 nm and not 7910.000000000001.
double Round12(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return std::strtod(buf, nullptr);
}

std::string EncodingName(Compression c) { return c == Compression::kJpeg ? "jpeg" : "raw"; }

}  // namespace

double NanometresPerUnit(std::string_view unit) {
  if (unit.empty()) return 1;
  for (const auto& [name, nm] : kUnitNm)
    if (name == unit) return nm;
  return 0;
}

namespace {

json InfoJson(const Pyramid& p, DType dtype, const Options& o, const std::string& source) {
  const double nm = NanometresPerUnit(o.unit);
  json scales = json::array();
  for (int l = 0; l < p.levels(); ++l) {
    const Vec3 s = p.shape(l);
    const double f = static_cast<double>(int64_t{1} << l);
    const int64_t c = p.chunk();
    scales.push_back({
        {"key", std::to_string(l)},
        {"size", {s[2], s[1], s[0]}},
        {"resolution",
         {Round12(o.voxel_size[2] * nm * f), Round12(o.voxel_size[1] * nm * f), Round12(o.voxel_size[0] * nm * f)}},
        {"voxel_offset", {0, 0, 0}},
        {"chunk_sizes", {{c, c, c}}},
        {"encoding", EncodingName(o.compression)},
    });
  }
  // What made the tree (as OME-Zarr's multiscales "metadata"), and how its files are encoded.
  json meta = MultiscaleJson(p, o, source)["metadata"];
  meta["options"]["compression"] = std::string(CompressionName(o.compression));
  if (o.compression == Compression::kGzip) {
    meta["options"]["zlib_level"] = o.zlib_level;
    meta["content_encoding"] = "gzip";
  }
  if (o.compression == Compression::kJpeg) meta["options"]["jpeg_quality"] = o.jpeg_quality;
  meta["options"]["empty"] = o.empty == EmptyPolicy::kKeep ? "keep" : "omit";
  meta["options"]["voxel_size_zyx"] = {o.voxel_size[0], o.voxel_size[1], o.voxel_size[2]};
  meta["options"]["unit"] = o.unit.empty() ? "nanometer (none given)" : o.unit;
  json info = {
      {"@type", "neuroglancer_multiscale_volume"},
      {"type", "image"},
      {"data_type", std::string(DTypeName(dtype))},
      {"num_channels", 1},
      {"scales", scales},
      {"omezarrfs", meta},
  };
  return info;
}

}  // namespace

std::string PrecomputedInfoJson(const Pyramid& p, DType dtype, const Options& o, const std::string& source) {
  return InfoJson(p, dtype, o, source).dump(2) + "\n";
}

Status PreparePrecomputed(Options* o, DType served) {
  if (o->shard > 1)
    return InvalidArgumentError("shard=" + std::to_string(o->shard) +
                                ": the sharded precomputed layout (neuroglancer_uint64_sharded_v1) is not "
                                "implemented, every chunk is its own file; drop shard= (format=ome-zarr-0.5 has "
                                "sharding)");
  o->shard = 1;
  // Neuroglancer's precomputed data types: uint8, uint16, uint32, uint64, float32 (no int16).
  if (served == DType::kInt16)
    return InvalidArgumentError(
        "format=precomputed has no int16 data type (Neuroglancer reads uint8, uint16, uint32, uint64 and float32); "
        "map the values with dtype=uint16,range=LO:HI (or range=auto), or use format=ome-zarr-0.4 or 0.5");
  // A zarr source's compressor (a default, not a choice) has no precomputed encoding in general.
  if (!o->given.compression) o->compression = Compression::kNone;
  switch (o->compression) {
    case Compression::kNone:
    case Compression::kGzip: break;
    case Compression::kJpeg:
      if (served != DType::kUint8)
        return InvalidArgumentError(
            "compression=jpeg: JPEG chunks hold 8-bit data and this view is " + std::string(DTypeName(served)) +
            "; add dtype=uint8,range=LO:HI (or range=auto; for uint16 also bytes=1, value / 256), or use "
            "compression=none or gzip");
      if (o->jpeg_quality < 1 || o->jpeg_quality > 100)
        return InvalidArgumentError("jpeg_quality=" + std::to_string(o->jpeg_quality) + ": expected 1 to 100");
      if (o->chunk > kMaxJpegChunk && !o->given.chunk) o->chunk = 128;  // a zarr source's chunk edge
      if (o->chunk > kMaxJpegChunk)
        return InvalidArgumentError("chunk=" + std::to_string(o->chunk) +
                                    " with compression=jpeg: a chunk is one JPEG image chunk wide and chunk*chunk "
                                    "high, and JPEG allows at most 65500 pixels a side; use chunk=" +
                                    std::to_string(kMaxJpegChunk) + " or less (64 or 128 are usual)");
      break;
    case Compression::kBlosc:
    case Compression::kZlib:
    case Compression::kZstd:
      return InvalidArgumentError("compression=" + std::string(CompressionName(o->compression)) +
                                  ": Neuroglancer precomputed (format=precomputed) has no " +
                                  std::string(CompressionName(o->compression)) +
                                  " encoding; use compression=none (raw), gzip (raw, served with "
                                  "Content-Encoding: gzip) or jpeg (uint8, lossy)");
  }
  if (NanometresPerUnit(o->unit) == 0)
    return InvalidArgumentError("unit=" + o->unit + ": not an OME-NGFF space unit (precomputed needs nanometres)");
  if (!o->given.empty) o->empty = EmptyPolicy::kKeep;
  return OkStatus();
}

Options PrecomputedCodecOptions(const Options& options) {
  Options c = options;
  if (c.compression == Compression::kJpeg) c.compression = Compression::kNone;  // lossless under the JPEG
  return c;
}

std::unique_ptr<FormatTree> MakePrecomputedTree(ChunkEngine* engine, const std::string& source) {
  const Options& o = engine->options();
  PrecomputedEncoding enc = o.compression == Compression::kJpeg   ? PrecomputedEncoding::kJpeg
                            : o.compression == Compression::kGzip ? PrecomputedEncoding::kGzip
                                                                  : PrecomputedEncoding::kRaw;
  return std::make_unique<PrecomputedTree>(engine, enc, o.jpeg_quality,
                                           PrecomputedInfoJson(engine->pyramid(), engine->dtype(), o, source));
}

}  // namespace oz

namespace oz {

Status PreparePrecomputedLabels(Options* o, DType ids) {
  if (DTypeIsSigned(ids))
    return InvalidArgumentError("the label ids are " + std::string(DTypeName(ids)) +
                                ": Neuroglancer segmentation ids are unsigned (uint32 or uint64); give a label "
                                "volume of uint8, uint16, uint32 or uint64, or use format=ome-zarr-0.4 or 0.5");
  if (o->chunk > 128)
    return InvalidArgumentError("chunk=" + std::to_string(o->chunk) +
                                " with labels= and format=precomputed: compressed_segmentation addresses a chunk's "
                                "lookup tables with 24-bit offsets, which chunks above 128 can overflow; use "
                                "chunk=128 or less (64 is usual)");
  o->shard = 1;
  o->compression = Compression::kNone;  // the engine's chunks are raw; the files are re-encoded
  if (!o->given.empty) o->empty = EmptyPolicy::kKeep;
  return OkStatus();
}

std::unique_ptr<FormatTree> MakePrecomputedLabelTree(ChunkEngine* engine, const std::string& name,
                                                     const std::string& source) {
  const Options& o = engine->options();
  json info = InfoJson(engine->pyramid(), engine->dtype(), o, source);
  info["type"] = "segmentation";
  info["data_type"] = engine->dtype() == DType::kUint64 ? "uint64" : "uint32";
  for (json& scale : info["scales"]) {
    scale["encoding"] = "compressed_segmentation";
    scale["compressed_segmentation_block_size"] = {kSegmentationBlock, kSegmentationBlock, kSegmentationBlock};
  }
  json& meta = info["omezarrfs"];
  meta["options"]["compression"] = "compressed_segmentation";
  meta["label"] = {{"name", name}, {"ids", std::string(DTypeName(engine->dtype()))}};
  if (engine->dtype() != DType::kUint64 && engine->dtype() != DType::kUint32)
    meta["label"]["widened"] = std::string(DTypeName(engine->dtype())) + " ids served as uint32, values unchanged";
  return std::make_unique<PrecomputedTree>(engine, PrecomputedEncoding::kCompressedSegmentation, o.jpeg_quality,
                                           info.dump(2) + "\n");
}

}  // namespace oz
