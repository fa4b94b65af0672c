// Prebuilder implementation. Why one ComputeTree per top-level row rather than GetChunk per
// chunk: the tree walk reads each source voxel once for all levels K..top together (what
// materialize does), where chunk-by-chunk requests would read the bands of level K again for
// every level above it.
#include "core/session/prebuild.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "core/base/fault.h"
#include "core/base/log.h"

namespace oz {
namespace {

constexpr int kFromCache = 1;  // ProvidedChunk origin of the engine's own cache
constexpr int64_t kLogEveryNs = 10'000'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The calling thread at low CPU and I/O priority (best effort: refused in some containers).
// nice 10 and the lowest best-effort I/O level rather than SCHED_IDLE and the idle I/O class:
// those give the pass no time at all while anything else on the machine runs (a build, another
// mount), so it could not keep pace with materialize there; a viewer's requests get precedence
// from BeforeUnit's pause, which works whatever the scheduler does.
void LowerThreadPriority() {
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 10) != 0)
    LogDebug(std::string("prebuild: nice 10 not permitted: ") + std::strerror(errno));
  // ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT | 7)
  if (syscall(SYS_ioprio_set, 1, tid, (2 << 13) | 7) != 0)
    LogDebug(std::string("prebuild: low I/O priority not permitted: ") + std::strerror(errno));
}

std::string Seconds(double s) {
  char b[32];
  if (s < 120)
    std::snprintf(b, sizeof b, "%.0f s", s);
  else if (s < 7200)
    std::snprintf(b, sizeof b, "%.1f min", s / 60);
  else
    std::snprintf(b, sizeof b, "%.1f h", s / 3600);
  return b;
}

}  // namespace

uint64_t Prebuilder::TotalChunks(const Pyramid& py, int min_level) {
  uint64_t n = 0;
  for (int k = std::max(min_level, 0); k < py.levels(); ++k) {
    const Vec3 g = py.grid(k);
    n += static_cast<uint64_t>(g[0] * g[1] * g[2]);
  }
  return n;
}

Status Prebuilder::Check(const ChunkEngine& engine, int min_level) {
  const int levels = engine.pyramid().levels();
  const std::string k = "prebuild=" + std::to_string(min_level);
  if (min_level < 0 || min_level >= levels)
    return InvalidArgumentError(k + ": this tree has " + std::to_string(levels) + " levels (0.." +
                                std::to_string(levels - 1) + "); use prebuild=0.." + std::to_string(levels - 1) +
                                " (or more levels=)");
  if (!engine.disk_cache())
    return InvalidArgumentError(k +
                                " builds into the disk cache, and this mount has none; drop prebuild= or mount "
                                "with a cache (cache=DIR)");
  return OkStatus();
}

Result<std::unique_ptr<Prebuilder>> Prebuilder::Start(ChunkEngine* engine, Stats* stats, int min_level) {
  OZ_RETURN_IF_ERROR(Check(*engine, min_level));
  std::unique_ptr<Prebuilder> p(new Prebuilder(engine, stats, min_level));
  stats->prebuild_chunks_total = TotalChunks(engine->pyramid(), min_level);
  stats->prebuild_chunks_done = 0;
  stats->prebuild_chunks_reused = 0;
  stats->prebuild_failed = 0;
  p->thread_ = std::thread([raw = p.get()] { raw->Run(); });
  return p;
}

Prebuilder::~Prebuilder() { Stop(); }

void Prebuilder::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

