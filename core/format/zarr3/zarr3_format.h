// zarr v3 / OME-Zarr 0.5 (-o format=ome-zarr-0.5): a root group zarr.json whose attributes.ome
// holds version "0.5" and the multiscales entry (the same as 0.4's), one array zarr.json per
// level, data files L/c/z/y/x (chunk_key_encoding default, separator "/").
// - shard=1: every file is an engine chunk (codecs: bytes little-endian, then the compressor),
//   the same bytes as the zarr v2 chunk with that compressor.
// - shard=N > 1: every file is a shard of N^3 inner chunks (chunk_grid edge N * chunk at every
//   level), codec sharding_indexed with inner codecs as above and index codecs bytes + crc32c,
//   index at the end; empty inner chunks are absent from the index, an all-empty shard has no
//   file (core/format/zarr3/shard.h).
// Compressors: none, blosc, gzip; zlib has no zarr v3 codec and is refused.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/format/format.h"

namespace oz {

// Default inner chunks per shard edge (bench/RESULTS.md, "OME-Zarr 0.5: choosing shard").
inline constexpr int kDefaultZarr3Shard = 4;

// Largest shard=: a shard has shard^3 inner chunks (and 16 index bytes each).
inline constexpr int kMaxZarr3Shard = 64;

// The codecs list of a level's array (zarr.json "codecs"), for `codec` and shard edge `shard`.
nlohmann::json Zarr3CodecsJson(const ChunkCodec& codec, int64_t chunk, int64_t shard);

// Registry hooks.
Status PrepareZarr3(Options* options, DType served);
std::unique_ptr<FormatTree> MakeZarr3Tree(ChunkEngine* engine, const std::string& source);
// Label images (core/format/ome/labels.h): labels/NAME/zarr.json is a group (also with levels=1)
// whose attributes.ome has version 0.5, the multiscales entry (name NAME) and image-label.
Status PrepareZarr3Labels(Options* options, DType ids);
std::unique_ptr<FormatTree> MakeZarr3LabelTree(ChunkEngine* engine, const std::string& name, const std::string& source);
std::vector<std::pair<std::string, std::string>> Zarr3LabelsGroupDocs(const std::vector<std::string>& names);

}  // namespace oz
