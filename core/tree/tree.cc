// Tree helpers shared by every format's tree.
#include "core/tree/tree.h"

#include <cstring>

namespace oz {

Result<size_t> BytesContent::ReadAt(uint64_t offset, size_t n, char* out) {
  const std::string& b = *bytes_;
  if (offset >= b.size()) return size_t{0};
  const size_t k = std::min<uint64_t>(n, b.size() - offset);
  std::memcpy(out, b.data() + offset, k);
  return k;
}

Result<ChunkBytes> Tree::Read(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(std::shared_ptr<FileContent> f, Open(path));
  if (auto* b = dynamic_cast<BytesContent*>(f.get())) return b->bytes();
  std::string s(f->size(), '\0');
  OZ_ASSIGN_OR_RETURN(size_t n, f->ReadAt(0, s.size(), s.data()));
  if (n != s.size()) return InternalError("short read of " + std::string(path));
  return std::make_shared<const std::string>(std::move(s));
}

Result<std::vector<std::string_view>> SplitPath(std::string_view path) {
  constexpr size_t kNameMax = 255;
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) {
      if (j - i > kNameMax) return Status(ErrorCode::kNameTooLong, "name too long");
      parts.push_back(path.substr(i, j - i));
    }
    i = j;
  }
  return parts;
}

bool ParseIndex(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 15) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace oz
