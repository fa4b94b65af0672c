// ChunkEngine: produces the bytes of every chunk of the pyramid, shared by the mount and
// materialize so both serve identical bytes.
//
// Path of a request: in-memory state (known empty / hot bytes) -> single-flight -> disk cache ->
// compute -> encode -> disk cache put. A chunk of level L is computed as a "row unit" from the
// four units of level L-1 below it, recursively down to a base level (the source, or the lowest
// level at most 4 below whose chunks are all cached): every voxel of the base box is read once,
// memory is one unit per level (about 2 * c * c * width * bytes), and every intermediate chunk is
// put into the cache on the way (never chunk-by-chunk recursion that re-reads the source).
// Except with algorithm=nearest: a chunk whose lower levels are not cached is read straight from
// level 0 with a strided read of the voxels it keeps (Volume::ReadBoxStrided), no intermediate
// level computed or cached, so its cost grows with the chunk, not with the box it covers.
// Listing a chunk row computes its unknown chunks together as one unit (x-neighbours share one
// pass over the source band).
// Kernels with a halo (algorithm=gaussian; Pyramid::Footprint): a unit of level L > 1 is
// computed from its footprint at level L-1, whose chunks come through GetChunk (cached, computed
// once, in parallel): the chunks below it and, for the halo, the whole neighbouring chunks
// (so a lone chunk of level l also computes the ring of level-(l-1) chunks around its children,
// which a viewer panning there reuses). Level 1 reads its footprint from the source (the halo
// is read twice: (1 + halo / chunk)^3 of level 0 in all). Without a disk cache, and in ComputeTree's halo
// slabs, boxes are computed from the source down (ComputeBoxHalo). ComputeTree otherwise streams
// as above: the four child units (each written once) plus the halo slabs around them.
//
// Threading: all public methods are thread-safe. Concurrent requests for one chunk share one
// computation and its result or error (single-flight). Failed results are never cached.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/base/options.h"
#include "core/base/stats.h"
#include "core/codec/codec.h"
#include "core/pyramid/pyramid.h"
#include "core/source/view.h"
#include "core/store/disk_cache.h"
#include "core/sync/buffer_pool.h"
#include "core/sync/lru_cache.h"
#include "core/sync/memory_budget.h"
#include "core/sync/mutex.h"
#include "core/sync/thread_pool.h"

namespace oz {

struct ChunkEngineConfig {
  Options options;
  DiskCache* cache = nullptr;                // not owned; nullptr = no disk cache
  ThreadPool* pool = nullptr;                // not owned; required
  Stats* stats = nullptr;                    // not owned; required
  uint64_t work_memory = 512ull << 20;       // bound on working buffers of all computations together
  uint64_t hot_bytes = 64ull << 20;          // in-memory LRU of recently served chunk bytes
  uint64_t write_queue_bytes = 64ull << 20;  // encoded chunks waiting for the disk-cache writer
  // The codec settings (compression and its parameters) when they are not options' own: a format
  // whose files are derived from the engine's chunks keeps them lossless (FormatSpec).
  std::optional<Options> codec_options;
};

using ChunkBytes = std::shared_ptr<const std::string>;

// A chunk found outside the engine by a ChunkProvider.
struct ProvidedChunk {
  enum class Kind { kMissing, kEmpty, kBytes };
  Kind kind = Kind::kMissing;
  ChunkBytes bytes;  // kBytes: the chunk's file bytes, exactly as a mount serves them
  int origin = 0;    // provider-defined tag (> 0), handed to the sink with a copied chunk
};

// Read-only access to chunks of this tree that exist already: a mount's disk cache, the files of
// an earlier materialize run. ComputeTree copies them instead of computing them, and computes the
// levels above from them instead of from the source. Thread-safe.
class ChunkProvider {
 public:
  virtual ~ChunkProvider() = default;
  // Cheap (no file I/O): true if Fetch is expected to find the chunk (bytes or empty). Fetch may
  // still miss (the entry was evicted meanwhile, or fails its check).
  virtual bool Has(int level, const Vec3& idx) = 0;
  // The chunk, checked against the provider's own record of it (checksum); kMissing when it is
  // absent or fails the check (logged). The engine also checks that bytes decode to a full chunk.
  virtual ProvidedChunk Fetch(int level, const Vec3& idx) = 0;
};

class ChunkEngine {
 public:
  // level0: the view volume (level 0 of the tree). Errors: invalid pyramid or codec options.
  static Result<std::unique_ptr<ChunkEngine>> Make(std::shared_ptr<ViewVolume> level0, const ChunkEngineConfig& config);
  ~ChunkEngine();

