// Zarr3Volume: a zarr v3 array in a KvStore (a local directory, an HTTP server) as a Volume. The
// store's root is either the array (zarr.json with node_type "array") or an OME-Zarr 0.5 group
// (zarr.json with attributes.ome.multiscales), whose datasets[source_level] is read.
//
// Sharded arrays are read by range: a shard's index is read with one range request (a suffix
// range when the index is at the end, bytes=0-N when at the start) and kept in a memory LRU; then
// the inner chunks one ReadBox needs are read with range requests, neighbours in the shard (at
// most kCoalesceGap bytes apart) in one request. A shard is never read whole to serve part of
// it. The checked index and every decoded inner chunk's bytes are kept with KvStore::KeepRange
// (the disk cache, through the CachedKvStore the session puts in front of an HTTP store) under
// their own ranges, and looked up with CachedRange before fetching. Decoded inner chunks are
// cached like zarr v2 chunks (LRU under the memory budget).
#pragma once

#include <memory>
#include <string>

#include "core/source/volume.h"
#include "core/source/zarr3_metadata.h"
#include "core/source/zarr_source.h"
#include "core/store/kv_store.h"

namespace oz {

// Two inner chunks needed by one read are fetched in one range request when at most this many
// bytes of the shard lie between them.
inline constexpr uint64_t kCoalesceGap = 4096;

// Whether the store's root has a zarr.json. Errors: the store's, for a failure other than absent.
Result<bool> IsZarr3Store(KvStore& store);

class Zarr3Volume : public Volume {
 public:
  // Reads and checks the metadata (ParseZarr3Node / ParseZarr3Array; zarr.json over 16 MiB is
  // refused). Errors name zarr.json's location and the field: kInvalidArgument for malformed
  // metadata, a source_level out of range, a group without multiscales; kUnsupported for data
  // types, codecs, chunk grids and extensions omezarrfs does not read (naming them and a fix).
  static Result<std::unique_ptr<Zarr3Volume>> Open(std::shared_ptr<KvStore> store, const ZarrSourceOptions& options);
  ~Zarr3Volume() override;

  Vec3 shape() const override;
  DType dtype() const override;
  // Reads the chunks (or the shards' inner chunks) intersecting `box`. A missing chunk or shard,
  // an absent inner chunk and a zero-chunk entry (offset 2^64-2, nbytes 0) are the fill value.
  // Errors: kCorrupt naming the chunk or shard (a failed decode, a crc32c mismatch, a shard index
  // entry outside the shard, a shard shorter than its index); kIoError for a chunk the store
  // cannot read; kUnavailable / kResourceExhausted as the store reports them. Never cached.
  Status ReadBox(const Box& box, void* out) override;
  // "zarr3/1", the store, the array path, source_level, zarr.json's validator and bytes.
  std::string Fingerprint() const override;
  // "zarr v3 array URL (shape ..., uint16, chunks ..., codecs ...)".
  std::string Describe() const override;

  const Zarr3ArrayMetadata& metadata() const;

  struct Impl;

 private:
  explicit Zarr3Volume(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// As ApplyZarrDefaults, from a zarr v3 array: chunk from the read unit (the inner chunk of a
// sharded array), compression from the innermost chain's compressor (blosc, gzip, zstd or none).
std::vector<std::string> ApplyZarr3Defaults(const Zarr3ArrayMetadata& m, DType served, Options* options);

}  // namespace oz
