// Output formats: how the pyramid a ChunkEngine computes is laid out as files. A format is a
// folder under core/format/ plus one row in the registry (registry.cc, an explicit list).
//
// A format's tree (FormatTree) serves the mount (Stat/List/Open by path) and tells materialize
// how to write the same bytes: its documents, the relative path of each data file, and for
// sharded formats how a shard's file is assembled from its inner chunks. Data files are either
// engine chunks (shard() == 1) or shards of shard()^3 engine chunks; the engine's chunk bytes are
// the same in every format that shares a codec, so the disk cache is shared between them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/options.h"
#include "core/engine/chunk_engine.h"
#include "core/tree/tree.h"

namespace oz {

class FormatTree : public Tree {
 public:
  // Relative paths (no leading slash) of the metadata documents, parents before children.
  virtual std::vector<std::string> DocumentPaths() const = 0;
  // Of those, the per-level array documents (compared member by member by materialize).
  virtual std::vector<std::string> ArrayDocumentPaths() const = 0;
  // Inner chunks per shard edge; 1: every engine chunk is its own file.
  virtual int64_t shard() const { return 1; }
  // Grid of data files of `level`: the chunk grid, or the shard grid (ceil(chunks / shard)).
  Vec3 FileGrid(int level) const;
  // Relative path of data file `fidx` of `level`, and its inverse (false if `rel` is not one).
  virtual std::string DataFileRel(int level, const Vec3& fidx) const = 0;
  virtual bool ParseDataFileRel(const std::string& rel, int* level, Vec3* fidx) const = 0;
  // shard() > 1: the file bytes of shard `sidx` of `level` from its inner chunks, given in C order
  // of the shard's inner grid (shard()^3 entries; nullptr = empty or outside the level's grid),
  // or "" when every inner chunk is empty (the shard is then not a file). Pure.
  virtual std::string AssembleShard(const std::vector<ChunkBytes>& inner) const;
  // Identifies the layout and documents for materialize's tree id ("" for the default format, so
  // that trees written before formats existed keep their id).
  virtual std::string LayoutTag() const = 0;
  // shard() == 1: the bytes of data file (level, idx) from the engine's bytes of that chunk (what
  // materialize writes; the mount serves the same). The zarr formats store engine chunks as they
  // are (the default returns them); a format whose files are derived from them (precomputed:
  // clipped at the volume's edge, re-encoded) converts here. Thread-safe.
  virtual Result<ChunkBytes> FileBytes(int level, const Vec3& idx, const ChunkBytes& engine_chunk) const;
  // True if every data file is an engine chunk's bytes (shard() == 1 and FileBytes is the
  // identity), so materialize can hand DEST's files back to the engine as chunks.
  virtual bool DataFilesAreEngineChunks() const { return shard() == 1; }
  // True if each data file row (level, z, y) has a directory of its own (zarr's L/z/y/x), so that
  // materialize may sweep a unit's rows of temp files at once; false when rows share a directory
  // (precomputed's flat level directory, written into by several --part runs at once).
  virtual bool RowDirectories() const { return true; }

  ChunkEngine& engine() { return *engine_; }

 protected:
  explicit FormatTree(ChunkEngine* engine) : engine_(engine) {}
  ChunkEngine* engine_;
};

struct FormatSpec {
  std::string_view name;     // -o format=NAME
  std::string_view summary;  // one line for --help
  // Checks that `options` can be expressed in this format for data of type `served` (after
  // bytes=) and fills the format's defaults (e.g. shard=0 -> the default shard). Errors
  // (kInvalidArgument) name the option and the fix.
  Status (*prepare)(Options* options, DType served);
  // The tree over `engine` (which must outlive it); `source` is recorded in the metadata.
  std::unique_ptr<FormatTree> (*make_tree)(ChunkEngine* engine, const std::string& source);
  // nullptr: the engine encodes its chunks with the options' codec. Else the settings of the
  // engine's own codec (ChunkEngineConfig::codec_options) for a format whose files are derived
  // from the engine's chunks, e.g. lossless chunks under precomputed's jpeg files.
  Options (*codec_options)(const Options& options) = nullptr;

  // Label images (-o labels=NAME:SOURCE; served under labels/NAME, see core/format/ome/labels.h).
  // prepare_labels: checks and fills a label engine's options (the image's options after
  // `prepare`, with algorithm=mode and no value map) for ids of type `ids` (an integer type).
  // Errors (kInvalidArgument) name the option and the fix; the caller adds "labels=NAME:".
  Status (*prepare_labels)(Options* options, DType ids) = nullptr;
  // The tree of label image `name` over `engine` (the label engine, which must outlive it);
  // `source` is the label SOURCE, recorded in the metadata.
  std::unique_ptr<FormatTree> (*make_label_tree)(ChunkEngine* engine, const std::string& name,
                                                 const std::string& source) = nullptr;
  // The documents of the labels/ directory itself (file name, bytes) listing `names` in order.
  std::vector<std::pair<std::string, std::string>> (*labels_group_docs)(const std::vector<std::string>& names) =
      nullptr;
};

// Every format, the default (ome-zarr-0.4) first.
const std::vector<FormatSpec>& Formats();
// nullptr if unknown.
const FormatSpec* FindFormat(std::string_view name);
// "ome-zarr-0.4|ome-zarr-0.5"
std::string FormatNames(std::string_view separator = "|");

}  // namespace oz
