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
#include <vector>

#include "core/chunk_engine.h"
#include "core/options.h"
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

  ChunkEngine& engine() { return *engine_; }

 protected:
  explicit FormatTree(ChunkEngine* engine) : engine_(engine) {}
  ChunkEngine* engine_;
};

struct FormatSpec {
  std::string_view name;     // -o format=NAME
  std::string_view summary;  // one line for --help
  // Checks that `options` can be expressed in this format and fills the format's defaults (e.g.
  // shard=0 -> the default shard). Errors (kInvalidArgument) name the option and the fix.
  Status (*prepare)(Options* options);
  // The tree over `engine` (which must outlive it); `source` is recorded in the metadata.
  std::unique_ptr<FormatTree> (*make_tree)(ChunkEngine* engine, const std::string& source);
};

// Every format, the default (ome-zarr-0.4) first.
const std::vector<FormatSpec>& Formats();
// nullptr if unknown.
const FormatSpec* FindFormat(std::string_view name);
// "ome-zarr-0.4|ome-zarr-0.5"
std::string FormatNames(std::string_view separator = "|");

}  // namespace oz
