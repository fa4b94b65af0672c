// PrecomputedTree: names are strict (each file has exactly one name: canonical decimals, the
// chunk's exact clipped box), and nothing is computed unless a file's existence, size or bytes are
// asked for.
#include "core/format/precomputed/precomputed_tree.h"

#include <cstring>

#include "core/base/log.h"
#include "core/codec/compressed_segmentation.h"
#include "core/codec/jpeg.h"
#include "core/codec/zarr_codec.h"

namespace oz {
namespace {

// "a-b" with canonical decimals.
bool ParseRange(std::string_view s, int64_t* a, int64_t* b) {
  const size_t dash = s.find('-');
  if (dash == std::string_view::npos) return false;
  return ParseIndex(s.substr(0, dash), a) && ParseIndex(s.substr(dash + 1), b);
}

}  // namespace

PrecomputedTree::PrecomputedTree(ChunkEngine* engine, PrecomputedEncoding encoding, int jpeg_quality, std::string info)
    : FormatTree(engine),
      encoding_(encoding),
      jpeg_quality_(jpeg_quality),
      info_(std::make_shared<const std::string>(std::move(info))),
      jpeg_tag_(JpegLibraryTag()),
      derived_(kDerivedMemory) {}

std::string PrecomputedTree::LayoutTag() const {
  switch (encoding_) {
    case PrecomputedEncoding::kRaw: return "precomputed:raw";
    case PrecomputedEncoding::kGzip: return "precomputed:gzip";
    case PrecomputedEncoding::kJpeg: return "precomputed:jpeg:q=" + std::to_string(jpeg_quality_);
    case PrecomputedEncoding::kCompressedSegmentation:
      return "precomputed:compressed_segmentation:" + std::to_string(kSegmentationBlock);
  }
  return "precomputed";
}

std::string PrecomputedTree::ChunkName(int level, const Vec3& idx) const {
  const Box b = engine_->pyramid().ChunkBox(level, idx);
  return std::to_string(b.lo[2]) + "-" + std::to_string(b.hi[2]) + "_" + std::to_string(b.lo[1]) + "-" +
         std::to_string(b.hi[1]) + "_" + std::to_string(b.lo[0]) + "-" + std::to_string(b.hi[0]);
}

std::string PrecomputedTree::DataFileRel(int level, const Vec3& fidx) const {
  return std::to_string(level) + "/" + ChunkName(level, fidx);
}

bool PrecomputedTree::ParseChunkName(int level, std::string_view name, Vec3* idx) const {
  const Pyramid& p = engine_->pyramid();
  const int64_t c = p.chunk();
  const Vec3 g = p.grid(level);
  const std::string_view whole = name;
  std::string_view parts[3];
  for (int a = 0; a < 3; ++a) {
    const size_t us = a < 2 ? name.find('_') : name.size();
    if (us == std::string_view::npos) return false;
    parts[a] = name.substr(0, us);
    name.remove_prefix(a < 2 ? us + 1 : us);
  }
  Vec3 out;
  for (int a = 0; a < 3; ++a) {  // parts are x, y, z; idx is z, y, x
    int64_t lo, hi;
    if (!ParseRange(parts[a], &lo, &hi) || lo % c != 0) return false;
    const int ax = 2 - a;
    if (lo / c >= g[ax]) return false;
    out[ax] = lo / c;
  }
  if (ChunkName(level, out) != whole) return false;  // ends, and only canonical names
  *idx = out;
  return true;
}

bool PrecomputedTree::ParseDataFileRel(const std::string& rel, int* level, Vec3* fidx) const {
  auto parts = SplitPath(rel);
  if (!parts.ok() || parts->size() != 2) return false;
  int64_t l;
  if (!ParseIndex((*parts)[0], &l) || l >= engine_->pyramid().levels()) return false;
  Vec3 idx;
  if (!ParseChunkName(static_cast<int>(l), (*parts)[1], &idx)) return false;
  *level = static_cast<int>(l);
  *fidx = idx;
  return DataFileRel(*level, idx) == rel;
}

Result<PrecomputedTree::Parsed> PrecomputedTree::Parse(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(std::vector<std::string_view> parts, SplitPath(path));
  Parsed r;
  if (parts.empty()) return r;
  auto not_found = [&] { return NotFoundError(std::string(path)); };
  auto not_dir = [&] { return Status(ErrorCode::kNotDirectory, std::string(path)); };
  if (parts[0] == "info") {
    if (parts.size() > 1) return not_dir();
    r.kind = Parsed::kInfo;
    return r;
  }
  int64_t l;
  if (!ParseIndex(parts[0], &l) || l >= engine_->pyramid().levels()) return not_found();
  r.level = static_cast<int>(l);
  r.kind = Parsed::kLevelDir;
  if (parts.size() == 1) return r;
  if (!ParseChunkName(r.level, parts[1], &r.idx)) return not_found();
  r.kind = Parsed::kFile;
  if (parts.size() > 2) {
    // A path below a data file: ENOTDIR if the file exists, ENOENT if it is absent.
    OZ_RETURN_IF_ERROR(FileSize(r.level, r.idx).status());
    return not_dir();
  }
  return r;
}

bool PrecomputedTree::Identity(int level, const Vec3& idx) const {
  if (encoding_ == PrecomputedEncoding::kJpeg || encoding_ == PrecomputedEncoding::kCompressedSegmentation)
    return false;
  const int64_t c = engine_->pyramid().chunk();
  return engine_->pyramid().ChunkBox(level, idx).shape() == Vec3{c, c, c};
}

Result<ChunkBytes> PrecomputedTree::FileBytes(int level, const Vec3& idx, const ChunkBytes& engine_chunk) const {
  if (Identity(level, idx)) return engine_chunk;
  const Pyramid& p = engine_->pyramid();
  const int64_t c = p.chunk();
  const size_t bytes = DTypeSize(engine_->dtype());
  const uint64_t full = engine_->raw_chunk_bytes();
  // The engine chunk's voxels: a padded c^3 chunk, (z, y, x) C order.
  std::vector<uint8_t> decoded;
  const uint8_t* voxels;
  if (engine_->codec().raw()) {
    if (engine_chunk->size() != full)
      return CorruptError("engine chunk " + std::to_string(level) + "/" + ChunkName(level, idx) + " has " +
                          std::to_string(engine_chunk->size()) + " bytes, expected " + std::to_string(full));
    voxels = reinterpret_cast<const uint8_t*>(engine_chunk->data());
  } else {
    decoded.resize(full);
    OZ_RETURN_IF_ERROR(engine_->codec().Decode(*engine_chunk, decoded.data(), full));
    voxels = decoded.data();
  }
  // Clipped to the level: x fastest, then y, then z (the same order as the chunk's rows).
  const Vec3 s = p.ChunkBox(level, idx).shape();
  std::string clipped;
  const uint8_t* data = voxels;
  if (s != Vec3{c, c, c}) {
    clipped.resize(static_cast<size_t>(s[0] * s[1] * s[2]) * bytes);
    const size_t row = static_cast<size_t>(s[2]) * bytes;
    for (int64_t z = 0; z < s[0]; ++z)
      for (int64_t y = 0; y < s[1]; ++y)
        std::memcpy(clipped.data() + static_cast<size_t>(z * s[1] + y) * row,
                    voxels + static_cast<size_t>((z * c + y) * c) * bytes, row);
    data = reinterpret_cast<const uint8_t*>(clipped.data());
  }
  const size_t n = static_cast<size_t>(s[0] * s[1] * s[2]) * bytes;
  switch (encoding_) {
    case PrecomputedEncoding::kRaw:
      if (clipped.empty()) clipped.assign(reinterpret_cast<const char*>(data), n);
      return std::make_shared<const std::string>(std::move(clipped));
    case PrecomputedEncoding::kGzip: {
      OZ_ASSIGN_OR_RETURN(std::string gz, ZlibEncode(data, n, engine_->codec().zlib_level(), /*gzip=*/true));
      return std::make_shared<const std::string>(std::move(gz));
    }
    case PrecomputedEncoding::kJpeg: {
      if (bytes != 1) return InternalError("jpeg chunks need uint8 data");
      OZ_ASSIGN_OR_RETURN(std::string jpg, JpegEncodeGray(data, static_cast<uint32_t>(s[2]),
                                                          static_cast<uint32_t>(s[1] * s[0]), jpeg_quality_));
      return std::make_shared<const std::string>(std::move(jpg));
    }
    case PrecomputedEncoding::kCompressedSegmentation: {
      OZ_ASSIGN_OR_RETURN(std::string cs,
                          EncodeCompressedSegmentation(data, s, bytes, bytes == 8 ? 8 : 4, kSegmentationBlock));
      return std::make_shared<const std::string>(std::move(cs));
    }
  }
  return InternalError("unknown precomputed encoding");
}

std::string PrecomputedTree::DerivedCacheKey(int level, const Vec3& idx) const {
  return "precomputed-file 1|" + LayoutTag() + (encoding_ == PrecomputedEncoding::kJpeg ? "|" + jpeg_tag_ : "") + "|" +
         engine_->CacheKey(level, idx);
}

Result<ChunkBytes> PrecomputedTree::GetFile(int level, const Vec3& idx) {
  if (Identity(level, idx)) return engine_->GetChunk(level, idx);
  const ChunkEngine::Key key{level, idx};
  if (ChunkBytes hit = derived_.Get(key)) return hit;
  // Raw edge files are a copy away from their engine chunk; re-encoded ones are worth a cache entry.
  DiskCache* cache = encoding_ == PrecomputedEncoding::kRaw ? nullptr : engine_->disk_cache();
  const std::string cache_key = cache ? DerivedCacheKey(level, idx) : std::string();
  if (cache) {
    if (auto e = cache->Get(cache_key)) {
      auto b = std::make_shared<const std::string>(std::move(e->data));
      derived_.Put(key, b, b->size());
      return ChunkBytes(b);
    }
  }
  OZ_ASSIGN_OR_RETURN(ChunkBytes chunk, engine_->GetChunk(level, idx));
  OZ_ASSIGN_OR_RETURN(ChunkBytes file, FileBytes(level, idx, chunk));
  derived_.Put(key, file, file->size());
  if (cache) {
    CacheEntry e;
    e.data = *file;
    if (Status st = cache->Put(cache_key, e); !st.ok())
      LogWarning("cache: precomputed chunk file not stored: " + st.ToString());
  }
  return file;
}

Result<uint64_t> PrecomputedTree::FileSize(int level, const Vec3& idx) {
  if (Identity(level, idx)) return engine_->ChunkSize(level, idx);
  if (encoding_ == PrecomputedEncoding::kRaw) {
    OZ_RETURN_IF_ERROR(engine_->ChunkSize(level, idx).status());  // exists? (empty=omit)
    return static_cast<uint64_t>(engine_->pyramid().ChunkBox(level, idx).volume()) * DTypeSize(engine_->dtype());
  }
  OZ_ASSIGN_OR_RETURN(ChunkBytes b, GetFile(level, idx));
  return static_cast<uint64_t>(b->size());
}

Result<NodeInfo> PrecomputedTree::Stat(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  switch (r.kind) {
    case Parsed::kInfo: return NodeInfo{NodeKind::kFile, info_->size()};
    case Parsed::kFile: {
      OZ_ASSIGN_OR_RETURN(uint64_t size, FileSize(r.level, r.idx));
      return NodeInfo{NodeKind::kFile, size};
    }
    default: return NodeInfo{NodeKind::kDirectory, 0};
  }
}

Result<std::vector<DirEntry>> PrecomputedTree::List(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  std::vector<DirEntry> out;
  switch (r.kind) {
    case Parsed::kInfo:
    case Parsed::kFile: return Status(ErrorCode::kNotDirectory, std::string(path));
    case Parsed::kRoot:
      out.push_back({"info", NodeKind::kFile});
      for (int l = 0; l < engine_->pyramid().levels(); ++l) out.push_back({std::to_string(l), NodeKind::kDirectory});
      return out;
    case Parsed::kLevelDir: {
      const Vec3 g = engine_->pyramid().grid(r.level);
      for (int64_t z = 0; z < g[0]; ++z)
        for (int64_t y = 0; y < g[1]; ++y) {
          OZ_ASSIGN_OR_RETURN(std::vector<int64_t> xs, engine_->ListRow(r.level, z, y));
          for (int64_t x : xs) out.push_back({ChunkName(r.level, {z, y, x}), NodeKind::kFile});
        }
      return out;
    }
  }
  return out;
}

Result<std::shared_ptr<FileContent>> PrecomputedTree::Open(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(Parsed r, Parse(path));
  if (r.kind == Parsed::kInfo) return std::shared_ptr<FileContent>(std::make_shared<BytesContent>(info_));
  if (r.kind != Parsed::kFile) return Status(ErrorCode::kIsDirectory, std::string(path));
  OZ_ASSIGN_OR_RETURN(ChunkBytes b, GetFile(r.level, r.idx));
  return std::shared_ptr<FileContent>(std::make_shared<BytesContent>(std::move(b)));
}

}  // namespace oz
