// VirtualTree: path parsing is strict (canonical decimal indices only, so every chunk has exactly
// one name) and never computes a chunk unless its existence or size is asked for.
#include "core/virtual_tree.h"

#include "core/ome_metadata.h"

namespace oz {
namespace {

constexpr size_t kNameMax = 255;

// Canonical non-negative decimal ("0", "17"; not "01", "+1", "1a"), bounded.
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

ChunkBytes Doc(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

}  // namespace

VirtualTree::VirtualTree(ChunkEngine* engine, const std::string& source) : engine_(engine) {
  const Pyramid& p = engine_->pyramid();
  plain_array_ = p.levels() == 1;
  zgroup_ = Doc(ZgroupJson());
  zattrs_ = Doc(ZattrsJson(p, engine_->options(), source));
  for (int l = 0; l < p.levels(); ++l)
    zarray_.push_back(Doc(ZarrayJson(p.shape(l), p.chunk(), engine_->dtype(), engine_->codec().CompressorJson())));
}

Result<VirtualTree::Parsed> VirtualTree::Parse(std::string_view path) const {
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
  const Pyramid& p = engine_->pyramid();
  Parsed r;
  size_t k = 0;
  auto not_found = [&] { return NotFoundError(std::string(path)); };
  auto not_dir = [&] { return Status(ErrorCode::kNotDirectory, std::string(path)); };
  if (k == parts.size()) return r;  // root
  if (!plain_array_) {
    if (parts[k] == ".zgroup" || parts[k] == ".zattrs") {
      if (parts.size() > k + 1) return not_dir();
      r.kind = Parsed::kMeta;
      r.meta = parts[k] == ".zgroup" ? zgroup_ : zattrs_;
      return r;
    }
    int64_t l;
    if (!ParseIndex(parts[k], &l) || l >= p.levels()) return not_found();
    r.level = static_cast<int>(l);
    r.kind = Parsed::kLevelDir;
    if (++k == parts.size()) return r;
  }
  if (parts[k] == ".zarray") {
    if (parts.size() > k + 1) return not_dir();
    r.kind = Parsed::kMeta;
    r.meta = zarray_[r.level];
    return r;
  }
  const Vec3 g = p.grid(r.level);
  const Parsed::Kind kinds[3] = {Parsed::kZDir, Parsed::kYDir, Parsed::kChunk};
  for (int a = 0; a < 3; ++a, ++k) {
    if (k == parts.size()) return r;
    if (r.kind == Parsed::kChunk) return not_dir();
    int64_t v;
    if (!ParseIndex(parts[k], &v) || v >= g[a]) return not_found();
    r.idx[a] = v;
    r.kind = kinds[a];
  }
  if (k < parts.size()) {
    // A path below a chunk file: ENOTDIR if the chunk exists, ENOENT if it is absent.
    auto sz = engine_->ChunkSize(r.level, r.idx);
    if (!sz.ok()) return sz.status();
    return not_dir();
  }
  return r;
}

Result<NodeInfo> VirtualTree::Stat(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  switch (r.kind) {
    case Parsed::kMeta: return NodeInfo{NodeKind::kFile, r.meta->size()};
    case Parsed::kChunk: {
      OZ_ASSIGN_OR_RETURN(uint64_t size, engine_->ChunkSize(r.level, r.idx));
      return NodeInfo{NodeKind::kFile, size};
    }
    default: return NodeInfo{NodeKind::kDirectory, 0};
  }
}

Result<std::vector<DirEntry>> VirtualTree::List(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  std::vector<DirEntry> out;
  const Pyramid& p = engine_->pyramid();
  auto add_range = [&](int64_t n, NodeKind kind) {
    for (int64_t i = 0; i < n; ++i) out.push_back({std::to_string(i), kind});
  };
  switch (r.kind) {
    case Parsed::kMeta:
    case Parsed::kChunk: return Status(ErrorCode::kNotDirectory, std::string(path));
    case Parsed::kRoot:
      if (!plain_array_) {
        out.push_back({".zgroup", NodeKind::kFile});
        out.push_back({".zattrs", NodeKind::kFile});
        add_range(p.levels(), NodeKind::kDirectory);
        return out;
      }
      [[fallthrough]];
    case Parsed::kLevelDir:
      out.push_back({".zarray", NodeKind::kFile});
      add_range(p.grid(r.level)[0], NodeKind::kDirectory);
      return out;
    case Parsed::kZDir: add_range(p.grid(r.level)[1], NodeKind::kDirectory); return out;
    case Parsed::kYDir: {
      OZ_ASSIGN_OR_RETURN(std::vector<int64_t> xs, engine_->ListRow(r.level, r.idx[0], r.idx[1]));
      for (int64_t x : xs) out.push_back({std::to_string(x), NodeKind::kFile});
      return out;
    }
  }
  return out;
}

Result<ChunkBytes> VirtualTree::Read(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  if (r.kind == Parsed::kMeta) return r.meta;
  if (r.kind == Parsed::kChunk) return engine_->GetChunk(r.level, r.idx);
  return Status(ErrorCode::kIsDirectory, std::string(path));
}

}  // namespace oz
