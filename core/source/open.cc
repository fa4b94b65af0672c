// The source detectors. A remote store is opened before any daemonizing (by OpenSession, in the
// caller's process), so its credentials/netrc files are read with the caller's working directory
// and identity.
#include "core/source/open.h"

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/source/tiff_stack.h"
#include "core/source/value_map.h"
#include "core/source/volume_grid.h"
#include "core/source/zarr3_source.h"
#include "core/source/zarr_source.h"
#include "core/store/cached_kv_store.h"
#include "core/store/file_store.h"
#include "core/store/http_store.h"

namespace oz {
namespace {

// Lets a CachedKvStore (which owns its base) read through a store the ZarrVolume shares.
class SharedKvStore final : public KvStore {
 public:
  explicit SharedKvStore(std::shared_ptr<KvStore> base) : base_(std::move(base)) {}
  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    return base_->Read(key, max_bytes);
  }
  Result<std::optional<KvRangeValue>> ReadRange(std::string_view key, const ByteRange& range,
                                                uint64_t max_object_bytes) override {
    return base_->ReadRange(key, range, max_object_bytes);
  }
  std::string Describe() const override { return base_->Describe(); }

 private:
  std::shared_ptr<KvStore> base_;
};

// A zarr v2 array or OME-Zarr group in `store`. Chunks are read through a CachedKvStore:
// single-flight and the source_fetches count for every store; for a remote one (fetch_cache set)
// also the disk cache of fetched chunks (and absences), keyed by the volume's fingerprint so
// changed metadata starts a fresh set.
Result<std::shared_ptr<Volume>> OpenZarr(const std::string& source, std::shared_ptr<KvStore> store, SourceEnv& env,
                                         bool remote) {
  Options& o = *env.options;
  if (o.tiff_page >= 0 || o.channel >= 0 || o.time_point >= 0)
    return InvalidArgumentError("page=, channel= and t= choose pages of a TIFF source, but " + source +
                                " is a zarr store; drop them");
  ZarrSourceOptions zo;
  zo.source_level = o.source_level;
  zo.memory_bytes = o.memory * 3 / 8;
  zo.pool = env.pool;
  zo.stats = env.stats;
  if (remote) {
    *env.fetch_pool = std::make_unique<ThreadPool>(std::max(1, o.http.max_connections));
    zo.fetch_pool = env.fetch_pool->get();
  }
  DiskCache* fetch_cache = remote ? env.cache->get() : nullptr;
  Stats* stats = env.stats;
  zo.chunk_store = [fetch_cache, stats](std::shared_ptr<KvStore> base, const std::string& fingerprint) {
    CachedKvStoreOptions co;
    co.generation = Hash128Hex(fingerprint).substr(0, 16);
    return std::shared_ptr<KvStore>(
        std::make_shared<CachedKvStore>(std::make_unique<SharedKvStore>(std::move(base)), fetch_cache, stats, co));
  };
  // zarr v3 (zarr.json at the root) first: one request; a v2 store answers it with "absent".
  OZ_ASSIGN_OR_RETURN(bool v3, IsZarr3Store(*store));
  if (v3) {
    OZ_ASSIGN_OR_RETURN(std::unique_ptr<Zarr3Volume> zarr3, Zarr3Volume::Open(std::move(store), zo));
    const DType served3 = ServedDType(zarr3->dtype(), o);
    for (const std::string& note : ApplyZarr3Defaults(zarr3->metadata(), served3, &o))
      LogInfo("zarr source " + source + ": " + note);
    return std::shared_ptr<Volume>(std::move(zarr3));
  }
  OZ_ASSIGN_OR_RETURN(std::unique_ptr<ZarrVolume> zarr, ZarrVolume::Open(std::move(store), zo));
  const DType served = ServedDType(zarr->dtype(), o);
  for (const std::string& note : ApplyZarrDefaults(zarr->metadata(), served, &o))
    LogInfo("zarr source " + source + ": " + note);
  return std::shared_ptr<Volume>(std::move(zarr));
}

Result<std::shared_ptr<Volume>> OpenHttpZarr(const std::string& source, SourceEnv& env) {
  // Fetched chunks go to the disk cache, so it is opened first.
  OZ_RETURN_IF_ERROR(env.open_cache());
  OZ_ASSIGN_OR_RETURN(std::unique_ptr<KvStore> http, OpenHttpStore(source, env.options->http, env.stats));
  return OpenZarr(source, std::shared_ptr<KvStore>(std::move(http)), env, /*remote=*/true);
}

// A directory that opens as a store and whose root metadata says zarr, or whose root metadata
// cannot even be read (bad JSON, over the size limit): that is a broken zarr store, and its
// opener reports the error rather than the TIFF reader's "no slice files".
bool IsLocalZarr(const std::string& source) {
  auto store = FileStore::Open(source);
  if (!store.ok()) return false;
  auto zarr = IsZarrStore(**store);
  if (!zarr.ok() || *zarr) return true;
  auto zarr3 = IsZarr3Store(**store);
  return !zarr3.ok() || *zarr3;
}

Result<std::shared_ptr<Volume>> OpenLocalZarr(const std::string& source, SourceEnv& env) {
  OZ_ASSIGN_OR_RETURN(std::unique_ptr<FileStore> store, FileStore::Open(source));
  return OpenZarr(source, std::shared_ptr<KvStore>(std::move(store)), env, /*remote=*/false);
}

// The TIFF reader's options from -o (shared by slice stacks, multi-page files and volume grids).
TiffStackOptions TiffOptions(const Options& o, const SourceEnv& env) {
  TiffStackOptions to;
  to.bad_slices = o.bad_slices;
  to.memory_bytes = o.memory * 3 / 8;
  to.pool = env.pool;
  to.stats = env.stats;
  to.page = o.tiff_page;
  to.channel = o.channel;
  to.time = o.time_point;
  return to;
}

Result<std::shared_ptr<Volume>> OpenTiff(const std::string& source, SourceEnv& env) {
  const Options& o = *env.options;
  if (o.source_level != 0)
    return InvalidArgumentError("source_level=" + std::to_string(o.source_level) +
                                " selects a level of an OME-Zarr group, but " + source +
                                " is not a zarr store; drop the option");
  const TiffStackOptions to = TiffOptions(o, env);
  OZ_ASSIGN_OR_RETURN(std::unique_ptr<TiffStack> stack, TiffStack::Open(source, to));
  *env.warnings = stack->warnings();
  return std::shared_ptr<Volume>(std::move(stack));
}

Result<std::shared_ptr<Volume>> OpenVolumeGrid(const std::string& source, SourceEnv& env) {
  const Options& o = *env.options;
  if (o.source_level != 0)
    return InvalidArgumentError("source_level=" + std::to_string(o.source_level) +
                                " selects a level of an OME-Zarr group, but " + source +
                                " is a volume grid; drop the option");
  const TiffStackOptions to = TiffOptions(o, env);
  OZ_ASSIGN_OR_RETURN(std::unique_ptr<VolumeGrid> grid, VolumeGrid::Open(source, to));
  *env.warnings = grid->warnings();
  return std::shared_ptr<Volume>(std::move(grid));
}

}  // namespace

const std::vector<SourceDetector>& SourceDetectors() {
  static const std::vector<SourceDetector> kDetectors = {
      {"zarr over HTTP(S)", [](const std::string& s) { return IsHttpUrl(s); }, OpenHttpZarr},
      {"zarr store", IsLocalZarr, OpenLocalZarr},
      {"volume grid", LooksLikeVolumeGrid, OpenVolumeGrid},
      {"TIFF", [](const std::string&) { return true; }, OpenTiff},
  };
  return kDetectors;
}

Result<std::shared_ptr<Volume>> OpenSourceVolume(const std::string& source, SourceEnv& env) {
  for (const SourceDetector& d : SourceDetectors())
    if (d.claims(source)) return d.open(source, env);
  return InvalidArgumentError("source " + source + " is not a zarr store or a TIFF source");
}

}  // namespace oz
