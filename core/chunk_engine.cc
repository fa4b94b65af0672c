// ChunkEngine implementation. See the header for the request path; the comments here explain the
// streaming computation and the memory plan.
#include "core/chunk_engine.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <new>

#include "core/downsample.h"
#include "core/hash.h"
#include "core/log.h"

namespace oz {
namespace {

constexpr uint32_t kFlagEmpty = 1;
constexpr int kMaxBaseDistance = 4;  // look for cached chunks at most this many levels below
constexpr uint64_t kMaxRawChunkBytes = 1ull << 30;

// Copies `region` voxels from src (dense, shape src_shape) at src_off to dst (dense, dst_shape)
// at dst_off.
void CopyRegion(const uint8_t* src, const Vec3& src_shape, const Vec3& src_off, uint8_t* dst, const Vec3& dst_shape,
                const Vec3& dst_off, const Vec3& region, size_t bpv) {
  const size_t row = static_cast<size_t>(region[2]) * bpv;
  for (int64_t z = 0; z < region[0]; ++z)
    for (int64_t y = 0; y < region[1]; ++y) {
      const int64_t si = ((src_off[0] + z) * src_shape[1] + (src_off[1] + y)) * src_shape[2] + src_off[2];
      const int64_t di = ((dst_off[0] + z) * dst_shape[1] + (dst_off[1] + y)) * dst_shape[2] + dst_off[2];
      std::memcpy(dst + di * bpv, src + si * bpv, row);
    }
}

bool AllZero(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    if (v) return false;
  }
  for (; i < n; ++i)
    if (p[i]) return false;
  return true;
}

std::string SliceText(const SliceRange& r) {
  return (r.start ? std::to_string(*r.start) : "") + ":" + (r.stop ? std::to_string(*r.stop) : "");
}

}  // namespace

struct ChunkEngine::Flight {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;                         // guarded by mu
  std::optional<Result<ChunkBytes>> result;  // guarded by mu
};

size_t ChunkEngine::KeyHash::operator()(const Key& k) const {
  uint64_t h = static_cast<uint64_t>(k.level) * 0x9E3779B97F4A7C15ull;
  for (int64_t v : k.idx) h = (h ^ static_cast<uint64_t>(v)) * 0xff51afd7ed558ccdull, h ^= h >> 32;
  return static_cast<size_t>(h);
}

Result<std::unique_ptr<ChunkEngine>> ChunkEngine::Make(std::shared_ptr<ViewVolume> level0,
                                                       const ChunkEngineConfig& config) {
  if (!config.pool || !config.stats) return InternalError("ChunkEngine needs a pool and stats");
  const Options& o = config.options;
  OZ_ASSIGN_OR_RETURN(Pyramid pyramid, Pyramid::Make(level0->shape(), o.levels, o.chunk));
  OZ_ASSIGN_OR_RETURN(ChunkCodec codec, ChunkCodec::Make(o, level0->dtype()));
  auto vol = CheckedVolume({o.chunk, o.chunk, o.chunk});
  if (!vol || static_cast<uint64_t>(*vol) * DTypeSize(level0->dtype()) > kMaxRawChunkBytes)
    return InvalidArgumentError("chunk=" + std::to_string(o.chunk) +
                                " makes chunks larger than 1 GiB; use a smaller chunk");
  return std::unique_ptr<ChunkEngine>(new ChunkEngine(std::move(level0), config, std::move(pyramid), std::move(codec)));
}

ChunkEngine::ChunkEngine(std::shared_ptr<ViewVolume> level0, const ChunkEngineConfig& config, Pyramid pyramid,
                         ChunkCodec codec)
    : level0_(std::move(level0)),
      config_(config),
      pyramid_(std::move(pyramid)),
      codec_(std::move(codec)),
      work_budget_(config.work_memory) {
  const Options& o = config_.options;
  raw_bytes_ = static_cast<uint64_t>(o.chunk * o.chunk * o.chunk) * DTypeSize(level0_->dtype());
  const ViewGeometry& g = level0_->geometry();
  // Everything that changes a chunk's bytes, except the algorithm (level 0 does not depend on it).
  std::string view = "win=" + SliceText(o.window[0]) + "," + SliceText(o.window[1]) + "," + SliceText(o.window[2]) +
                     ";resolved=" + g.source_window.ToString() + ";shift=" + ToString(g.shift) +
                     ";bytes1=" + (o.bytes1 ? "1" : "0");
  key_prefix_ = "ozchunk1|src=" + Hash128Hex(level0_->Fingerprint()) + "|dtype=" + std::string(DTypeName(dtype())) +
                "|" + view + "|c=" + std::to_string(o.chunk) + "|codec=" + codec_.CacheTag() + "|";
}

