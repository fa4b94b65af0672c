// Neuroglancer precomputed (-o format=precomputed): one multiscale image volume as Neuroglancer's
// "precomputed" data source reads it (google/neuroglancer src/datasource/precomputed/volume.md).
//
// Tree: /info (JSON: "@type" neuroglancer_multiscale_volume, type image, data_type uint8/uint16,
// num_channels 1, one scale per level) and per level a flat directory /L/ of chunk files named
// <x0>-<x1>_<y0>-<y1>_<z0>-<z1> (voxels of the level, end exclusive). Scale key: the level index
// "0".."N-1" (the same numbers as the zarr trees' levels; no directory name depends on how a
// resolution prints). Every level, also with levels=1, is such a scale.
//
// Chunks are clipped at the volume's edge (not padded as in zarr), voxels x fastest ([x, y, z]
// Fortran order, i.e. C order of (z, y, x) over the clipped box), little-endian.
// Encodings (-o compression=):
//   none  "raw": the voxels;
//   gzip  "raw" with the file's bytes gzip-compressed: a client must get them with
//         `Content-Encoding: gzip` (omezarr-serve does this; info's "omezarrfs" member says
//         "content_encoding": "gzip"), as precomputed trees on static hosts are served;
//   jpeg  "jpeg" (uint8 only, lossy): one grayscale JPEG per chunk, x wide and y*z high (so
//         chunk <= 255: JPEG sides are at most 65500 pixels; a zarr source's chunk edge above
//         that, not given with chunk=, becomes 128), quality jpeg_quality.
// blosc, zlib and zstd have no precomputed encoding (refused). The engine keeps lossless chunks
// (its codec is the encoding's lossless part: raw for none and jpeg, gzip for gzip), so the cache
// is shared with the zarr formats of the same codec, and a file is derived from its engine chunk
// (PrecomputedTree::FileBytes).
// Empty chunks: precomputed has no fill value, so the default here is empty=keep (every chunk is
// a file; all-zero ones are real files); empty=omit leaves them out (Neuroglancer shows an absent
// chunk as empty, other readers may fail on it).
// resolution: voxel_size * 2^level in nanometres, converted from unit= (no unit: voxel_size is
// taken as nanometres; the default voxel_size 1 is 1 nm). voxel_offset [0, 0, 0]: precomputed
// voxels are boxes from their corner, which is where mean and max put a coarse voxel (nearest's
// coarse voxel holds the sample at its box's corner and is shown over the whole box).
// Not implemented: the sharded layout (neuroglancer_uint64_sharded_v1): shard > 1 is refused.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/format/format.h"

namespace oz {

// Largest chunk edge with compression=jpeg (the image is chunk * chunk high).
inline constexpr int64_t kMaxJpegChunk = 255;

// Nanometres per `unit`, an OME-NGFF space unit name ("" = nanometre); 0 if it is not one.
double NanometresPerUnit(std::string_view unit);

// The info document for `engine`'s pyramid with `options` (the format's, not the engine codec's).
std::string PrecomputedInfoJson(const Pyramid& pyramid, DType dtype, const Options& options, const std::string& source);

// Registry hooks.
Status PreparePrecomputed(Options* options, DType served);
Options PrecomputedCodecOptions(const Options& options);
std::unique_ptr<FormatTree> MakePrecomputedTree(ChunkEngine* engine, const std::string& source);
// Label images: labels/NAME is its own precomputed volume, "type": "segmentation", data_type
// uint32 (uint8/uint16/uint32 ids, widened unchanged: Neuroglancer segmentations are uint32 or
// uint64) or uint64, every scale "encoding": "compressed_segmentation" with
// "compressed_segmentation_block_size": [8, 8, 8]. The label engine keeps raw chunks (whatever
// compression= says for the image). Refused: signed ids (int16), chunk > 128 (the format's
// 24-bit lookup table offsets). No labels/ group documents (Neuroglancer opens each volume).
Status PreparePrecomputedLabels(Options* options, DType ids);
std::unique_ptr<FormatTree> MakePrecomputedLabelTree(ChunkEngine* engine, const std::string& name,
                                                     const std::string& source);

}  // namespace oz
