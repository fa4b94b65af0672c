// Prebuilder: -o prebuild=K, a background pass that puts every chunk of levels K..top into the
// mount's disk cache, so that a later cold mount serves its coarse levels from the cache.
//
// One pass in top-level chunk-row order: ChunkEngine::ComputeTree(top, z, y, K) (materialize's
// streaming walk, every source voxel read once) with the engine's own cache as the provider, so
// chunks already cached (an earlier mount that was unmounted mid-way, or a viewer's reads) are
// counted and not computed again, and levels built upon cached lower levels where they are whole.
// Computed chunks go into the cache through ChunkEngine::Adopt (GetChunk's writer and keys).
//
// Priority: the builder's thread runs at nice 10 with the lowest best-effort I/O priority (where
// permitted; see LowerThreadPriority for why not SCHED_IDLE), and before each unit it computes it
// waits while foreground requests are in progress or ended less
// than kQuiet ago, so a viewer's request always goes first (the unit in progress finishes: one
// chunk row of one level, its source band read once).
// Progress: Stats::prebuild_chunks_{total,done,reused,yields,failed}; an info line with rate and
// ETA about every 10 s. A source error stops the pass (logged, prebuild_failed = 1); the mount
// goes on serving and failures are never cached.
//
// Threading: Start spawns the thread; Stop (or the destructor) makes it stop at its next unit
// (within about one unit's compute) and joins it. The engine and stats must outlive it.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "core/engine/chunk_engine.h"

namespace oz {

class Prebuilder {
 public:
  static constexpr std::chrono::milliseconds kQuiet{50};

  // Errors (kInvalidArgument, naming prebuild=K and the fix): K outside 0..levels-1, or no disk
  // cache to build into.
  static Status Check(const ChunkEngine& engine, int min_level);
  // Checks, then starts the background pass over levels [min_level, top].
  static Result<std::unique_ptr<Prebuilder>> Start(ChunkEngine* engine, Stats* stats, int min_level);
  ~Prebuilder();

  // Asks the pass to stop (non-blocking, idempotent).
  void RequestStop() { stop_.store(true, std::memory_order_relaxed); }
  // RequestStop, then waits for the thread.
  void Stop();
  // True once the pass has ended (complete, failed or stopped).
  bool finished() const { return finished_.load(); }

  // Chunks of levels [min_level, top] of `py` (the pass's total).
  static uint64_t TotalChunks(const Pyramid& py, int min_level);

 private:
  Prebuilder(ChunkEngine* engine, Stats* stats, int min_level)
      : engine_(engine), stats_(stats), min_level_(min_level) {}
  void Run();
  // Waits while foreground requests are recent; kCancelled once stopping.
  Status BeforeUnit();
  void Count(bool reused);

  ChunkEngine* engine_;
  Stats* stats_;
  const int min_level_;
  std::atomic<bool> stop_{false}, finished_{false};
  std::chrono::steady_clock::time_point t0_;
  std::atomic<int64_t> last_log_ns_{0};
  uint64_t done_at_start_ = 0;
  std::thread thread_;
};

}  // namespace oz