ChunkEngine::~ChunkEngine() = default;

std::string ChunkEngine::CacheKey(int level, const Vec3& idx) const {
  return key_prefix_ + "alg=" + (level ? std::string(AlgorithmName(config_.options.algorithm)) : "-") + "|" +
         std::to_string(level) + "/" + std::to_string(idx[0]) + "/" + std::to_string(idx[1]) + "/" +
         std::to_string(idx[2]);
}

ChunkEngine::Info ChunkEngine::Lookup(const Key& k) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = known_.find(k);
  return it == known_.end() ? Info{} : it->second;
}

void ChunkEngine::Record(const Key& k, State s, uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  known_[k] = Info{s, size};
}

ChunkBytes ChunkEngine::HotGet(const Key& k) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = hot_index_.find(k);
  if (it == hot_index_.end()) return nullptr;
  hot_lru_.splice(hot_lru_.begin(), hot_lru_, it->second);
  return it->second->second;
}

void ChunkEngine::HotPut(const Key& k, const ChunkBytes& b) {
  if (b->size() > config_.hot_bytes / 4) return;
  std::lock_guard<std::mutex> l(mu_);
  if (hot_index_.count(k)) return;
  hot_lru_.emplace_front(k, b);
  hot_index_[k] = hot_lru_.begin();
  hot_used_ += b->size();
  while (hot_used_ > config_.hot_bytes && !hot_lru_.empty()) {
    hot_used_ -= hot_lru_.back().second->size();
    hot_index_.erase(hot_lru_.back().first);
    hot_lru_.pop_back();
  }
}

Result<ChunkBytes> ChunkEngine::EmptyResult() {
  if (config_.options.empty == EmptyPolicy::kOmit) return NotFoundError("empty chunk (all fill value)");
  std::lock_guard<std::mutex> l(mu_);
  if (!empty_bytes_) {
    std::vector<uint8_t> zeros(raw_bytes_, 0);
    auto enc = codec_.Encode(zeros.data(), zeros.size());
    if (!enc.ok()) return enc.status();
    empty_bytes_ = std::make_shared<const std::string>(std::move(enc).value());
  }
  return empty_bytes_;
}

bool ChunkEngine::ProvablyEmpty(int level, const Vec3& idx) {
  const Key k{level, idx};
  Info i = Lookup(k);
  if (i.state != State::kUnknown) return i.state == State::kEmpty;
  const Box b0 = pyramid_.BoxAtLowerLevel(pyramid_.ChunkBox(level, idx), level, 0);
  if (b0.Intersect(level0_->geometry().data_region).empty()) {
    Record(k, State::kEmpty, 0);
    return true;
  }
  if (level > 0) {
    for (int d = 0; d < 8; ++d) {
      Vec3 c{2 * idx[0] + (d >> 2), 2 * idx[1] + ((d >> 1) & 1), 2 * idx[2] + (d & 1)};
      if (!pyramid_.ValidChunk(level - 1, c)) continue;
      if (Lookup(Key{level - 1, c}).state != State::kEmpty) return false;
    }
    Record(k, State::kEmpty, 0);
    return true;
  }
  return false;
}

