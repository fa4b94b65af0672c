// Session assembly. The default cache directory is per source so two mounts of different
// sources never contend for one cache lock.
#include "core/session.h"

#include <climits>
#include <cstdlib>
#include <thread>

#include "core/cached_kv_store.h"
#include "core/file_store.h"
#include "core/hash.h"
#include "core/http_store.h"
#include "core/log.h"
#include "core/tiff_stack.h"
#include "core/zarr_source.h"

namespace oz {
namespace {

// Lets a CachedKvStore (which owns its base) read through a store the ZarrVolume shares.
class SharedKvStore final : public KvStore {
 public:
  explicit SharedKvStore(std::shared_ptr<KvStore> base) : base_(std::move(base)) {}
  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    return base_->Read(key, max_bytes);
  }
  std::string Describe() const override { return base_->Describe(); }

 private:
  std::shared_ptr<KvStore> base_;
};

// The zarr store that `source` (an absolute path or a URL) names, or nullptr when it is not a
// zarr store (then it is read as a TIFF stack, whose Open reports a missing or unreadable
// directory in its own words). An HTTP store is opened here, before any daemonizing, so its
// credentials/netrc files are read with the caller's working directory and identity.
Result<std::shared_ptr<KvStore>> OpenZarrStore(const std::string& source, const Options& options, Stats* stats) {
  if (IsHttpUrl(source)) {
    OZ_ASSIGN_OR_RETURN(std::unique_ptr<KvStore> http, OpenHttpStore(source, options.http, stats));
    return std::shared_ptr<KvStore>(std::move(http));
  }
  auto store = FileStore::Open(source);
  if (!store.ok()) return std::shared_ptr<KvStore>();
  OZ_ASSIGN_OR_RETURN(bool zarr, IsZarrStore(**store));
  if (!zarr) return std::shared_ptr<KvStore>();
  return std::shared_ptr<KvStore>(std::move(store).value());
}

}  // namespace

Result<std::string> ResolveCacheDir(const std::string& abs_source, const Options& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  OZ_ASSIGN_OR_RETURN(std::string root, DefaultCacheRoot());
  return root + "/src-" + Hash128Hex(abs_source).substr(0, 16);
}

