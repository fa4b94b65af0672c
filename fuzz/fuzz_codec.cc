// Fuzzes chunk decoding (blosc, zstd, gzip and raw) with untrusted bytes, as a zarr source or a damaged file
// would supply them: Decode must reject or decode into exactly nbytes, never write past them.
// Input: byte 0 = dtype and codec choice, bytes 1-2 = chunk edge, the rest = the encoded chunk.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "core/codec/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t sel = data[0];
  const int64_t edge = 1 + ((data[1] | (data[2] << 8)) % 64);
  oz::Options o;
  // Bit 6 picks the second codec of the pair: none/zstd, blosc/gzip.
  o.compression = (sel & 1) ? ((sel & 0x40) ? oz::Compression::kGzip : oz::Compression::kBlosc)
                            : ((sel & 0x40) ? oz::Compression::kZstd : oz::Compression::kNone);
  static const char* kNames[] = {"blosclz", "lz4", "lz4hc", "zlib", "zstd"};
  o.blosc_cname = kNames[(sel >> 1) % 5];
  o.blosc_shuffle = (sel >> 4) % 3;
  const oz::DType dt = (sel & 0x80) ? oz::DType::kUint16 : oz::DType::kUint8;
  auto codec = oz::ChunkCodec::Make(o, dt);
  if (!codec.ok()) return 0;
  const size_t nbytes = static_cast<size_t>(edge * edge * edge) * oz::DTypeSize(dt);
  // Exactly nbytes: ASan flags any write past them.
  std::unique_ptr<uint8_t[]> out(new uint8_t[nbytes]);
  const std::string_view encoded(reinterpret_cast<const char*>(data + 3), size - 3);
  oz::Status s = codec->Decode(encoded, out.get(), nbytes);
  if (s.ok()) {
    // Whatever decodes must re-encode and decode to the same voxels.
    auto again = codec->Encode(out.get(), nbytes);
    if (!again.ok()) __builtin_trap();
    std::unique_ptr<uint8_t[]> back(new uint8_t[nbytes]);
    if (!codec->Decode(*again, back.get(), nbytes).ok() || std::memcmp(back.get(), out.get(), nbytes) != 0)
      __builtin_trap();
  }
  return 0;
}
