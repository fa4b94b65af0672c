// ZarrVolume: a zarr v2 array in a KvStore (a local directory, an HTTP server) as a Volume. The
// store's root is either the array itself (.zarray) or an OME-Zarr group (.zattrs multiscales),
// whose datasets[source_level] is read, as scroll2zarr's zarr_to_ome picks datasets[0].
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/base/options.h"
#include "core/base/stats.h"
#include "core/source/volume.h"
#include "core/source/zarr_metadata.h"
#include "core/store/kv_store.h"
#include "core/sync/thread_pool.h"

namespace oz {

struct ZarrSourceOptions {
  // Index into the group's multiscales[0].datasets; must be 0 for an array store.
  int source_level = 0;
  // Byte budget of the decoded-chunk cache (the session gives it 3/8 of `memory=`).
  uint64_t memory_bytes = 1ull << 30;
  // Pool for decoding the chunks of one ReadBox in parallel (not owned; nullptr = calling
  // thread only). ReadBox may itself run on a pool thread (ParallelFor nests safely).
  ThreadPool* pool = nullptr;
  // Pool for fetching and decoding the chunks of one ReadBox when the store has latency (HTTP):
  // as many threads as connections, so a box's chunks are in flight together however few CPUs
  // there are. nullptr = `pool`. Not owned.
  ThreadPool* fetch_pool = nullptr;
  Stats* stats = nullptr;  // not owned; may be nullptr
  // Optional: the store chunks are read from, given the metadata store and the volume's
  // Fingerprint() once the metadata is read (e.g. the session wraps an HTTP store in a
  // CachedKvStore whose generation is a hash of the fingerprint). nullptr = the metadata store.
  std::function<std::shared_ptr<KvStore>(std::shared_ptr<KvStore> store, const std::string& fingerprint)> chunk_store;
};

// Whether the store's root holds zarr v2 metadata (.zarray, .zgroup or .zattrs).
// Errors: the store's, for a failure other than "absent".
Result<bool> IsZarrStore(KvStore& store);

class ZarrVolume : public Volume {
 public:
  // Reads and checks the metadata (see ParseZarray / ParseMultiscalesPaths; metadata files over
  // 16 MiB are refused). Errors name the metadata file (store location + key), the field and the
  // fix: kInvalidArgument for hostile or malformed metadata, a source_level out of range, a group
  // without multiscales; kUnsupported for unsupported dtypes, codecs and filters; kNotFound when
  // the root has no zarr metadata; the store's errors otherwise.
  static Result<std::unique_ptr<ZarrVolume>> Open(std::shared_ptr<KvStore> store, const ZarrSourceOptions& options);
  ~ZarrVolume() override;

  Vec3 shape() const override;  // the last three axes of the array
  DType dtype() const override;
  // Reads the source chunks intersecting `box` (in parallel on the pool), through a decoded-
  // chunk LRU cache of options.memory_bytes with single-flight: concurrent readers of one chunk
  // fetch and decode it once. An absent chunk is the fill value (and is remembered as absent).
  // Errors: kCorrupt naming the chunk's location for a chunk that fails to decode or decodes to
  // the wrong size; kIoError for a chunk the store cannot read (also a symlink out of the store
  // or a permission failure: the bytes cannot be produced); kUnavailable and kResourceExhausted
  // as the store reports them. Failures are not cached.
  Status ReadBox(const Box& box, void* out) override;
  // Reads only the source chunks that hold kept voxels (through the same cache). Errors as ReadBox.
  Status ReadBoxStrided(const Box& box, int64_t step, void* out) override;
  // "zarr/1", the store's identity (Describe()), the array path, source_level, the .zarray
  // validator and the .zarray bytes: changed metadata gives a new fingerprint. Rewritten chunk
  // files under unchanged metadata are not detected (as zarr readers in general cannot).
  std::string Fingerprint() const override;
  // "zarr v2 array /data/s.zarr/0 (shape 37x50x61, <u2, chunks 16x16x16, compressor null)".
  std::string Describe() const override;

  const ZarrArrayMetadata& metadata() const;
  // Path of the array inside the store ("" = the store root).
  const std::string& array_path() const;

  struct Impl;

 private:
  explicit ZarrVolume(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fills in the settings of `options` that the user did not give (options->given) from a zarr
// source, and returns one line per decision for the log:
//  - chunk: a cubic source chunk's edge, clamped to 16..512; a non-cubic one gives 128 (the
//    served chunks are cubic; 128 is the TIFF default).
//  - compression: the source's compressor, with its parameters: null -> none; blosc -> blosc
//    with its cname, clevel and shuffle (shuffle -1 resolved for the served dtype); zlib / gzip
//    -> zlib / gzip with its level (-1 -> 6). blosc_* and zlib_level given explicitly win.
// `served` is the dtype of the served tree (uint8 with bytes=1).
std::vector<std::string> ApplyZarrDefaults(const ZarrArrayMetadata& m, DType served, Options* options);

}  // namespace oz
