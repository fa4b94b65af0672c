// Zarr3Volume: metadata discovery (array or OME-Zarr 0.5 group) and reads by read unit (a chunk,
// or a shard's inner chunk) through a decoded-unit LRU; shard indexes through their own LRU with
// single-flight, so the concurrent reads of one shard fetch its index once.
#include "core/source/zarr3_source.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <new>

#include "core/base/log.h"
#include "core/codec/shard_index.h"
#include "core/sync/lru_cache.h"
#include "core/sync/single_flight.h"

namespace oz {
namespace {

constexpr uint64_t kAbsentEntryBytes = 64;
// Bound on a whole-value fallback read of a shard (stores without ranged reads only).
constexpr uint64_t kMaxShardObjectBytes = 1ull << 34;

struct Unit {
  std::unique_ptr<uint8_t[]> data;  // nullptr: the fill value
  uint64_t cost = kAbsentEntryBytes;
};
using UnitPtr = std::shared_ptr<const Unit>;

struct ShardIndex {
  bool absent = false;  // no shard file: every inner chunk is the fill value
  std::vector<ShardIndexEntry> entries;
};
using IndexPtr = std::shared_ptr<const ShardIndex>;

struct Vec3Hash {
  size_t operator()(const Vec3& v) const {
    uint64_t h = static_cast<uint64_t>(v[0]) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<uint64_t>(v[1]) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    h ^= static_cast<uint64_t>(v[2]) + 0x94D049BB133111EBull + (h << 6) + (h >> 2);
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

std::string MiB(uint64_t b) { return std::to_string((b + (1 << 19)) >> 20) + " MiB"; }

// An error from the store for a chunk that must exist to be served: EIO at the edge.
Status ChunkReadError(const Status& st) {
  const ErrorCode code = st.code();
  if (code == ErrorCode::kPermission || code == ErrorCode::kInvalidArgument || code == ErrorCode::kNotFound)
    return IoError(st.message());
  return st;
}

}  // namespace

Result<bool> IsZarr3Store(KvStore& store) {
  OZ_ASSIGN_OR_RETURN(std::optional<KvValue> v, store.Read("zarr.json", kMaxMetadataBytes));
  return v.has_value();
}

struct Zarr3Volume::Impl {
  std::shared_ptr<KvStore> store;
  ZarrSourceOptions options;
  std::string array_path;
  std::string prefix;
  std::string json_bytes;
  std::string json_validator;
  Zarr3ArrayMetadata meta;
  bool group = false;
  size_t item = 1;
  Vec3 per_shard{1, 1, 1};  // read units per shard, z, y, x
  uint64_t index_bytes = 0;
  uint64_t inner_count = 0;  // entries in a shard index
  std::unique_ptr<LruCache<Vec3, const Unit, Vec3Hash>> units;
  std::unique_ptr<LruCache<Vec3, const ShardIndex, Vec3Hash>> indexes;
  SingleFlight<Vec3, IndexPtr, Vec3Hash> index_flights;

  std::string Location(const std::string& key) const { return store->Describe() + "/" + key; }
  std::string ObjectKey(const Vec3& ci) const { return prefix + meta.ChunkKey(ci); }
  std::string FingerprintText() const {
    return "zarr3/1|store=" + store->Describe() + "|path=" + array_path +
           "|level=" + std::to_string(options.source_level) + "|validator=" + json_validator +
           "|zarr.json=" + json_bytes;
  }

  // Decodes one read unit's bytes (a chunk, or an inner chunk of a shard).
  Result<UnitPtr> DecodeUnit(std::string_view bytes, const std::string& where) const {
    const bool sharded = meta.codecs.sharding != nullptr;
    const Zarr3Chain& chain = sharded ? meta.codecs.sharding->codecs : meta.codecs;
    auto u = std::make_shared<Unit>();
    const uint64_t n = meta.read_chunk_bytes();
    u->data.reset(new (std::nothrow) uint8_t[n]);
    if (!u->data) return ResourceExhaustedError("out of memory decoding " + where + " (" + MiB(n) + ")");
    Status st = DecodeZarr3Chunk(chain, bytes, meta.read_chunk, meta.dtype, meta.fill.data(), u->data.get());
    if (!st.ok())
      return Status(st.code(), where + ": " + st.message() + " (codecs " + chain.Text() + "); the chunk is damaged");
    if (options.stats) ++options.stats->source_chunks_decoded;
    u->cost = n;
    return UnitPtr(std::move(u));
  }

