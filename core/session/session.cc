// Session assembly. The default cache directory is per source so two mounts of different
// sources never contend for one cache lock.
#include "core/session/session.h"

#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/session/materialize.h"
#include "core/source/open.h"
#include "core/source/value_map.h"
#include "core/store/http_store.h"
#include "core/surface/layer_tiffs.h"
#include "core/tree/group_tree.h"

namespace oz {

Status StartPrebuild(Session& s) {
  if (s.options.prebuild < 0 || s.prebuild) return OkStatus();
  OZ_ASSIGN_OR_RETURN(s.prebuild, Prebuilder::Start(s.engine.get(), &s.stats, s.options.prebuild));
  return OkStatus();
}

Result<std::string> ResolveCacheDir(const std::string& abs_source, const Options& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  OZ_ASSIGN_OR_RETURN(std::string root, DefaultCacheRoot());
  return root + "/src-" + Hash128Hex(abs_source).substr(0, 16);
}

namespace {

std::string LabelOption(const LabelSpec& l) { return "labels=" + l.name + ":" + l.source; }

// Opens label image `spec` of session `s` (whose image engine is made) in format `format`.
Result<std::unique_ptr<LabelImage>> OpenLabel(Session& s, const LabelSpec& spec, const FormatSpec& format) {
  auto li = std::make_unique<LabelImage>();
  li->spec = spec;
  const std::string what = LabelOption(spec);
  if (IsHttpUrl(spec.source)) {
    li->source = spec.source;
  } else {
    char buf[PATH_MAX];
    if (!realpath(spec.source.c_str(), buf)) return ErrnoError(errno, what + ": label source " + spec.source);
    li->source = buf;
  }
  // The image's page=/channel=/t=/source_level= choose within the image's source, not this one;
  // the label source's own defaults (a zarr's chunk and compressor) do not change the tree.
  li->source_options = s.options;
  li->source_options.tiff_page = li->source_options.channel = li->source_options.time_point = -1;
  li->source_options.source_level = 0;
  li->source_options.memory = std::max<uint64_t>(s.options.memory / 4, 32ull << 20);
  SourceEnv env;
  env.options = &li->source_options;
  env.stats = &s.stats;
  env.pool = s.pool.get();
  env.open_cache = [] { return OkStatus(); };  // the session's cache is open already
  env.cache = &s.cache;
  env.fetch_pool = &li->fetch_pool;
  env.warnings = &s.warnings;
  auto volume = OpenSourceVolume(li->source, env);
  if (!volume.ok()) return volume.status().WithContext(what);
  li->volume = std::move(volume).value();
  const DType ids = li->volume->dtype();
  if (!DTypeIsInteger(ids))
    return InvalidArgumentError(what + ": the label source is " + std::string(DTypeName(ids)) +
                                "; label ids must be an integer type (uint8, uint16, uint32, uint64 or int16): "
                                "give a segmentation volume, not an image");
  const Vec3 image_shape = s.engine->pyramid().shape(0);
  if (li->volume->shape() != image_shape)
    return InvalidArgumentError(what + ": the label volume's shape (z, y, x) " + ToString(li->volume->shape()) +
                                " differs from the image's level-0 shape " + ToString(image_shape) +
                                " (after window=/shift=); a label image must cover the image voxel for voxel");
  // The image's pyramid and encoding, mode, and ids as they are: no window, dtype, range or bytes=.
  Options& o = li->options;
  o = s.options;
  o.algorithm = Algorithm::kMode;
  o.window = {};
  o.shift = {0, 0, 0};
  o.bytes1 = false;
  o.out_dtype.reset();
  o.range_given = o.range_auto = false;
  o.range_lo = o.range_hi = 0;
  o.labels.clear();
  o.layers.clear();
  o.base_dir.clear();
  if (Status st = format.prepare_labels(&o, ids); !st.ok()) return st.WithContext(what);
  auto geometry = ComputeViewGeometry(li->volume->shape(), o);
  if (!geometry.ok()) return geometry.status().WithContext(what);
  auto value_map = MakeValueMap(ids, o);
  if (!value_map.ok()) return value_map.status().WithContext(what);
  li->view = std::make_shared<ViewVolume>(li->volume, *geometry, *value_map);
  ChunkEngineConfig ec;
  ec.options = o;
  ec.cache = s.cache.get();
  ec.pool = s.pool.get();
  ec.stats = &s.stats;
  ec.work_memory = std::max<uint64_t>(s.options.memory * 3 / 16, 8ull << 20);
  ec.hot_bytes = s.options.memory / 16;
  ec.write_queue_bytes = std::clamp<uint64_t>(s.options.memory / 16, 4ull << 20, 64ull << 20);
  auto engine = ChunkEngine::Make(li->view, ec);
  if (!engine.ok()) return engine.status().WithContext(what);
  li->engine = std::move(engine).value();
  if (li->engine->pyramid().levels() != s.engine->pyramid().levels() ||
      li->engine->pyramid().chunk() != s.engine->pyramid().chunk())
    return InternalError(what + ": the label pyramid differs from the image's");
  li->tree = format.make_label_tree(li->engine.get(), spec.name, li->source);
  return li;
}

}  // namespace

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
  SourceEnv env;
  env.options = &s->options;
  env.stats = &s->stats;
  env.pool = s->pool.get();
  env.open_cache = open_cache;
  env.cache = &s->cache;
  env.fetch_pool = &s->fetch_pool;
  env.warnings = &s->warnings;
  OZ_ASSIGN_OR_RETURN(s->volume, OpenSourceVolume(s->source, env));
  if (s->options.range_auto) {
    std::string how;
    OZ_RETURN_IF_ERROR(
        SampleRange(*s->volume, &s->options.range_lo, &s->options.range_hi, &how).WithContext("source " + s->source));
    LogInfo(how);
  }
  auto value_map = MakeValueMap(s->volume->dtype(), s->options);
  if (!value_map.ok()) return value_map.status().WithContext("source " + s->source);
  // The format checks what it cannot express once the source's defaults are in.
  const Compression source_default = s->options.compression;
  OZ_RETURN_IF_ERROR(format->prepare(&s->options, value_map->out));
  if (s->options.compression != source_default)
    LogInfo("format=" + s->options.format + ": compression=" + std::string(CompressionName(s->options.compression)) +
            " (the format's default; -o compression=... to change)");
  const Options& options = s->options;

