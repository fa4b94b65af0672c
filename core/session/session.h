// Session: everything one mount (or one materialize run) needs, opened from SOURCE and Options:
// the source volume, its view, the disk cache, the chunk engine and the tree. Shared by the FUSE
// daemon and omezarr-materialize so both serve the same bytes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/base/options.h"
#include "core/base/stats.h"
#include "core/engine/chunk_engine.h"
#include "core/format/format.h"
#include "core/session/prebuild.h"
#include "core/source/view.h"
#include "core/store/disk_cache.h"
#include "core/sync/thread_pool.h"
#include "core/tree/mount_tree.h"

namespace oz {

struct SessionParams {
  // A directory of z-slice TIFFs, or a local zarr v2 store (a directory with .zarray, or an
  // OME-Zarr group with .zgroup/.zattrs), or an http:// / https:// URL of one (see session.cc).
  std::string source;
  Options options;
  bool use_cache = true;  // false: no disk cache (e.g. tools that only print metadata)
};

// One label image (-o labels=NAME:SOURCE): its own source, view and engine (the image's pyramid,
// algorithm=mode, no value map; its own cache keys in the session's disk cache) and tree.
struct LabelImage {
  LabelSpec spec;
  std::string source;                      // absolute path, or the URL
  Options source_options;                  // what its source was opened with (the volume may refer to it)
  Options options;                         // the label engine's
  std::unique_ptr<ThreadPool> fetch_pool;  // a remote label source's fetch threads
  std::shared_ptr<Volume> volume;
  std::shared_ptr<ViewVolume> view;
  std::unique_ptr<ChunkEngine> engine;
  std::unique_ptr<FormatTree> tree;  // served as labels/NAME
};

// Member order is destruction order in reverse: the pool outlives everything that uses it.
struct Session {
  // params.options with the source's defaults filled in (a zarr source's chunk and compression
  // where the user gave none; see ApplyZarrDefaults). What the engine and the tree use.
  Options options;
  std::string source;     // absolute path, or the URL
  std::string cache_dir;  // resolved
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<ThreadPool> fetch_pool;  // remote sources: max_connections fetch threads
  Stats stats;
  std::unique_ptr<DiskCache> cache;  // before the volume: a remote source's store writes to it
  std::shared_ptr<Volume> volume;
  std::shared_ptr<ViewVolume> view;
  std::unique_ptr<ChunkProvider> base;  // -o base=DEST (before engine: it outlives the engine's use)
  std::unique_ptr<ChunkEngine> engine;
  std::unique_ptr<FormatTree> tree;                 // of options.format
  std::vector<std::unique_ptr<LabelImage>> labels;  // options.labels, in order
  // What a mount serves: `tree` plus extra directories (layers/ with -o layers=SEGMENT.ppm,
  // labels/ with -o labels=NAME:SOURCE).
  std::unique_ptr<MountTree> mount;
  std::vector<std::string> warnings;
  // -o prebuild=K: started by the mount once it is in place (StartPrebuild); destroyed first, so
  // its thread stops before the engine goes.
  std::unique_ptr<Prebuilder> prebuild;
};

// Opens everything. Errors are ready to print to a user: they name the source, the slice or
// metadata file, the field or option, or the cache directory involved, and the fix.
// The source kind is detected: a directory whose root has .zarray, .zgroup or .zattrs is a zarr
// source (ZarrVolume); any other directory is a TIFF stack; a URL is an HTTP zarr source.
// Memory split of options.memory: 3/8 decoded source strips or chunks, 3/8 working buffers, 1/4
// recently served chunk bytes.
Result<std::unique_ptr<Session>> OpenSession(const SessionParams& params);

// -o prebuild=K (options.prebuild >= 0): starts the background build of levels K..top. A no-op
// without prebuild=. Errors: as Prebuilder::Check (also checked by OpenSession, before mounting).
Status StartPrebuild(Session& session);

// The cache directory a session would use: options.cache_dir, else
// DefaultCacheRoot()/<hash of the absolute source path>.
Result<std::string> ResolveCacheDir(const std::string& abs_source, const Options& options);

}  // namespace oz