  Result<IndexPtr> LoadIndex(const Vec3& si) {
    if (IndexPtr hit = indexes->Get(si)) return hit;
    return index_flights.Do(si, [&]() -> Result<IndexPtr> {
      if (IndexPtr hit = indexes->Get(si)) return hit;
      const Zarr3Sharding& s = *meta.codecs.sharding;
      const std::string key = ObjectKey(si);
      ByteRange r;
      r.length = index_bytes;
      r.suffix = s.index_at_end;
      // The disk cache first (what an earlier mount kept), then the store.
      Result<std::optional<KvRangeValue>> read = std::optional<KvRangeValue>();
      const std::optional<std::optional<KvRangeValue>> kept = store->CachedRange(key, r);
      if (kept) {
        read = *kept;
      } else {
        read = store->ReadRange(key, r, kMaxShardObjectBytes);
        if (!read.ok()) return ChunkReadError(read.status());
      }
      auto idx = std::make_shared<ShardIndex>();
      if (!read->has_value()) {
        idx->absent = true;
      } else {
        const KvRangeValue& v = **read;
        if (v.data.size() != index_bytes)
          return CorruptError("shard " + Location(key) + " is " + std::to_string(v.object_size) +
                              " bytes, shorter than its index (" + std::to_string(index_bytes) + " bytes)");
        Result<std::vector<ShardIndexEntry>> e = DecodeShardIndex(v.data, inner_count, s.index_crc32c);
        if (!e.ok()) return Status(e.status().code(), "shard " + Location(key) + ": " + e.status().message());
        const uint64_t begin = s.index_at_end ? 0 : index_bytes;
        const uint64_t end = s.index_at_end ? v.object_size - index_bytes : v.object_size;
        for (uint64_t i = 0; i < inner_count; ++i) {
          Status st = CheckShardEntry((*e)[i], i, begin, end);
          if (!st.ok()) return Status(st.code(), "shard " + Location(key) + ": " + st.message());
        }
        idx->entries = std::move(e).value();
      }
      if (!kept) store->KeepRange(key, r, *read);  // checked: never keeps a bad index
      IndexPtr p = std::move(idx);
      indexes->Put(si, p, kAbsentEntryBytes + p->entries.size() * sizeof(ShardIndexEntry));
      return p;
    });
  }

