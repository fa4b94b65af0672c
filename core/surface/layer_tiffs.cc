// Layer TIFFs. Bands hold every layer of their rows because sampling is dominated by finding and
// decoding the chunks around the surface, which all layers of a pixel share; one layer alone
// would redo that work per file. Chunks are fetched in parallel before a band is sampled, so the
// sampling loop needs no locks.
#include "core/surface/layer_tiffs.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/base/log.h"

namespace oz {

struct LayerTiffs::Band {
  std::vector<std::shared_ptr<const Strip>> strips;  // per file, little-endian samples
};

class LayerTiffs::Content final : public FileContent {
 public:
  Content(LayerTiffs* t, int file) : t_(t), file_(file) {}
  uint64_t size() const override { return t_->file_size(); }
  Result<size_t> ReadAt(uint64_t offset, size_t n, char* out) override {
    const uint64_t size = t_->file_size();
    if (offset >= size) return size_t{0};
    n = static_cast<size_t>(std::min<uint64_t>(n, size - offset));
    OZ_RETURN_IF_ERROR(t_->ReadFile(file_, offset, n, out));
    return n;
  }

 private:
  LayerTiffs* t_;
  int file_;
};

namespace {

void Put16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>(v >> 8));
}
void Put32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Header, one IFD and the strip tables of a width x height single-sample image in `strips` strips
// of `rows` rows, pixel data starting right after (at the returned string's size).
std::string TiffHeader(uint32_t width, uint32_t height, uint32_t rows, uint32_t strips, int bytes) {
  constexpr uint16_t kShort = 3, kLong = 4;
  struct Entry {
    uint16_t tag, type;
    uint32_t count, value;
  };
  const uint32_t strip_bytes = width * rows * static_cast<uint32_t>(bytes);
  const uint32_t n_entries = 11;
  const uint32_t ifd = 8, ifd_bytes = 2 + 12 * n_entries + 4;
  const uint32_t offsets_at = ifd + ifd_bytes;
  const uint32_t counts_at = offsets_at + (strips > 1 ? 4 * strips : 0);
  const uint32_t data_at = counts_at + (strips > 1 ? 4 * strips : 0);
  const uint32_t last_bytes = width * (height - rows * (strips - 1)) * static_cast<uint32_t>(bytes);
  const Entry entries[n_entries] = {
      {256, kLong, 1, width},                                     // ImageWidth
      {257, kLong, 1, height},                                    // ImageLength
      {258, kShort, 1, static_cast<uint32_t>(8 * bytes)},         // BitsPerSample
      {259, kShort, 1, 1},                                        // Compression: none
      {262, kShort, 1, 1},                                        // Photometric: min is black
      {273, kLong, strips, strips > 1 ? offsets_at : data_at},    // StripOffsets
      {277, kShort, 1, 1},                                        // SamplesPerPixel
      {278, kLong, 1, rows},                                      // RowsPerStrip
      {279, kLong, strips, strips > 1 ? counts_at : last_bytes},  // StripByteCounts
      {284, kShort, 1, 1},                                        // PlanarConfiguration
      {339, kShort, 1, 1},                                        // SampleFormat: unsigned
  };
  std::string s = "II";
  Put16(&s, 42);
  Put32(&s, ifd);
  Put16(&s, n_entries);
  for (const Entry& e : entries) {
    Put16(&s, e.tag);
    Put16(&s, e.type);
    Put32(&s, e.count);
    if (e.type == kShort && e.count == 1) {
      Put16(&s, static_cast<uint16_t>(e.value));
      Put16(&s, 0);
    } else {
      Put32(&s, e.value);
    }
  }
  Put32(&s, 0);  // no next IFD
  if (strips > 1) {
    for (uint32_t i = 0; i < strips; ++i) Put32(&s, data_at + i * strip_bytes);
    for (uint32_t i = 0; i < strips; ++i) Put32(&s, i + 1 < strips ? strip_bytes : last_bytes);
  }
  return s;
}

}  // namespace

