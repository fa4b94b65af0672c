// Fuzzes what a hostile server puts in a zarr v3 shard: the bytes of shard c/0/0/0 of a 16^3
// array (shard 16^3, inner chunks 8^3), read by Zarr3Volume exactly as a mount reads it (range
// reads of the index and of the coalesced inner chunks, index checks, inner chunk decoding,
// fill for absent and zero-chunk entries). Byte 0 picks one of the layouts below (index at the
// start or end, with or without crc32c, compressed or nested inner chunks, uint8 or uint16); the
// rest is the shard. Every read must give the voxels or an error, never a crash or an overrun.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/source/zarr3_source.h"
#include "core/store/kv_store.h"

namespace {

class OneShardStore final : public oz::KvStore {
 public:
  OneShardStore(std::string meta, std::string shard) : meta_(std::move(meta)), shard_(std::move(shard)) {}
  oz::Result<std::optional<oz::KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    const std::string* v = key == "zarr.json" ? &meta_ : key == "c/0/0/0" ? &shard_ : nullptr;
    if (v == nullptr) return std::optional<oz::KvValue>();
    if (v->size() > max_bytes) return oz::CorruptError("too big");
    return std::optional<oz::KvValue>(oz::KvValue{*v, "v"});
  }
  std::string Describe() const override { return "fuzz://store"; }

 private:
  std::string meta_, shard_;
};

const char* kLayouts[] = {
    R"({"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[8,8,8],"codecs":[{"name":"bytes","configuration":{"endian":"little"}}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],"index_location":"end"}}],"data_type":"uint8"})",
    R"({"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[8,8,8],"codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1}},{"name":"crc32c"}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}}],"index_location":"start"}}],"data_type":"uint16"})",
    R"({"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[8,8,8],"codecs":[{"name":"transpose","configuration":{"order":[2,1,0]}},{"name":"bytes","configuration":{"endian":"big"}},{"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":2,"blocksize":0}}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],"index_location":"end"}}],"data_type":"uint16"})",
    R"({"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[8,8,8],"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[4,4,4],"codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"gzip","configuration":{"level":1}}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}}],"index_location":"start"}}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],"index_location":"end"}}],"data_type":"uint8"})",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string meta = kLayouts[data[0] % 4];
  meta.pop_back();  // the common members
  meta +=
      R"(,"zarr_format":3,"node_type":"array","shape":[16,16,16],"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[16,16,16]}},"chunk_key_encoding":{"name":"default"},"fill_value":7})";
  auto store = std::make_shared<OneShardStore>(meta, std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  oz::ZarrSourceOptions options;
  options.memory_bytes = 1 << 20;
  auto vol = oz::Zarr3Volume::Open(store, options);
  if (!vol.ok()) __builtin_trap();  // the layouts are valid metadata
  const oz::Vec3 shape = (*vol)->shape();
  const size_t item = oz::DTypeSize((*vol)->dtype());
  std::vector<uint8_t> out(static_cast<size_t>(shape[0] * shape[1] * shape[2]) * item);
  (void)(*vol)->ReadBox(oz::BoxFromShape(shape), out.data());
  // A part only (fewer inner chunks, so other runs), through the caches of the first read.
  std::vector<uint8_t> part(static_cast<size_t>(8 * 8 * 16) * item);
  (void)(*vol)->ReadBox(oz::Box{{0, 8, 0}, {8, 16, 16}}, part.data());
  return 0;
}
