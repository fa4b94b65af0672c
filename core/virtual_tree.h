// VirtualTree: "how the tree is laid out" — maps paths of the served zarr v2 / OME-Zarr 0.4 tree
// to metadata documents, directories and chunk files of a ChunkEngine. No FUSE dependency.
//
// Layout (levels >= 2): /.zgroup /.zattrs /L/.zarray /L/z/y/x. Layout (levels == 1): the root is
// a plain array: /.zarray /z/y/x. Directories exist for every chunk index in range; a chunk file
// exists unless it is empty and empty=omit.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/chunk_engine.h"

namespace oz {

enum class NodeKind { kDirectory, kFile };

struct NodeInfo {
  NodeKind kind = NodeKind::kDirectory;
  uint64_t size = 0;  // files only
};

struct DirEntry {
  std::string name;
  NodeKind kind;
};

class VirtualTree {
 public:
  // engine must outlive the tree. `source` is recorded in .zattrs metadata.
  VirtualTree(ChunkEngine* engine, const std::string& source);

  // Errors: kNotFound (absent name, empty chunk), kNotDirectory (a path through a file),
  // kNameTooLong (a component over 255 bytes), or a compute error (kIoError, ...) when
  // the existence or size of a chunk needs a computation that failed.
  Result<NodeInfo> Stat(std::string_view path);
  // Entries of a directory, without "." and "..". Leaf directories list only existing chunks.
  Result<std::vector<DirEntry>> List(std::string_view path);
  // The whole content of a file (metadata document or chunk bytes).
  Result<ChunkBytes> Read(std::string_view path);

  ChunkEngine& engine() { return *engine_; }

 private:
  // A parsed path.
  struct Parsed {
    enum Kind { kRoot, kMeta, kLevelDir, kZDir, kYDir, kChunk } kind = kRoot;
    int level = 0;
    Vec3 idx{0, 0, 0};
    ChunkBytes meta;  // for kMeta
  };
  Result<Parsed> Parse(std::string_view path) const;

  ChunkEngine* engine_;
  bool plain_array_;
  ChunkBytes zgroup_, zattrs_;
  std::vector<ChunkBytes> zarray_;  // per level
};

}  // namespace oz
