// Fuzzes the TIFF slice reader end to end: header scan (TiffStack::Open) and pixel reads through
// libtiff's codecs (LZW, deflate, PackBits, zstd, predictors, tiles, BigTIFF) under a small
// memory budget. The input becomes 0.tif in a private directory, beside a good 1.tif, so that a
// slice that opens must also match the good one; 0.tif is also opened alone as a multi-page
// source (IFD chain walk, ImageJ/OME-XML/tifffile descriptions, pages read by IFD offset).
// No crash, no leak, no UB, bounded memory.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/base/log.h"
#include "core/source/tiff_stack.h"

namespace {

// A valid 16x8 uint16 uncompressed little-endian TIFF (one strip), pixels = x + y.
std::string GoodTiff(uint32_t width, uint32_t height) {
  std::string t = "II*";
  t.push_back(0);
  auto u16 = [&](uint16_t v) { t.append(reinterpret_cast<const char*>(&v), 2); };
  auto u32 = [&](uint32_t v) { t.append(reinterpret_cast<const char*>(&v), 4); };
  const uint32_t pixels = width * height * 2;
  u32(8 + pixels);
  for (uint32_t y = 0; y < height; ++y)
    for (uint32_t x = 0; x < width; ++x) u16(static_cast<uint16_t>(x + y));
  const uint16_t n = 9;
  u16(n);
  auto entry = [&](uint16_t tag, uint16_t type, uint32_t value) {
    u16(tag);
    u16(type);
    u32(1);
    u32(value);
  };
  entry(256, 4, width);
  entry(257, 4, height);
  entry(258, 3, 16);
  entry(259, 3, 1);
  entry(262, 3, 1);
  entry(273, 4, 8);
  entry(277, 3, 1);
  entry(278, 4, height);
  entry(279, 4, pixels);
  u32(0);
  return t;
}

// Never freed (still reachable), so the exit handler that removes the directory can use it.
const std::string& Dir() {
  static const std::string* dir = [] {
    oz::SetLogLevel(oz::LogLevel::kError);  // bad slices are the normal case here
    char tmpl[] = "/tmp/oz_fuzz_tiff_XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    auto* d = new std::string(tmpl);
    FILE* f = std::fopen((*d + "/1.tif").c_str(), "wb");
    const std::string good = GoodTiff(16, 8);
    std::fwrite(good.data(), 1, good.size(), f);
    std::fclose(f);
    std::atexit([] {
      ::unlink((Dir() + "/0.tif").c_str());
      ::unlink((Dir() + "/1.tif").c_str());
      ::rmdir(Dir().c_str());
    });
    return d;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = Dir() + "/0.tif";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  for (int run = 0; run < 4; ++run) {
    oz::TiffStackOptions o;
    o.memory_bytes = 4 << 20;  // decoded strips larger than this are refused
    o.bad_slices = run % 2 ? oz::BadSlicePolicy::kZero : oz::BadSlicePolicy::kError;
    if (run >= 2) o.channel = o.time = run - 2;  // a hyperstack needs a choice
    auto stack = oz::TiffStack::Open(run < 2 ? Dir() : path, o);
    if (!stack.ok()) continue;
    const oz::Vec3 s = (*stack)->shape();
    // Read the whole stack when small, else a corner and a band through the middle.
    std::vector<oz::Box> boxes;
    if (s[0] * s[1] * s[2] <= (1 << 20)) {
      boxes.push_back(oz::BoxFromShape(s));
    } else {
      boxes.push_back(oz::Box{{0, 0, 0}, {s[0], std::min<int64_t>(s[1], 64), std::min<int64_t>(s[2], 64)}});
      boxes.push_back(oz::Box{{0, s[1] / 2, 0}, {s[0], s[1] / 2 + 1, std::min<int64_t>(s[2], 4096)}});
    }
    for (const oz::Box& b : boxes) {
      std::vector<uint8_t> out(static_cast<size_t>(b.volume()) * oz::DTypeSize((*stack)->dtype()));
      (void)(*stack)->ReadBox(b, out.data());
    }
  }
  return 0;
}
