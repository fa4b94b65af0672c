// Zarr v3 metadata of a source (zarr.json of an array, or of an OME-Zarr 0.5 group), parsed
// strictly, and the codec chain that turns a stored chunk back into voxels. Everything a hostile
// store could put in zarr.json is checked here before any chunk is read; every error names the
// file, the field and what is accepted, and a refused feature comes with a fix.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/dtype.h"
#include "core/base/geometry.h"
#include "core/base/status.h"
#include "core/codec/zarr_codec.h"

namespace oz {

// Nesting depth of sharding_indexed codecs accepted (a shard of shards of shards).
constexpr int kMaxShardDepth = 3;

enum class Zarr3BytesCodec { kBlosc, kGzip, kZstd, kCrc32c };

struct Zarr3Sharding;

// A codec chain: array -> array codecs (transpose), one array -> bytes codec (bytes, or
// sharding_indexed), then bytes -> bytes codecs (at most one of blosc, gzip, zstd; crc32c
// anywhere), as in the metadata's order (decoding runs it backwards).
struct Zarr3Chain {
  std::vector<std::vector<int>> transposes;  // each a permutation of 0..rank-1
  bool big_endian = false;                   // the bytes codec's endian
  std::shared_ptr<const Zarr3Sharding> sharding;
  std::vector<Zarr3BytesCodec> bytes_codecs;
  // The compressor's parameters (id kBlosc or kGzip; kNone for zstd or no compressor), for
  // the served tree's defaults.
  ZarrCompressor compressor;
  bool zstd = false;
  int zstd_level = 3;

  // "bytes(little) > blosc > crc32c", "sharding_indexed(32x32x32: bytes(little) > zstd)".
  std::string Text() const;
};

struct Zarr3Sharding {
  std::vector<int64_t> chunk_shape;  // inner chunk shape (divides the outer chunk shape)
  Zarr3Chain codecs;                 // of each inner chunk
  bool index_crc32c = true;          // index_codecs bytes + crc32c (else bytes alone)
  bool index_at_end = true;          // index_location "end" (else "start")
};

struct Zarr3ArrayMetadata {
  std::vector<int64_t> shape;   // as in the file (rank n)
  std::vector<int64_t> chunks;  // chunk_grid chunk_shape: the stored objects (shards when sharded)
  std::string data_type;
  DType dtype = DType::kUint8;
  std::array<uint8_t, 8> fill{};  // the fill value's voxel bytes (native), DTypeSize(dtype) used
  bool key_v2 = false;            // chunk_key_encoding v2 (else default)
  char separator = '/';
  Zarr3Chain codecs;
  // The unit read and cached: the outer sharding's inner chunk, or the chunk when unsharded.
  std::vector<int64_t> read_chunk;

  // The served 3-D view (z, y, x): the last three axes, as for zarr v2 (leading axes of extent
  // 1; a 2-D array is one slice).
  Vec3 shape3{0, 0, 0};
  Vec3 chunks3{0, 0, 0};  // of `chunks`
  Vec3 read3{0, 0, 0};    // of `read_chunk`

  // Bytes of one decoded read unit.
  uint64_t read_chunk_bytes() const;
  // The key of the stored chunk (shard) with 3-D index idx ("c/0/3/1" default, "0.3.1" v2; the
  // leading axes' indices are 0).
  std::string ChunkKey(const Vec3& idx) const;
  // "shape 37x50x61, uint16, chunks 16x16x16, codecs bytes(little) > zstd".
  std::string Summary() const;
};

// What a zarr.json is: an array, or a group with the dataset paths of its OME-Zarr 0.5
// attributes.ome.multiscales[0] (empty when it has none).
struct Zarr3Node {
  bool array = false;
  std::vector<std::string> dataset_paths;
};

// Parses a zarr.json's node type (and a group's multiscales paths, each passing ValidateKey).
// Errors: kInvalidArgument naming `where` and the field.
Result<Zarr3Node> ParseZarr3Node(std::string_view bytes, const std::string& where);

// Parses an array's zarr.json. Accepted: zarr_format 3; node_type "array"; shape of rank 2..32
// (extents 1..2^40, axes before the last three of extent 1); data_type uint8, uint16, uint32,
// uint64, int16, float32; chunk_grid "regular"; chunk_key_encoding default ("/" or ".") or v2
// ("." or "/"); fill_value in the type's range (floats also "NaN", "Infinity", "-Infinity" and
// "0x..." bit patterns); the codecs above; storage_transformers absent or empty; unknown
// extension members only with must_understand false. A decoded read unit is at most 1 GiB.
// Errors: kInvalidArgument (malformed or hostile: names the field and value), kUnsupported (a
// valid zarr feature omezarrfs does not read: names it, the array and a fix).
Result<Zarr3ArrayMetadata> ParseZarr3Array(std::string_view bytes, const std::string& where);

// Decodes one stored chunk (or one inner chunk) through `chain` into `out`: the chunk of `shape`
// voxels as a C-order, native-endian array (prod(shape) * DTypeSize(dtype) bytes). A nested
// shard is decoded in memory; its absent and zero-chunk inner chunks are `fill`.
// Errors: kCorrupt saying what is wrong (the caller adds the chunk's location): a failed
// decompression, a wrong size, a crc32c mismatch, a shard index entry outside the shard.
Status DecodeZarr3Chunk(const Zarr3Chain& chain, std::string_view in, const std::vector<int64_t>& shape, DType dtype,
                        const uint8_t* fill, uint8_t* out);

// Fills out (n voxels of `item` bytes) with the voxel pattern `fill`.
void FillVoxels(uint8_t* out, uint64_t n, size_t item, const uint8_t* fill);

}  // namespace oz