  const Pyramid& pyramid() const { return pyramid_; }
  DType dtype() const { return level0_->dtype(); }
  const ChunkCodec& codec() const { return codec_; }
  const Options& options() const { return config_.options; }
  // The disk cache (nullptr: none), for formats that keep small derived records beside the chunks.
  DiskCache* disk_cache() const { return config_.cache; }
  // Bytes of a full uncompressed chunk.
  uint64_t raw_chunk_bytes() const { return raw_bytes_; }
  // Before ComputeTree walks, by a caller that holds up to `held_chunk_bytes` of the raw chunks
  // the walk hands it (materialize's file queue): the pools keep that many chunk buffers and one
  // unit buffer per level of a walk (within work_memory) for reuse, so that no unit or chunk
  // takes fresh pages from the kernel. Kept buffers are reused before any is allocated.
  void PrepareTreeWalks(uint64_t held_chunk_bytes);

  // The chunk's file bytes. Errors: kNotFound if idx is outside the grid, or the chunk is empty
  // and empty=omit; kIoError/kCorrupt/... naming the source file when it cannot be computed.
  Result<ChunkBytes> GetChunk(int level, const Vec3& idx);

  // The chunk's file size, computing the chunk only when the size is not known otherwise
  // (raw encoding with empty=keep needs no computation). Same errors as GetChunk.
  Result<uint64_t> ChunkSize(int level, const Vec3& idx);

  // x indices in [x0, x1) (x1 < 0: the row's end) of the chunk files that exist in the row
  // (level, z, y): all with empty=keep; with empty=omit the non-empty ones, computing the unknown
  // chunks of the range together as one unit (one pass over their source band).
  // Errors: kNotFound for a row outside the grid; a compute error of any chunk in the range.
  Result<std::vector<int64_t>> ListRow(int level, int64_t z, int64_t y, int64_t x0 = 0, int64_t x1 = -1);

  // Receives one chunk of a unit tree: its file bytes, or kNotFound when it is empty and
  // empty=omit (no file). origin: 0 when the engine computed the chunk, else the ProvidedChunk
  // origin it was copied from. Called concurrently from pool threads.
  using ChunkSink = std::function<Status(int level, const Vec3& idx, const Result<ChunkBytes>& chunk, int origin)>;

  // Materialize's path: every chunk of levels [min_level, level] in the tree of row unit
  // (level, zc, yc, all columns) goes to `sink` exactly once, bottom-up as units complete.
  // Uses no cache and no single-flight; memory is one unit per level (about 2 * c * c * level-0
  // width * bytes). Stops at the first sink or source error.
  // Without a provider every chunk is computed from the source. With one, each unit (one chunk
  // row of one level) that the provider has whole is taken from it: its chunks are copied (if
  // written) and decoded (if the level above is computed from them), and only the written levels
  // below it are visited. A unit it does not have whole is computed from its four child units (or
  // the source, at level 0), and its chunks that the provider holds with exactly the computed
  // voxels are still copied. So levels below min_level that the provider holds replace the
  // source, and levels it holds are never recomputed. Chunks outside the view's data region count
  // as provided (empty, origin 0). A unit taken whole relies on the provider's own check of its
  // bytes (checksums) plus decoding to a full chunk; the bytes written are the same either way.
  // before_unit (optional): called on the calling thread before each unit the walk computes
  // (not for units taken from the provider); a non-OK status stops the walk with it. The
  // background prebuild (core/session/prebuild.h) waits there for foreground requests and stops.
  Status ComputeTree(int level, int64_t zc, int64_t yc, int min_level, const ChunkSink& sink,
                     ChunkProvider* provider = nullptr, const std::function<Status()>* before_unit = nullptr);

  // Takes a chunk produced by ComputeTree (its sink's argument, origin 0) as if GetChunk had
  // computed it: records its state and queues its disk-cache put (the same writer, keys and
  // entries as GetChunk's). kNotFound (empty, empty=omit) and the empty chunk's bytes are stored
  // as empty entries; other errors are ignored (never cached). Thread-safe.
  void Adopt(int level, const Vec3& idx, const Result<ChunkBytes>& chunk);

  // Foreground requests (GetChunk, ChunkSize, ListRow) in progress now, and the steady-clock
  // time (ns) the last one ended: a background pass yields while these are recent.
  int64_t foreground_requests() const { return foreground_.load(std::memory_order_relaxed); }
  int64_t last_foreground_end_ns() const { return foreground_end_ns_.load(std::memory_order_relaxed); }
  // True once Cancel() was called.
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // -o base=DEST: chunks `base` holds are served from it (checked by it, and decoded to a full
  // chunk here) instead of being computed; a chunk it lacks or fails is computed as usual. Call
  // before serving (not thread-safe against requests); base must outlive the engine's use.
  void SetBase(ChunkProvider* base) { base_ = base; }

  // A provider of the chunks in `cache` (e.g. a mount's cache opened read-only) under this
  // engine's keys: entries of other sources or options are never seen. `cache` must outlive it.
  std::unique_ptr<ChunkProvider> MakeCacheProvider(DiskCache* cache, int origin) const;