  void Copy(const Vec3& ui, const Unit& u, const Box& box, uint8_t* out) const;
};

void Zarr3Volume::Impl::Copy(const Vec3& ui, const Unit& u, const Box& box, uint8_t* out) const {
  const Vec3& c = meta.read3;
  const Box cb{{ui[0] * c[0], ui[1] * c[1], ui[2] * c[2]},
               {(ui[0] + 1) * c[0], (ui[1] + 1) * c[1], (ui[2] + 1) * c[2]}};
  CopyChunkIntoBox(u.data.get(), cb, meta.fill.data(), box, out, item);
}

Zarr3Volume::Zarr3Volume(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Zarr3Volume::~Zarr3Volume() = default;

Result<std::unique_ptr<Zarr3Volume>> Zarr3Volume::Open(std::shared_ptr<KvStore> store,
                                                       const ZarrSourceOptions& options) {
  const std::string root_name = store ? store->Describe() : std::string("(no store)");
  try {
    auto impl = std::make_unique<Impl>();
    impl->store = std::move(store);
    impl->options = options;
    KvStore& kv = *impl->store;
    const std::string level_text = "source_level=" + std::to_string(options.source_level);
    OZ_ASSIGN_OR_RETURN(std::optional<KvValue> root, kv.Read("zarr.json", kMaxMetadataBytes));
    if (!root) return NotFoundError(root_name + " has no zarr.json: it is not a zarr v3 array or group");
    OZ_ASSIGN_OR_RETURN(Zarr3Node node, ParseZarr3Node(root->data, impl->Location("zarr.json")));
    std::optional<KvValue> array = std::move(root);
    if (!node.array) {
      if (node.dataset_paths.empty())
        return InvalidArgumentError(impl->Location("zarr.json") +
                                    " is a zarr v3 group without attributes.ome.multiscales; give the path of an "
                                    "array inside it as SOURCE (e.g. " +
                                    root_name + "/0)");
      const auto& paths = node.dataset_paths;
      if (options.source_level < 0 || static_cast<size_t>(options.source_level) >= paths.size())
        return InvalidArgumentError(level_text + ": " + impl->Location("zarr.json") + " lists " +
                                    std::to_string(paths.size()) + " datasets; choose 0.." +
                                    std::to_string(paths.size() - 1));
      impl->group = true;
      impl->array_path = paths[static_cast<size_t>(options.source_level)];
      impl->prefix = impl->array_path + "/";
      OZ_ASSIGN_OR_RETURN(array, kv.Read(impl->prefix + "zarr.json", kMaxMetadataBytes));
      if (!array)
        return InvalidArgumentError(impl->Location(impl->prefix + "zarr.json") + " does not exist, but " +
                                    impl->Location("zarr.json") + " lists \"" + impl->array_path +
                                    "\" in attributes.ome.multiscales[0].datasets; the group is incomplete");
    } else if (options.source_level != 0) {
      return InvalidArgumentError(level_text + ": " + root_name +
                                  " is a zarr v3 array, not an OME-Zarr group, so it has no other levels; drop "
                                  "source_level (or give the group as SOURCE)");
    }
    const std::string where = impl->Location(impl->prefix + "zarr.json");
    OZ_ASSIGN_OR_RETURN(impl->meta, ParseZarr3Array(array->data, where));
    impl->json_bytes = std::move(array->data);
    impl->json_validator = std::move(array->validator);
    if (options.chunk_store) {
      impl->store = options.chunk_store(impl->store, impl->FingerprintText());
      if (!impl->store) return InternalError("zarr source " + root_name + ": no chunk store");
    }
    const Zarr3ArrayMetadata& m = impl->meta;
    impl->item = DTypeSize(m.dtype);
    if (m.codecs.sharding) {
      uint64_t n = 1;
      for (size_t a = 0; a < m.chunks.size(); ++a)
        n *= static_cast<uint64_t>(m.chunks[a] / m.codecs.sharding->chunk_shape[a]);
      if (n > (uint64_t{1} << 26))
        return UnsupportedError(where + ": a shard holds " + std::to_string(n) +
                                " inner chunks; omezarrfs reads shards of at most 2^26 (larger inner chunks)");
      impl->inner_count = n;
      impl->index_bytes = ShardIndexBytes(n, m.codecs.sharding->index_crc32c);
      for (int a = 0; a < 3; ++a) impl->per_shard[a] = m.chunks3[a] / m.read3[a];
    }
    if (m.read_chunk_bytes() > options.memory_bytes)
      LogWarning("zarr source " + where + ": one decoded chunk (" + MiB(m.read_chunk_bytes()) +
                 ") is larger than the decoded-chunk cache (" + MiB(options.memory_bytes) +
                 ", 3/8 of memory=), so chunks are decoded again for every read; raise memory=");
    impl->units = std::make_unique<LruCache<Vec3, const Unit, Vec3Hash>>(options.memory_bytes);
    impl->indexes = std::make_unique<LruCache<Vec3, const ShardIndex, Vec3Hash>>(
        std::max<uint64_t>(options.memory_bytes / 16, 64ull << 20));
    return std::unique_ptr<Zarr3Volume>(new Zarr3Volume(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory opening zarr source " + root_name);
  }
}

Vec3 Zarr3Volume::shape() const { return impl_->meta.shape3; }
DType Zarr3Volume::dtype() const { return impl_->meta.dtype; }
const Zarr3ArrayMetadata& Zarr3Volume::metadata() const { return impl_->meta; }

Status Zarr3Volume::ReadBox(const Box& box, void* out) {
  if (box.empty() || !BoxFromShape(shape()).Contains(box) || out == nullptr)
    return InvalidArgumentError("ReadBox " + box.ToString() + " is empty or outside the zarr array shape " +
                                ToString(shape()));
  Impl& impl = *impl_;
  Stats* stats = impl.options.stats;
  ThreadPool* pool = impl.options.fetch_pool ? impl.options.fetch_pool : impl.options.pool;
  const Vec3& c = impl.meta.read3;
  Vec3 c0, n;
  for (int a = 0; a < 3; ++a) {
    c0[a] = box.lo[a] / c[a];
    n[a] = (box.hi[a] - 1) / c[a] + 1 - c0[a];
  }
  const size_t count = static_cast<size_t>(n[0] * n[1] * n[2]);
  std::vector<Vec3> ids(count);
  std::vector<UnitPtr> got(count);
  std::vector<size_t> missing;
  for (size_t i = 0; i < count; ++i) {
    const int64_t k = static_cast<int64_t>(i);
    ids[i] = Vec3{c0[0] + k / (n[1] * n[2]), c0[1] + (k / n[2]) % n[1], c0[2] + k % n[2]};
    got[i] = impl.units->Get(ids[i]);
    if (got[i]) {
      if (stats) ++stats->source_chunk_cache_hits;
    } else {
      missing.push_back(i);
    }
  }
  auto copy_all = [&]() {
    for (size_t i = 0; i < count; ++i) impl.Copy(ids[i], *got[i], box, static_cast<uint8_t*>(out));
    return OkStatus();
  };
  if (missing.empty()) return copy_all();

  if (!impl.meta.codecs.sharding) {
    const uint64_t max_fetch = impl.meta.read_chunk_bytes() + impl.meta.read_chunk_bytes() / 16 + (64u << 10);
    OZ_RETURN_IF_ERROR(ParallelForStatus(
        pool, missing.size(),
        [&](size_t j) -> Status {
          const size_t i = missing[j];
          const std::string key = impl.ObjectKey(ids[i]);
          if (stats) ++stats->source_chunk_reads;
          Result<std::optional<KvValue>> read = impl.store->Read(key, max_fetch);
          if (!read.ok()) return ChunkReadError(read.status());
          if (!read->has_value()) {
            if (stats) ++stats->source_chunks_missing;
            got[i] = std::make_shared<Unit>();
          } else {
            OZ_ASSIGN_OR_RETURN(got[i], impl.DecodeUnit((*read)->data, impl.Location(key)));
          }
          impl.units->Put(ids[i], got[i], got[i]->cost);
          return OkStatus();
        },
        [&](size_t j) { return "reading source chunk " + ToString(ids[missing[j]]); }));
    return copy_all();
  }

  // Sharded: group the missing units by shard; read each shard's index; coalesce the needed
  // inner chunks of a shard into runs; fetch the runs; decode the units.
  const Vec3& ps = impl.per_shard;
  std::map<Vec3, std::vector<size_t>> by_shard;
  for (size_t i : missing) {
    const Vec3& u = ids[i];
    by_shard[Vec3{u[0] / ps[0], u[1] / ps[1], u[2] / ps[2]}].push_back(i);
  }
  std::vector<Vec3> shards;
  for (const auto& [s, _] : by_shard) shards.push_back(s);
  std::vector<IndexPtr> index(shards.size());
  OZ_RETURN_IF_ERROR(ParallelForStatus(
      pool, shards.size(),
      [&](size_t j) -> Status {
        OZ_ASSIGN_OR_RETURN(index[j], impl.LoadIndex(shards[j]));
        return OkStatus();
      },
      [&](size_t j) { return "reading the index of shard " + ToString(shards[j]); }));

  struct Run {
    size_t shard;
    uint64_t begin = 0, end = 0;
    std::vector<size_t> units;  // indices into ids
    std::string data;
    uint64_t object_size = 0;
    std::string validator;
  };
  std::vector<Run> runs;
  std::vector<const ShardIndexEntry*> entry_of(count, nullptr);
  std::vector<std::string> kept(count);  // inner chunks found in the disk cache
  std::vector<size_t> from_cache;
  for (size_t j = 0; j < shards.size(); ++j) {
    std::vector<size_t> need;
    for (size_t i : by_shard[shards[j]]) {
      if (stats) ++stats->source_chunk_reads;
      if (index[j]->absent) {
        if (stats) ++stats->source_chunks_missing;
        got[i] = std::make_shared<Unit>();
        continue;
      }
      const Vec3& u = ids[i];
      const uint64_t local = static_cast<uint64_t>(((u[0] % ps[0]) * ps[1] + u[1] % ps[1]) * ps[2] + u[2] % ps[2]);
      const ShardIndexEntry& e = index[j]->entries[local];
      if (e.fill()) {
        if (stats) ++stats->source_chunks_missing;
        got[i] = std::make_shared<Unit>();
        continue;
      }
      entry_of[i] = &e;
      if (std::optional<std::optional<KvRangeValue>> hit =
              impl.store->CachedRange(impl.ObjectKey(shards[j]), ByteRange{e.offset, e.nbytes, false});
          hit && hit->has_value() && (*hit)->data.size() == e.nbytes) {
        kept[i] = std::move((*hit)->data);
        from_cache.push_back(i);
        continue;
      }
      need.push_back(i);
    }
    std::sort(need.begin(), need.end(), [&](size_t a, size_t b) { return entry_of[a]->offset < entry_of[b]->offset; });
    for (size_t i : need) {
      const ShardIndexEntry& e = *entry_of[i];
      if (!runs.empty() && runs.back().shard == j && e.offset >= runs.back().begin &&
          e.offset <= runs.back().end + kCoalesceGap && e.offset + e.nbytes - runs.back().begin <= kMaxRangeBytes) {
        runs.back().end = std::max(runs.back().end, e.offset + e.nbytes);
        runs.back().units.push_back(i);
      } else {
        runs.push_back(Run{j, e.offset, e.offset + e.nbytes, {i}, {}});
      }
    }
  }
  OZ_RETURN_IF_ERROR(ParallelForStatus(
      pool, runs.size(),
      [&](size_t r) -> Status {
        Run& run = runs[r];
        const std::string key = impl.ObjectKey(shards[run.shard]);
        if (run.end == run.begin) return OkStatus();  // only empty inner chunks: decoded as such
        ByteRange range;
        range.offset = run.begin;
        range.length = run.end - run.begin;
        Result<std::optional<KvRangeValue>> read = impl.store->ReadRange(key, range, kMaxShardObjectBytes);
        if (!read.ok()) return ChunkReadError(read.status());
        if (!read->has_value() || (*read)->data.size() != range.length)
          return CorruptError("shard " + impl.Location(key) + " changed or is shorter than its index says (" +
                              range.ToString() + " gave " +
                              (read->has_value() ? std::to_string((*read)->data.size()) + " bytes" : "no file") +
                              "); is something rewriting the store?");
        run.data = std::move((*read)->data);
        run.object_size = (*read)->object_size;
        run.validator = std::move((*read)->validator);
        return OkStatus();
      },
      [&](size_t r) { return "reading inner chunks of shard " + ToString(shards[runs[r].shard]); }));
  constexpr size_t kCached = ~size_t{0};
  std::vector<std::pair<size_t, size_t>> work;  // (run or kCached, unit)
  for (size_t r = 0; r < runs.size(); ++r)
    for (size_t i : runs[r].units) work.emplace_back(r, i);
  for (size_t i : from_cache) work.emplace_back(kCached, i);
  std::vector<size_t> shard_of(count, 0);
  for (size_t j = 0; j < shards.size(); ++j)
    for (size_t i : by_shard[shards[j]]) shard_of[i] = j;
  OZ_RETURN_IF_ERROR(ParallelForStatus(
      pool, work.size(),
      [&](size_t w) -> Status {
        const auto [r, i] = work[w];
        const ShardIndexEntry& e = *entry_of[i];
        const std::string key = impl.ObjectKey(shards[shard_of[i]]);
        const std::string_view bytes =
            r == kCached ? std::string_view(kept[i])
                         : std::string_view(runs[r].data)
                               .substr(static_cast<size_t>(e.offset - runs[r].begin), static_cast<size_t>(e.nbytes));
        const Vec3& u = impl.per_shard;
        const Vec3& id = ids[i];
        const uint64_t local = static_cast<uint64_t>(((id[0] % u[0]) * u[1] + id[1] % u[1]) * u[2] + id[2] % u[2]);
        OZ_ASSIGN_OR_RETURN(
            got[i], impl.DecodeUnit(bytes, "inner chunk " + std::to_string(local) + " of shard " + impl.Location(key)));
        if (r != kCached)  // decoded: keep it for the next mount, as the part later reads ask for
          impl.store->KeepRange(key, ByteRange{e.offset, e.nbytes, false},
                                KvRangeValue{std::string(bytes), e.offset, runs[r].object_size, runs[r].validator});
        return OkStatus();
      },
      [&](size_t w) { return "decoding source chunk " + ToString(ids[work[w].second]); }));
  for (size_t i : missing) impl.units->Put(ids[i], got[i], got[i]->cost);
  return copy_all();
}

std::string Zarr3Volume::Fingerprint() const { return impl_->FingerprintText(); }

std::string Zarr3Volume::Describe() const {
  std::string where = impl_->store->Describe();
  if (!impl_->array_path.empty()) where += "/" + impl_->array_path;
  std::string d = "zarr v3 array " + where + " (" + impl_->meta.Summary();
  if (impl_->group) d += ", level " + std::to_string(impl_->options.source_level) + " of an OME-Zarr group";
  return d + ")";
}

std::vector<std::string> ApplyZarr3Defaults(const Zarr3ArrayMetadata& m, DType served, Options* options) {
  // The innermost chain holds the compressor.
  const Zarr3Chain* chain = &m.codecs;
  while (chain->sharding) chain = &chain->sharding->codecs;
  ZarrArrayMetadata v2;
  v2.chunks3 = m.read3;
  v2.compressor = chain->compressor;
  const bool zstd = chain->zstd && !options->given.compression;
  std::vector<std::string> notes = ApplyZarrDefaults(v2, served, options);
  if (zstd) {
    options->compression = Compression::kZstd;
    if (options->zstd_level == Options().zstd_level) options->zstd_level = chain->zstd_level;  // default kept
    notes.back() = "compression=zstd (level " + std::to_string(options->zstd_level) +
                   ") as the source's compressor (-o compression=... to change)";
  }
  return notes;
}

}  // namespace oz
