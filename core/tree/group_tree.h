// GroupTree: a directory of documents and named subtrees (labels/: the labels group's documents
// and one label image tree per name). Subtrees see paths relative to their own root.
// Thread-safe as its subtrees are.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tree/tree.h"

namespace oz {

class GroupTree final : public Tree {
 public:
  // docs: file name -> bytes, listed first; subtrees: name -> tree (not owned, must outlive this).
  // Names are unique across both (the caller checks).
  GroupTree(std::vector<std::pair<std::string, ChunkBytes>> docs, std::vector<std::pair<std::string, Tree*>> subtrees)
      : docs_(std::move(docs)), subtrees_(std::move(subtrees)) {}

  Result<NodeInfo> Stat(std::string_view path) override;
  Result<std::vector<DirEntry>> List(std::string_view path) override;
  Result<std::shared_ptr<FileContent>> Open(std::string_view path) override;

 private:
  enum class Kind { kRoot, kDoc, kSub, kAbsent };
  // Which entry `path` is in; for kDoc the document, for kSub the subtree and the inner path.
  Kind Route(std::string_view path, ChunkBytes* doc, Tree** sub, std::string* inner, bool* below) const;
  std::vector<std::pair<std::string, ChunkBytes>> docs_;
  std::vector<std::pair<std::string, Tree*>> subtrees_;
};

}  // namespace oz
