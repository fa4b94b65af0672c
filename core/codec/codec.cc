// Chunk codecs. Blosc runs through its context API with one internal thread: thread-safe and
// deterministic, and parallelism comes from encoding many chunks at once.
#include "core/codec/codec.h"

#include <blosc.h>
#include <zstd.h>

#include <cstring>

#include "core/codec/zarr_codec.h"

namespace oz {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "chunk encoding assumes a little-endian host");

Result<ChunkCodec> ChunkCodec::Make(const Options& options, DType dtype) {
  if (options.compression == Compression::kJpeg)
    return InvalidArgumentError("compression=jpeg is an encoding of format=precomputed only, not a chunk codec");
  ChunkCodec c;
  c.compression_ = options.compression;
  c.typesize_ = DTypeSize(dtype);
  if (c.compression_ == Compression::kBlosc) {
    c.cname_ = options.blosc_cname;
    c.clevel_ = options.blosc_clevel;
    c.shuffle_ = options.blosc_shuffle;
    if (blosc_compname_to_compcode(c.cname_.c_str()) < 0)
      return InvalidArgumentError("blosc_cname=" + c.cname_ +
                                  " is not available; this build of c-blosc has: " + blosc_list_compressors());
    if (c.clevel_ < 0 || c.clevel_ > 9)
      return InvalidArgumentError("blosc_clevel must be 0..9, got " + std::to_string(c.clevel_));
    if (c.shuffle_ < 0 || c.shuffle_ > 2)
      return InvalidArgumentError("blosc_shuffle must be 0, 1 or 2, got " + std::to_string(c.shuffle_));
  }
  if (c.compression_ == Compression::kZlib || c.compression_ == Compression::kGzip) {
    c.zlib_level_ = options.zlib_level;
    if (c.zlib_level_ < 0 || c.zlib_level_ > 9)
      return InvalidArgumentError("zlib_level must be 0..9, got " + std::to_string(c.zlib_level_));
  }
  if (c.compression_ == Compression::kZstd) {
    c.zstd_level_ = options.zstd_level;
    if (c.zstd_level_ < 1 || c.zstd_level_ > ZSTD_maxCLevel())
      return InvalidArgumentError("zstd_level must be 1.." + std::to_string(ZSTD_maxCLevel()) + ", got " +
                                  std::to_string(c.zstd_level_));
  }
  return c;
}

Result<std::string> ChunkCodec::Encode(const void* voxels, size_t nbytes) const {
  if (compression_ == Compression::kNone) return std::string(static_cast<const char*>(voxels), nbytes);
  if (compression_ == Compression::kZlib || compression_ == Compression::kGzip)
    return ZlibEncode(voxels, nbytes, zlib_level_, compression_ == Compression::kGzip);
  if (compression_ == Compression::kZstd) return ZstdEncode(voxels, nbytes, zstd_level_);
  std::string out(nbytes + BLOSC_MAX_OVERHEAD, '\0');
  int n = blosc_compress_ctx(clevel_, shuffle_, typesize_, nbytes, voxels, out.data(), out.size(), cname_.c_str(),
                             /*blocksize=*/0, /*numinternalthreads=*/1);
  if (n <= 0) return InternalError("blosc compression failed (" + std::to_string(n) + ")");
  out.resize(static_cast<size_t>(n));
  return out;
}

Status ChunkCodec::Decode(std::string_view encoded, void* out, size_t nbytes) const {
  if (compression_ == Compression::kNone) {
    if (encoded.size() != nbytes)
      return CorruptError("raw chunk has " + std::to_string(encoded.size()) + " bytes, expected " +
                          std::to_string(nbytes));
    std::memcpy(out, encoded.data(), nbytes);
    return OkStatus();
  }
  if (compression_ == Compression::kZlib || compression_ == Compression::kGzip)
    return ZlibDecode(encoded, out, nbytes, compression_ == Compression::kGzip);
  if (compression_ == Compression::kZstd) return ZstdDecode(encoded, out, nbytes);
  return BloscDecode(encoded, out, nbytes);
}

nlohmann::json ChunkCodec::CompressorJson() const {
  if (compression_ == Compression::kNone) return nullptr;
  if (compression_ == Compression::kZlib) return {{"id", "zlib"}, {"level", zlib_level_}};
  if (compression_ == Compression::kGzip) return {{"id", "gzip"}, {"level", zlib_level_}};
  if (compression_ == Compression::kZstd) return {{"id", "zstd"}, {"level", zstd_level_}};
  return {{"id", "blosc"}, {"cname", cname_}, {"clevel", clevel_}, {"shuffle", shuffle_}, {"blocksize", 0}};
}

std::string ChunkCodec::CacheTag() const {
  if (compression_ == Compression::kNone) return "raw";
  if (compression_ == Compression::kZlib || compression_ == Compression::kGzip)
    return std::string(CompressionName(compression_)) + ":" + std::to_string(zlib_level_);
  if (compression_ == Compression::kZstd) return "zstd:" + std::to_string(zstd_level_);
  return "blosc:" + cname_ + ":" + std::to_string(clevel_) + ":" + std::to_string(shuffle_);
}

}  // namespace oz
