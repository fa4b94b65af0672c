// ZarrVolume: metadata discovery (array or OME-Zarr group), and reads through a decoded-chunk LRU
// cache with single-flight. Chunks are cached as the C-order, native-endian z,y,x block (big-endian
// and order "F" chunks are converted once, at decode), so every copy out of the cache is memcpy.
#include "core/source/zarr_source.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/base/log.h"
#include "core/sync/lru_cache.h"
#include "core/sync/single_flight.h"

namespace oz {
namespace {

// What an absent chunk costs in the cache budget (it is remembered so it is not fetched again).
constexpr uint64_t kAbsentEntryBytes = 64;

// A decoded chunk: chunks3 voxels, C order, native endianness. data == nullptr: absent (fill).
struct Decoded {
  std::unique_ptr<uint8_t[]> data;
  uint64_t cost = kAbsentEntryBytes;  // bytes held (the allocation), for the budget
};
using DecodedPtr = std::shared_ptr<const Decoded>;

struct Vec3Hash {
  size_t operator()(const Vec3& v) const {
    uint64_t h = static_cast<uint64_t>(v[0]) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<uint64_t>(v[1]) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    h ^= static_cast<uint64_t>(v[2]) + 0x94D049BB133111EBull + (h << 6) + (h >> 2);
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

// Decoded chunks: an LRU under a byte budget in front of a single-flight, so concurrent Gets of
// one key run `load` once and share its result or error. Errors are not cached. Entries larger
// than the whole budget are served, not kept.
class ChunkCache {
 public:
  explicit ChunkCache(uint64_t budget) : lru_(budget) {}

  template <typename Load>
  Result<DecodedPtr> Get(const Vec3& key, Stats* stats, Load&& load) {
    if (DecodedPtr hit = lru_.Get(key)) {
      if (stats) ++stats->source_chunk_cache_hits;
      return hit;
    }
    bool joined = false;
    Result<DecodedPtr> r = flights_.Do(
        key,
        [&]() -> Result<DecodedPtr> {
          if (DecodedPtr hit = lru_.Get(key)) return hit;  // a flight completed since the miss
          try {
            OZ_ASSIGN_OR_RETURN(DecodedPtr v, load());
            lru_.Put(key, v, v->cost);
            return v;
          } catch (const std::bad_alloc&) {
            return ResourceExhaustedError("out of memory decoding source chunk " + ToString(key));
          }
        },
        &joined);
    if (joined && r.ok() && stats) ++stats->source_chunk_cache_hits;
    return r;
  }

 private:
  LruCache<Vec3, const Decoded, Vec3Hash> lru_;
  SingleFlight<Vec3, DecodedPtr, Vec3Hash> flights_;
};

std::string MiB(uint64_t b) { return std::to_string((b + (1 << 19)) >> 20) + " MiB"; }

}  // namespace

struct ZarrVolume::Impl {
  std::shared_ptr<KvStore> store;
  ZarrSourceOptions options;
  std::string array_path;  // "" = store root
  std::string prefix;      // "" or array_path + "/"
  std::string zarray_bytes;
  std::string zarray_validator;
  ZarrArrayMetadata meta;
  bool group = false;
  size_t item = 1;
  // Element strides of z, y, x inside a decoded file chunk (leading axes at index 0).
  Vec3 strides{0, 0, 0};
  uint64_t block_bytes = 0;  // chunks3 voxels * item: one cached chunk
  uint64_t max_fetch = 0;    // largest chunk file accepted
  std::unique_ptr<ChunkCache> cache;

  std::string Location(const std::string& key) const { return store->Describe() + "/" + key; }
  std::string FingerprintText() const {
    return "zarr/1|store=" + store->Describe() + "|path=" + array_path +
           "|level=" + std::to_string(options.source_level) + "|validator=" + zarray_validator +
           "|zarray=" + zarray_bytes;
  }

