// PrecomputedTree: the file tree of format=precomputed (layout and encodings in
// precomputed_format.h): /info, /L/ per level, /L/<x0>-<x1>_<y0>-<y1>_<z0>-<z1> per chunk.
//
// A chunk file is derived from the engine's chunk of the same index (FileBytes): where the chunk
// lies whole inside the level and the encoding is raw or gzip, the file is the engine's bytes as
// they are; else the voxels are clipped to the level and encoded (raw, gzip, or JPEG). Derived
// files are kept in a small LRU (kDerivedMemory) and, when re-encoded (gzip at the edges, every
// JPEG), in the disk cache beside the engine's chunks (under the chunk's key, the encoding and
// the JPEG library version), so a remount serves them without encoding again.
//
// Cost of a stat: a raw file's size follows from its box (no computation with empty=keep, the
// default); an interior gzip file's size is its engine chunk's; any other file is computed (or
// read from the cache) and encoded. Listing a level directory lists every chunk of the level:
// free with empty=keep, but with empty=omit it computes every chunk of the level (the layout is
// flat: there is no smaller directory to list).
//
// Threading: thread-safe. Two concurrent first reads of one derived file may both encode it (the
// engine's single-flight still computes its voxels once).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/format/format.h"
#include "core/sync/lru_cache.h"

namespace oz {

// kCompressedSegmentation: label images (type segmentation), block 8^3, ids as uint32 (uint8,
// uint16 and uint32 ids, widened unchanged) or uint64; every file is derived (never identity).
enum class PrecomputedEncoding { kRaw, kGzip, kJpeg, kCompressedSegmentation };

// compressed_segmentation_block_size of the label trees.
inline constexpr int64_t kSegmentationBlock = 8;

class PrecomputedTree final : public FormatTree {
 public:
  // Bytes of derived chunk files kept in memory.
  static constexpr uint64_t kDerivedMemory = 32ull << 20;

  PrecomputedTree(ChunkEngine* engine, PrecomputedEncoding encoding, int jpeg_quality, std::string info);

  Result<NodeInfo> Stat(std::string_view path) override;
  Result<std::vector<DirEntry>> List(std::string_view path) override;
  Result<std::shared_ptr<FileContent>> Open(std::string_view path) override;

  std::vector<std::string> DocumentPaths() const override { return {"info"}; }
  std::vector<std::string> ArrayDocumentPaths() const override { return {"info"}; }
  std::string DataFileRel(int level, const Vec3& fidx) const override;
  bool ParseDataFileRel(const std::string& rel, int* level, Vec3* fidx) const override;
  std::string LayoutTag() const override;
  Result<ChunkBytes> FileBytes(int level, const Vec3& idx, const ChunkBytes& engine_chunk) const override;
  bool DataFilesAreEngineChunks() const override { return false; }
  bool RowDirectories() const override { return false; }

  // "<x0>-<x1>_<y0>-<y1>_<z0>-<z1>" of chunk idx (z, y, x) of level.
  std::string ChunkName(int level, const Vec3& idx) const;

 private:
  struct Parsed {
    enum Kind { kRoot, kInfo, kLevelDir, kFile } kind = kRoot;
    int level = 0;
    Vec3 idx{0, 0, 0};
  };
  Result<Parsed> Parse(std::string_view path);
  // Parses a chunk file name of `level` (canonical only); false if it is not one.
  bool ParseChunkName(int level, std::string_view name, Vec3* idx) const;
  // True if the file is the engine chunk's bytes unchanged.
  bool Identity(int level, const Vec3& idx) const;
  // The file's bytes (kNotFound: an absent chunk with empty=omit), through the LRU and cache.
  Result<ChunkBytes> GetFile(int level, const Vec3& idx);
  Result<uint64_t> FileSize(int level, const Vec3& idx);
  std::string DerivedCacheKey(int level, const Vec3& idx) const;

  const PrecomputedEncoding encoding_;
  const int jpeg_quality_;
  const ChunkBytes info_;
  const std::string jpeg_tag_;  // JpegLibraryTag(), for derived cache keys
  LruCache<ChunkEngine::Key, const std::string, ChunkEngine::KeyHash> derived_;
};

}  // namespace oz
