// Zarr v2 compressors. zlib and blosc both take 32-bit lengths in places, so streams are fed in
// pieces of at most 1 GiB; chunks themselves are far smaller (see kMaxChunkBytes in
// zarr_metadata.h).
#include "core/codec/zarr_codec.h"

#include <blosc.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace oz {
namespace {

constexpr size_t kPiece = size_t{1} << 30;

std::string N(uint64_t v) { return std::to_string(v); }

class Inflater {
 public:
  explicit Inflater(bool gzip) { status_ = inflateInit2(&s_, gzip ? 16 + MAX_WBITS : MAX_WBITS); }
  ~Inflater() {
    if (status_ == Z_OK) inflateEnd(&s_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  bool ok() const { return status_ == Z_OK; }
  z_stream* get() { return &s_; }

 private:
  z_stream s_{};
  int status_ = Z_STREAM_ERROR;
};

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

}  // namespace

std::string ZarrCompressorText(const ZarrCompressor& c) {
  switch (c.id) {
    case ZarrCompressorId::kNone: return "null";
    case ZarrCompressorId::kBlosc:
      return "blosc(" + c.cname + ", clevel " + std::to_string(c.clevel) + ", shuffle " + std::to_string(c.shuffle) +
             ")";
    case ZarrCompressorId::kZlib: return "zlib(level " + std::to_string(c.level) + ")";
    case ZarrCompressorId::kGzip: return "gzip(level " + std::to_string(c.level) + ")";
  }
  return "?";
}

Status BloscDecode(std::string_view in, void* out, size_t nbytes) {
  if (in.size() < BLOSC_MIN_HEADER_LENGTH)
    return CorruptError("blosc data has " + N(in.size()) + " bytes, less than a blosc header (" +
                        N(BLOSC_MIN_HEADER_LENGTH) + ")");
  size_t nb = 0, cb = 0, bs = 0;
  if (blosc_cbuffer_validate(in.data(), in.size(), &nb) != 0)
    return CorruptError("blosc header is invalid (claims " + N(nb) + " bytes from " + N(in.size()) + " bytes of data)");
  if (nb != nbytes)
    return CorruptError("blosc header says the chunk decodes to " + N(nb) + " bytes, expected " + N(nbytes));
  blosc_cbuffer_sizes(in.data(), &nb, &cb, &bs);
  if (cb != in.size())
    return CorruptError("blosc header says the data has " + N(cb) + " bytes, but it has " + N(in.size()));
  const int n = blosc_decompress_ctx(in.data(), out, nbytes, /*numinternalthreads=*/1);
  if (n < 0 || static_cast<size_t>(n) != nbytes) {
    const char* lib = blosc_cbuffer_complib(in.data());
    return CorruptError("blosc decompression failed (code " + std::to_string(n) + ", codec library " +
                        (lib ? lib : "unknown") + "; this c-blosc has " + blosc_list_compressors() + ")");
  }
  return OkStatus();
}

Status ZlibDecode(std::string_view in, void* out, size_t nbytes, bool gzip) {
  const std::string what = gzip ? "gzip" : "zlib";
  Inflater inf(gzip);
  if (!inf.ok()) return ResourceExhaustedError("cannot start " + what + " decompression (out of memory)");
  z_stream* s = inf.get();
  const auto* in_base = reinterpret_cast<const Bytef*>(in.data());
  auto* out_base = static_cast<Bytef*>(out);
  Bytef extra[64];  // receives output beyond nbytes, which proves the chunk too long
  bool overflow = false;
  s->next_in = const_cast<Bytef*>(in_base);
  s->next_out = out_base;
  for (;;) {
    const size_t in_pos = static_cast<size_t>(s->next_in - in_base);
    if (s->avail_in == 0) s->avail_in = static_cast<uInt>(std::min(kPiece, in.size() - in_pos));
    if (s->avail_out == 0) {
      const size_t out_pos = static_cast<size_t>(s->next_out - out_base);
      if (!overflow && out_pos < nbytes) {
        s->avail_out = static_cast<uInt>(std::min(kPiece, nbytes - out_pos));
      } else {
        overflow = true;
        s->next_out = extra;
        s->avail_out = sizeof extra;
      }
    }
    const int r = inflate(s, Z_NO_FLUSH);
    if (overflow && s->avail_out < sizeof extra)
      return CorruptError(what + " data decodes to more than the chunk's " + N(nbytes) + " bytes");
    if (r == Z_STREAM_END) {
      const size_t used = static_cast<size_t>(s->next_in - in_base);
      const size_t rest = in.size() - used;
      if (rest == 0) break;
      if (gzip && AllZero(in_base + used, rest)) break;  // zero padding, as Python's gzip allows
      if (!gzip) return CorruptError("zlib data has " + N(rest) + " bytes after the end of the stream");
      if (inflateReset(s) != Z_OK) return InternalError("gzip: inflateReset failed");
      s->avail_in = 0;  // re-derived from next_in at the top of the loop
      continue;         // next gzip member
    }
    if (r == Z_OK) continue;
    if (r == Z_BUF_ERROR) {
      if (s->avail_in == 0 && static_cast<size_t>(s->next_in - in_base) == in.size())
        return CorruptError(what + " data is truncated (the stream ends after " + N(in.size()) + " bytes)");
      if (s->avail_out == 0) continue;
      return CorruptError(what + " data is invalid (no progress)");
    }
    if (r == Z_MEM_ERROR) return ResourceExhaustedError(what + " decompression ran out of memory");
    return CorruptError(what + " data is invalid (" + (s->msg ? s->msg : "zlib error " + std::to_string(r)) + ")");
  }
  const size_t produced = overflow ? nbytes : static_cast<size_t>(s->next_out - out_base);
  if (produced != nbytes)
    return CorruptError(what + " data decodes to " + N(produced) + " bytes, expected " + N(nbytes));
  return OkStatus();
}

Result<std::string> ZlibEncode(const void* in, size_t nbytes, int level, bool gzip) {
  z_stream s{};
  if (deflateInit2(&s, level, Z_DEFLATED, gzip ? 16 + MAX_WBITS : MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return InternalError("cannot start zlib compression (level " + std::to_string(level) + ")");
  std::string out(deflateBound(&s, static_cast<uLong>(nbytes)), '\0');
  s.next_in = static_cast<Bytef*>(const_cast<void*>(in));
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  const auto* in_base = static_cast<const Bytef*>(in);
  int r = Z_OK;
  while (r == Z_OK) {
    const size_t in_pos = static_cast<size_t>(s.next_in - in_base);
    if (s.avail_in == 0) s.avail_in = static_cast<uInt>(std::min(kPiece, nbytes - in_pos));
    const bool last = in_pos + s.avail_in == nbytes;
    const size_t out_pos = static_cast<size_t>(s.next_out - reinterpret_cast<Bytef*>(out.data()));
    s.avail_out = static_cast<uInt>(std::min(kPiece, out.size() - out_pos));
    r = deflate(&s, last ? Z_FINISH : Z_NO_FLUSH);
  }
  const size_t n = static_cast<size_t>(s.next_out - reinterpret_cast<Bytef*>(out.data()));
  deflateEnd(&s);
  if (r != Z_STREAM_END) return InternalError("zlib compression failed (" + std::to_string(r) + ")");
  out.resize(n);
  return out;
}

Status ZstdDecode(std::string_view in, void* out, size_t nbytes) {
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return CorruptError("zstd data has no valid frame header");
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != nbytes)
    return CorruptError("zstd frame declares " + N(declared) + " bytes, expected " + N(nbytes));
  const size_t n = ZSTD_decompress(out, nbytes, in.data(), in.size());
  if (ZSTD_isError(n)) return CorruptError(std::string("zstd data is corrupt (") + ZSTD_getErrorName(n) + ")");
  if (n != nbytes) return CorruptError("zstd data decodes to " + N(n) + " bytes, expected " + N(nbytes));
  return OkStatus();
}

Result<std::string> ZstdEncode(const void* in, size_t nbytes, int level) {
  std::string out(ZSTD_compressBound(nbytes), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), in, nbytes, level);
  if (ZSTD_isError(n)) return InternalError(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Status DecodeZarrChunk(const ZarrCompressor& c, std::string_view in, void* out, size_t nbytes) {
  switch (c.id) {
    case ZarrCompressorId::kNone:
      if (in.size() != nbytes)
        return CorruptError("uncompressed chunk has " + N(in.size()) + " bytes, expected " + N(nbytes));
      std::memcpy(out, in.data(), nbytes);
      return OkStatus();
    case ZarrCompressorId::kBlosc: return BloscDecode(in, out, nbytes);
    case ZarrCompressorId::kZlib: return ZlibDecode(in, out, nbytes, false);
    case ZarrCompressorId::kGzip: return ZlibDecode(in, out, nbytes, true);
  }
  return InternalError("unknown compressor");
}

}  // namespace oz