Result<ChunkBytes> ChunkEngine::GetChunk(int level, const Vec3& idx) {
  config_.stats->chunk_requests++;
  if (!pyramid_.ValidChunk(level, idx))
    return NotFoundError("no chunk " + ToString(idx) + " at level " + std::to_string(level));
  if (ProvablyEmpty(level, idx)) return EmptyResult();
  const Key k{level, idx};
  if (ChunkBytes b = HotGet(k)) return b;

  std::shared_ptr<Flight> f;
  bool leader = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = inflight_.find(k);
    if (it != inflight_.end()) {
      f = it->second;
    } else {
      f = std::make_shared<Flight>();
      inflight_.emplace(k, f);
      leader = true;
    }
  }
  if (!leader) {
    config_.stats->singleflight_waits++;
    std::unique_lock<std::mutex> l(f->mu);
    f->cv.wait(l, [&] { return f->done; });
    return *f->result;
  }
  std::optional<Result<ChunkBytes>> r;
  try {
    r.emplace(Produce(level, idx));
  } catch (const std::bad_alloc&) {
    r.emplace(ResourceExhaustedError("out of memory computing chunk " + ToString(idx) + " of level " +
                                     std::to_string(level)));
  } catch (const std::exception& e) {
    r.emplace(InternalError(std::string("unexpected exception computing a chunk: ") + e.what()));
  }
  if (!r->ok() && r->status().code() != ErrorCode::kNotFound) config_.stats->errors++;
  Complete(k, f, *r);
  return std::move(*r);
}

std::shared_ptr<ChunkEngine::Flight> ChunkEngine::TryClaim(const Key& k) {
  std::lock_guard<std::mutex> l(mu_);
  auto known = known_.find(k);
  if (known != known_.end() && known->second.state != State::kUnknown) return nullptr;
  if (inflight_.count(k)) return nullptr;
  auto f = std::make_shared<Flight>();
  inflight_.emplace(k, f);
  return f;
}

void ChunkEngine::Complete(const Key& k, const std::shared_ptr<Flight>& f, const Result<ChunkBytes>& r) {
  {
    std::lock_guard<std::mutex> l(f->mu);
    f->result = r;
    f->done = true;
  }
  f->cv.notify_all();
  std::lock_guard<std::mutex> l(mu_);
  auto it = inflight_.find(k);
  if (it != inflight_.end() && it->second == f) inflight_.erase(it);
}

Result<ChunkBytes> ChunkEngine::Produce(int level, const Vec3& idx) {
  const Key k{level, idx};
  if (config_.cache) {
    if (auto e = config_.cache->Get(CacheKey(level, idx))) {
      if (e->flags & kFlagEmpty) {
        Record(k, State::kEmpty, 0);
        return EmptyResult();
      }
      if (codec_.CacheTag() != "raw" || e->data.size() == raw_bytes_) {
        auto b = std::make_shared<const std::string>(std::move(e->data));
        Record(k, State::kPresent, b->size());
        HotPut(k, b);
        return ChunkBytes(b);
      }
      LogWarning("cache entry for chunk " + std::to_string(level) + "/" + ToString(idx) +
                 " has the wrong size; recomputing");
    }
  }
  std::vector<uint8_t> buf(raw_bytes_);
  OZ_RETURN_IF_ERROR(ComputeVoxels(level, idx, buf.data(), /*fill_cache=*/config_.cache != nullptr));
  return Finish(level, idx, buf.data());
}

Result<ChunkBytes> ChunkEngine::Finish(int level, const Vec3& idx, const uint8_t* voxels) {
  const Key k{level, idx};
  config_.stats->chunks_computed++;
  if (AllZero(voxels, raw_bytes_)) {
    Record(k, State::kEmpty, 0);
    if (config_.cache) {
      Status s = config_.cache->Put(CacheKey(level, idx), CacheEntry{kFlagEmpty, {}});
      if (!s.ok()) {
        config_.stats->cache_put_failures++;
        static RateLimiter rl;
        if (rl.Allow()) LogWarning("could not store chunk in the cache (reads go on): " + s.ToString());
      }
    }
    return EmptyResult();
  }
  OZ_ASSIGN_OR_RETURN(std::string enc, codec_.Encode(voxels, raw_bytes_));
  auto b = std::make_shared<const std::string>(std::move(enc));
  Record(k, State::kPresent, b->size());
  HotPut(k, b);
  if (config_.cache) {
    Status s = config_.cache->Put(CacheKey(level, idx), CacheEntry{0, *b});
    if (!s.ok()) {
      config_.stats->cache_put_failures++;
      static RateLimiter rl;
      if (rl.Allow()) LogWarning("could not store chunk in the cache (reads go on): " + s.ToString());
    }
  }
  return ChunkBytes(b);
}

