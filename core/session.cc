// Session assembly. The default cache directory is per source so two mounts of different
// sources never contend for one cache lock.
#include "core/session.h"

#include <climits>
#include <cstdlib>
#include <thread>

#include "core/hash.h"
#include "core/log.h"
#include "core/tiff_stack.h"

namespace oz {

Result<std::string> ResolveCacheDir(const std::string& abs_source, const Options& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  OZ_ASSIGN_OR_RETURN(std::string root, DefaultCacheRoot());
  return root + "/src-" + Hash128Hex(abs_source).substr(0, 16);
}

Result<std::unique_ptr<Session>> OpenSession(const SessionParams& params) {
  auto s = std::make_unique<Session>();
  s->options = params.options;
  char buf[PATH_MAX];
  if (!realpath(params.source.c_str(), buf)) return ErrnoError(errno, "source " + params.source);
  s->source = buf;
  int threads = params.options.threads > 0 ? params.options.threads
                                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s->pool = std::make_unique<ThreadPool>(threads);

  TiffStackOptions to;
  to.bad_slices = params.options.bad_slices;
  to.memory_bytes = params.options.memory * 3 / 8;
  to.pool = s->pool.get();
  to.stats = &s->stats;
  auto stack = TiffStack::Open(s->source, to);
  if (!stack.ok()) return stack.status();
  s->warnings = (*stack)->warnings();
  s->volume = std::shared_ptr<Volume>(std::move(stack).value());

  if (params.options.bytes1 && s->volume->dtype() != DType::kUint16)
    LogInfo("bytes=1 has no effect: the source is already uint8");
  auto geometry = ComputeViewGeometry(s->volume->shape(), params.options);
  if (!geometry.ok()) return geometry.status().WithContext("source " + s->source);
  s->view = std::make_shared<ViewVolume>(s->volume, *geometry, params.options.bytes1);

  if (params.use_cache) {
    OZ_ASSIGN_OR_RETURN(s->cache_dir, ResolveCacheDir(s->source, params.options));
    DiskCacheOptions co;
    co.dir = s->cache_dir;
    co.max_bytes = params.options.cache_size;
    co.stats = &s->stats;
    auto cache = DiskCache::Open(co);
    if (!cache.ok()) return cache.status();
    s->cache = std::move(cache).value();
  }

  ChunkEngineConfig ec;
  ec.options = params.options;
  ec.cache = s->cache.get();
  ec.pool = s->pool.get();
  ec.stats = &s->stats;
  // memory = decoded strips (3/8) + working buffers of computations (3/8) + recently served
  // chunks (1/4, so a few chunk rows in flight are served without re-reading the disk cache).
  ec.work_memory = std::max<uint64_t>(params.options.memory * 3 / 8, 8ull << 20);
  ec.hot_bytes = params.options.memory / 4;
  auto engine = ChunkEngine::Make(s->view, ec);
  if (!engine.ok()) return engine.status();
  s->engine = std::move(engine).value();
  s->tree = std::make_unique<VirtualTree>(s->engine.get(), s->source);
  return s;
}

}  // namespace oz