Result<std::unique_ptr<LayerTiffs>> LayerTiffs::Make(std::unique_ptr<PpmFile> ppm, ChunkEngine* engine,
                                                     const LayerTiffsParams& params, double* outside_share) {
  std::unique_ptr<LayerTiffs> t(new LayerTiffs());
  t->params_ = params;
  t->layers_ = 2 * (params.layers_count / 2) + 1;
  t->half_ = params.layers_count / 2;
  t->stack_half_ = params.stack_count / 2;
  if (t->stack_half_ > t->half_)
    return InvalidArgumentError("stack_count=" + std::to_string(params.stack_count) +
                                " is more than layers_count=" + std::to_string(params.layers_count) +
                                ": the stack is the max over inner layers; use stack_count <= layers_count");
  t->engine_ = engine;
  t->shape_ = engine->pyramid().shape(0);
  t->chunk_ = engine->options().chunk;
  for (int a = 0; a < 3; ++a) t->grid_[a] = CeilDiv(t->shape_[a], t->chunk_);
  t->in_bytes_ = static_cast<int>(DTypeSize(engine->dtype()));
  t->out_bytes_ = t->in_bytes_ == 1 ? 1 : 2;
  const int64_t w = ppm->width(), h = ppm->height();
  // Strips of about 64 KiB: a band of 65 layers is then about 4 MB of output.
  t->rows_ = static_cast<int>(std::clamp<int64_t>((64 << 10) / (w * t->out_bytes_), 1, h));
  t->bands_ = CeilDiv(h, t->rows_);
  t->pixel_bytes_ = static_cast<uint64_t>(w) * static_cast<uint64_t>(h) * static_cast<uint64_t>(t->out_bytes_);
  t->header_ = TiffHeader(static_cast<uint32_t>(w), static_cast<uint32_t>(h), static_cast<uint32_t>(t->rows_),
                          static_cast<uint32_t>(t->bands_), t->out_bytes_);
  if (t->file_size() >= (1ull << 32))
    return InvalidArgumentError("layers: a " + std::to_string(w) + "x" + std::to_string(h) + " layer of " +
                                ppm->path() + " is over 4 GiB, more than a classic TIFF holds");
  for (int k = 0; k < t->layers_; ++k) {
    char name[16];
    std::snprintf(name, sizeof name, "%02d.tif", k);
    t->names_.push_back(name);
  }
  t->names_.push_back("stack.tif");
  t->zero_chunk_ = std::make_shared<const ChunkData>(engine->raw_chunk_bytes(), 0);
  t->files_ = t->layers_ + 1;
  t->strip_cache_ = std::make_unique<LruCache<int64_t, const Strip>>(params.memory / 2);
  t->disk_ = engine->disk_cache();
  t->disk_prefix_ = "layers1|" + engine->CacheKey(0, {0, 0, 0}) + "|ppm=" + params.ppm_id +
                    "|n=" + std::to_string(params.layers_count) + "|s=" + std::to_string(params.stack_count) + "|";
  t->chunk_cache_ = std::make_unique<LruCache<int64_t, const ChunkData>>(params.memory / 2);

  // One pass over the surface: its values are checked again, and the share of points whose
  // samples leave the volume is reported. The rule's inside set is a box, so a pixel's samples
  // are all inside when its first and last layers are.
  uint64_t valid = 0, outside = 0;
  std::vector<PpmPixel> px;
  const int64_t batch = std::max<int64_t>(1, 65536 / w);
  for (int64_t r = 0; r < h; r += batch) {
    OZ_RETURN_IF_ERROR(ppm->ReadRows(r, std::min(h, r + batch), &px));
    for (const PpmPixel& q : px) {
      if (!q.valid()) continue;
      ++valid;
      for (int o : {-t->half_, t->half_}) {
        const double p[3] = {static_cast<double>(q.z) + static_cast<double>(o) * static_cast<double>(q.nz),
                             static_cast<double>(q.y) + static_cast<double>(o) * static_cast<double>(q.ny),
                             static_cast<double>(q.x) + static_cast<double>(o) * static_cast<double>(q.nx)};
        if (!SampleInside(p, t->shape_)) {
          ++outside;
          break;
        }
      }
    }
  }
  if (outside_share) *outside_share = valid ? static_cast<double>(outside) / static_cast<double>(valid) : 0.0;
  t->ppm_ = std::move(ppm);
  return t;
}

LayerTiffs::~LayerTiffs() = default;

int LayerTiffs::FileIndex(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  return -1;
}

Result<NodeInfo> LayerTiffs::Stat(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  if (parts.empty()) return NodeInfo{NodeKind::kDirectory, 0};
  if (FileIndex(parts[0]) < 0) return NotFoundError(std::string(path));
  if (parts.size() > 1) return Status(ErrorCode::kNotDirectory, std::string(path));
  return NodeInfo{NodeKind::kFile, file_size()};
}