  if (options.bytes1 && s->volume->dtype() == DType::kUint8)
    LogInfo("bytes=1 has no effect: the source is already uint8");
  auto geometry = ComputeViewGeometry(s->volume->shape(), options);
  if (!geometry.ok()) return geometry.status().WithContext("source " + s->source);
  s->view = std::make_shared<ViewVolume>(s->volume, *geometry, *value_map);

  OZ_RETURN_IF_ERROR(open_cache());

  ChunkEngineConfig ec;
  ec.options = options;
  ec.cache = s->cache.get();
  ec.pool = s->pool.get();
  ec.stats = &s->stats;
  // memory = decoded strips (3/8) + working buffers of computations (3/8, of which at most a
  // quarter kept free for reuse) + recently served chunks (1/8, so a chunk row in flight is
  // served without re-reading the disk cache) + chunks queued for the disk-cache writer (1/8, at
  // most 64 MiB). With layers= the last two are halved for the layer TIFFs' eighth.
  ec.work_memory = std::max<uint64_t>(options.memory * 3 / 8, 8ull << 20);
  const uint64_t eighth = options.layers.empty() ? options.memory / 8 : options.memory / 16;
  ec.hot_bytes = eighth;
  ec.write_queue_bytes = std::clamp<uint64_t>(eighth, 4ull << 20, 64ull << 20);
  if (format->codec_options) ec.codec_options = format->codec_options(options);
  auto engine = ChunkEngine::Make(s->view, ec);
  if (!engine.ok()) return engine.status();
  s->engine = std::move(engine).value();
  s->tree = format->make_tree(s->engine.get(), s->source);
  if (options.prebuild >= 0 && params.use_cache) {
    OZ_RETURN_IF_ERROR(Prebuilder::Check(*s->engine, options.prebuild));
    if (options.cache_size == 0)
      return InvalidArgumentError("prebuild=" + std::to_string(options.prebuild) +
                                  " builds into the disk cache, but cache_size=0 stores nothing; give a cache_size= "
                                  "that holds the levels (or drop prebuild=)");
    const Pyramid& py = s->engine->pyramid();
    const uint64_t most = Prebuilder::TotalChunks(py, options.prebuild) * s->engine->raw_chunk_bytes();
    if (options.cache_size < most) {
      const std::string w = "prebuild=" + std::to_string(options.prebuild) + ": levels " +
                            std::to_string(options.prebuild) + "-" + std::to_string(py.levels() - 1) + " take up to " +
                            std::to_string(most >> 20) +
                            " MiB (uncompressed), more than cache_size=" + std::to_string(options.cache_size >> 20) +
                            "M: the cache may evict them again; raise cache_size= or prebuild a higher level";
      LogWarning(w);
      s->warnings.push_back(w);
    }
  }
  AttachBase(*s);
  s->mount = std::make_unique<MountTree>(s->tree.get());
  if (!options.layers.empty()) {
    // Layer TIFFs keep decoded chunks and computed bands in memory/8, taken from the budgets of
    // recently served and queued chunks above, so the total stays within memory=.
    auto ppm = PpmFile::Open(options.layers);
    if (!ppm.ok()) return ppm.status().WithContext("layers=" + options.layers);
    LayerTiffsParams lp;
    lp.layers_count = options.layers_count;
    lp.stack_count = options.stack_count;
    lp.memory = std::max<uint64_t>(options.memory / 8, 16ull << 20);
    lp.pool = s->pool.get();
    struct stat st;
    if (stat(options.layers.c_str(), &st) == 0)
      lp.ppm_id = (*ppm)->path() + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
                  std::to_string(st.st_mtim.tv_nsec);
    double outside = 0;
    auto layers = LayerTiffs::Make(std::move(ppm).value(), s->engine.get(), lp, &outside);
    if (!layers.ok()) return layers.status().WithContext("layers=" + options.layers);
    if (outside > 0) {
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.3g %%", 100 * outside);
      const std::string w = "layers=" + options.layers + ": " + pct +
                            " of the surface's points have samples outside the volume (level-0 shape " +
                            ToString(s->engine->pyramid().shape(0)) + "); those samples are 0";
      LogWarning(w);
      s->warnings.push_back(w);
    }
    OZ_RETURN_IF_ERROR(s->mount->Add("layers", std::move(layers).value()));
  }
  if (!options.labels.empty()) {
    if (!format->prepare_labels || !format->make_label_tree)
      return InvalidArgumentError("labels=: format=" + options.format +
                                  " has no label images; use format=ome-zarr-0.4, ome-zarr-0.5 or precomputed");
    std::vector<std::string> names;
    std::vector<std::pair<std::string, Tree*>> subtrees;
    for (const LabelSpec& spec : options.labels) {
      OZ_ASSIGN_OR_RETURN(std::unique_ptr<LabelImage> li, OpenLabel(*s, spec, *format));
      names.push_back(spec.name);
      subtrees.emplace_back(spec.name, li->tree.get());
      s->labels.push_back(std::move(li));
    }
    std::vector<std::pair<std::string, ChunkBytes>> docs;
    if (format->labels_group_docs)
      for (auto& [name, bytes] : format->labels_group_docs(names)) {
        for (const std::string& n : names)
          if (n == name)
            return InvalidArgumentError("labels=" + n + ":...: the name " + n +
                                        " is a document of the labels group; choose another name");
        docs.emplace_back(name, std::make_shared<const std::string>(std::move(bytes)));
      }
    OZ_RETURN_IF_ERROR(s->mount->Add("labels", std::make_unique<GroupTree>(std::move(docs), std::move(subtrees))));
  }
  return s;
}

}  // namespace oz