  // Shutdown: computations in progress stop at their next unit (within about one unit's source
  // read) and fail with kCancelled, as do later ones; chunks already known, hot or cached are
  // still served. Irreversible. Thread-safe (a relaxed atomic store).
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }

  // Cache key of a chunk (for tests and materialize's cache sharing).
  std::string CacheKey(int level, const Vec3& idx) const;

  // Computes the chunk's voxels without any cache (reference path for tests/benchmarks).
  // out: raw_chunk_bytes() bytes, full chunk padded with 0.
  Status ComputeUncached(int level, const Vec3& idx, void* out);

  struct Key {
    int level;
    Vec3 idx;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };

 private:
  ChunkEngine(std::shared_ptr<ViewVolume> level0, const ChunkEngineConfig& config, Pyramid pyramid, ChunkCodec codec);

  enum class State : uint8_t { kUnknown, kEmpty, kPresent };
  struct Info {
    State state = State::kUnknown;
    uint64_t size = 0;
  };
  struct Flight;

  // Cheap proofs of emptiness: recorded state, outside the data region, all children empty.
  bool ProvablyEmpty(int level, const Vec3& idx);
  Info Lookup(const Key& k);
  void Record(const Key& k, State s, uint64_t size);
  ChunkBytes HotGet(const Key& k);
  void HotPut(const Key& k, const ChunkBytes& b);
  // Served bytes of an empty chunk (empty=keep), or NotFound (empty=omit).
  // Takes mu_: never called with write_mu_ held (the lock rule; -Wthread-safety checks it).
  Result<ChunkBytes> EmptyResult() OZ_EXCLUDES(mu_, write_mu_);

  // The chunk from the disk cache (recording its state), or nullopt on a miss.
  std::optional<Result<ChunkBytes>> FromCache(int level, const Vec3& idx);
  // The chunk from the disk cache, else from base_; nullopt when neither has it.
  std::optional<Result<ChunkBytes>> FromStored(int level, const Vec3& idx);
  // The leader's work for one chunk: disk cache, then compute, encode, put.
  Result<ChunkBytes> Produce(int level, const Vec3& idx);
  // Computes voxels of chunk (level, idx) into a full padded chunk buffer; with use_cache, from
  // cached lower levels where possible and putting intermediate chunks into the cache.
  Status ComputeVoxels(int level, const Vec3& idx, uint8_t* out, bool use_cache);
  struct Unit {
    int level;
    int64_t zc, yc, x0c, x1c;  // chunk layer, chunk row, chunk columns [x0c, x1c)
  };
  struct UnitRun;
  Box UnitBox(const Unit& u) const;
  // Highest level below u.level (at most kMaxBaseDistance below) whose chunks covering the unit
  // are all available, or -1 (compute from the source).
  int ChooseBase(const Unit& u);
  // Computes a unit (dense, UnitBox shape) from the chosen base, reserving working memory (the
  // unit's own buffer included). With `alloc`, the unit is computed into *alloc, sized only once
  // the memory is reserved (out is ignored); with `held`, the reservation is handed to the caller
  // so it also covers what the caller does with the unit afterwards (cutting it into chunks).
  Status ComputeRowUnit(const Unit& u, bool use_cache, uint8_t* out, PooledBuffer* alloc = nullptr,
                        std::unique_ptr<MemoryReservation>* held = nullptr);
  Status ComputeUnit(const Unit& u, UnitRun& run, uint8_t* out);
  // True if unit u is read straight from level 0 with a strided read (algorithm=nearest,
  // computing from the source): its cost is the chunk's, not its level-0 box's.
  bool ReadsNearest(const Unit& u, const UnitRun& run) const;
  void ParallelDownsample(const uint8_t* in, const Vec3& in_shape, uint8_t* out);
  // Kernel halo of the engine's algorithm (0 for the block kernels).
  int halo() const;
  // Voxels out_box of `level` from in (dense, in_box of level - 1), split over the pool in z.
  void ParallelDownsampleBox(const uint8_t* in, const Box& in_box, int level, const Box& out_box, uint8_t* out);
  // Halo kernels: voxels `box` of `level` computed from the source down, no cache (split along the
  // chunk grid so each piece's footprint is at most about four units).
  Status ComputeBoxHalo(int level, const Box& box, uint8_t* out);
  // Halo kernels, the mount's path: unit u from its footprint at level u.level - 1 (see above).
  Status ComputeUnitFromBelow(const Unit& u, uint8_t* out);
  // Copies the part `part` of chunk (level, idx) from its GetChunk result r into out (dense,
  // out_box); an empty chunk (kNotFound) gives zeros. tmp: decode buffer.
  Status CopyChunkPart(const Result<ChunkBytes>& r, int level, const Vec3& idx, const Box& part, uint8_t* out,
                       const Box& out_box, std::vector<uint8_t>* tmp);
  // Reads a box of level `level` from cached chunks (all must be available or computable).
  Status ReadLevelBox(int level, const Box& box, uint8_t* out);
  // The padded full chunk `ci` of `level` cut out of a dense unit buffer covering unit_box into
  // `chunk` (raw_chunk_bytes() bytes, all written: zeros beyond the volume's edge).
  void CutChunkInto(const uint8_t* unit, const Box& unit_box, int level, const Vec3& ci, uint8_t* chunk) const;
  // Encodes a full chunk as served: bytes, or kNotFound for an empty chunk with empty=omit.
  Result<ChunkBytes> EncodeChunk(const uint8_t* voxels);
  // ComputeTree with a provider: takes unit u from run.provider when it has all of u's chunks
  // (decoding them into `out` when out is not null, and writing the levels below through their
  // own units); returns false when u must be computed. Then `provided` holds u's chunks fetched
  // already (to copy rather than encode), or is empty.
  Result<bool> UnitFromProvider(const Unit& u, UnitRun& run, uint8_t* out, std::vector<ProvidedChunk>* provided);
  // True if the chunk's level-0 box lies outside the view's data region (all zero). Pure.
  bool OutsideData(int level, const Vec3& idx) const;
  // The voxels of a provided chunk (in its bytes for raw, else decoded into tmp), or nullptr when
  // they are not exactly one full chunk (logged).
  const uint8_t* DecodeProvided(int level, const Vec3& idx, const ProvidedChunk& p, std::vector<uint8_t>* tmp);
  // Encodes voxels (a raw_chunk_bytes() string of chunk_strings_), records state, puts into the
  // disk cache (failures: warning only). With raw encoding the string itself becomes the chunk's
  // bytes (Released; back to the pool when the last owner drops it): no copy.
  Result<ChunkBytes> Finish(int level, const Vec3& idx, PooledString& voxels);
  // Finish of chunk ci cut out of a computed unit (a pooled string, so no copy with raw encoding).
  Result<ChunkBytes> CutAndFinish(const uint8_t* unit, const Box& unit_box, int level, const Vec3& ci);
  bool Available(int level, const Vec3& idx);
  // Queues a cache put (bytes nullptr for an empty chunk); see WriterLoop.
  void QueueCachePut(const Key& k, uint32_t flags, ChunkBytes bytes);
  void WriterLoop();
  // Single-flight table: claims key k for the caller unless it is known or already in flight.
  std::shared_ptr<Flight> TryClaim(const Key& k);
  // Publishes a flight's result to its waiters and removes it from the table.
  void Complete(const Key& k, const std::shared_ptr<Flight>& f, const Result<ChunkBytes>& r);

