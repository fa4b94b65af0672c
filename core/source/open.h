// OpenSourceVolume: SOURCE (an absolute path or a URL) -> its Volume, through one ordered list of
// detectors; the first that claims SOURCE opens it, so "is this a URL" or "is this a zarr store"
// is decided in one place, and a new source kind is one more row:
//   1. zarr over HTTP(S)   a URL (scheme in any case): zarr v3 when zarr.json is there, else v2
//   2. zarr on disk        a directory whose root has .zarray, .zgroup or .zattrs (v2) or
//                          zarr.json (v3: an array or an OME-Zarr 0.5 group, Zarr3Volume)
//   3. volume grid         a directory holding cell_yxz_YYY_XXX_ZZZ.tif cells (VolumeGrid)
//   4. TIFF                anything else: a directory of slices, one multi-page file (TiffStack
//                          reports a missing or unreadable path in its own words)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/base/options.h"
#include "core/base/stats.h"
#include "core/source/volume.h"
#include "core/store/disk_cache.h"
#include "core/sync/thread_pool.h"

namespace oz {

// What opening a source may use and what it hands back besides the volume.
struct SourceEnv {
  Options* options = nullptr;  // in: -o options; out: with the source's defaults filled in
  Stats* stats = nullptr;
  ThreadPool* pool = nullptr;
  // Opens the session's disk cache (idempotent); a remote source calls it first, since its
  // fetched chunks are kept there. *cache is then the cache (or nullptr with no cache).
  std::function<Status()> open_cache;
  std::unique_ptr<DiskCache>* cache = nullptr;
  std::unique_ptr<ThreadPool>* fetch_pool = nullptr;  // out: a remote source's fetch threads
  std::vector<std::string>* warnings = nullptr;       // out: already logged
};

struct SourceDetector {
  const char* name;
  bool (*claims)(const std::string& source);
  Result<std::shared_ptr<Volume>> (*open)(const std::string& source, SourceEnv& env);
};

// The detectors, in the order they are asked.
const std::vector<SourceDetector>& SourceDetectors();

// Errors: the claiming detector's, ready to print (they name the source, the file, the field and
// the fix).
Result<std::shared_ptr<Volume>> OpenSourceVolume(const std::string& source, SourceEnv& env);

}  // namespace oz