  Result<DecodedPtr> Load(const Vec3& ci) const;
  void Copy(const Vec3& ci, const Decoded& d, const Box& box, uint8_t* out) const;
};

Result<DecodedPtr> ZarrVolume::Impl::Load(const Vec3& ci) const {
  Stats* stats = options.stats;
  const std::string key = prefix + meta.ChunkKey(ci);
  if (stats) ++stats->source_chunk_reads;
  Result<std::optional<KvValue>> read = store->Read(key, max_fetch);
  if (!read.ok()) {
    // Whatever the store's reason (a symlink out of the store, a directory at the key, an HTTP
    // 403), a chunk that cannot be read is a failure to produce the bytes: EIO at the edge.
    const ErrorCode code = read.status().code();
    if (code == ErrorCode::kPermission || code == ErrorCode::kInvalidArgument || code == ErrorCode::kNotFound)
      return IoError(read.status().message());
    return read.status();
  }
  std::optional<KvValue> v = std::move(read).value();
  auto d = std::make_shared<Decoded>();
  if (!v) {
    if (stats) ++stats->source_chunks_missing;
    return DecodedPtr(std::move(d));
  }
  const uint64_t file_bytes = meta.chunk_bytes();
  std::unique_ptr<uint8_t[]> raw(new (std::nothrow) uint8_t[file_bytes]);
  if (!raw) return ResourceExhaustedError("out of memory decoding " + Location(key) + " (" + MiB(file_bytes) + ")");
  Status st = DecodeZarrChunk(meta.compressor, v->data, raw.get(), file_bytes);
  if (!st.ok())
    return Status(st.code(), Location(key) + ": " + st.message() + " (compressor " +
                                 ZarrCompressorText(meta.compressor) + "); the chunk file is damaged");
  if (stats) ++stats->source_chunks_decoded;
  v.reset();  // the compressed bytes are no longer needed
  const Vec3& c = meta.chunks3;
  if (!meta.fortran_order) {
    // C order: the z,y,x block of leading index 0 is the start of the chunk.
    if (meta.big_endian) SwapBytes(raw.get(), block_bytes, item);
    d->data = std::move(raw);
    d->cost = file_bytes;
    return DecodedPtr(std::move(d));
  }
  std::unique_ptr<uint8_t[]> block(new (std::nothrow) uint8_t[block_bytes]);
  if (!block) return ResourceExhaustedError("out of memory decoding " + Location(key) + " (" + MiB(block_bytes) + ")");
  uint8_t* dst = block.get();
  for (int64_t z = 0; z < c[0]; ++z)
    for (int64_t y = 0; y < c[1]; ++y)
      for (int64_t x = 0; x < c[2]; ++x) {
        const uint8_t* src = raw.get() + (z * strides[0] + y * strides[1] + x * strides[2]) * item;
        std::memcpy(dst, src, item);
        if (meta.big_endian) SwapBytes(dst, item, item);
        dst += item;
      }
  d->data = std::move(block);
  d->cost = block_bytes;
  return DecodedPtr(std::move(d));
}

void ZarrVolume::Impl::Copy(const Vec3& ci, const Decoded& d, const Box& box, uint8_t* out) const {
  const Vec3& c = meta.chunks3;
  const Box cb{{ci[0] * c[0], ci[1] * c[1], ci[2] * c[2]},
               {(ci[0] + 1) * c[0], (ci[1] + 1) * c[1], (ci[2] + 1) * c[2]}};
  CopyChunkIntoBox(d.data.get(), cb, meta.fill_bytes.data(), box, out, item);
}

Result<bool> IsZarrStore(KvStore& store) {
  for (const char* key : {".zarray", ".zgroup", ".zattrs"}) {
    OZ_ASSIGN_OR_RETURN(std::optional<KvValue> v, store.Read(key, kMaxMetadataBytes));
    if (v) return true;
  }
  return false;
}

ZarrVolume::ZarrVolume(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ZarrVolume::~ZarrVolume() = default;

Result<std::unique_ptr<ZarrVolume>> ZarrVolume::Open(std::shared_ptr<KvStore> store, const ZarrSourceOptions& options) {
  const std::string root_name = store ? store->Describe() : std::string("(no store)");
  try {
    auto impl = std::make_unique<Impl>();
    impl->store = std::move(store);
    impl->options = options;
    KvStore& kv = *impl->store;
    const std::string root = kv.Describe();
    const std::string level_text = "source_level=" + std::to_string(options.source_level);

    OZ_ASSIGN_OR_RETURN(std::optional<KvValue> zarray, kv.Read(".zarray", kMaxMetadataBytes));
    if (zarray) {
      if (options.source_level != 0)
        return InvalidArgumentError(level_text + ": " + root +
                                    " is a zarr array, not an OME-Zarr group, so it has no other levels; drop "
                                    "source_level (or give the group as SOURCE)");
    } else {
      OZ_ASSIGN_OR_RETURN(std::optional<KvValue> zattrs, kv.Read(".zattrs", kMaxMetadataBytes));
      if (!zattrs) {
        OZ_ASSIGN_OR_RETURN(std::optional<KvValue> zgroup, kv.Read(".zgroup", kMaxMetadataBytes));
        if (zgroup)
          return InvalidArgumentError(root +
                                      " is a zarr group without .zattrs, so it has no OME-Zarr multiscales; "
                                      "give the path of an array inside it as SOURCE (e.g. " +
                                      root + "/0)");
        OZ_ASSIGN_OR_RETURN(std::optional<KvValue> v3, kv.Read("zarr.json", kMaxMetadataBytes));
        if (v3) return UnsupportedError(root + " is a zarr v3 store (zarr.json); omezarrfs reads zarr v2");
        return NotFoundError(root + " has no .zarray, .zgroup or .zattrs: it is not a zarr v2 array or group");
      }
      OZ_ASSIGN_OR_RETURN(std::vector<std::string> paths,
                          ParseMultiscalesPaths(zattrs->data, impl->Location(".zattrs")));
      if (options.source_level < 0 || static_cast<size_t>(options.source_level) >= paths.size()) {
        std::string list;
        for (size_t i = 0; i < paths.size() && i < 10; ++i)
          list += (i ? ", " : "") + std::to_string(i) + ": \"" + paths[i] + "\"";
        if (paths.size() > 10) list += ", ...";
        return InvalidArgumentError(level_text + ": " + impl->Location(".zattrs") + " lists " +
                                    std::to_string(paths.size()) + " datasets (" + list + "); choose 0.." +
                                    std::to_string(paths.size() - 1));
      }
      impl->group = true;
      impl->array_path = paths[static_cast<size_t>(options.source_level)];
      impl->prefix = impl->array_path + "/";
      OZ_ASSIGN_OR_RETURN(zarray, kv.Read(impl->prefix + ".zarray", kMaxMetadataBytes));
      if (!zarray)
        return InvalidArgumentError(impl->Location(impl->prefix + ".zarray") + " does not exist, but " +
                                    impl->Location(".zattrs") + " lists \"" + impl->array_path +
                                    "\" as multiscales[0].datasets[" + std::to_string(options.source_level) +
                                    "].path; the group is incomplete");
    }
    const std::string zarray_where = impl->Location(impl->prefix + ".zarray");
    OZ_ASSIGN_OR_RETURN(impl->meta, ParseZarray(zarray->data, zarray_where));
    impl->zarray_bytes = std::move(zarray->data);
    impl->zarray_validator = std::move(zarray->validator);
    if (options.chunk_store) {
      const std::string fingerprint = impl->FingerprintText();
      impl->store = options.chunk_store(impl->store, fingerprint);
      if (!impl->store) return InternalError("zarr source " + root + ": no chunk store");
    }

    const ZarrArrayMetadata& m = impl->meta;
    impl->item = DTypeSize(m.dtype);
    const size_t rank = m.shape.size();
    for (int d = 0; d < 3; ++d) {
      const int64_t a = static_cast<int64_t>(rank) - 3 + d;
      if (a < 0) continue;  // 2-D array: z has extent 1, index 0
      int64_t s = 1;
      if (m.fortran_order) {
        for (int64_t b = 0; b < a; ++b) s *= m.chunks[static_cast<size_t>(b)];
      } else {
        for (size_t b = static_cast<size_t>(a) + 1; b < rank; ++b) s *= m.chunks[b];
      }
      impl->strides[d] = s;
    }
    impl->block_bytes = static_cast<uint64_t>(m.chunks3[0] * m.chunks3[1] * m.chunks3[2]) * impl->item;
    impl->max_fetch = m.chunk_bytes() + m.chunk_bytes() / 16 + (64u << 10);
    if (m.chunk_bytes() > options.memory_bytes)
      LogWarning("zarr source " + zarray_where + ": one decoded chunk (" + MiB(m.chunk_bytes()) +
                 ") is larger than the decoded-chunk cache (" + MiB(options.memory_bytes) +
                 ", 3/8 of memory=), so chunks are decoded again for every read; raise memory=");
    impl->cache = std::make_unique<ChunkCache>(options.memory_bytes);
    return std::unique_ptr<ZarrVolume>(new ZarrVolume(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory opening zarr source " + root_name);
  }
}

Vec3 ZarrVolume::shape() const { return impl_->meta.shape3; }
DType ZarrVolume::dtype() const { return impl_->meta.dtype; }
const ZarrArrayMetadata& ZarrVolume::metadata() const { return impl_->meta; }
const std::string& ZarrVolume::array_path() const { return impl_->array_path; }

Status ZarrVolume::ReadBox(const Box& box, void* out) {
  if (box.empty() || !BoxFromShape(shape()).Contains(box) || out == nullptr)
    return InvalidArgumentError("ReadBox " + box.ToString() + " is empty or outside the zarr array shape " +
                                ToString(shape()));
  const Impl& impl = *impl_;
  const Vec3& c = impl.meta.chunks3;
  Vec3 c0, n;
  for (int a = 0; a < 3; ++a) {
    c0[a] = box.lo[a] / c[a];
    n[a] = (box.hi[a] - 1) / c[a] + 1 - c0[a];
  }
  const size_t count = static_cast<size_t>(n[0] * n[1] * n[2]);
  auto chunk_of = [&](size_t i) {
    const int64_t k = static_cast<int64_t>(i);
    return Vec3{c0[0] + k / (n[1] * n[2]), c0[1] + (k / n[2]) % n[1], c0[2] + k % n[2]};
  };
  return ParallelForStatus(
      impl.options.fetch_pool ? impl.options.fetch_pool : impl.options.pool, count,
      [&](size_t i) -> Status {
        const Vec3 ci = chunk_of(i);
        Result<DecodedPtr> d = impl.cache->Get(ci, impl.options.stats, [&]() { return impl.Load(ci); });
        if (!d.ok()) {
          return d.status();
        }
        impl.Copy(ci, **d, box, static_cast<uint8_t*>(out));
        return OkStatus();
      },
      [&](size_t i) { return "reading source chunk " + ToString(chunk_of(i)); });
}

Status ZarrVolume::ReadBoxStrided(const Box& box, int64_t step, void* out) {
  if (step == 1) return ReadBox(box, out);
  if (step < 1 || box.empty() || !BoxFromShape(shape()).Contains(box) || out == nullptr)
    return InvalidArgumentError("ReadBoxStrided " + box.ToString() + " step " + std::to_string(step) +
                                " is empty or outside the zarr array shape " + ToString(shape()));
  const Impl& impl = *impl_;
  const Vec3& c = impl.meta.chunks3;
  const Vec3 os = StridedShape(box, step);
  // Per axis, the source chunks holding kept voxels, each with its kept indices [k0, k1).
  struct Run {
    int64_t chunk, k0, k1;
  };
  std::array<std::vector<Run>, 3> runs;
  for (int a = 0; a < 3; ++a)
    for (int64_t k = 0; k < os[a]; ++k) {
      const int64_t ci = (box.lo[a] + k * step) / c[a];
      if (runs[a].empty() || runs[a].back().chunk != ci)
        runs[a].push_back({ci, k, k + 1});
      else
        runs[a].back().k1 = k + 1;
    }
  const size_t ny = runs[1].size(), nx = runs[2].size();
  const size_t count = runs[0].size() * ny * nx;
  const size_t item = impl.item;
  return ParallelForStatus(
      impl.options.fetch_pool ? impl.options.fetch_pool : impl.options.pool, count,
      [&](size_t i) -> Status {
        const Run& rz = runs[0][i / (ny * nx)];
        const Run& ry = runs[1][(i / nx) % ny];
        const Run& rx = runs[2][i % nx];
        const Vec3 ci{rz.chunk, ry.chunk, rx.chunk};
        Result<DecodedPtr> d = impl.cache->Get(ci, impl.options.stats, [&]() { return impl.Load(ci); });
        if (!d.ok()) {
          return d.status();
        }
        const uint8_t* data = (*d)->data.get();
        for (int64_t kz = rz.k0; kz < rz.k1; ++kz)
          for (int64_t ky = ry.k0; ky < ry.k1; ++ky) {
            const int64_t z = box.lo[0] + kz * step - ci[0] * c[0], y = box.lo[1] + ky * step - ci[1] * c[1];
            uint8_t* dst = static_cast<uint8_t*>(out) + static_cast<size_t>((kz * os[1] + ky) * os[2]) * item;
            for (int64_t kx = rx.k0; kx < rx.k1; ++kx) {
              if (data) {
                const int64_t x = box.lo[2] + kx * step - ci[2] * c[2];
                std::memcpy(dst + static_cast<size_t>(kx) * item,
                            data + static_cast<size_t>((z * c[1] + y) * c[2] + x) * item, item);
              } else {
                std::memcpy(dst + static_cast<size_t>(kx) * item, impl.meta.fill_bytes.data(), item);
              }
            }
          }
        return OkStatus();
      },
      [&](size_t i) {
        return "reading source chunk " +
               ToString(Vec3{runs[0][i / (ny * nx)].chunk, runs[1][(i / nx) % ny].chunk, runs[2][i % nx].chunk});
      });
}

std::string ZarrVolume::Fingerprint() const { return impl_->FingerprintText(); }

std::string ZarrVolume::Describe() const {
  std::string where = impl_->store->Describe();
  if (!impl_->array_path.empty()) where += "/" + impl_->array_path;
  std::string d = "zarr v2 array " + where + " (" + impl_->meta.Summary();
  if (impl_->group) d += ", level " + std::to_string(impl_->options.source_level) + " of an OME-Zarr group";
  return d + ")";
}

std::vector<std::string> ApplyZarrDefaults(const ZarrArrayMetadata& m, DType served, Options* o) {
  std::vector<std::string> notes;
  if (!o->given.chunk) {
    const Vec3& c = m.chunks3;
    const std::string src = std::to_string(c[0]) + "x" + std::to_string(c[1]) + "x" + std::to_string(c[2]);
    if (c[0] == c[1] && c[1] == c[2]) {
      o->chunk = std::clamp<int64_t>(c[0], 16, 512);
      notes.push_back("chunk=" + std::to_string(o->chunk) + " (source chunks " + src +
                      (o->chunk != c[0] ? ", clamped to 16..512" : "") + "; -o chunk=N to change)");
    } else {
      o->chunk = 128;
      notes.push_back("chunk=128: the source chunks " + src +
                      " are not cubic and served chunks are (-o chunk=N to change)");
    }
  }
  if (!o->given.compression) {
    const ZarrCompressor& zc = m.compressor;
    switch (zc.id) {
      case ZarrCompressorId::kNone: o->compression = Compression::kNone; break;
      case ZarrCompressorId::kBlosc:
        o->compression = Compression::kBlosc;
        if (!o->given.blosc_cname) o->blosc_cname = zc.cname;
        if (!o->given.blosc_clevel) o->blosc_clevel = zc.clevel;
        if (!o->given.blosc_shuffle) o->blosc_shuffle = zc.shuffle >= 0 ? zc.shuffle : (DTypeSize(served) == 1 ? 2 : 1);
        break;
      case ZarrCompressorId::kZlib:
      case ZarrCompressorId::kGzip:
        o->compression = zc.id == ZarrCompressorId::kZlib ? Compression::kZlib : Compression::kGzip;
        if (!o->given.zlib_level) o->zlib_level = zc.level >= 0 ? zc.level : 6;
        break;
    }
    std::string text = "compression=" + std::string(CompressionName(o->compression));
    if (o->compression == Compression::kBlosc)
      text += " (" + o->blosc_cname + ", clevel " + std::to_string(o->blosc_clevel) + ", shuffle " +
              std::to_string(o->blosc_shuffle) + ")";
    if (o->compression == Compression::kZlib || o->compression == Compression::kGzip)
      text += " (level " + std::to_string(o->zlib_level) + ")";
    notes.push_back(text + " as the source's compressor (-o compression=... to change)");
  }
  return notes;
}

}  // namespace oz