Result<std::unique_ptr<Session>> OpenSession(const SessionParams& params) {
  auto s = std::make_unique<Session>();
  s->options = params.options;
  const FormatSpec* format = FindFormat(params.options.format);
  if (!format)
    return InvalidArgumentError("format=" + params.options.format + " is not known; use one of " + FormatNames(", "));
  if (IsHttpUrl(params.source)) {
    s->source = params.source;
  } else {
    char buf[PATH_MAX];
    if (!realpath(params.source.c_str(), buf)) return ErrnoError(errno, "source " + params.source);
    s->source = buf;
  }
  int threads = params.options.threads > 0 ? params.options.threads
                                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s->pool = std::make_unique<ThreadPool>(threads);

  auto open_cache = [&]() -> Status {
    if (!params.use_cache || s->cache) return OkStatus();
    OZ_ASSIGN_OR_RETURN(s->cache_dir, ResolveCacheDir(s->source, params.options));
    DiskCacheOptions co;
    co.dir = s->cache_dir;
    co.max_bytes = params.options.cache_size;
    co.stats = &s->stats;
    OZ_ASSIGN_OR_RETURN(s->cache, DiskCache::Open(co));
    return OkStatus();
  };
  const bool remote = IsHttpUrl(s->source);
  // A remote source's fetched chunks go to the disk cache, so it is opened first.
  if (remote) OZ_RETURN_IF_ERROR(open_cache());

  OZ_ASSIGN_OR_RETURN(std::shared_ptr<KvStore> zarr_store, OpenZarrStore(s->source, params.options, &s->stats));
  if (zarr_store) {
    if (params.options.tiff_page >= 0 || params.options.channel >= 0 || params.options.time_point >= 0)
      return InvalidArgumentError("page=, channel= and t= choose pages of a TIFF source, but " + s->source +
                                  " is a zarr store; drop them");
    ZarrSourceOptions zo;
    zo.source_level = params.options.source_level;
    zo.memory_bytes = params.options.memory * 3 / 8;
    zo.pool = s->pool.get();
    zo.stats = &s->stats;
    if (remote) {
      s->fetch_pool = std::make_unique<ThreadPool>(std::max(1, params.options.http.max_connections));
      zo.fetch_pool = s->fetch_pool.get();
    }
    // Chunks are read through a CachedKvStore: single-flight and the source_fetches count for
    // every store; for a remote one also the disk cache of fetched chunks (and absences), keyed
    // by the volume's fingerprint so changed metadata starts a fresh set.
    DiskCache* fetch_cache = remote ? s->cache.get() : nullptr;
    Stats* stats = &s->stats;
    zo.chunk_store = [fetch_cache, stats](std::shared_ptr<KvStore> store, const std::string& fingerprint) {
      CachedKvStoreOptions co;
      co.generation = Hash128Hex(fingerprint).substr(0, 16);
      return std::shared_ptr<KvStore>(
          std::make_shared<CachedKvStore>(std::make_unique<SharedKvStore>(std::move(store)), fetch_cache, stats, co));
    };
    auto zarr = ZarrVolume::Open(std::move(zarr_store), zo);
    if (!zarr.ok()) return zarr.status();
    const DType served = params.options.bytes1 ? DType::kUint8 : (*zarr)->dtype();
    for (const std::string& note : ApplyZarrDefaults((*zarr)->metadata(), served, &s->options))
      LogInfo("zarr source " + s->source + ": " + note);
    s->volume = std::shared_ptr<Volume>(std::move(zarr).value());
  } else {
    if (params.options.source_level != 0)
      return InvalidArgumentError("source_level=" + std::to_string(params.options.source_level) +
                                  " selects a level of an OME-Zarr group, but " + s->source +
                                  " is not a zarr store; drop the option");
    TiffStackOptions to;
    to.bad_slices = params.options.bad_slices;
    to.memory_bytes = params.options.memory * 3 / 8;
    to.pool = s->pool.get();
    to.stats = &s->stats;
    to.page = params.options.tiff_page;
    to.channel = params.options.channel;
    to.time = params.options.time_point;
    auto stack = TiffStack::Open(s->source, to);
    if (!stack.ok()) return stack.status();
    s->warnings = (*stack)->warnings();
    s->volume = std::shared_ptr<Volume>(std::move(stack).value());
  }
  // The format checks what it cannot express once the source's defaults are in.
  const Compression source_default = s->options.compression;
  OZ_RETURN_IF_ERROR(format->prepare(&s->options, params.options.bytes1 ? DType::kUint8 : s->volume->dtype()));
  if (s->options.compression != source_default)
    LogInfo("format=" + s->options.format + ": compression=" + std::string(CompressionName(s->options.compression)) +
            " (the format's default; -o compression=... to change)");
  const Options& options = s->options;

  if (options.bytes1 && s->volume->dtype() != DType::kUint16)
    LogInfo("bytes=1 has no effect: the source is already uint8");
  auto geometry = ComputeViewGeometry(s->volume->shape(), options);
  if (!geometry.ok()) return geometry.status().WithContext("source " + s->source);
  s->view = std::make_shared<ViewVolume>(s->volume, *geometry, options.bytes1);

  OZ_RETURN_IF_ERROR(open_cache());

  ChunkEngineConfig ec;
  ec.options = options;
  ec.cache = s->cache.get();
  ec.pool = s->pool.get();
  ec.stats = &s->stats;
  // memory = decoded strips (3/8) + working buffers of computations (3/8) + recently served
  // chunks (1/4, so a few chunk rows in flight are served without re-reading the disk cache).
  ec.work_memory = std::max<uint64_t>(options.memory * 3 / 8, 8ull << 20);
  ec.hot_bytes = options.memory / 4;
  if (format->codec_options) ec.codec_options = format->codec_options(options);
  auto engine = ChunkEngine::Make(s->view, ec);
  if (!engine.ok()) return engine.status();
  s->engine = std::move(engine).value();
  s->tree = format->make_tree(s->engine.get(), s->source);
  return s;
}

}  // namespace oz
