// Fuzzes the zarr source's untrusted inputs as a hostile store would supply them: the .zarray and
// .zattrs parsers, then, for metadata that parses, chunk decoding with that compressor into
// exactly one chunk's bytes (capped at 1 MiB here), which must reject or fill exactly them.
// Input: byte 0 selects what to fuzz; the rest is split at the first NUL byte into the metadata
// document and an encoded chunk.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/codec/zarr_codec.h"
#include "core/source/zarr_metadata.h"
#include "core/store/kv_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = all.find('\0');
  const std::string_view doc = all.substr(0, nul);
  const std::string_view chunk = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  switch (data[0] % 3) {
    case 0: {
      auto paths = oz::ParseMultiscalesPaths(doc, "fuzz/.zattrs");
      if (paths.ok())
        for (const std::string& p : *paths)
          if (!oz::ValidateKey(p).ok()) __builtin_trap();  // the parser promises safe keys
      break;
    }
    case 1: (void)oz::ValidateKey(doc); break;
    default: {
      auto meta = oz::ParseZarray(doc, "fuzz/.zarray");
      if (!meta.ok()) break;
      const uint64_t nbytes = meta->chunk_bytes();
      if (nbytes == 0 || nbytes > (1u << 20)) break;
      std::unique_ptr<uint8_t[]> out(new uint8_t[nbytes]);  // exactly: ASan flags overruns
      (void)oz::DecodeZarrChunk(meta->compressor, chunk, out.get(), nbytes);
      break;
    }
  }
  return 0;
}
