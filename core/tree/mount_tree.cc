// MountTree routing: only the first path component decides, so the base tree sees its paths
// unchanged and an extra tree sees paths relative to its own root.
#include "core/tree/mount_tree.h"

namespace oz {

Status MountTree::Add(const std::string& name, std::unique_ptr<Tree> tree) {
  for (auto& [n, t] : extra_)
    if (n == name) return InvalidArgumentError("directory /" + name + " is added twice");
  if (base_->Stat("/" + name).ok())
    return InvalidArgumentError("directory /" + name + " is already part of the served tree");
  extra_.emplace_back(name, std::move(tree));
  return OkStatus();
}

Tree* MountTree::Route(std::string_view path, std::string* inner) {
  size_t start = path.find_first_not_of('/');
  if (start == std::string_view::npos) return nullptr;
  size_t end = path.find('/', start);
  std::string_view first = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  for (auto& [n, t] : extra_)
    if (first == n) {
      *inner = end == std::string_view::npos ? std::string("/") : std::string(path.substr(end));
      return t.get();
    }
  return nullptr;
}

Result<NodeInfo> MountTree::Stat(std::string_view path) {
  std::string inner;
  if (Tree* t = Route(path, &inner)) return t->Stat(inner);
  return base_->Stat(path);
}

Result<std::vector<DirEntry>> MountTree::List(std::string_view path) {
  std::string inner;
  if (Tree* t = Route(path, &inner)) return t->List(inner);
  OZ_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, base_->List(path));
  if (path.find_first_not_of('/') == std::string_view::npos)
    for (auto& [n, t] : extra_) entries.push_back({n, NodeKind::kDirectory});
  return entries;
}

Result<std::shared_ptr<FileContent>> MountTree::Open(std::string_view path) {
  std::string inner;
  if (Tree* t = Route(path, &inner)) return t->Open(inner);
  return base_->Open(path);
}

Result<std::vector<std::string>> MountTree::ExtraFiles(std::vector<std::string>* all_dirs) {
  std::vector<std::string> out;
  for (auto& [n, t] : extra_) {
    std::vector<std::string> dirs = {""};
    while (!dirs.empty()) {
      std::string d = dirs.back();
      dirs.pop_back();
      if (all_dirs) all_dirs->push_back(d.empty() ? n : n + "/" + d);
      OZ_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, t->List("/" + d));
      for (const DirEntry& e : entries) {
        std::string rel = d.empty() ? e.name : d + "/" + e.name;
        if (e.kind == NodeKind::kDirectory)
          dirs.push_back(rel);
        else
          out.push_back(n + "/" + rel);
      }
    }
  }
  return out;
}

}  // namespace oz
