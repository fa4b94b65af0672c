// Tree: a served file tree (directories, metadata documents, data files) as the FUSE edge and
// materialize see it. Files are read by byte range through FileContent, so a big file (a shard,
// a layer TIFF) never has to be held whole by a reader. No FUSE dependency.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace oz {

using ChunkBytes = std::shared_ptr<const std::string>;

enum class NodeKind { kDirectory, kFile };

struct NodeInfo {
  NodeKind kind = NodeKind::kDirectory;
  uint64_t size = 0;  // files only
};

struct DirEntry {
  std::string name;
  NodeKind kind;
};

// The bytes of one open file. size() is fixed for the life of the object. Thread-safe.
class FileContent {
 public:
  virtual ~FileContent() = default;
  virtual uint64_t size() const = 0;
  // Copies bytes [offset, offset + n) clipped to size() into out; returns the count (0 at or
  // past the end). Errors: a compute or read failure (never partial or wrong bytes).
  virtual Result<size_t> ReadAt(uint64_t offset, size_t n, char* out) = 0;
};

// A file whose bytes are in memory.
class BytesContent final : public FileContent {
 public:
  explicit BytesContent(ChunkBytes bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_->size(); }
  Result<size_t> ReadAt(uint64_t offset, size_t n, char* out) override;
  const ChunkBytes& bytes() const { return bytes_; }

 private:
  ChunkBytes bytes_;
};

class Tree {
 public:
  virtual ~Tree() = default;
  // Errors: kNotFound (absent name, absent data file), kNotDirectory (a path through a file),
  // kNameTooLong (a component over 255 bytes), or a compute error (kIoError, ...) when the
  // existence or size of a file needs a computation that failed.
  virtual Result<NodeInfo> Stat(std::string_view path) = 0;
  // Entries of a directory, without "." and "..". Leaf directories list only existing files.
  virtual Result<std::vector<DirEntry>> List(std::string_view path) = 0;
  // The content of a file. Errors: as Stat, and kIsDirectory.
  virtual Result<std::shared_ptr<FileContent>> Open(std::string_view path) = 0;
  // The whole content of a file (documents, tests; materialize of small files).
  Result<ChunkBytes> Read(std::string_view path);
};

// Splits a path into its non-empty components. Errors: kNameTooLong for a component over 255
// bytes.
Result<std::vector<std::string_view>> SplitPath(std::string_view path);

// Canonical non-negative decimal ("0", "17"; not "01", "+1", "1a"), at most 15 digits.
bool ParseIndex(std::string_view s, int64_t* out);

}  // namespace oz
