// ZarrTree: the file tree shared by the zarr-style formats (zarr v2 / OME-Zarr 0.4, zarr v3 /
// OME-Zarr 0.5): documents at the root and per level, and a z/y/x grid of data files per level,
// each an engine chunk or (zarr v3 sharding) a shard of shard^3 engine chunks.
//
// Layout (levels >= 2): /<root docs> /L/<array doc> /L/[prefix/]z/y/x. With levels == 1 the root
// is the array: /<array doc> /[prefix/]z/y/x. Directories exist for every file index in range; a
// data file exists unless it is empty (all its chunks empty and empty=omit, or, for a shard,
// every inner chunk empty).
//
// A shard's index is known only once its inner chunks are computed, so stat of a shard computes
// it (row by row, each inner chunk row as one engine unit); the indexes of recent shards are kept
// (a small LRU), and reads fetch only the inner chunks they overlap.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/format/format.h"
#include "core/sync/lru_cache.h"

namespace oz {

struct ZarrLayout {
  std::vector<std::pair<std::string, ChunkBytes>> root_docs;  // group documents (levels >= 2)
  std::string array_doc_name;                                 // ".zarray", "zarr.json"
  std::vector<ChunkBytes> array_docs;                         // per level
  std::string key_prefix;                                     // "" or "c" (zarr v3 default keys)
  int64_t shard = 1;
  std::string tag;  // LayoutTag()
  // True: a group with level directories also when levels == 1 (label images are always
  // multiscales groups); false: levels == 1 makes the root a plain array.
  bool always_group = false;
};

class ZarrTree final : public FormatTree {
 public:
  ZarrTree(ChunkEngine* engine, ZarrLayout layout);

  Result<NodeInfo> Stat(std::string_view path) override;
  Result<std::vector<DirEntry>> List(std::string_view path) override;
  Result<std::shared_ptr<FileContent>> Open(std::string_view path) override;

  std::vector<std::string> DocumentPaths() const override;
  std::vector<std::string> ArrayDocumentPaths() const override;
  int64_t shard() const override { return layout_.shard; }
  std::string DataFileRel(int level, const Vec3& fidx) const override;
  bool ParseDataFileRel(const std::string& rel, int* level, Vec3* fidx) const override;
  std::string AssembleShard(const std::vector<ChunkBytes>& inner) const override;
  std::string LayoutTag() const override { return layout_.tag; }

 private:
  struct Parsed {
    enum Kind { kRoot, kMeta, kLevelDir, kPrefixDir, kZDir, kYDir, kFile } kind = kRoot;
    int level = 0;
    Vec3 idx{0, 0, 0};
    ChunkBytes meta;
  };
  Result<Parsed> Parse(std::string_view path);
  // Sizes of a shard's inner chunks (C order, kShardAbsent = absent), computing them if needed.
  struct ShardIndex {
    std::vector<uint64_t> sizes;
    bool empty = true;
  };
  Result<std::shared_ptr<ShardIndex>> GetShardIndex(int level, const Vec3& sidx);
  Result<uint64_t> DataFileSize(int level, const Vec3& fidx);
  std::string LevelPrefix(int level) const;

  struct ShardKey {
    int level;
    Vec3 idx;
    bool operator==(const ShardKey&) const = default;
  };
  struct ShardKeyHash {
    size_t operator()(const ShardKey& k) const;
  };

  ZarrLayout layout_;
  bool plain_array_;
  LruCache<ShardKey, ShardIndex, ShardKeyHash> shard_indexes_;
};

}  // namespace oz