Result<std::vector<DirEntry>> LayerTiffs::List(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(NodeInfo info, Stat(path));
  if (info.kind != NodeKind::kDirectory) return Status(ErrorCode::kNotDirectory, std::string(path));
  std::vector<DirEntry> out;
  for (const std::string& n : names_) out.push_back({n, NodeKind::kFile});
  return out;
}

Result<std::shared_ptr<FileContent>> LayerTiffs::Open(std::string_view path) {
  OZ_ASSIGN_OR_RETURN(NodeInfo info, Stat(path));
  if (info.kind == NodeKind::kDirectory) return Status(ErrorCode::kIsDirectory, std::string(path));
  OZ_ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  return std::shared_ptr<FileContent>(std::make_shared<Content>(this, FileIndex(parts[0])));
}

Status LayerTiffs::ReadFile(int file, uint64_t offset, size_t n, char* out) {
  const uint64_t hb = header_.size();
  if (offset < hb) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, hb - offset));
    std::memcpy(out, header_.data() + offset, k);
    offset += k;
    out += k;
    n -= k;
  }
  const uint64_t strip_bytes =
      static_cast<uint64_t>(rows_) * static_cast<uint64_t>(ppm_->width()) * static_cast<uint64_t>(out_bytes_);
  while (n > 0) {
    const uint64_t rel = offset - hb;
    const int64_t b = static_cast<int64_t>(rel / strip_bytes);
    OZ_ASSIGN_OR_RETURN(std::shared_ptr<const Strip> strip, GetStrip(file, b));
    const uint64_t in = rel - static_cast<uint64_t>(b) * strip_bytes;
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, strip->size() - in));
    std::memcpy(out, strip->data() + in, k);
    offset += k;
    out += k;
    n -= k;
  }
  return OkStatus();
}

std::string LayerTiffs::DiskKey(int file, int64_t b) const {
  return disk_prefix_ + std::to_string(file) + "/" + std::to_string(b);
}

Result<std::shared_ptr<const LayerTiffs::Strip>> LayerTiffs::GetStrip(int file, int64_t b) {
  const int64_t key = b * files_ + file;
  if (auto hit = strip_cache_->Get(key)) return hit;
  const uint64_t want = static_cast<uint64_t>(std::min<int64_t>(rows_, ppm_->height() - b * rows_)) *
                        static_cast<uint64_t>(ppm_->width()) * static_cast<uint64_t>(out_bytes_);
  if (disk_) {
    if (auto e = disk_->Get(DiskKey(file, b)); e && e->data.size() == want) {
      auto strip = std::make_shared<const Strip>(std::move(e->data));
      strip_cache_->Put(key, strip, strip->size());
      return strip;
    }
  }
  // A flight that completed between the misses above and Do is computed again: the same bytes.
  OZ_ASSIGN_OR_RETURN(std::shared_ptr<const Band> band, band_flights_.Do(b, [&] { return ComputeBand(b); }));
  return band->strips[static_cast<size_t>(file)];
}

Result<std::shared_ptr<const LayerTiffs::ChunkData>> LayerTiffs::GetChunk(const Vec3& idx) {
  const int64_t key = (idx[0] * grid_[1] + idx[1]) * grid_[2] + idx[2];
  if (auto hit = chunk_cache_->Get(key)) return hit;
  return chunk_flights_.Do(key, [&]() -> Result<std::shared_ptr<const ChunkData>> {
    if (auto hit = chunk_cache_->Get(key)) return hit;
    auto bytes = engine_->GetChunk(0, idx);
    if (!bytes.ok() && bytes.status().code() == ErrorCode::kNotFound) return zero_chunk_;  // empty=omit
    if (!bytes.ok()) return bytes.status();
    auto data = std::make_shared<ChunkData>(engine_->raw_chunk_bytes());
    OZ_RETURN_IF_ERROR(engine_->codec().Decode(**bytes, data->data(), data->size()));
    std::shared_ptr<const ChunkData> c = std::move(data);
    chunk_cache_->Put(key, c, c->size());
    return c;
  });
}

