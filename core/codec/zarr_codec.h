// Zarr v2 compressors (numcodecs ids "blosc", "zlib", "gzip") as bounded decoders and the zlib /
// gzip encoders. Every decoder writes into a caller buffer of the chunk's exact size and fails
// when the data would decode to more or fewer bytes, so a hostile chunk can never make a decoder
// allocate or write past the chunk.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace oz {

enum class ZarrCompressorId { kNone, kBlosc, kZlib, kGzip };

// The .zarray "compressor" member, parsed (see ParseZarray). Only the fields of its id are set.
struct ZarrCompressor {
  ZarrCompressorId id = ZarrCompressorId::kNone;
  std::string cname;  // blosc: blosclz, lz4, lz4hc, snappy, zlib, zstd
  int clevel = 5;     // blosc: 0..9
  int shuffle = 1;    // blosc: -1 auto (bit for 1-byte items, else byte), 0 none, 1 byte, 2 bit
  int blocksize = 0;  // blosc: 0 = automatic
  int level = 1;      // zlib / gzip: 0..9 (-1 = zlib's default)
};

// "null", "blosc(lz4, clevel 5, shuffle 1)", "zlib(level 1)", ...
std::string ZarrCompressorText(const ZarrCompressor& c);

// Decodes `in` into exactly `nbytes` bytes at `out`. Errors: kCorrupt ("..." names what is
// wrong; the caller adds the key) when the data is malformed, truncated, or decodes to a size
// other than nbytes. Thread-safe (no shared state; blosc via its context API, one thread).
Status DecodeZarrChunk(const ZarrCompressor& c, std::string_view in, void* out, size_t nbytes);

// Blosc: the header is validated (blosc_cbuffer_validate) and its sizes checked against nbytes
// and in.size() before anything is decompressed.
Status BloscDecode(std::string_view in, void* out, size_t nbytes);
// zlib (RFC 1950) or, with gzip, gzip (RFC 1952; concatenated members are one stream, as
// Python's gzip module reads them).
Status ZlibDecode(std::string_view in, void* out, size_t nbytes, bool gzip);
// zlib / gzip encoding as numcodecs Zlib / GZip write it (gzip with mtime 0, so the output is
// deterministic). level 0..9. Errors: kInternal from zlib.
Result<std::string> ZlibEncode(const void* in, size_t nbytes, int level, bool gzip);
// zstd (one or more frames; as numcodecs Zstd and the zarr v3 zstd codec write it, content size
// in the frame header, no checksum). Decoding stops at nbytes: more output is kCorrupt.
Status ZstdDecode(std::string_view in, void* out, size_t nbytes);
// level 1..22. Deterministic. Errors: kInternal from zstd.
Result<std::string> ZstdEncode(const void* in, size_t nbytes, int level);

}  // namespace oz
