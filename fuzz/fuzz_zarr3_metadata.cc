// Fuzzes the zarr v3 source's metadata as a hostile store would supply it: zarr.json as a node
// (group multiscales paths) and as an array (data type, chunk grid, key encoding, fill value and
// the codec chain, nested sharding included), then, for an array that parses, decodes an encoded
// chunk through its chain into exactly one chunk's bytes (capped at 1 MiB), which must reject or
// fill exactly them. Input: byte 0 selects what to fuzz; the rest is split at the first NUL byte
// into zarr.json and an encoded chunk.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/source/zarr3_metadata.h"
#include "core/store/kv_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = all.find('\0');
  const std::string_view doc = all.substr(0, nul);
  const std::string_view chunk = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  if (data[0] % 2 == 0) {
    auto node = oz::ParseZarr3Node(doc, "fuzz/zarr.json");
    if (node.ok())
      for (const std::string& p : node->dataset_paths)
        if (!oz::ValidateKey(p).ok()) __builtin_trap();  // the parser promises safe keys
    return 0;
  }
  auto meta = oz::ParseZarr3Array(doc, "fuzz/zarr.json");
  if (!meta.ok()) return 0;
  const size_t item = oz::DTypeSize(meta->dtype);
  // The read unit (what the volume decodes) and, when small, the whole stored chunk.
  const oz::Zarr3Chain& unit_chain = meta->codecs.sharding ? meta->codecs.sharding->codecs : meta->codecs;
  const uint64_t unit_bytes = meta->read_chunk_bytes();
  if (unit_bytes > 0 && unit_bytes <= (1u << 20)) {
    std::unique_ptr<uint8_t[]> out(new uint8_t[unit_bytes]);  // exactly: ASan flags overruns
    (void)oz::DecodeZarr3Chunk(unit_chain, chunk, meta->read_chunk, meta->dtype, meta->fill.data(), out.get());
  }
  uint64_t n = item;
  for (int64_t c : meta->chunks) {
    if (static_cast<uint64_t>(c) > (1u << 20) / n) return 0;
    n *= static_cast<uint64_t>(c);
  }
  std::unique_ptr<uint8_t[]> out(new uint8_t[n]);
  (void)oz::DecodeZarr3Chunk(meta->codecs, chunk, meta->chunks, meta->dtype, meta->fill.data(), out.get());
  return 0;
}