Result<uint64_t> ChunkEngine::ChunkSize(int level, const Vec3& idx) {
  if (!pyramid_.ValidChunk(level, idx))
    return NotFoundError("no chunk " + ToString(idx) + " at level " + std::to_string(level));
  if (config_.options.empty == EmptyPolicy::kKeep && codec_.CacheTag() == "raw") return raw_bytes_;
  Info i = Lookup(Key{level, idx});
  if (i.state == State::kPresent) return i.size;
  OZ_ASSIGN_OR_RETURN(ChunkBytes b, GetChunk(level, idx));
  return static_cast<uint64_t>(b->size());
}

Result<std::vector<int64_t>> ChunkEngine::ListRow(int level, int64_t z, int64_t y) {
  if (level < 0 || level >= pyramid_.levels() || !pyramid_.ValidChunk(level, {z, y, 0}))
    return NotFoundError("no chunk row " + std::to_string(z) + "/" + std::to_string(y) + " at level " +
                         std::to_string(level));
  const int64_t nx = pyramid_.grid(level)[2];
  std::vector<int64_t> xs;
  if (config_.options.empty == EmptyPolicy::kKeep) {
    for (int64_t x = 0; x < nx; ++x) xs.push_back(x);
    return xs;
  }
  std::vector<int64_t> unknown;
  std::vector<char> present(nx, 0);
  for (int64_t x = 0; x < nx; ++x) {
    if (ProvablyEmpty(level, {z, y, x})) continue;
    if (Lookup(Key{level, {z, y, x}}).state == State::kPresent)
      present[x] = 1;
    else
      unknown.push_back(x);
  }
  std::vector<std::optional<Status>> errs(unknown.size());
  config_.pool->ParallelFor(unknown.size(), [&](size_t i) {
    auto r = GetChunk(level, {z, y, unknown[i]});
    if (r.ok())
      present[unknown[i]] = 1;
    else if (r.status().code() != ErrorCode::kNotFound)
      errs[i] = r.status();
  });
  for (auto& e : errs)
    if (e) return *e;
  for (int64_t x = 0; x < nx; ++x)
    if (present[x]) xs.push_back(x);
  return xs;
}

bool ChunkEngine::Available(int level, const Vec3& idx) {
  if (ProvablyEmpty(level, idx)) return true;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (hot_index_.count(Key{level, idx})) return true;
  }
  return config_.cache && config_.cache->Contains(CacheKey(level, idx));
}

Status ChunkEngine::ReadLevelBox(int level, const Box& box, uint8_t* out) {
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Vec3 bs = box.shape();
  const Vec3 cs{c, c, c};
  std::vector<uint8_t> tmp;
  for (int64_t cz = box.lo[0] / c; cz * c < box.hi[0]; ++cz)
    for (int64_t cy = box.lo[1] / c; cy * c < box.hi[1]; ++cy)
      for (int64_t cx = box.lo[2] / c; cx * c < box.hi[2]; ++cx) {
        const Vec3 idx{cz, cy, cx};
        const Box part = pyramid_.ChunkBox(level, idx).Intersect(box);
        if (part.empty()) continue;
        const Vec3 src_off{part.lo[0] - cz * c, part.lo[1] - cy * c, part.lo[2] - cx * c};
        const Vec3 dst_off{part.lo[0] - box.lo[0], part.lo[1] - box.lo[1], part.lo[2] - box.lo[2]};
        auto r = GetChunk(level, idx);
        if (!r.ok()) {
          if (r.status().code() != ErrorCode::kNotFound) return r.status();
          // Empty chunk: zeros.
          const Vec3 ps = part.shape();
          for (int64_t z = 0; z < ps[0]; ++z)
            for (int64_t y = 0; y < ps[1]; ++y)
              std::memset(out + (((dst_off[0] + z) * bs[1] + dst_off[1] + y) * bs[2] + dst_off[2]) * bpv, 0,
                          static_cast<size_t>(ps[2]) * bpv);
          continue;
        }
        const uint8_t* src;
        if (codec_.CacheTag() == "raw") {
          src = reinterpret_cast<const uint8_t*>((*r)->data());
        } else {
          tmp.resize(raw_bytes_);
          OZ_RETURN_IF_ERROR(codec_.Decode(**r, tmp.data(), raw_bytes_));
          src = tmp.data();
        }
        CopyRegion(src, cs, src_off, out, bs, dst_off, part.shape(), bpv);
      }
  return OkStatus();
}