  std::shared_ptr<ViewVolume> level0_;
  ChunkEngineConfig config_;
  Pyramid pyramid_;
  ChunkCodec codec_;
  uint64_t raw_bytes_;
  std::string key_prefix_;
  MemoryBudget work_budget_;
  BufferPool buffers_;  // unit buffers, reused across computations (bounded by work_memory / 4)
  // Raw chunk strings (cut from units; with raw encoding, served and cached as they are), back
  // from their last owner (bounded by work_memory / 8, 64 MiB).
  std::shared_ptr<StringPool> chunk_strings_;

  Mutex mu_;
  std::unordered_map<Key, Info, KeyHash> known_ OZ_GUARDED_BY(mu_);
  std::unordered_map<Key, std::shared_ptr<Flight>, KeyHash> inflight_ OZ_GUARDED_BY(mu_);
  LruCache<Key, const std::string, KeyHash> hot_;  // recently served chunk bytes (own lock)
  ChunkBytes empty_bytes_ OZ_GUARDED_BY(mu_);      // encoded all-zero chunk (empty=keep)

  // Background cache writes. Lock order: write_mu_ is never held while taking mu_.
  struct PendingWrite {
    Key key;
    uint32_t flags;
    ChunkBytes bytes;  // nullptr: empty chunk
  };
  Mutex write_mu_;
  std::condition_variable_any write_cv_, write_space_cv_;  // waited on with write_mu_
  std::deque<PendingWrite> write_queue_ OZ_GUARDED_BY(write_mu_);
  uint64_t write_queue_bytes_ OZ_GUARDED_BY(write_mu_) = 0;
  std::unordered_map<Key, ChunkBytes, KeyHash> pending_ OZ_GUARDED_BY(write_mu_);  // queued, not yet written
  bool stop_writer_ OZ_GUARDED_BY(write_mu_) = false;
  std::thread writer_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> foreground_{0}, foreground_end_ns_{0};
  struct ForegroundScope;
  ChunkProvider* base_ = nullptr;  // -o base=DEST (not owned)
};

}  // namespace oz
