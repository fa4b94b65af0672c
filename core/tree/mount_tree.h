// MountTree: what a mount serves: a base tree (the format's image tree) at the root plus extra
// subtrees under names of the root ("layers" for the layer TIFFs of a surface). Any format's tree
// gets the extra directories without knowing of them. Thread-safe as its trees are.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tree/tree.h"

namespace oz {

class MountTree final : public Tree {
 public:
  // base: not owned, must outlive this.
  explicit MountTree(Tree* base) : base_(base) {}
  // Adds `tree` as the root directory `name`. Errors: kInvalidArgument if the base tree already
  // has that name or it is added twice.
  Status Add(const std::string& name, std::unique_ptr<Tree> tree);

  Result<NodeInfo> Stat(std::string_view path) override;
  Result<std::vector<DirEntry>> List(std::string_view path) override;
  Result<std::shared_ptr<FileContent>> Open(std::string_view path) override;

  // Relative paths ("layers/00.tif") of every file of the extra subtrees, for materialize; with
  // `dirs`, also every directory ("labels/cells/0/3"), parents first, so that materialize makes
  // the empty ones a mount shows too.
  Result<std::vector<std::string>> ExtraFiles(std::vector<std::string>* dirs = nullptr);

 private:
  // The extra tree `path` is in and the path inside it; nullptr if it is the base's.
  Tree* Route(std::string_view path, std::string* inner);
  Tree* base_;
  std::vector<std::pair<std::string, std::unique_ptr<Tree>>> extra_;
};

}  // namespace oz