Status Prebuilder::BeforeUnit() {
  auto stopping = [&] { return stop_.load(std::memory_order_relaxed) || engine_->cancelled(); };
  if (stopping()) return Status(ErrorCode::kCancelled, "prebuild stopped");
  FaultPoint("prebuild", "unit");
  bool waited = false;
  for (;;) {
    if (stopping()) return Status(ErrorCode::kCancelled, "prebuild stopped");
    const bool busy =
        engine_->foreground_requests() > 0 || NowNs() - engine_->last_foreground_end_ns() <
                                                  std::chrono::duration_cast<std::chrono::nanoseconds>(kQuiet).count();
    if (!busy) break;
    if (!waited) stats_->prebuild_yields++;  // at once: a reader sees its own request counted
    waited = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return OkStatus();
}

void Prebuilder::Count(bool reused) {
  if (reused) stats_->prebuild_chunks_reused++;
  const uint64_t done = ++stats_->prebuild_chunks_done;
  const int64_t now = NowNs();
  int64_t last = last_log_ns_.load(std::memory_order_relaxed);
  if (now - last < kLogEveryNs || !last_log_ns_.compare_exchange_strong(last, now)) return;
  const uint64_t total = stats_->prebuild_chunks_total;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const double rate = static_cast<double>(done - done_at_start_) / std::max(secs, 1e-3);
  char b[200];
  std::snprintf(b, sizeof b, "prebuild=%d: %llu / %llu chunks (%.1f %%), %.1f chunks/s, about %s left", min_level_,
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                100.0 * static_cast<double>(done) / static_cast<double>(std::max<uint64_t>(total, 1)), rate,
                rate > 0 ? Seconds(static_cast<double>(total - std::min(done, total)) / rate).c_str() : "?");
  LogInfo(b);
}

void Prebuilder::Run() {
  LowerThreadPriority();
  t0_ = std::chrono::steady_clock::now();
  last_log_ns_ = NowNs();
  const Pyramid& py = engine_->pyramid();
  const int top = py.levels() - 1;
  DiskCache* cache = engine_->disk_cache();
  std::unique_ptr<ChunkProvider> cached = engine_->MakeCacheProvider(cache, kFromCache);
  const std::function<Status()> before = [this] { return BeforeUnit(); };
  const ChunkEngine::ChunkSink sink = [this](int level, const Vec3& idx, const Result<ChunkBytes>& chunk,
                                             int origin) -> Status {
    if (!chunk.ok() && chunk.status().code() != ErrorCode::kNotFound) return chunk.status();
    if (origin != kFromCache) engine_->Adopt(level, idx, chunk);
    Count(origin == kFromCache);
    if (stop_.load(std::memory_order_relaxed)) return Status(ErrorCode::kCancelled, "prebuild stopped");
    return OkStatus();
  };
  LogInfo("prebuild=" + std::to_string(min_level_) + ": building levels " + std::to_string(min_level_) + "-" +
          std::to_string(top) + " (" + std::to_string(stats_->prebuild_chunks_total.load()) +
          " chunks) into the cache in the background");
  const Vec3 tg = py.grid(top);
  Status st;
  for (int64_t zc = 0; zc < tg[0] && st.ok(); ++zc)
    for (int64_t yc = 0; yc < tg[1] && st.ok(); ++yc) {
      // A row whose whole tree is cached (a resumed pass) is counted without reading its entries.
      uint64_t n = 0;
      bool all = true;
      for (int k = top; k >= min_level_ && all; --k) {
        const Vec3 g = py.grid(k);
        const int64_t f = int64_t{1} << (top - k);
        for (int64_t z = zc * f; z < std::min((zc + 1) * f, g[0]) && all; ++z)
          for (int64_t y = yc * f; y < std::min((yc + 1) * f, g[1]) && all; ++y)
            for (int64_t x = 0; x < g[2] && all; ++x, ++n) all = cache->Contains(engine_->CacheKey(k, {z, y, x}));
      }
      if (all) {
        for (uint64_t i = 0; i < n; ++i) Count(true);
        if (stop_) st = Status(ErrorCode::kCancelled, "prebuild stopped");
        continue;
      }
      try {
        st = engine_->ComputeTree(top, zc, yc, min_level_, sink, cached.get(), &before);
      } catch (const std::bad_alloc&) {
        st = ResourceExhaustedError("out of memory");
      }
    }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const uint64_t done = stats_->prebuild_chunks_done, total = stats_->prebuild_chunks_total;
  const std::string k = "prebuild=" + std::to_string(min_level_);
  if (st.ok()) {
    LogInfo(k + ": levels " + std::to_string(min_level_) + "-" + std::to_string(top) +
            " are in the cache: " + std::to_string(total) + " chunks (" +
            std::to_string(stats_->prebuild_chunks_reused.load()) + " were cached already) in " + Seconds(secs));
  } else if (st.code() == ErrorCode::kCancelled) {
    LogInfo(k + ": stopped at " + std::to_string(done) + " / " + std::to_string(total) +
            " chunks; a later mount with this cache resumes there");
  } else {
    stats_->prebuild_failed = 1;
    LogError(k + ": stopped at " + std::to_string(done) + " / " + std::to_string(total) + " chunks: " + st.ToString() +
             "; the mount goes on serving (those chunks are computed when read)");
  }
  finished_ = true;
}

}  // namespace oz
