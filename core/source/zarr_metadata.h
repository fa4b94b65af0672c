// Zarr v2 metadata of a source: .zarray (an array) and the OME-Zarr multiscales of .zattrs (a
// group), parsed strictly. Everything a hostile store could put in these files is checked here,
// before any chunk is read: every error names the file, the field and what is accepted.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/base/dtype.h"
#include "core/base/geometry.h"
#include "core/base/status.h"
#include "core/codec/zarr_codec.h"

namespace oz {

// Metadata files (.zarray, .zattrs, .zgroup) larger than this are refused unread.
constexpr uint64_t kMaxMetadataBytes = 16ull << 20;
// Largest decoded chunk accepted (one chunk is decoded into memory at a time per reader).
constexpr uint64_t kMaxChunkBytes = 1ull << 30;
// Largest extent per axis (2^40 voxels: far beyond any scanned volume, far from overflow).
constexpr int64_t kMaxExtent = int64_t{1} << 40;

struct ZarrArrayMetadata {
  // As in the file (rank n).
  std::vector<int64_t> shape;
  std::vector<int64_t> chunks;
  std::string dtype_text;  // "|u1", "<u2", ">f4", ...
  DType dtype = DType::kUint8;
  bool big_endian = false;     // ">u2", ">f4", ...: chunks hold big-endian voxels
  bool fortran_order = false;  // order "F": within a chunk the first axis varies fastest
  // fill_value as one voxel's native-endian bytes (first DTypeSize(dtype) bytes); null -> 0.
  std::array<uint8_t, 8> fill_bytes{};
  ZarrCompressor compressor;
  char separator = '.';  // dimension_separator
  // Unknown members are not kept: the raw .zarray bytes (kept by ZarrVolume for its
  // fingerprint) are the round-trippable form.

  // The served 3-D view (z, y, x): the last three axes. Leading axes must have extent 1 (as an
  // OME-Zarr t, c), so their chunk index is always 0; a 2-D array (y, x) is one slice, z = 1.
  Vec3 shape3{0, 0, 0};
  Vec3 chunks3{0, 0, 0};

  // Bytes of one decoded chunk: product of `chunks` times the item size.
  uint64_t chunk_bytes() const;
  // The chunk's key relative to the array ("3.1.2" or "3/1/2"; with leading axes "0.0.3.1.2";
  // for a 2-D array "1.2"). idx is the 3-D chunk index.
  std::string ChunkKey(const Vec3& idx) const;
  // "shape (z, y, x) ... " one-line summary for Describe: shape, dtype, chunks, compressor.
  std::string Summary() const;
};

// Parses the bytes of a .zarray. `where` names the file in messages (a path or URL).
// Accepted: zarr_format 2; shape and chunks arrays of equal rank 2..32 of integers (shape
// 1..2^40 per axis, leading axes beyond three of extent 1; chunks >= 1; a decoded chunk at most
// 1 GiB); dtype |u1, <u2, <i2, <u4, <u8, <f4 (also big-endian >..., and <u1, >u1); order "C" or
// "F"; fill_value null, an integer in the dtype's range, or for <f4 a number, "NaN", "Infinity"
// or "-Infinity"; compressor null, blosc (a cname this c-blosc has; clevel 0..9; shuffle
// -1..2), zlib or gzip (level -1..9); filters null or []; dimension_separator absent, null, "."
// or "/".
// Errors: kInvalidArgument (malformed, hostile or out of range: names the field and the value),
// kUnsupported (a valid zarr feature omezarrfs does not read: names the dtype, codec id or
// filter id).
Result<ZarrArrayMetadata> ParseZarray(std::string_view bytes, const std::string& where);

// The dataset paths of the first multiscale in a .zattrs (OME-NGFF 0.4 "multiscales", as
// written by zarr_to_ome), in order: datasets[0] is full resolution. Every path passes
// ValidateKey (no "..", no absolute paths).
// Errors: kInvalidArgument naming the file and the member (bad JSON, no multiscales, no
// datasets, a path that is not a safe relative key).
Result<std::vector<std::string>> ParseMultiscalesPaths(std::string_view bytes, const std::string& where);

// A JSON value for an error message, shortened to 120 characters and 8 members per level; never
// recurses deeper than two levels (json::dump would recurse once per nesting level of a hostile
// document and could exhaust the stack). Shared by the zarr v2 and v3 metadata parsers.
std::string ShortJson(const nlohmann::json& v, int depth = 0);

}  // namespace oz
