// oz_bench_codec: encodes one chunk's voxels (a raw file, x fastest, edge^3) with the encoders
// precomputed and the zarr formats use, and prints one JSON line per encoder: bytes and the
// median encode time over --reps runs (one thread).
//
//   oz_bench_codec RAW_FILE --edge N --dtype uint8|uint16 [--reps 15] [--jpeg-quality 95,90]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/jpeg.h"

namespace {

template <typename F>
double MedianMs(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: oz_bench_codec RAW_FILE --edge N --dtype uint8|uint16 [--reps R] [--jpeg-quality Q,..]\n");
    return 2;
  }
  std::string path = argv[1], dtype = "uint8", qualities = "95";
  int edge = 0, reps = 15;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--edge")
      edge = std::atoi(v.c_str());
    else if (k == "--dtype")
      dtype = v;
    else if (k == "--reps")
      reps = std::atoi(v.c_str());
    else if (k == "--jpeg-quality")
      qualities = v;
  }
  std::ifstream in(path, std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), {});
  const oz::DType dt = dtype == "uint16" ? oz::DType::kUint16 : oz::DType::kUint8;
  if (edge <= 0 || raw.size() != static_cast<size_t>(edge) * edge * edge * oz::DTypeSize(dt)) {
    std::fprintf(stderr, "%s: %zu bytes is not an edge^3 %s chunk\n", path.c_str(), raw.size(), dtype.c_str());
    return 2;
  }
  auto report = [&](const std::string& name, size_t bytes, double ms) {
    std::printf("{\"encoder\": \"%s\", \"bytes\": %zu, \"raw_bytes\": %zu, \"ratio\": %.3f, \"encode_ms\": %.3f}\n",
                name.c_str(), bytes, raw.size(), static_cast<double>(raw.size()) / static_cast<double>(bytes), ms);
  };
  struct Z {
    const char* name;
    oz::Compression c;
    int shuffle;
  };
  for (const Z& z : {Z{"blosc-lz4", oz::Compression::kBlosc, dt == oz::DType::kUint8 ? 2 : 1},
                     Z{"zstd-3", oz::Compression::kZstd, 0}, Z{"gzip-1", oz::Compression::kGzip, 0}}) {
    oz::Options o;
    o.compression = z.c;
    o.blosc_shuffle = z.shuffle;
    auto codec = oz::ChunkCodec::Make(o, dt);
    if (!codec.ok()) return 1;
    size_t bytes = 0;
    const double ms = MedianMs(reps, [&] { bytes = codec->Encode(raw.data(), raw.size())->size(); });
    report(z.name, bytes, ms);
  }
  if (dt == oz::DType::kUint8) {
    size_t pos = 0;
    while (pos <= qualities.size()) {
      size_t comma = qualities.find(',', pos);
      if (comma == std::string::npos) comma = qualities.size();
      const int q = std::atoi(qualities.substr(pos, comma - pos).c_str());
      pos = comma + 1;
      size_t bytes = 0;
      const double ms = MedianMs(reps, [&] {
        bytes = oz::JpegEncodeGray(reinterpret_cast<const uint8_t*>(raw.data()), static_cast<uint32_t>(edge),
                                   static_cast<uint32_t>(edge * edge), q)
                    ->size();
      });
      report("jpeg-q" + std::to_string(q), bytes, ms);
    }
  }
  return 0;
}