namespace {

template <typename In, typename Out>
void SampleRow(const std::vector<PpmPixel>& px, size_t first, int64_t c0, int64_t c1, int layers, int half,
               int stack_half, const Vec3& shape, int64_t chunk, const Vec3& grid,
               const std::unordered_map<int64_t, const uint8_t*>& chunks, Out* const* files) {
  const uint32_t max_value = sizeof(Out) == 1 ? 255u : 65535u;
  const int64_t c = chunk;
  // Chunk coordinates by shift and mask when the chunk edge is a power of two (the usual case):
  // a division per axis per voxel would dominate the sampling loop.
  const bool pow2 = (c & (c - 1)) == 0;
  int shift = 0;
  while ((int64_t{1} << shift) < c) ++shift;
  auto split = [&](int64_t v, int64_t* q, int64_t* r) {
    if (pow2) {
      *q = v >> shift;
      *r = v & (c - 1);
    } else {
      *q = v / c;
      *r = v % c;
    }
  };
  int64_t last_key = -1;
  const In* last = nullptr;
  auto chunk_at = [&](int64_t cz, int64_t cy, int64_t cx) {
    const int64_t key = (cz * grid[1] + cy) * grid[2] + cx;
    if (key != last_key) {
      last_key = key;
      last = reinterpret_cast<const In*>(chunks.at(key));
    }
    return last;
  };
  auto corners = [&](const int64_t i[3], double v[8]) {
    int64_t q[3], r[3];
    for (int a = 0; a < 3; ++a) split(i[a], &q[a], &r[a]);
    if (r[0] < c - 1 && r[1] < c - 1 && r[2] < c - 1) {  // all 8 in one chunk
      const In* d = chunk_at(q[0], q[1], q[2]) + (r[0] * c + r[1]) * c + r[2];
      for (int dz = 0; dz < 2; ++dz)
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) v[4 * dz + 2 * dy + dx] = static_cast<double>(d[(dz * c + dy) * c + dx]);
      return;
    }
    for (int dz = 0; dz < 2; ++dz)
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx) {
          int64_t qq[3], rr[3];
          split(i[0] + dz, &qq[0], &rr[0]);
          split(i[1] + dy, &qq[1], &rr[1]);
          split(i[2] + dx, &qq[2], &rr[2]);
          v[4 * dz + 2 * dy + dx] = static_cast<double>(chunk_at(qq[0], qq[1], qq[2])[(rr[0] * c + rr[1]) * c + rr[2]]);
        }
  };
  for (int64_t col = c0; col < c1; ++col) {
    const PpmPixel& q = px[first + static_cast<size_t>(col)];
    const size_t at = first + static_cast<size_t>(col);
    uint32_t stack = 0;
    for (int k = 0; k < layers; ++k) {
      uint32_t v = 0;
      if (q.valid()) {
        const double o = static_cast<double>(k - half);
        const double p[3] = {static_cast<double>(q.z) + o * static_cast<double>(q.nz),
                             static_cast<double>(q.y) + o * static_cast<double>(q.ny),
                             static_cast<double>(q.x) + o * static_cast<double>(q.nx)};
        v = SampleTrilinear(p, shape, max_value, corners);
      }
      files[k][at] = static_cast<Out>(v);
      if (k >= half - stack_half && k <= half + stack_half) stack = std::max(stack, v);
    }
    files[layers][at] = static_cast<Out>(stack);
  }
}

}  // namespace

