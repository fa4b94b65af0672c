// Chunk codecs: how a chunk's voxels become the bytes of a zarr v2 chunk file, and back.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/base/dtype.h"
#include "core/base/options.h"
#include "core/base/status.h"

namespace oz {

class ChunkCodec {
 public:
  // Errors: kInvalidArgument for an unknown blosc cname (naming the compiled-in ones) or a level
  // or shuffle out of range, or a zlib/gzip/zstd level out of range.
  static Result<ChunkCodec> Make(const Options& options, DType dtype);

  // Encodes a full chunk (dense, native endianness) into zarr v2 chunk bytes (little-endian
  // voxels; raw, blosc, zlib or gzip). Deterministic: same input and options give the same bytes.
  Result<std::string> Encode(const void* voxels, size_t nbytes) const;
  // Decodes chunk bytes produced by Encode (or by any zarr writer with the same codec) into
  // exactly `nbytes` bytes. Errors: kCorrupt when the data is malformed or the size differs.
  Status Decode(std::string_view encoded, void* out, size_t nbytes) const;

  // The .zarray "compressor" value (null, or the numcodecs config of blosc, zlib or gzip).
  nlohmann::json CompressorJson() const;
  // True for uncompressed chunks (file bytes are the voxels).
  bool raw() const { return compression_ == Compression::kNone; }
  // Identifies the encoding for cache keys ("raw", "blosc:lz4:5:1", "zlib:1", "gzip:1").
  std::string CacheTag() const;

  // The parameters, for formats that describe the codec in their own metadata.
  Compression compression() const { return compression_; }
  const std::string& blosc_cname() const { return cname_; }
  int blosc_clevel() const { return clevel_; }
  int blosc_shuffle() const { return shuffle_; }
  size_t typesize() const { return typesize_; }
  int zlib_level() const { return zlib_level_; }
  int zstd_level() const { return zstd_level_; }

 private:
  Compression compression_ = Compression::kNone;
  std::string cname_;
  int clevel_ = 5;
  int shuffle_ = 1;
  size_t typesize_ = 1;
  int zlib_level_ = 1;
  int zstd_level_ = 3;
};

}  // namespace oz
