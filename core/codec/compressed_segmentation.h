// Neuroglancer's compressed_segmentation encoding (google/neuroglancer
// src/neuroglancer/sliceview/compressed_segmentation/README.md, and the one-channel header of the
// precomputed format): the encoder precomputed label chunks are written with.
//
// Output, all little-endian uint32 words: word 0 = 1 (the offset of the only channel's data);
// then, from word 1 (the channel's "start of the compressed data", offset unit = one word), a
// header of 2 words per block for the gx*gy*gz grid of block^3 blocks in x-fastest order
// (word 0: lookup table offset, 24 bits, | encoded bits << 24; word 1: encoded values offset),
// then per block its packed values (bits 0, 1, 2, 4, 8, 16 or 32 per voxel, x fastest within the
// block, each value an index into the block's lookup table) and its lookup table (the block's
// distinct values ascending, one word each for uint32 output, two words low-then-high for uint64).
// Identical lookup tables are stored once and shared. Edge blocks are padded up to block^3; a
// padded position holds index 0 (a value of the block), which readers never show.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/base/geometry.h"
#include "core/base/status.h"

namespace oz {

// Encodes `voxels`: a dense box of `shape` (z, y, x; x fastest) of unsigned integers of
// `in_bytes` (1, 2, 4 or 8) as one channel with lookup tables of `out_bytes` (4: uint32, 8:
// uint64; in_bytes <= out_bytes, narrower ids are widened unchanged). block: the block edge (> 0).
// Errors: kInvalidArgument for bad widths or block; kUnsupported when a lookup table offset does
// not fit in 24 bits (about 16 M words: chunks of at most 128^3 always fit). Pure, thread-safe.
Result<std::string> EncodeCompressedSegmentation(const void* voxels, const Vec3& shape, size_t in_bytes,
                                                 size_t out_bytes, int64_t block = 8);

}  // namespace oz