Status ChunkEngine::ComputeVoxels(int level, const Vec3& idx, uint8_t* out, bool fill_cache) {
  const Box box = pyramid_.ChunkBox(level, idx);
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  std::memset(out, 0, raw_bytes_);
  if (level == 0) {
    if (box.shape() == Vec3{c, c, c}) return level0_->ReadBox(box, out);
    std::vector<uint8_t> tmp(static_cast<size_t>(box.volume()) * bpv);
    OZ_RETURN_IF_ERROR(level0_->ReadBox(box, tmp.data()));
    CopyRegion(tmp.data(), box.shape(), {0, 0, 0}, out, {c, c, c}, {0, 0, 0}, box.shape(), bpv);
    return OkStatus();
  }
  int base = -1;
  if (fill_cache) {
    for (int b = level - 1; b >= std::max(0, level - kMaxBaseDistance) && base < 0; --b) {
      const Box bb = pyramid_.BoxAtLowerLevel(box, level, b);
      bool all = true;
      for (int64_t cz = bb.lo[0] / c; all && cz * c < bb.hi[0]; ++cz)
        for (int64_t cy = bb.lo[1] / c; all && cy * c < bb.hi[1]; ++cy)
          for (int64_t cx = bb.lo[2] / c; all && cx * c < bb.hi[2]; ++cx) all = Available(b, {cz, cy, cx});
      if (all) base = b;
    }
  }
  if (base < 0) return StreamFromBase(0, /*from_source=*/true, level, idx, out, fill_cache);
  return StreamFromBase(base, /*from_source=*/false, level, idx, out, fill_cache);
}

Status ChunkEngine::ComputeUncached(int level, const Vec3& idx, void* out) {
  auto* o = static_cast<uint8_t*>(out);
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  std::memset(o, 0, raw_bytes_);
  if (level == 0) {
    const Box box = pyramid_.ChunkBox(0, idx);
    std::vector<uint8_t> tmp(static_cast<size_t>(box.volume()) * bpv);
    OZ_RETURN_IF_ERROR(level0_->ReadBox(box, tmp.data()));
    CopyRegion(tmp.data(), box.shape(), {0, 0, 0}, o, {c, c, c}, {0, 0, 0}, box.shape(), bpv);
    return OkStatus();
  }
  return StreamFromBase(0, /*from_source=*/true, level, idx, o, /*fill_cache=*/false);
}