Result<std::shared_ptr<const LayerTiffs::Band>> LayerTiffs::ComputeBand(int64_t b) {
  const int64_t w = ppm_->width();
  const int64_t r0 = b * rows_, r1 = std::min(ppm_->height(), r0 + rows_);
  std::vector<PpmPixel> px;
  OZ_RETURN_IF_ERROR(ppm_->ReadRows(r0, r1, &px));

  const int64_t c = chunk_;
  const int64_t rows = r1 - r0;
  const uint64_t file_bytes = static_cast<uint64_t>(rows * w * out_bytes_);
  std::vector<Strip> out(static_cast<size_t>(files_), Strip(file_bytes, '\0'));
  std::vector<uint8_t*> files(static_cast<size_t>(files_));
  for (int f = 0; f < files_; ++f) files[static_cast<size_t>(f)] = reinterpret_cast<uint8_t*>(out[f].data());

  // The chunks holding every inside sample's 8 neighbours: a pixel's samples lie on a segment, so
  // within the chunk box of its two end samples (widened by a hair against rounding between them),
  // clipped to the volume. Neighbouring pixels mostly share their box.
  auto column_keys = [&](int64_t col, std::vector<int64_t>* keys) {
    int64_t prev[6] = {-1, -1, -1, -1, -1, -1};
    for (int64_t r = 0; r < rows; ++r) {
      const PpmPixel& q = px[static_cast<size_t>(r * w + col)];
      if (!q.valid()) continue;
      const double pt[3] = {q.z, q.y, q.x}, nv[3] = {q.nz, q.ny, q.nx};
      int64_t box[6];
      for (int a = 0; a < 3; ++a) {
        const double e0 = pt[a] - static_cast<double>(half_) * nv[a];
        const double e1 = pt[a] + static_cast<double>(half_) * nv[a];
        const double lo = std::min(e0, e1) - 1e-6, hi = std::max(e0, e1) + 1e-6 + 1;
        const double top = static_cast<double>(shape_[a] - 1);
        box[a] = static_cast<int64_t>(std::clamp(lo, 0.0, top)) / c;
        box[3 + a] = static_cast<int64_t>(std::clamp(hi, 0.0, top)) / c;
      }
      if (std::equal(box, box + 6, prev)) continue;
      std::copy(box, box + 6, prev);
      for (int64_t z = box[0]; z <= box[3]; ++z)
        for (int64_t y = box[1]; y <= box[4]; ++y)
          for (int64_t x = box[2]; x <= box[5]; ++x) keys->push_back((z * grid_[1] + y) * grid_[2] + x);
    }
  };
  // Columns are sampled in segments whose chunks fit in the decoded-chunk budget, so a band across
  // a wide volume never pins more chunks than that at once (at least one column's).
  const size_t max_pinned =
      std::max<size_t>(8, static_cast<size_t>(params_.memory / 2 / std::max<uint64_t>(1, engine_->raw_chunk_bytes())));
  std::vector<int64_t> col_keys;
  for (int64_t c0 = 0; c0 < w;) {
    std::unordered_set<int64_t> keys;
    int64_t c1 = c0;
    while (c1 < w) {
      col_keys.clear();
      column_keys(c1, &col_keys);
      size_t added = 0;
      for (int64_t k : col_keys) added += keys.count(k) ? 0 : 1;
      if (c1 > c0 && keys.size() + added > max_pinned) break;
      keys.insert(col_keys.begin(), col_keys.end());
      ++c1;
    }
    std::vector<int64_t> list(keys.begin(), keys.end());
    std::vector<std::shared_ptr<const ChunkData>> held(list.size());
    OZ_RETURN_IF_ERROR(ParallelForStatus(
        params_.pool, list.size(),
        [&](size_t i) -> Status {
          const int64_t k = list[i];
          const Vec3 idx{k / (grid_[1] * grid_[2]), (k / grid_[2]) % grid_[1], k % grid_[2]};
          OZ_ASSIGN_OR_RETURN(held[i], GetChunk(idx));
          return OkStatus();
        },
        [&](size_t i) {
          return "layers: level-0 chunk " + std::to_string(list[i]) + " of band " + std::to_string(b);
        }));
    std::unordered_map<int64_t, const uint8_t*> chunks;
    for (size_t i = 0; i < list.size(); ++i) chunks.emplace(list[i], held[i]->data());
    OZ_RETURN_IF_ERROR(ParallelForStatus(
        params_.pool, static_cast<size_t>(rows),
        [&](size_t row) -> Status {
          const size_t first = row * static_cast<size_t>(w);
          if (in_bytes_ == 1) {
            SampleRow<uint8_t, uint8_t>(px, first, c0, c1, layers_, half_, stack_half_, shape_, c, grid_, chunks,
                                        files.data());
          } else {
            std::vector<uint16_t*> f16(files.size());
            for (size_t f = 0; f < files.size(); ++f) f16[f] = reinterpret_cast<uint16_t*>(files[f]);
            SampleRow<uint16_t, uint16_t>(px, first, c0, c1, layers_, half_, stack_half_, shape_, c, grid_, chunks,
                                          f16.data());
          }
          return OkStatus();
        },
        [&](size_t row) { return "layers: row " + std::to_string(r0 + static_cast<int64_t>(row)); }));
    c0 = c1;
  }
  auto band = std::make_shared<Band>();
  for (int f = 0; f < files_; ++f) {
    auto strip = std::make_shared<const Strip>(std::move(out[static_cast<size_t>(f)]));
    strip_cache_->Put(b * files_ + f, strip, strip->size());
    if (disk_) {
      CacheEntry e;
      e.data = *strip;
      if (Status st = disk_->Put(DiskKey(f, b), e); !st.ok())
        LogWarning("layers: strip " + std::to_string(b) + " of " + names_[static_cast<size_t>(f)] +
                   " not stored in the disk cache: " + st.ToString());
    }
    band->strips.push_back(std::move(strip));
  }
  return std::shared_ptr<const Band>(std::move(band));
}

}  // namespace oz
