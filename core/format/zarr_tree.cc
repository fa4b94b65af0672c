// ZarrTree: path parsing is strict (canonical decimal indices only, so every file has exactly one
// name) and never computes a chunk unless its existence or size is asked for.
#include "core/format/zarr_tree.h"

#include "core/base/log.h"
#include "core/format/zarr3/shard.h"

namespace oz {
namespace {

// Shard indexes kept: each is 8 bytes per inner chunk; 4096 shards of 4^3 is 2 MiB.
constexpr uint64_t kShardIndexBudget = 4096;

}  // namespace

size_t ZarrTree::ShardKeyHash::operator()(const ShardKey& k) const {
  uint64_t h = static_cast<uint64_t>(k.level);
  for (int64_t v : k.idx) h = h * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(v);
  return static_cast<size_t>(h ^ (h >> 29));
}

ZarrTree::ZarrTree(ChunkEngine* engine, ZarrLayout layout)
    : FormatTree(engine),
      layout_(std::move(layout)),
      plain_array_(engine->pyramid().levels() == 1 && !layout_.always_group),
      shard_indexes_(kShardIndexBudget) {}

Vec3 FormatTree::FileGrid(int level) const {
  Vec3 g = engine_->pyramid().grid(level);
  const int64_t n = shard();
  for (auto& v : g) v = (v + n - 1) / n;
  return g;
}

std::string FormatTree::AssembleShard(const std::vector<ChunkBytes>&) const { return {}; }

Result<ChunkBytes> FormatTree::FileBytes(int, const Vec3&, const ChunkBytes& engine_chunk) const {
  return engine_chunk;
}

std::string ZarrTree::AssembleShard(const std::vector<ChunkBytes>& inner) const { return AssembleZarr3Shard(inner); }

std::string ZarrTree::LevelPrefix(int level) const {
  std::string s = plain_array_ ? std::string() : std::to_string(level) + "/";
  if (!layout_.key_prefix.empty()) s += layout_.key_prefix + "/";
  return s;
}

std::vector<std::string> ZarrTree::DocumentPaths() const {
  std::vector<std::string> out;
  if (plain_array_) return {layout_.array_doc_name};
  for (const auto& [name, doc] : layout_.root_docs) out.push_back(name);
  for (const std::string& a : ArrayDocumentPaths()) out.push_back(a);
  return out;
}

std::vector<std::string> ZarrTree::ArrayDocumentPaths() const {
  if (plain_array_) return {layout_.array_doc_name};
  std::vector<std::string> out;
  for (int l = 0; l < engine_->pyramid().levels(); ++l) out.push_back(std::to_string(l) + "/" + layout_.array_doc_name);
  return out;
}

std::string ZarrTree::DataFileRel(int level, const Vec3& f) const {
  return LevelPrefix(level) + std::to_string(f[0]) + "/" + std::to_string(f[1]) + "/" + std::to_string(f[2]);
}

bool ZarrTree::ParseDataFileRel(const std::string& rel, int* level, Vec3* fidx) const {
  auto parts = SplitPath(rel);
  if (!parts.ok()) return false;
  size_t k = 0;
  int64_t l = 0;
  if (!plain_array_) {
    if (parts->size() <= k || !ParseIndex((*parts)[k], &l) || l >= engine_->pyramid().levels()) return false;
    ++k;
  }
  if (!layout_.key_prefix.empty()) {
    if (parts->size() <= k || (*parts)[k] != layout_.key_prefix) return false;
    ++k;
  }
  if (parts->size() != k + 3) return false;
  Vec3 f;
  const Vec3 g = FileGrid(static_cast<int>(l));
  for (int a = 0; a < 3; ++a)
    if (!ParseIndex((*parts)[k + a], &f[a]) || f[a] >= g[a]) return false;
  *level = static_cast<int>(l);
  *fidx = f;
  return DataFileRel(*level, f) == rel;
}

Result<ZarrTree::Parsed> ZarrTree::Parse(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(std::vector<std::string_view> parts, SplitPath(path));
  const Pyramid& p = engine_->pyramid();
  Parsed r;
  size_t k = 0;
  auto not_found = [&] { return NotFoundError(std::string(path)); };
  auto not_dir = [&] { return Status(ErrorCode::kNotDirectory, std::string(path)); };
  if (k == parts.size()) return r;  // root
  if (!plain_array_) {
    for (const auto& [name, doc] : layout_.root_docs) {
      if (parts[k] != name) continue;
      if (parts.size() > k + 1) return not_dir();
      r.kind = Parsed::kMeta;
      r.meta = doc;
      return r;
    }
    int64_t l;
    if (!ParseIndex(parts[k], &l) || l >= p.levels()) return not_found();
    r.level = static_cast<int>(l);
    r.kind = Parsed::kLevelDir;
    if (++k == parts.size()) return r;
  }
  if (parts[k] == layout_.array_doc_name) {
    if (parts.size() > k + 1) return not_dir();
    r.kind = Parsed::kMeta;
    r.meta = layout_.array_docs[r.level];
    return r;
  }
  if (!layout_.key_prefix.empty()) {
    if (parts[k] != layout_.key_prefix) return not_found();
    r.kind = Parsed::kPrefixDir;
    if (++k == parts.size()) return r;
  }
  const Vec3 g = FileGrid(r.level);
  const Parsed::Kind kinds[3] = {Parsed::kZDir, Parsed::kYDir, Parsed::kFile};
  for (int a = 0; a < 3; ++a, ++k) {
    if (k == parts.size()) return r;
    int64_t v;
    if (!ParseIndex(parts[k], &v) || v >= g[a]) return not_found();
    r.idx[a] = v;
    r.kind = kinds[a];
  }
  if (k < parts.size()) {
    // A path below a data file: ENOTDIR if the file exists, ENOENT if it is absent.
    OZ_RETURN_IF_ERROR(DataFileSize(r.level, r.idx).status());
    return not_dir();
  }
  return r;
}

Result<std::shared_ptr<ZarrTree::ShardIndex>> ZarrTree::GetShardIndex(int level, const Vec3& sidx) {
  const ShardKey key{level, sidx};
  if (auto hit = shard_indexes_.Get(key)) return hit;
  const int64_t n = layout_.shard;
  const size_t count = static_cast<size_t>(n * n * n);
  // The sizes are also kept in the disk cache beside the chunks (under the first inner chunk's
  // key, which names the source state and every option), so stat of a shard after a remount
  // reads one small entry instead of every inner chunk.
  DiskCache* cache = engine_->disk_cache();
  const std::string cache_key = "zarr3-shard-sizes 1|n=" + std::to_string(n) + "|" +
                                engine_->CacheKey(level, {sidx[0] * n, sidx[1] * n, sidx[2] * n});
  if (cache) {
    if (auto e = cache->Get(cache_key); e && e->data.size() == count * 8) {
      auto index = std::make_shared<ShardIndex>();
      index->sizes.resize(count);
      for (size_t i = 0; i < count; ++i) {
        uint64_t v = 0;
        for (int b = 0; b < 8; ++b) v |= static_cast<uint64_t>(static_cast<uint8_t>(e->data[i * 8 + b])) << (8 * b);
        index->sizes[i] = v;
        if (v != kShardAbsent) index->empty = false;
      }
      shard_indexes_.Put(key, index, 1);
      return index;
    }
  }
  const Vec3 g = engine_->pyramid().grid(level);
  auto index = std::make_shared<ShardIndex>();
  index->sizes.assign(count, kShardAbsent);
  const int64_t x0 = sidx[2] * n, x1 = std::min(g[2], x0 + n);
  for (int64_t dz = 0; dz < n && sidx[0] * n + dz < g[0]; ++dz) {
    for (int64_t dy = 0; dy < n && sidx[1] * n + dy < g[1]; ++dy) {
      const int64_t z = sidx[0] * n + dz, y = sidx[1] * n + dy;
      // One engine unit for the row's chunks in this shard: one pass over their source band.
      OZ_ASSIGN_OR_RETURN(std::vector<int64_t> xs, engine_->ListRow(level, z, y, x0, x1));
      for (int64_t x : xs) {
        OZ_ASSIGN_OR_RETURN(uint64_t size, engine_->ChunkSize(level, {z, y, x}));
        index->sizes[static_cast<size_t>((dz * n + dy) * n + (x - x0))] = size;
        index->empty = false;
      }
    }
  }
  shard_indexes_.Put(key, index, 1);
  if (cache) {
    CacheEntry e;
    e.data.reserve(count * 8);
    for (uint64_t v : index->sizes)
      for (int b = 0; b < 8; ++b) e.data.push_back(static_cast<char>((v >> (8 * b)) & 0xFF));
    if (Status st = cache->Put(cache_key, e); !st.ok()) LogWarning("cache: shard index not stored: " + st.ToString());
  }
  return index;
}

Result<uint64_t> ZarrTree::DataFileSize(int level, const Vec3& fidx) {
  if (layout_.shard == 1) return engine_->ChunkSize(level, fidx);
  OZ_ASSIGN_OR_RETURN(std::shared_ptr<ShardIndex> index, GetShardIndex(level, fidx));
  if (index->empty) return NotFoundError("empty shard");
  uint64_t total = index->sizes.size() * 16 + 4;
  for (uint64_t s : index->sizes)
    if (s != kShardAbsent) total += s;
  return total;
}

Result<NodeInfo> ZarrTree::Stat(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  switch (r.kind) {
    case Parsed::kMeta: return NodeInfo{NodeKind::kFile, r.meta->size()};
    case Parsed::kFile: {
      OZ_ASSIGN_OR_RETURN(uint64_t size, DataFileSize(r.level, r.idx));
      return NodeInfo{NodeKind::kFile, size};
    }
    default: return NodeInfo{NodeKind::kDirectory, 0};
  }
}

Result<std::vector<DirEntry>> ZarrTree::List(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  std::vector<DirEntry> out;
  const Vec3 g = FileGrid(r.level);
  auto add_range = [&](int64_t n, NodeKind kind) {
    for (int64_t i = 0; i < n; ++i) out.push_back({std::to_string(i), kind});
  };
  switch (r.kind) {
    case Parsed::kMeta:
    case Parsed::kFile: return Status(ErrorCode::kNotDirectory, std::string(path));
    case Parsed::kRoot:
      if (!plain_array_) {
        for (const auto& [name, doc] : layout_.root_docs) out.push_back({name, NodeKind::kFile});
        add_range(engine_->pyramid().levels(), NodeKind::kDirectory);
        return out;
      }
      [[fallthrough]];
    case Parsed::kLevelDir:
      out.push_back({layout_.array_doc_name, NodeKind::kFile});
      if (!layout_.key_prefix.empty()) {
        out.push_back({layout_.key_prefix, NodeKind::kDirectory});
        return out;
      }
      add_range(g[0], NodeKind::kDirectory);
      return out;
    case Parsed::kPrefixDir: add_range(g[0], NodeKind::kDirectory); return out;
    case Parsed::kZDir: add_range(g[1], NodeKind::kDirectory); return out;
    case Parsed::kYDir: {
      if (layout_.shard == 1) {
        OZ_ASSIGN_OR_RETURN(std::vector<int64_t> xs,
                            engine_->ListRow(r.level, r.idx[0], r.idx[1], 0, engine_->pyramid().grid(r.level)[2]));
        for (int64_t x : xs) out.push_back({std::to_string(x), NodeKind::kFile});
        return out;
      }
      // Listing a shard row computes every inner chunk row across the whole level width first
      // (one unit, one pass over its source band, as a 0.4 row listing), so the shards' indexes
      // below find their chunks known instead of re-reading the band once per shard.
      const int64_t n = layout_.shard;
      const Vec3 cg = engine_->pyramid().grid(r.level);
      for (int64_t z = r.idx[0] * n; z < std::min(cg[0], r.idx[0] * n + n); ++z)
        for (int64_t y = r.idx[1] * n; y < std::min(cg[1], r.idx[1] * n + n); ++y)
          OZ_RETURN_IF_ERROR(engine_->ListRow(r.level, z, y).status());
      for (int64_t sx = 0; sx < g[2]; ++sx) {
        OZ_ASSIGN_OR_RETURN(std::shared_ptr<ShardIndex> index, GetShardIndex(r.level, {r.idx[0], r.idx[1], sx}));
        if (!index->empty) out.push_back({std::to_string(sx), NodeKind::kFile});
      }
      return out;
    }
  }
  return out;
}

Result<std::shared_ptr<FileContent>> ZarrTree::Open(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  if (r.kind == Parsed::kMeta) return std::shared_ptr<FileContent>(std::make_shared<BytesContent>(r.meta));
  if (r.kind != Parsed::kFile) return Status(ErrorCode::kIsDirectory, std::string(path));
  if (layout_.shard == 1) {
    OZ_ASSIGN_OR_RETURN(ChunkBytes b, engine_->GetChunk(r.level, r.idx));
    return std::shared_ptr<FileContent>(std::make_shared<BytesContent>(std::move(b)));
  }
  OZ_ASSIGN_OR_RETURN(std::shared_ptr<ShardIndex> index, GetShardIndex(r.level, r.idx));
  if (index->empty) return NotFoundError(std::string(path));
  const int64_t n = layout_.shard;
  const int level = r.level;
  const Vec3 base{r.idx[0] * n, r.idx[1] * n, r.idx[2] * n};
  ChunkEngine* engine = engine_;
  auto fetch = [engine, level, base, n](size_t i) -> Result<ChunkBytes> {
    const int64_t k = static_cast<int64_t>(i);
    return engine->GetChunk(level, {base[0] + k / (n * n), base[1] + (k / n) % n, base[2] + k % n});
  };
  return std::shared_ptr<FileContent>(std::make_shared<ShardContent>(index->sizes, std::move(fetch)));
}

}  // namespace oz