// Streaming: the base box is read in slabs of S planes. Each level k keeps at most one pending
// plane (waiting for its pair) and, when its chunk layer fits the budget, a layer buffer of c
// planes that is cut into chunks and cached when complete.
Status ChunkEngine::StreamFromBase(int base, bool from_source, int level, const Vec3& idx, uint8_t* out,
                                   bool fill_cache) {
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Box top = pyramid_.ChunkBox(level, idx);
  std::vector<Box> box(level + 1);
  std::vector<int64_t> area(level + 1);
  for (int k = base; k <= level; ++k) {
    box[k] = k == level ? top : pyramid_.BoxAtLowerLevel(top, level, k);
    area[k] = box[k].shape()[1] * box[k].shape()[2];
  }
  const uint64_t budget = work_budget_.total();
  std::vector<bool> fill(level + 1, false);
  uint64_t need = 0;
  for (int k = base; k < level; ++k) {
    const bool cacheable = fill_cache && config_.cache && (k > base || from_source);
    const uint64_t layer = static_cast<uint64_t>(c) * area[k] * bpv;
    if (cacheable && need + layer <= budget / 4) {
      fill[k] = true;
      need += layer;
    }
    need += static_cast<uint64_t>(area[k]) * bpv * 2;  // pending plane + pair scratch
  }
  const uint64_t plane_bytes = static_cast<uint64_t>(area[base]) * bpv;
  int64_t S = static_cast<int64_t>(std::max<uint64_t>(2, (budget / 4) / std::max<uint64_t>(plane_bytes, 1)));
  S = std::min<int64_t>(S, 256) & ~int64_t{1};
  if (fill[base]) S = c;                                   // slabs aligned with the base level's chunk layers
  need += static_cast<uint64_t>(S) * plane_bytes * 3 / 2;  // slab + first downsampled block
  MemoryReservation reservation(work_budget_, need);

  struct LevelState {
    std::vector<uint8_t> pend;
    bool has_pend = false;
    std::vector<uint8_t> layer;
    int64_t layer_planes = 0;
    int64_t next_z = 0;  // absolute z (at this level) of the next plane to arrive
    // Chunks of the current layer this computation will produce: claimed in the single-flight
    // table when the layer starts, so readers of them wait for this layer instead of computing
    // them again; chunks someone else owns are left to their owner.
    std::vector<std::pair<Vec3, std::shared_ptr<Flight>>> owned;
  };
  std::vector<LevelState> st(level + 1);
  // On any exit, release claims that were not produced (error paths): waiters see an error and
  // retry on their next read, since failures are never cached.
  struct ReleaseClaims {
    ChunkEngine* e;
    std::vector<LevelState>* st;
    ~ReleaseClaims() {
      for (size_t k = 0; k < st->size(); ++k)
        for (auto& [ci, f] : (*st)[k].owned)
          e->Complete(Key{static_cast<int>(k), ci}, f,
                      UnavailableError("the computation that was producing this chunk failed; read it again"));
    }
  } release_claims{this, &st};
  for (int k = base; k <= level; ++k) st[k].next_z = box[k].lo[0];
  std::vector<uint8_t> top_buf(static_cast<size_t>(top.volume()) * bpv);

  // Claims the chunks of the layer of level k starting at plane z.
  auto claim_layer = [&](int k, int64_t z) {
    LevelState& s = st[k];
    for (int64_t cy = box[k].lo[1] / c; cy * c < box[k].hi[1]; ++cy)
      for (int64_t cx = box[k].lo[2] / c; cx * c < box[k].hi[2]; ++cx) {
        const Vec3 ci{z / c, cy, cx};
        if (config_.cache->Contains(CacheKey(k, ci))) continue;
        if (auto f = TryClaim(Key{k, ci})) s.owned.emplace_back(ci, std::move(f));
      }
  };

  // Cuts the completed layer of level k into its claimed chunks, caches them and hands them to
  // any waiting readers.
  auto emit_layer = [&](int k, int64_t z_end) -> Status {
    LevelState& s = st[k];
    const int64_t z0 = z_end - s.layer_planes;  // absolute z of the layer's first plane
    const Vec3 ls{s.layer_planes, box[k].shape()[1], box[k].shape()[2]};
    std::vector<std::pair<Vec3, std::shared_ptr<Flight>>> owned = std::move(s.owned);
    s.owned.clear();
    std::vector<Status> errs(owned.size());
    config_.pool->ParallelFor(owned.size(), [&](size_t i) {
      const Vec3& ci = owned[i].first;
      const Box cb = pyramid_.ChunkBox(k, ci);
      std::optional<Result<ChunkBytes>> r;
      try {
        std::vector<uint8_t> chunk(raw_bytes_, 0);
        CopyRegion(s.layer.data(), ls, {cb.lo[0] - z0, cb.lo[1] - box[k].lo[1], cb.lo[2] - box[k].lo[2]}, chunk.data(),
                   {c, c, c}, {0, 0, 0}, cb.shape(), bpv);
        r.emplace(Finish(k, ci, chunk.data()));
      } catch (const std::bad_alloc&) {
        r.emplace(ResourceExhaustedError("out of memory encoding a chunk"));
      }
      if (!r->ok() && r->status().code() != ErrorCode::kNotFound) errs[i] = r->status();
      Complete(Key{k, ci}, owned[i].second, *r);
    });
    s.layer_planes = 0;
    for (auto& e : errs) OZ_RETURN_IF_ERROR(e);
    return OkStatus();
  };

  std::function<Status(int, const uint8_t*, int64_t, bool)> deliver;
  deliver = [&](int k, const uint8_t* data, int64_t n, bool final) -> Status {
    LevelState& s = st[k];
    const size_t pb = static_cast<size_t>(area[k]) * bpv;
    if (k == level) {
      std::memcpy(top_buf.data() + static_cast<size_t>(s.next_z - box[k].lo[0]) * pb, data,
                  static_cast<size_t>(n) * pb);
      s.next_z += n;
      return OkStatus();
    }
    const int64_t z_start = s.next_z;
    s.next_z += n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t z = z_start + i;
      if (fill[k]) {
        if (s.layer.empty()) s.layer.resize(static_cast<size_t>(c) * pb);
        if (s.layer_planes == 0) claim_layer(k, z);
        std::memcpy(s.layer.data() + static_cast<size_t>(s.layer_planes) * pb, data + i * pb, pb);
        ++s.layer_planes;
        if ((z + 1) % c == 0 || z + 1 == box[k].hi[0]) OZ_RETURN_IF_ERROR(emit_layer(k, z + 1));
      }
    }
    const Vec3 plane_shape{1, box[k].shape()[1], box[k].shape()[2]};
    const int64_t out_area = area[k + 1];
    const size_t opb = static_cast<size_t>(out_area) * bpv;
    const uint8_t* p = data;
    int64_t m = n;
    if (s.has_pend && m > 0) {
      if (s.pend.size() < 2 * pb) s.pend.resize(2 * pb);
      std::memcpy(s.pend.data() + pb, p, pb);
      std::vector<uint8_t> o(opb);
      Downsample2x(config_.options.algorithm, dtype(), s.pend.data(), {2, plane_shape[1], plane_shape[2]}, o.data());
      s.has_pend = false;
      p += pb;
      --m;
      OZ_RETURN_IF_ERROR(deliver(k + 1, o.data(), 1, final && m == 0));
    } else if (s.has_pend && m == 0 && final) {
      std::vector<uint8_t> o(opb);
      Downsample2x(config_.options.algorithm, dtype(), s.pend.data(), plane_shape, o.data());
      s.has_pend = false;
      return deliver(k + 1, o.data(), 1, true);
    }
    const int64_t even = final ? m : (m & ~int64_t{1});
    if (even > 0) {
      const int64_t on = CeilDiv(even, 2);
      std::vector<uint8_t> o(static_cast<size_t>(on) * opb);
      Downsample2x(config_.options.algorithm, dtype(), p, {even, plane_shape[1], plane_shape[2]}, o.data());
      OZ_RETURN_IF_ERROR(deliver(k + 1, o.data(), on, final && even == m));
    }
    if (m > even) {
      if (s.pend.size() < 2 * pb) s.pend.resize(2 * pb);
      std::memcpy(s.pend.data(), p + even * pb, pb);
      s.has_pend = true;
    }
    return OkStatus();
  };

  const Box& bb = box[base];
  std::vector<uint8_t> slab(static_cast<size_t>(S) * plane_bytes);
  auto t0 = std::chrono::steady_clock::now();
  auto last_log = t0;
  const int64_t total = bb.shape()[0];
  for (int64_t z = bb.lo[0]; z < bb.hi[0]; z += S) {
    const int64_t z1 = std::min(z + S, bb.hi[0]);
    Box sb = bb;
    sb.lo[0] = z;
    sb.hi[0] = z1;
    if (from_source)
      OZ_RETURN_IF_ERROR(level0_->ReadBox(sb, slab.data()));
    else
      OZ_RETURN_IF_ERROR(ReadLevelBox(base, sb, slab.data()));
    OZ_RETURN_IF_ERROR(deliver(base, slab.data(), z1 - z, z1 == bb.hi[0]));
    auto now = std::chrono::steady_clock::now();
    if (now - last_log > std::chrono::seconds(5)) {
      last_log = now;
      const double done = static_cast<double>(z1 - bb.lo[0]) / static_cast<double>(total);
      const double secs = std::chrono::duration<double>(now - t0).count();
      LogInfo("computing level " + std::to_string(level) + " chunk " + ToString(idx) + ": " +
              std::to_string(static_cast<int>(done * 100)) + "% of " + std::to_string(total) + " planes of level " +
              std::to_string(base) + ", about " + std::to_string(static_cast<int>(secs / done - secs)) + " s left");
    }
  }
  if (st[level].next_z != top.hi[0])
    return InternalError("streaming produced " + std::to_string(st[level].next_z - top.lo[0]) + " planes of " +
                         std::to_string(top.shape()[0]) + " for chunk " + ToString(idx));
  CopyRegion(top_buf.data(), top.shape(), {0, 0, 0}, out, {c, c, c}, {0, 0, 0}, top.shape(), bpv);
  return OkStatus();
}

}  // namespace oz
