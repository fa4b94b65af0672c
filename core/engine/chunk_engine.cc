// ChunkEngine implementation. See the header for the request path; the comments here explain the
// streaming computation and the memory plan.
#include "core/engine/chunk_engine.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <new>

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/pyramid/downsample.h"

namespace oz {
namespace {

constexpr uint32_t kFlagEmpty = 1;
constexpr int kMaxBaseDistance = 4;
constexpr int kMinFillLevel = 2;  // see ComputeUnit  // look for cached chunks at most this many levels below
constexpr uint64_t kMaxRawChunkBytes = 1ull << 30;

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

// Counts a foreground request for the time of its call (see foreground_requests()).
struct ChunkEngine::ForegroundScope {
  ChunkEngine* e;
  explicit ForegroundScope(ChunkEngine* engine) : e(engine) { e->foreground_.fetch_add(1, std::memory_order_relaxed); }
  ~ForegroundScope() {
    e->foreground_end_ns_.store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count(),
        std::memory_order_relaxed);
    e->foreground_.fetch_sub(1, std::memory_order_relaxed);
  }
};

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
  OZ_ASSIGN_OR_RETURN(ChunkCodec codec, ChunkCodec::Make(config.codec_options.value_or(o), level0->dtype()));
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
      work_budget_(config.work_memory),
      buffers_(config.work_memory / 4),
      chunk_strings_(std::make_shared<StringPool>(std::min<uint64_t>(config.work_memory / 8, 64ull << 20))),
      hot_(config.hot_bytes) {
  const Options& o = config_.options;
  raw_bytes_ = static_cast<uint64_t>(o.chunk * o.chunk * o.chunk) * DTypeSize(level0_->dtype());
  const ViewGeometry& g = level0_->geometry();
  // Everything that changes a chunk's bytes, except the algorithm (level 0 does not depend on it).
  std::string view = "win=" + SliceText(o.window[0]) + "," + SliceText(o.window[1]) + "," + SliceText(o.window[2]) +
                     ";resolved=" + g.source_window.ToString() + ";shift=" + ToString(g.shift) +
                     ";bytes1=" + (o.bytes1 ? "1" : "0") + level0_->value_map().Tag();
  key_prefix_ = "ozchunk1|src=" + Hash128Hex(level0_->Fingerprint()) + "|dtype=" + std::string(DTypeName(dtype())) +
                "|" + view + "|c=" + std::to_string(o.chunk) + "|codec=" + codec_.CacheTag() + "|";
}

ChunkEngine::~ChunkEngine() {
  // Drain the cache writes (an unmount keeps what was computed), then stop the writer.
  {
    MutexLock l(write_mu_);
    stop_writer_ = true;
  }
  write_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

std::string ChunkEngine::CacheKey(int level, const Vec3& idx) const {
  return key_prefix_ + "alg=" + (level ? std::string(AlgorithmName(config_.options.algorithm)) : "-") + "|" +
         std::to_string(level) + "/" + std::to_string(idx[0]) + "/" + std::to_string(idx[1]) + "/" +
         std::to_string(idx[2]);
}

ChunkEngine::Info ChunkEngine::Lookup(const Key& k) {
  MutexLock l(mu_);
  auto it = known_.find(k);
  return it == known_.end() ? Info{} : it->second;
}

void ChunkEngine::Record(const Key& k, State s, uint64_t size) {
  MutexLock l(mu_);
  known_[k] = Info{s, size};
}

ChunkBytes ChunkEngine::HotGet(const Key& k) { return hot_.Get(k); }

void ChunkEngine::HotPut(const Key& k, const ChunkBytes& b) {
  if (b->size() > config_.hot_bytes / 4) return;  // one huge chunk would flush the rest
  hot_.Put(k, b, b->size());
}

Result<ChunkBytes> ChunkEngine::EmptyResult() {
  if (config_.options.empty == EmptyPolicy::kOmit) return NotFoundError("empty chunk (all fill value)");
  MutexLock l(mu_);
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
  if (OutsideData(level, idx)) {
    Record(k, State::kEmpty, 0);
    return true;
  }
  if (level > 0) {
    // Every chunk of the footprint (the 2x2x2 children, plus their neighbours for a halo).
    const int64_t c = pyramid_.chunk();
    const Box fb = pyramid_.Footprint(pyramid_.ChunkBox(level, idx), level, halo());
    for (int64_t cz = fb.lo[0] / c; cz * c < fb.hi[0]; ++cz)
      for (int64_t cy = fb.lo[1] / c; cy * c < fb.hi[1]; ++cy)
        for (int64_t cx = fb.lo[2] / c; cx * c < fb.hi[2]; ++cx)
          if (Lookup(Key{level - 1, {cz, cy, cx}}).state != State::kEmpty) return false;
    Record(k, State::kEmpty, 0);
    return true;
  }
  return false;
}

Result<ChunkBytes> ChunkEngine::GetChunk(int level, const Vec3& idx) {
  ForegroundScope fg(this);
  config_.stats->chunk_requests++;
  if (!pyramid_.ValidChunk(level, idx))
    return NotFoundError("no chunk " + ToString(idx) + " at level " + std::to_string(level));
  if (ProvablyEmpty(level, idx)) return EmptyResult();
  const Key k{level, idx};
  if (ChunkBytes b = HotGet(k)) return b;

  std::shared_ptr<Flight> f;
  bool leader = false;
  {
    MutexLock l(mu_);
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
  MutexLock l(mu_);
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
  MutexLock l(mu_);
  auto it = inflight_.find(k);
  if (it != inflight_.end() && it->second == f) inflight_.erase(it);
}

std::optional<Result<ChunkBytes>> ChunkEngine::FromCache(int level, const Vec3& idx) {
  if (!config_.cache) return std::nullopt;
  const Key k{level, idx};
  {
    // A queued write answers first. EmptyResult takes mu_, so it runs after write_mu_ is released
    // (lock rule: write_mu_ is never held while taking mu_).
    std::optional<ChunkBytes> queued;
    {
      MutexLock l(write_mu_);
      auto it = pending_.find(k);
      if (it != pending_.end()) queued = it->second;
    }
    if (queued) {
      if (!*queued) return Result<ChunkBytes>(EmptyResult());
      return Result<ChunkBytes>(*queued);
    }
  }
  // Raw chunks are read into pooled strings (no zeroing of 4 MiB that the read overwrites), which
  // go back to the pool when dropped; encoded ones, of any size, into their own.
  DiskCache::BufferFn pooled;
  if (codec_.raw()) pooled = [this](size_t n) { return chunk_strings_->Get(n); };
  auto e = config_.cache->Get(CacheKey(level, idx), pooled);
  if (!e) return std::nullopt;
  if (e->flags & kFlagEmpty) {
    Record(k, State::kEmpty, 0);
    return EmptyResult();
  }
  if (codec_.raw() && e->data.size() != raw_bytes_) {
    LogWarning("cache entry for chunk " + std::to_string(level) + "/" + ToString(idx) +
               " has the wrong size; recomputing");
    return std::nullopt;
  }
  ChunkBytes b = codec_.raw() ? ShareToPool(std::move(e->data), chunk_strings_)
                              : std::make_shared<const std::string>(std::move(e->data));
  Record(k, State::kPresent, b->size());
  HotPut(k, b);
  return Result<ChunkBytes>(ChunkBytes(b));
}

std::optional<Result<ChunkBytes>> ChunkEngine::FromStored(int level, const Vec3& idx) {
  if (auto r = FromCache(level, idx)) return r;
  if (!base_ || !base_->Has(level, idx)) return std::nullopt;
  ProvidedChunk p = base_->Fetch(level, idx);  // checked against DEST's manifest (size, XXH64)
  const Key k{level, idx};
  if (p.kind == ProvidedChunk::Kind::kEmpty) {
    config_.stats->chunks_from_base++;
    Record(k, State::kEmpty, 0);
    return Result<ChunkBytes>(EmptyResult());
  }
  if (p.kind != ProvidedChunk::Kind::kBytes) return std::nullopt;
  std::vector<uint8_t> tmp;
  if (!DecodeProvided(level, idx, p, &tmp)) return std::nullopt;  // logged; computed instead
  config_.stats->chunks_from_base++;
  Record(k, State::kPresent, p.bytes->size());
  HotPut(k, p.bytes);
  return Result<ChunkBytes>(p.bytes);
}

Result<ChunkBytes> ChunkEngine::Produce(int level, const Vec3& idx) {
  if (auto r = FromStored(level, idx)) return std::move(*r);
  PooledString buf(*chunk_strings_, raw_bytes_);
  OZ_RETURN_IF_ERROR(ComputeVoxels(level, idx, buf.data(), /*use_cache=*/config_.cache != nullptr));
  return Finish(level, idx, buf);
}

Result<ChunkBytes> ChunkEngine::CutAndFinish(const uint8_t* unit, const Box& unit_box, int level, const Vec3& ci) {
  PooledString chunk(*chunk_strings_, raw_bytes_);
  CutChunkInto(unit, unit_box, level, ci, chunk.data());
  return Finish(level, ci, chunk);
}

Result<ChunkBytes> ChunkEngine::Finish(int level, const Vec3& idx, PooledString& voxels) {
  const Key k{level, idx};
  config_.stats->chunks_computed++;
  if (AllZero(voxels.data(), raw_bytes_)) {
    Record(k, State::kEmpty, 0);
    QueueCachePut(k, kFlagEmpty, nullptr);
    return EmptyResult();
  }
  ChunkBytes b;
  if (codec_.raw()) {
    b = ShareToPool(voxels.Release(), chunk_strings_);  // the voxels are the chunk's bytes
  } else {
    OZ_ASSIGN_OR_RETURN(std::string enc, codec_.Encode(voxels.data(), raw_bytes_));
    b = std::make_shared<const std::string>(std::move(enc));
  }
  Record(k, State::kPresent, b->size());
  HotPut(k, b);
  QueueCachePut(k, 0, b);
  return ChunkBytes(b);
}

// Cache writes happen on a writer thread so a read is answered as soon as its chunk is encoded.
// The queue is bounded in bytes (callers wait when it is full: the disk sets the pace of a long
// cold read, but no single read waits for its own write); queued chunks are served from the
// queue, so a read never misses a chunk that is only waiting to be written.
void ChunkEngine::QueueCachePut(const Key& k, uint32_t flags, ChunkBytes bytes) {
  if (!config_.cache) return;
  const uint64_t size = bytes ? bytes->size() : 0;
  MutexLock l(write_mu_);
  while (!write_queue_.empty() && write_queue_bytes_ + size > config_.write_queue_bytes)
    write_space_cv_.wait(write_mu_);
  write_queue_.push_back(PendingWrite{k, flags, bytes});
  write_queue_bytes_ += size;
  pending_[k] = bytes;
  if (!writer_.joinable()) writer_ = std::thread([this] { WriterLoop(); });
  write_cv_.notify_one();
}

void ChunkEngine::WriterLoop() {
  write_mu_.lock();
  for (;;) {
    while (!stop_writer_ && write_queue_.empty()) write_cv_.wait(write_mu_);
    if (write_queue_.empty()) {  // stopping and drained
      write_mu_.unlock();
      return;
    }
    PendingWrite w = std::move(write_queue_.front());
    write_queue_.pop_front();
    write_mu_.unlock();
    Status s = config_.cache->Put(CacheKey(w.key.level, w.key.idx), w.flags,
                                  w.bytes ? std::string_view(*w.bytes) : std::string_view());
    if (!s.ok()) {
      // Counted by the cache (stats->cache_put_failures). A full or read-only cache disk fails
      // every write: one line, then one a minute with the count.
      static RateLimiter rl(1, std::chrono::seconds(60));
      uint64_t suppressed = 0;
      if (rl.Allow(&suppressed))
        LogWarning(
            "could not store chunk in the cache (reads go on; failures are counted in the stats): " + s.ToString() +
            (suppressed ? " (" + std::to_string(suppressed) + " more since the last message)" : ""));
    }
    write_mu_.lock();
    write_queue_bytes_ -= w.bytes ? w.bytes->size() : 0;
    auto it = pending_.find(w.key);
    if (it != pending_.end() && it->second == w.bytes) pending_.erase(it);
    write_space_cv_.notify_all();
  }
}

Result<uint64_t> ChunkEngine::ChunkSize(int level, const Vec3& idx) {
  if (!pyramid_.ValidChunk(level, idx))
    return NotFoundError("no chunk " + ToString(idx) + " at level " + std::to_string(level));
  if (config_.options.empty == EmptyPolicy::kKeep && codec_.raw()) return raw_bytes_;
  Info i = Lookup(Key{level, idx});
  if (i.state == State::kPresent) return i.size;
  OZ_ASSIGN_OR_RETURN(ChunkBytes b, GetChunk(level, idx));
  return static_cast<uint64_t>(b->size());
}

Result<std::vector<int64_t>> ChunkEngine::ListRow(int level, int64_t z, int64_t y, int64_t x0, int64_t x1) {
  ForegroundScope fg(this);
  if (level < 0 || level >= pyramid_.levels() || !pyramid_.ValidChunk(level, {z, y, 0}))
    return NotFoundError("no chunk row " + std::to_string(z) + "/" + std::to_string(y) + " at level " +
                         std::to_string(level));
  const int64_t nx = pyramid_.grid(level)[2];
  if (x1 < 0 || x1 > nx) x1 = nx;
  x0 = std::clamp<int64_t>(x0, 0, x1);
  std::vector<int64_t> xs;
  if (config_.options.empty == EmptyPolicy::kKeep) {
    for (int64_t x = x0; x < x1; ++x) xs.push_back(x);
    return xs;
  }
  std::vector<char> present(nx, 0);
  std::vector<std::pair<int64_t, std::shared_ptr<Flight>>> claimed;
  std::vector<int64_t> others;  // in flight elsewhere
  for (int64_t x = x0; x < x1; ++x) {
    if (ProvablyEmpty(level, {z, y, x})) continue;
    if (Lookup(Key{level, {z, y, x}}).state == State::kPresent) {
      present[x] = 1;
    } else if (auto f = TryClaim(Key{level, {z, y, x}})) {
      claimed.emplace_back(x, std::move(f));
    } else {
      others.push_back(x);
    }
  }
  // Claimed chunks: from the disk cache where possible...
  std::vector<char> done(claimed.size(), 0);
  config_.pool->ParallelFor(claimed.size(), [&](size_t i) {
    const int64_t x = claimed[i].first;
    if (auto r = FromStored(level, {z, y, x})) {
      if (r->ok()) present[x] = 1;
      Complete(Key{level, {z, y, x}}, claimed[i].second, *r);
      done[i] = 1;
    }
  });
  std::vector<std::pair<int64_t, std::shared_ptr<Flight>>> todo;
  for (size_t i = 0; i < claimed.size(); ++i)
    if (!done[i]) todo.push_back(std::move(claimed[i]));
  // ...the rest computed together as one row unit: one pass over the source band serves them all.
  if (!todo.empty()) {
    const Unit u{level, z, y, todo.front().first, todo.back().first + 1};
    const Box box = UnitBox(u);
    const size_t bpv = DTypeSize(dtype());
    Status st;
    PooledBuffer buf(buffers_, 0);
    std::unique_ptr<MemoryReservation> reservation;  // until the chunks are cut from buf
    try {
      st = ComputeRowUnit(u, config_.cache != nullptr, nullptr, &buf, &reservation);
      if (st.ok() && buf.size() != static_cast<size_t>(box.volume()) * bpv) st = InternalError("row unit size");
    } catch (const std::bad_alloc&) {
      st = ResourceExhaustedError("out of memory computing chunk row " + std::to_string(z) + "/" + std::to_string(y));
    }
    if (!st.ok()) {
      config_.stats->errors++;
      for (auto& [x, f] : todo) Complete(Key{level, {z, y, x}}, f, st);
      return st;
    }
    std::vector<Status> errs(todo.size());
    config_.pool->ParallelFor(todo.size(), [&](size_t i) {
      const Vec3 ci{z, y, todo[i].first};
      std::optional<Result<ChunkBytes>> r;
      try {
        r.emplace(CutAndFinish(buf.data(), box, level, ci));
      } catch (const std::bad_alloc&) {
        r.emplace(ResourceExhaustedError("out of memory encoding a chunk"));
      }
      if (r->ok())
        present[ci[2]] = 1;
      else if (r->status().code() != ErrorCode::kNotFound)
        errs[i] = r->status();
      Complete(Key{level, ci}, todo[i].second, *r);
    });
    for (auto& e : errs) OZ_RETURN_IF_ERROR(e);
  }
  // Chunks someone else is producing: wait for them.
  std::vector<std::optional<Status>> errs(others.size());
  config_.pool->ParallelFor(others.size(), [&](size_t i) {
    auto r = GetChunk(level, {z, y, others[i]});
    if (r.ok())
      present[others[i]] = 1;
    else if (r.status().code() != ErrorCode::kNotFound)
      errs[i] = r.status();
  });
  for (auto& e : errs)
    if (e) return *e;
  for (int64_t x = x0; x < x1; ++x)
    if (present[x]) xs.push_back(x);
  return xs;
}

bool ChunkEngine::Available(int level, const Vec3& idx) {
  if (ProvablyEmpty(level, idx)) return true;
  if (hot_.Contains(Key{level, idx})) return true;
  {
    MutexLock l(write_mu_);
    if (pending_.count(Key{level, idx})) return true;
  }
  return config_.cache && config_.cache->Contains(CacheKey(level, idx));
}

Status ChunkEngine::CopyChunkPart(const Result<ChunkBytes>& r, int level, const Vec3& idx, const Box& part,
                                  uint8_t* out, const Box& out_box, std::vector<uint8_t>* tmp) {
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Vec3 bs = out_box.shape();
  const Vec3 dst_off{part.lo[0] - out_box.lo[0], part.lo[1] - out_box.lo[1], part.lo[2] - out_box.lo[2]};
  if (!r.ok()) {
    if (r.status().code() != ErrorCode::kNotFound) return r.status();
    // Empty chunk: zeros.
    const Vec3 ps = part.shape();
    for (int64_t z = 0; z < ps[0]; ++z)
      for (int64_t y = 0; y < ps[1]; ++y)
        std::memset(out + (((dst_off[0] + z) * bs[1] + dst_off[1] + y) * bs[2] + dst_off[2]) * bpv, 0,
                    static_cast<size_t>(ps[2]) * bpv);
    return OkStatus();
  }
  (void)level;
  const uint8_t* src;
  if (codec_.raw()) {
    if ((*r)->size() != raw_bytes_) return CorruptError("chunk " + ToString(idx) + " has the wrong size");
    src = reinterpret_cast<const uint8_t*>((*r)->data());
  } else {
    tmp->resize(raw_bytes_);
    OZ_RETURN_IF_ERROR(codec_.Decode(**r, tmp->data(), raw_bytes_));
    src = tmp->data();
  }
  const Vec3 src_off{part.lo[0] - idx[0] * c, part.lo[1] - idx[1] * c, part.lo[2] - idx[2] * c};
  CopyRegion(src, {c, c, c}, src_off, out, bs, dst_off, part.shape(), bpv);
  return OkStatus();
}

Status ChunkEngine::ReadLevelBox(int level, const Box& box, uint8_t* out) {
  const int64_t c = pyramid_.chunk();
  std::vector<uint8_t> tmp;
  for (int64_t cz = box.lo[0] / c; cz * c < box.hi[0]; ++cz)
    for (int64_t cy = box.lo[1] / c; cy * c < box.hi[1]; ++cy)
      for (int64_t cx = box.lo[2] / c; cx * c < box.hi[2]; ++cx) {
        const Vec3 idx{cz, cy, cx};
        const Box part = pyramid_.ChunkBox(level, idx).Intersect(box);
        if (part.empty()) continue;
        OZ_RETURN_IF_ERROR(CopyChunkPart(GetChunk(level, idx), level, idx, part, out, box, &tmp));
      }
  return OkStatus();
}

// A row unit: the chunks of `level` in chunk layer zc, chunk row yc and chunk columns [x0c, x1c).
// Units are the engine's unit of computation: a unit of level k is computed from the (up to) four
// child units of level k-1 below it (2 in z x 2 in y, twice as many columns), each downsampled
// into its quarter as soon as it is complete. Memory is one unit per level on the path (about
// 2 * c * c * width * bytes), every voxel of the base box is read exactly once, and every
// intermediate unit can be cut into chunks on the way.
struct ChunkEngine::UnitRun {
  int base = 0;
  bool from_source = true;
  bool emit = false;                // put intermediate chunks into the cache (claiming them first)
  int top_level = 0;                // chunks of this level are owned by the caller, never emitted here
  const ChunkSink* sink = nullptr;  // materialize: every unit at sink_min_level or above goes here
  int sink_min_level = 0;
  ChunkProvider* provider = nullptr;                     // materialize: existing chunks to copy or to build upon
  const std::function<Status()>* before_unit = nullptr;  // ComputeTree's hook (prebuild)
  // Progress of the base level, for the log.
  int64_t base_total = 1;
  int64_t base_done = 0;
  std::chrono::steady_clock::time_point t0, last_log;
  Vec3 top_idx{0, 0, 0};
};

// Only the mount's path (no sink, no provider: materialize writes every level below anyway, and
// builds on the chunks it already has) and only from the source: chunks of lower levels that are
// cached are used as they are for every algorithm.
bool ChunkEngine::ReadsNearest(const Unit& u, const UnitRun& run) const {
  return config_.options.algorithm == Algorithm::kNearest && u.level > 0 && run.from_source && !run.sink &&
         !run.provider;
}

Box ChunkEngine::UnitBox(const Unit& u) const {
  const int64_t c = pyramid_.chunk();
  const Vec3& s = pyramid_.shape(u.level);
  return Box{{u.zc * c, u.yc * c, u.x0c * c},
             {std::min((u.zc + 1) * c, s[0]), std::min((u.yc + 1) * c, s[1]), std::min(u.x1c * c, s[2])}};
}

int ChunkEngine::ChooseBase(const Unit& u) {
  if (!config_.cache || u.level == 0) return -1;
  const int64_t c = pyramid_.chunk();
  const Box box = UnitBox(u);
  for (int b = u.level - 1; b >= std::max(0, u.level - kMaxBaseDistance); --b) {
    const Box bb = pyramid_.BoxAtLowerLevel(box, u.level, b);
    bool all = true;
    for (int64_t cz = bb.lo[0] / c; all && cz * c < bb.hi[0]; ++cz)
      for (int64_t cy = bb.lo[1] / c; all && cy * c < bb.hi[1]; ++cy)
        for (int64_t cx = bb.lo[2] / c; all && cx * c < bb.hi[2]; ++cx) all = Available(b, {cz, cy, cx});
    if (all) return b;
  }
  return -1;
}

void ChunkEngine::ParallelDownsample(const uint8_t* in, const Vec3& in_shape, uint8_t* out) {
  const size_t bpv = DTypeSize(dtype());
  const Vec3 os = DownsampledShape(in_shape);
  const int64_t in_plane = in_shape[1] * in_shape[2], out_plane = os[1] * os[2];
  const int64_t tasks = std::min<int64_t>(os[0], 2 * config_.pool->size() + 1);
  const int64_t per = CeilDiv(os[0], tasks);
  config_.pool->ParallelFor(static_cast<size_t>(tasks), [&](size_t t) {
    const int64_t z0 = static_cast<int64_t>(t) * per, z1 = std::min(z0 + per, os[0]);
    if (z0 >= z1) return;
    const int64_t iz0 = 2 * z0, iz1 = std::min(2 * z1, in_shape[0]);
    Downsample2x(config_.options.algorithm, dtype(), in + iz0 * in_plane * bpv, {iz1 - iz0, in_shape[1], in_shape[2]},
                 out + z0 * out_plane * bpv);
  });
}

int ChunkEngine::halo() const { return KernelFor(config_.options.algorithm).halo; }

void ChunkEngine::ParallelDownsampleBox(const uint8_t* in, const Box& in_box, int level, const Box& out_box,
                                        uint8_t* out) {
  const size_t bpv = DTypeSize(dtype());
  const Vec3 os = out_box.shape();
  const int64_t out_plane = os[1] * os[2];
  // One task per thread (the pool and the caller): each task smooths the input planes around its
  // first output plane again, so more tasks than threads only add work.
  const int64_t tasks = std::min<int64_t>(os[0], config_.pool->size() + 1);
  const int64_t per = CeilDiv(os[0], tasks);
  config_.pool->ParallelFor(static_cast<size_t>(tasks), [&](size_t t) {
    const int64_t z0 = static_cast<int64_t>(t) * per, z1 = std::min(z0 + per, os[0]);
    if (z0 >= z1) return;
    Box ob = out_box;
    ob.lo[0] = out_box.lo[0] + z0;
    ob.hi[0] = out_box.lo[0] + z1;
    DownsampleBox(config_.options.algorithm, dtype(), in, in_box, pyramid_.shape(level - 1), ob,
                  out + z0 * out_plane * bpv);
  });
}

Status ChunkEngine::ComputeBoxHalo(int level, const Box& box, uint8_t* out) {
  if (cancelled_.load(std::memory_order_relaxed))
    return Status(ErrorCode::kCancelled, "cancelled: the file system is shutting down");
  if (box.empty()) return OkStatus();
  if (level == 0) return level0_->ReadBox(box, out);
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const bool one = box.lo[0] / c == (box.hi[0] - 1) / c && box.lo[1] / c == (box.hi[1] - 1) / c;
  PooledBuffer in(buffers_, 0), piece(buffers_, 0);
  for (int64_t z0 = box.lo[0], z1; z0 < box.hi[0]; z0 = z1) {
    z1 = std::min(box.hi[0], (z0 / c + 1) * c);
    for (int64_t y0 = box.lo[1], y1; y0 < box.hi[1]; y0 = y1) {
      y1 = std::min(box.hi[1], (y0 / c + 1) * c);
      const Box p{{z0, y0, box.lo[2]}, {z1, y1, box.hi[2]}};
      const Box fb = pyramid_.Footprint(p, level, halo());
      in.resize(static_cast<size_t>(fb.volume()) * bpv);
      OZ_RETURN_IF_ERROR(ComputeBoxHalo(level - 1, fb, in.data()));
      if (one) {
        ParallelDownsampleBox(in.data(), fb, level, p, out);
      } else {
        piece.resize(static_cast<size_t>(p.volume()) * bpv);
        ParallelDownsampleBox(in.data(), fb, level, p, piece.data());
        CopyRegion(piece.data(), p.shape(), {0, 0, 0}, out, box.shape(), {p.lo[0] - box.lo[0], p.lo[1] - box.lo[1], 0},
                   p.shape(), bpv);
      }
    }
  }
  return OkStatus();
}

// The children are fetched before any working memory is reserved: a reservation held while
// waiting for children that reserve in turn could exhaust the budget and deadlock.
Status ChunkEngine::ComputeUnitFromBelow(const Unit& u, uint8_t* out) {
  if (cancelled_.load(std::memory_order_relaxed))
    return Status(ErrorCode::kCancelled, "cancelled: the file system is shutting down");
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Box box = UnitBox(u);
  const int k1 = u.level - 1;
  const Box fb = pyramid_.Footprint(box, u.level, halo());
  if (k1 == 0) {
    MemoryReservation reservation(work_budget_, static_cast<uint64_t>(fb.volume()) * bpv);
    PooledBuffer in(buffers_, static_cast<size_t>(fb.volume()) * bpv);
    OZ_RETURN_IF_ERROR(level0_->ReadBox(fb, in.data()));
    ParallelDownsampleBox(in.data(), fb, u.level, box, out);
    return OkStatus();
  }
  struct Part {
    Vec3 idx;
    Box part;
    bool fetch;  // whole, or available: through GetChunk; else computed on its own
  };
  std::vector<Part> parts;
  for (int64_t cz = fb.lo[0] / c; cz * c < fb.hi[0]; ++cz)
    for (int64_t cy = fb.lo[1] / c; cy * c < fb.hi[1]; ++cy)
      for (int64_t cx = fb.lo[2] / c; cx * c < fb.hi[2]; ++cx) {
        const Vec3 idx{cz, cy, cx};
        const Box cb = pyramid_.ChunkBox(k1, idx);
        const Box p = cb.Intersect(fb);
        // Whole neighbours, not just their halo: each is computed once and cached, and a cold
        // read of a coarse level needs all of them anyway (computing only the halo part from
        // the source would re-read it for every chunk).
        parts.push_back(Part{idx, p, true});
        (void)cb;
      }
  std::vector<std::optional<Result<ChunkBytes>>> got(parts.size());
  config_.pool->ParallelFor(parts.size(), [&](size_t i) {
    if (parts[i].fetch) got[i].emplace(GetChunk(k1, parts[i].idx));
  });
  for (auto& g : got)
    if (g && !g->ok() && g->status().code() != ErrorCode::kNotFound) return g->status();
  MemoryReservation reservation(work_budget_, static_cast<uint64_t>(fb.volume()) * bpv);
  PooledBuffer in(buffers_, static_cast<size_t>(fb.volume()) * bpv);
  std::vector<Status> errs(parts.size());
  config_.pool->ParallelFor(parts.size(), [&](size_t i) {
    try {
      if (got[i]) {
        std::vector<uint8_t> tmp;
        errs[i] = CopyChunkPart(*got[i], k1, parts[i].idx, parts[i].part, in.data(), fb, &tmp);
        return;
      }
      std::vector<uint8_t> tmp(static_cast<size_t>(parts[i].part.volume()) * bpv);
      errs[i] = ComputeBoxHalo(k1, parts[i].part, tmp.data());
      if (errs[i].ok()) {
        const Box& p = parts[i].part;
        CopyRegion(tmp.data(), p.shape(), {0, 0, 0}, in.data(), fb.shape(),
                   {p.lo[0] - fb.lo[0], p.lo[1] - fb.lo[1], p.lo[2] - fb.lo[2]}, p.shape(), bpv);
      }
    } catch (const std::bad_alloc&) {
      errs[i] =
          ResourceExhaustedError("out of memory computing the halo of a chunk of level " + std::to_string(u.level));
    }
  });
  for (auto& e : errs) OZ_RETURN_IF_ERROR(e);
  ParallelDownsampleBox(in.data(), fb, u.level, box, out);
  return OkStatus();
}

Status ChunkEngine::ComputeUnit(const Unit& u, UnitRun& run, uint8_t* out) {
  if (cancelled_.load(std::memory_order_relaxed))
    return Status(ErrorCode::kCancelled, "cancelled: the file system is shutting down");
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Box box = UnitBox(u);
  const Vec3 bs = box.shape();

  // ComputeTree with a provider: out may be null (nobody needs this unit's voxels).
  std::vector<ProvidedChunk> provided;
  PooledBuffer own(buffers_, 0);
  if (run.provider) {
    OZ_ASSIGN_OR_RETURN(bool done, UnitFromProvider(u, run, out, &provided));
    if (done) return OkStatus();
    if (!out) {
      own.resize(static_cast<size_t>(box.volume()) * bpv);
      out = own.data();
    }
  }

  if (run.before_unit) OZ_RETURN_IF_ERROR((*run.before_unit)());

  // Claim this unit's chunks so concurrent readers wait for them instead of computing them again;
  // chunks already known, cached or owned by someone else are left alone.
  std::vector<std::pair<Vec3, std::shared_ptr<Flight>>> owned;
  struct Release {
    ChunkEngine* e;
    int level;
    std::vector<std::pair<Vec3, std::shared_ptr<Flight>>>* owned;
    ~Release() {
      for (auto& [ci, f] : *owned)
        e->Complete(Key{level, ci}, f,
                    UnavailableError("the computation that was producing this chunk failed; read it again"));
    }
  } release{this, u.level, &owned};
  // Which intermediate chunks go to the cache: the requested chunk's children, and every level
  // from kMinFillLevel up. Levels 0 and 1 of a coarse chunk's box are most of its bytes (7/8 and
  // 1/8): caching them would write a second copy of the source (a whole scroll for the top
  // level), while recomputing the few of them a viewer zooms into is cheap.
  const bool fill_level = u.level >= kMinFillLevel || u.level == run.top_level - 1;
  if (run.emit && fill_level && u.level < run.top_level && (u.level > run.base || run.from_source)) {
    for (int64_t x = u.x0c; x < u.x1c; ++x) {
      const Vec3 ci{u.zc, u.yc, x};
      if (config_.cache->Contains(CacheKey(u.level, ci))) continue;
      if (auto f = TryClaim(Key{u.level, ci})) owned.emplace_back(ci, std::move(f));
    }
  }

  if (ReadsNearest(u, run)) {
    // Nearest keeps level-0 voxel 2^L * (z, y, x) for voxel (z, y, x) of level L: read only those.
    const int64_t step = int64_t{1} << u.level;
    Box b0;
    for (int a = 0; a < 3; ++a) {
      b0.lo[a] = box.lo[a] * step;
      b0.hi[a] = (box.hi[a] - 1) * step + 1;
    }
    OZ_RETURN_IF_ERROR(level0_->ReadBoxStrided(b0, step, out));
  } else if (u.level == run.base) {
    if (run.from_source)
      OZ_RETURN_IF_ERROR(level0_->ReadBox(box, out));
    else
      OZ_RETURN_IF_ERROR(ReadLevelBox(run.base, box, out));
    run.base_done += box.volume();
    auto now = std::chrono::steady_clock::now();
    if (now - run.last_log > std::chrono::seconds(5)) {
      run.last_log = now;
      const double done = static_cast<double>(run.base_done) / static_cast<double>(run.base_total);
      const double secs = std::chrono::duration<double>(now - run.t0).count();
      LogInfo("computing level " + std::to_string(run.top_level) + " chunk " + ToString(run.top_idx) + ": " +
              std::to_string(static_cast<int>(done * 100)) + "% of its level-" + std::to_string(run.base) +
              " box read, about " + std::to_string(static_cast<int>(secs / std::max(done, 1e-6) - secs)) + " s left");
    }
  } else if (halo() > 0) {
    // The footprint at level k1: the four child units (each written by the sink as usual) in the
    // middle, the halo slabs around them from the levels below (never written: they belong to
    // the neighbouring units).
    const int k1 = u.level - 1;
    const Vec3 g1 = pyramid_.grid(k1);
    const int64_t cx0 = 2 * u.x0c, cx1 = std::min(2 * u.x1c, g1[2]);
    const Box fb = pyramid_.Footprint(box, u.level, halo());
    const Box core = pyramid_.BoxAtLowerLevel(box, u.level, k1);
    const Vec3 fs = fb.shape();
    PooledBuffer all(buffers_, static_cast<size_t>(fb.volume()) * bpv), part(buffers_, 0);
    for (int64_t dz = 0; dz < 2; ++dz)
      for (int64_t dy = 0; dy < 2; ++dy) {
        const Unit ch{k1, 2 * u.zc + dz, 2 * u.yc + dy, cx0, cx1};
        if (ch.zc >= g1[0] || ch.yc >= g1[1]) continue;
        const Box cb = UnitBox(ch);
        part.resize(static_cast<size_t>(cb.volume()) * bpv);
        OZ_RETURN_IF_ERROR(ComputeUnit(ch, run, part.data()));
        CopyRegion(part.data(), cb.shape(), {0, 0, 0}, all.data(), fs,
                   {cb.lo[0] - fb.lo[0], cb.lo[1] - fb.lo[1], cb.lo[2] - fb.lo[2]}, cb.shape(), bpv);
      }
    // fb minus core as up to six slabs: z below/above, then y, then x within the rest.
    std::vector<Box> slabs;
    Box rest = fb;
    for (int a = 0; a < 3; ++a) {
      Box lo = rest, hi = rest;
      lo.hi[a] = core.lo[a];
      hi.lo[a] = core.hi[a];
      if (!lo.empty()) slabs.push_back(lo);
      if (!hi.empty()) slabs.push_back(hi);
      rest.lo[a] = core.lo[a];
      rest.hi[a] = core.hi[a];
    }
    for (const Box& sb : slabs) {
      part.resize(static_cast<size_t>(sb.volume()) * bpv);
      OZ_RETURN_IF_ERROR(ComputeBoxHalo(k1, sb, part.data()));
      CopyRegion(part.data(), sb.shape(), {0, 0, 0}, all.data(), fs,
                 {sb.lo[0] - fb.lo[0], sb.lo[1] - fb.lo[1], sb.lo[2] - fb.lo[2]}, sb.shape(), bpv);
    }
    ParallelDownsampleBox(all.data(), fb, u.level, box, out);
  } else {
    const int k1 = u.level - 1;
    const Vec3 g1 = pyramid_.grid(k1);
    const int64_t cx0 = 2 * u.x0c, cx1 = std::min(2 * u.x1c, g1[2]);
    // Even chunks: a child's 2x2x2 blocks never straddle children, so each child is downsampled
    // into its quarter of the unit as soon as it is complete. Odd chunks: blocks straddle
    // children, so all four are assembled first (4x the memory).
    const bool even = c % 2 == 0;
    const Box lb = pyramid_.BoxAtLowerLevel(box, u.level, k1);
    PooledBuffer child(buffers_, 0), down(buffers_, 0), all(buffers_, 0);
    if (!even) all.resize(static_cast<size_t>(lb.volume()) * bpv);
    for (int64_t dz = 0; dz < 2; ++dz)
      for (int64_t dy = 0; dy < 2; ++dy) {
        const Unit ch{k1, 2 * u.zc + dz, 2 * u.yc + dy, cx0, cx1};
        if (ch.zc >= g1[0] || ch.yc >= g1[1]) continue;
        const Box cb = UnitBox(ch);
        child.resize(static_cast<size_t>(cb.volume()) * bpv);
        OZ_RETURN_IF_ERROR(ComputeUnit(ch, run, child.data()));
        if (even) {
          const Vec3 ds = DownsampledShape(cb.shape());
          down.resize(static_cast<size_t>(ds[0] * ds[1] * ds[2]) * bpv);
          ParallelDownsample(child.data(), cb.shape(), down.data());
          CopyRegion(down.data(), ds, {0, 0, 0}, out, bs, {cb.lo[0] / 2 - box.lo[0], cb.lo[1] / 2 - box.lo[1], 0}, ds,
                     bpv);
        } else {
          CopyRegion(child.data(), cb.shape(), {0, 0, 0}, all.data(), lb.shape(),
                     {cb.lo[0] - lb.lo[0], cb.lo[1] - lb.lo[1], cb.lo[2] - lb.lo[2]}, cb.shape(), bpv);
        }
      }
    if (!even) ParallelDownsample(all.data(), lb.shape(), out);
  }

  if (run.sink && u.level >= run.sink_min_level) {
    const int64_t n = u.x1c - u.x0c;
    std::vector<Status> errs(static_cast<size_t>(n));
    config_.pool->ParallelFor(static_cast<size_t>(n), [&](size_t i) {
      const Vec3 ci{u.zc, u.yc, u.x0c + static_cast<int64_t>(i)};
      try {
        // Cut into a pooled string: with raw encoding it becomes the chunk's bytes without
        // another copy, and goes back to the pool when the writer drops it.
        PooledString chunk(*chunk_strings_, raw_bytes_);
        CutChunkInto(out, box, u.level, ci, chunk.data());
        const uint8_t* voxels_in = chunk.data();
        // A chunk the provider has is copied rather than encoded again when it holds exactly the
        // computed voxels (fetched now if the unit's fetch was skipped: the provider lacks some).
        ProvidedChunk p;
        if (!provided.empty())
          p = std::move(provided[i]);
        else if (run.provider && run.provider->Has(u.level, ci))
          p = run.provider->Fetch(u.level, ci);
        if (p.kind != ProvidedChunk::Kind::kMissing) {
          std::vector<uint8_t> tmp;
          const uint8_t* voxels = nullptr;
          const bool same = p.kind == ProvidedChunk::Kind::kEmpty
                                ? AllZero(voxels_in, raw_bytes_)
                                : (voxels = DecodeProvided(u.level, ci, p, &tmp)) != nullptr &&
                                      std::memcmp(voxels, voxels_in, raw_bytes_) == 0;
          if (same) {
            errs[i] = (*run.sink)(u.level, ci,
                                  p.kind == ProvidedChunk::Kind::kEmpty ? EmptyResult() : Result<ChunkBytes>(p.bytes),
                                  p.origin);
            return;
          }
          static RateLimiter rl;
          if ((voxels || p.kind == ProvidedChunk::Kind::kEmpty) && rl.Allow())
            LogWarning("existing chunk " + std::to_string(u.level) + "/" + ToString(ci) +
                       " differs from the one computed now; writing the computed one");
        }
        std::optional<Result<ChunkBytes>> r;
        if (!codec_.raw()) {
          r.emplace(EncodeChunk(voxels_in));
        } else if (AllZero(voxels_in, raw_bytes_)) {
          r.emplace(EmptyResult());
        } else {
          r.emplace(ChunkBytes(ShareToPool(chunk.Release(), chunk_strings_)));
        }
        config_.stats->chunks_computed++;
        errs[i] = (*run.sink)(u.level, ci, *r, 0);
      } catch (const std::bad_alloc&) {
        errs[i] = ResourceExhaustedError("out of memory encoding a chunk");
      }
    });
    for (auto& e : errs) OZ_RETURN_IF_ERROR(e);
  }

  if (!owned.empty()) {
    std::vector<std::pair<Vec3, std::shared_ptr<Flight>>> mine = std::move(owned);
    owned.clear();
    std::vector<Status> errs(mine.size());
    config_.pool->ParallelFor(mine.size(), [&](size_t i) {
      const Vec3& ci = mine[i].first;
      std::optional<Result<ChunkBytes>> r;
      try {
        r.emplace(CutAndFinish(out, box, u.level, ci));
      } catch (const std::bad_alloc&) {
        r.emplace(ResourceExhaustedError("out of memory encoding a chunk"));
      }
      if (!r->ok() && r->status().code() != ErrorCode::kNotFound) errs[i] = r->status();
      Complete(Key{u.level, ci}, mine[i].second, *r);
    });
    for (auto& e : errs) OZ_RETURN_IF_ERROR(e);
  }
  return OkStatus();
}

Status ChunkEngine::ComputeRowUnit(const Unit& u, bool use_cache, uint8_t* out, PooledBuffer* alloc,
                                   std::unique_ptr<MemoryReservation>* held) {
  if (halo() > 0 && u.level > 0) {
    if (alloc) {
      alloc->resize(static_cast<size_t>(UnitBox(u).volume()) * DTypeSize(dtype()));
      out = alloc->data();
    }
    if (use_cache && config_.cache) return ComputeUnitFromBelow(u, out);
    return ComputeBoxHalo(u.level, UnitBox(u), out);
  }
  UnitRun run;
  const int base = use_cache ? ChooseBase(u) : -1;
  run.from_source = base < 0;
  run.base = std::max(base, 0);
  run.emit = use_cache && config_.cache != nullptr;
  run.top_level = u.level;
  run.top_idx = {u.zc, u.yc, u.x0c};
  const Box box = UnitBox(u);
  run.base_total = std::max<int64_t>(1, pyramid_.BoxAtLowerLevel(box, u.level, run.base).volume());
  run.t0 = run.last_log = std::chrono::steady_clock::now();
  // Working memory: one unit per level on the path, plus the downsampled quarter (x4 for odd c).
  const size_t bpv = DTypeSize(dtype());
  uint64_t need = 0;
  // A strided read needs the unit and, through a view, one copy of it.
  if (ReadsNearest(u, run)) need = 2 * static_cast<uint64_t>(box.volume()) * bpv;
  for (int k = run.base; k <= u.level && !ReadsNearest(u, run); ++k) {
    const Box kb = pyramid_.BoxAtLowerLevel(box, u.level, k);
    const uint64_t unit = static_cast<uint64_t>(std::min<int64_t>(pyramid_.chunk(), kb.shape()[0])) *
                          std::min<int64_t>(pyramid_.chunk(), kb.shape()[1]) * kb.shape()[2] * bpv;
    need += pyramid_.chunk() % 2 ? unit * 5 : unit + unit / 8;
  }
  auto reservation = std::make_unique<MemoryReservation>(work_budget_, need);
  if (alloc) {
    alloc->resize(static_cast<size_t>(box.volume()) * bpv);
    out = alloc->data();
  }
  Status st = ComputeUnit(u, run, out);
  if (held) *held = std::move(reservation);
  return st;
}

void ChunkEngine::CutChunkInto(const uint8_t* unit, const Box& unit_box, int level, const Vec3& ci,
                               uint8_t* chunk) const {
  const int64_t c = pyramid_.chunk();
  const Box cb = pyramid_.ChunkBox(level, ci);
  if (cb.volume() != c * c * c) std::memset(chunk, 0, raw_bytes_);  // at the volume's edge: padding
  CopyRegion(unit, unit_box.shape(), {cb.lo[0] - unit_box.lo[0], cb.lo[1] - unit_box.lo[1], cb.lo[2] - unit_box.lo[2]},
             chunk, {c, c, c}, {0, 0, 0}, cb.shape(), DTypeSize(dtype()));
}

Result<ChunkBytes> ChunkEngine::EncodeChunk(const uint8_t* voxels) {
  if (AllZero(voxels, raw_bytes_)) return EmptyResult();
  OZ_ASSIGN_OR_RETURN(std::string enc, codec_.Encode(voxels, raw_bytes_));
  return ChunkBytes(std::make_shared<const std::string>(std::move(enc)));
}

bool ChunkEngine::OutsideData(int level, const Vec3& idx) const {
  const Box b0 = pyramid_.FootprintAtLowerLevel(pyramid_.ChunkBox(level, idx), level, 0, halo());
  return b0.Intersect(level0_->geometry().data_region).empty();
}

const uint8_t* ChunkEngine::DecodeProvided(int level, const Vec3& idx, const ProvidedChunk& p,
                                           std::vector<uint8_t>* tmp) {
  Status st;
  if (!p.bytes) {
    st = InternalError("no bytes");
  } else if (codec_.raw()) {
    if (p.bytes->size() == raw_bytes_) return reinterpret_cast<const uint8_t*>(p.bytes->data());
    st = CorruptError(std::to_string(p.bytes->size()) + " bytes, expected " + std::to_string(raw_bytes_));
  } else {
    tmp->resize(raw_bytes_);
    st = codec_.Decode(*p.bytes, tmp->data(), raw_bytes_);
    if (st.ok()) return tmp->data();
  }
  static RateLimiter rl;
  uint64_t suppressed = 0;
  if (rl.Allow(&suppressed))
    LogWarning("existing chunk " + std::to_string(level) + "/" + ToString(idx) + " does not decode to a full chunk (" +
               st.message() + "); computing it instead" +
               (suppressed ? " (" + std::to_string(suppressed) + " similar warnings suppressed)" : ""));
  return nullptr;
}

// A unit is taken from the provider only as a whole: all of its chunks are fetched and checked
// before any is handed on, so a bad one makes the unit computed instead, and no chunk reaches the
// sink twice.
Result<bool> ChunkEngine::UnitFromProvider(const Unit& u, UnitRun& run, uint8_t* out,
                                           std::vector<ProvidedChunk>* provided) {
  using Kind = ProvidedChunk::Kind;
  const size_t n = static_cast<size_t>(u.x1c - u.x0c);
  std::vector<char> outside(n);
  for (size_t i = 0; i < n; ++i) {
    const Vec3 ci{u.zc, u.yc, u.x0c + static_cast<int64_t>(i)};
    outside[i] = OutsideData(u.level, ci);
    if (!outside[i] && !run.provider->Has(u.level, ci)) return false;
  }

  const bool written = run.sink && u.level >= run.sink_min_level;
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Box box = UnitBox(u);
  const Vec3 bs = box.shape();
  provided->assign(n, ProvidedChunk{});
  config_.pool->ParallelFor(n, [&](size_t i) {
    const Vec3 ci{u.zc, u.yc, u.x0c + static_cast<int64_t>(i)};
    ProvidedChunk p;
    if (outside[i])
      p.kind = Kind::kEmpty;  // origin 0: known without asking anyone
    else
      p = run.provider->Fetch(u.level, ci);
    if (p.kind == Kind::kMissing) return;
    const Box cb = pyramid_.ChunkBox(u.level, ci);
    const Vec3 dst_off{cb.lo[0] - box.lo[0], cb.lo[1] - box.lo[1], cb.lo[2] - box.lo[2]};
    try {
      if (p.kind == Kind::kBytes) {
        std::vector<uint8_t> tmp;
        const uint8_t* voxels = DecodeProvided(u.level, ci, p, &tmp);
        if (!voxels) return;
        if (out) CopyRegion(voxels, {c, c, c}, {0, 0, 0}, out, bs, dst_off, cb.shape(), bpv);
      } else if (out) {
        const Vec3 ps = cb.shape();
        for (int64_t z = 0; z < ps[0]; ++z)
          for (int64_t y = 0; y < ps[1]; ++y)
            std::memset(out + (((dst_off[0] + z) * bs[1] + dst_off[1] + y) * bs[2] + dst_off[2]) * bpv, 0,
                        static_cast<size_t>(ps[2]) * bpv);
      }
    } catch (const std::bad_alloc&) {
      return;  // left missing: the unit is computed
    }
    (*provided)[i] = std::move(p);
  });
  for (const ProvidedChunk& p : *provided)
    if (p.kind == Kind::kMissing) {
      if (!written) provided->clear();  // computed, and nothing of it is written
      return false;
    }

  // The levels below that are written come from their own units (provided or computed).
  if (written && u.level > run.sink_min_level) {
    const int k1 = u.level - 1;
    const Vec3 g1 = pyramid_.grid(k1);
    for (int64_t dz = 0; dz < 2; ++dz)
      for (int64_t dy = 0; dy < 2; ++dy) {
        const Unit ch{k1, 2 * u.zc + dz, 2 * u.yc + dy, 2 * u.x0c, std::min(2 * u.x1c, g1[2])};
        if (ch.zc >= g1[0] || ch.yc >= g1[1]) continue;
        OZ_RETURN_IF_ERROR(ComputeUnit(ch, run, nullptr));
      }
  }
  if (written) {
    std::vector<Status> errs(n);
    config_.pool->ParallelFor(n, [&](size_t i) {
      const ProvidedChunk& p = (*provided)[i];
      errs[i] = (*run.sink)(u.level, {u.zc, u.yc, u.x0c + static_cast<int64_t>(i)},
                            p.kind == Kind::kEmpty ? EmptyResult() : Result<ChunkBytes>(p.bytes), p.origin);
    });
    for (auto& e : errs) OZ_RETURN_IF_ERROR(e);
  }
  return true;
}

void ChunkEngine::PrepareTreeWalks(uint64_t held_chunk_bytes) {
  chunk_strings_->KeepAtLeast(held_chunk_bytes);
  // A walk holds a row unit of each level below the one it computes, and a downsampled quarter.
  uint64_t chain = 0;
  for (int k = 0; k + 1 < pyramid_.levels(); ++k)
    chain +=
        static_cast<uint64_t>(UnitBox(Unit{k, 0, 0, 0, pyramid_.grid(k)[2]}).volume()) * DTypeSize(dtype()) * 9 / 8;
  buffers_.KeepAtLeast(std::min(chain, config_.work_memory));
}

Status ChunkEngine::ComputeTree(int level, int64_t zc, int64_t yc, int min_level, const ChunkSink& sink,
                                ChunkProvider* provider, const std::function<Status()>* before_unit) {
  const Unit u{level, zc, yc, 0, pyramid_.grid(level)[2]};
  UnitRun run;
  run.provider = provider;
  run.before_unit = before_unit;
  run.from_source = true;
  run.base = 0;
  run.emit = false;
  run.top_level = level;
  run.top_idx = {zc, yc, 0};
  run.sink = &sink;
  run.sink_min_level = min_level;
  const Box box = UnitBox(u);
  run.base_total = std::max<int64_t>(1, pyramid_.BoxAtLowerLevel(box, level, 0).volume());
  run.t0 = run.last_log = std::chrono::steady_clock::now();
  if (provider) return ComputeUnit(u, run, nullptr);  // allocates the top unit only if it computes it
  PooledBuffer out(buffers_, static_cast<size_t>(box.volume()) * DTypeSize(dtype()));
  return ComputeUnit(u, run, out.data());
}

void ChunkEngine::Adopt(int level, const Vec3& idx, const Result<ChunkBytes>& chunk) {
  const Key k{level, idx};
  bool empty = !chunk.ok();
  if (!chunk.ok() && chunk.status().code() != ErrorCode::kNotFound) return;
  if (chunk.ok()) {
    MutexLock l(mu_);
    empty = *chunk == empty_bytes_;  // EmptyResult()'s bytes (empty=keep)
  }
  if (empty) {
    Record(k, State::kEmpty, 0);
    QueueCachePut(k, kFlagEmpty, nullptr);
    return;
  }
  Record(k, State::kPresent, (*chunk)->size());
  QueueCachePut(k, 0, *chunk);
}

namespace {

// Chunks of a DiskCache under an engine's keys (see ChunkEngine::MakeCacheProvider).
class CacheProvider : public ChunkProvider {
 public:
  CacheProvider(DiskCache* cache, std::function<std::string(int, const Vec3&)> key, int origin)
      : cache_(cache), key_(std::move(key)), origin_(origin) {}
  bool Has(int level, const Vec3& idx) override { return cache_->Contains(key_(level, idx)); }
  ProvidedChunk Fetch(int level, const Vec3& idx) override {
    ProvidedChunk p;
    auto e = cache_->Get(key_(level, idx));  // checksummed: a corrupt entry is a miss
    if (!e) return p;
    p.origin = origin_;
    if (e->flags & kFlagEmpty) {
      p.kind = ProvidedChunk::Kind::kEmpty;
    } else {
      p.kind = ProvidedChunk::Kind::kBytes;
      p.bytes = std::make_shared<const std::string>(std::move(e->data));
    }
    return p;
  }

 private:
  DiskCache* cache_;
  std::function<std::string(int, const Vec3&)> key_;
  int origin_;
};

}  // namespace

std::unique_ptr<ChunkProvider> ChunkEngine::MakeCacheProvider(DiskCache* cache, int origin) const {
  return std::make_unique<CacheProvider>(
      cache, [this](int level, const Vec3& idx) { return CacheKey(level, idx); }, origin);
}

Status ChunkEngine::ComputeVoxels(int level, const Vec3& idx, uint8_t* out, bool use_cache) {
  const int64_t c = pyramid_.chunk();
  const size_t bpv = DTypeSize(dtype());
  const Unit u{level, idx[0], idx[1], idx[2], idx[2] + 1};
  const Box box = UnitBox(u);
  std::memset(out, 0, raw_bytes_);
  if (box.shape() == Vec3{c, c, c}) return ComputeRowUnit(u, use_cache, out);
  std::vector<uint8_t> tmp(static_cast<size_t>(box.volume()) * bpv);
  OZ_RETURN_IF_ERROR(ComputeRowUnit(u, use_cache, tmp.data()));
  CopyRegion(tmp.data(), box.shape(), {0, 0, 0}, out, {c, c, c}, {0, 0, 0}, box.shape(), bpv);
  return OkStatus();
}

Status ChunkEngine::ComputeUncached(int level, const Vec3& idx, void* out) {
  return ComputeVoxels(level, idx, static_cast<uint8_t*>(out), /*use_cache=*/false);
}

}  // namespace oz
