// GroupTree routing: the first path component picks a document or a subtree.
#include "core/tree/group_tree.h"

namespace oz {

GroupTree::Kind GroupTree::Route(std::string_view path, ChunkBytes* doc, Tree** sub, std::string* inner,
                                 bool* below) const {
  const size_t start = path.find_first_not_of('/');
  if (start == std::string_view::npos) return Kind::kRoot;
  const size_t end = path.find('/', start);
  const std::string_view first =
      path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  const std::string_view rest = end == std::string_view::npos ? std::string_view() : path.substr(end);
  *below = rest.find_first_not_of('/') != std::string_view::npos;
  for (const auto& [name, d] : docs_)
    if (first == name) {
      *doc = d;
      return Kind::kDoc;
    }
  for (const auto& [name, t] : subtrees_)
    if (first == name) {
      *sub = t;
      *inner = rest.empty() ? std::string("/") : std::string(rest);
      return Kind::kSub;
    }
  return Kind::kAbsent;
}

Result<NodeInfo> GroupTree::Stat(std::string_view path) {
  OZ_RETURN_IF_ERROR(SplitPath(path).status());
  ChunkBytes doc;
  Tree* sub = nullptr;
  std::string inner;
  bool below = false;
  switch (Route(path, &doc, &sub, &inner, &below)) {
    case Kind::kRoot: return NodeInfo{NodeKind::kDirectory, 0};
    case Kind::kDoc:
      if (below) return Status(ErrorCode::kNotDirectory, std::string(path));
      return NodeInfo{NodeKind::kFile, doc->size()};
    case Kind::kSub: return sub->Stat(inner);
    case Kind::kAbsent: break;
  }
  return NotFoundError(std::string(path));
}

Result<std::vector<DirEntry>> GroupTree::List(std::string_view path) {
  OZ_RETURN_IF_ERROR(SplitPath(path).status());
  ChunkBytes doc;
  Tree* sub = nullptr;
  std::string inner;
  bool below = false;
  switch (Route(path, &doc, &sub, &inner, &below)) {
    case Kind::kRoot: {
      std::vector<DirEntry> out;
      for (const auto& [name, d] : docs_) out.push_back({name, NodeKind::kFile});
      for (const auto& [name, t] : subtrees_) out.push_back({name, NodeKind::kDirectory});
      return out;
    }
    case Kind::kDoc: return Status(ErrorCode::kNotDirectory, std::string(path));
    case Kind::kSub: return sub->List(inner);
    case Kind::kAbsent: break;
  }
  return NotFoundError(std::string(path));
}

Result<std::shared_ptr<FileContent>> GroupTree::Open(std::string_view path) {
  OZ_RETURN_IF_ERROR(SplitPath(path).status());
  ChunkBytes doc;
  Tree* sub = nullptr;
  std::string inner;
  bool below = false;
  switch (Route(path, &doc, &sub, &inner, &below)) {
    case Kind::kRoot: return Status(ErrorCode::kIsDirectory, std::string(path));
    case Kind::kDoc:
      if (below) return Status(ErrorCode::kNotDirectory, std::string(path));
      return std::shared_ptr<FileContent>(std::make_shared<BytesContent>(doc));
    case Kind::kSub: return sub->Open(inner);
    case Kind::kAbsent: break;
  }
  return NotFoundError(std::string(path));
}

}  // namespace oz
