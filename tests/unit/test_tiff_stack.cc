// TiffStack: discovery, every supported layout/codec against a known pattern, and error paths.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "core/base/log.h"
#include "core/source/tiff_stack.h"
#include "tests/unit/tiff_writer.h"

namespace oz {
namespace {

namespace fs = std::filesystem;
using testing::TiffSpec;
using testing::WriteTiff;

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "oz_tiff_XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

uint64_t Pattern(int64_t z, int64_t y, int64_t x) {
  return static_cast<uint64_t>(z * 1009 + y * 131 + x * 7 + (y * x) % 13);
}

void WriteSlice(const TempDir& dir, const std::string& name, int64_t z, const TiffSpec& spec) {
  WriteTiff(dir / name, spec, [z](int64_t y, int64_t x) { return Pattern(z, y, x); });
}

// Expected value of voxel (z, y, x), given which z are zero slices.
uint64_t Expected(int64_t z, int64_t y, int64_t x, int bits, const std::vector<int64_t>& zero_z) {
  if (std::find(zero_z.begin(), zero_z.end(), z) != zero_z.end()) return 0;
  uint64_t v = Pattern(z, y, x);
  return bits == 8 ? (v & 0xFF) : (v & 0xFFFF);
}

// Reads `box` and compares every voxel with the pattern; returns the number of mismatches.
int64_t CheckBox(TiffStack& stack, const Box& box, const std::vector<int64_t>& zero_z = {}) {
  const int bits = stack.dtype() == DType::kUint8 ? 8 : 16;
  std::vector<uint8_t> buf(static_cast<size_t>(box.volume()) * DTypeSize(stack.dtype()), 0xCD);
  Status st = stack.ReadBox(box, buf.data());
  INFO(st.ToString() << " box " << box.ToString());
  REQUIRE(st.ok());
  int64_t bad = 0;
  size_t i = 0;
  for (int64_t z = box.lo[0]; z < box.hi[0]; ++z)
    for (int64_t y = box.lo[1]; y < box.hi[1]; ++y)
      for (int64_t x = box.lo[2]; x < box.hi[2]; ++x, ++i) {
        uint64_t got;
        if (bits == 8)
          got = buf[i];
        else {
          uint16_t v;
          std::memcpy(&v, &buf[2 * i], 2);
          got = v;
        }
        if (got != Expected(z, y, x, bits, zero_z)) ++bad;
      }
  return bad;
}

Box RandomBox(std::mt19937_64& rng, const Vec3& shape) {
  Box b;
  for (int a = 0; a < 3; ++a) {
    std::uniform_int_distribution<int64_t> d(0, shape[a] - 1);
    int64_t p = d(rng), q = d(rng);
    // Every fourth box touches an edge of the volume.
    if (rng() % 4 == 0) p = (rng() % 2) ? 0 : shape[a] - 1;
    b.lo[a] = std::min(p, q);
    b.hi[a] = std::max(p, q) + 1;
  }
  return b;
}

void CheckRandomBoxes(TiffStack& stack, uint64_t seed, int n, const std::vector<int64_t>& zero_z = {}) {
  std::mt19937_64 rng(seed);
  Vec3 shape = stack.shape();
  CHECK(CheckBox(stack, BoxFromShape(shape), zero_z) == 0);
  for (int i = 0; i < n; ++i) {
    Box b = RandomBox(rng, shape);
    INFO("box " << b.ToString());
    CHECK(CheckBox(stack, b, zero_z) == 0);
  }
}

Result<std::unique_ptr<TiffStack>> OpenStack(const TempDir& dir, ThreadPool* pool = nullptr,
                                             uint64_t memory = 1ull << 30, BadSlicePolicy bad = BadSlicePolicy::kError,
                                             Stats* stats = nullptr) {
  TiffStackOptions o;
  o.pool = pool;
  o.memory_bytes = memory;
  o.bad_slices = bad;
  o.stats = stats;
  return TiffStack::Open(dir.path, o);
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------------------------

TEST_CASE("DiscoverSlices parses digit names and ignores others", "[tiff]") {
  auto r = DiscoverSlices({"00012.TIF", "3.tif", "7.tiff", "8.TiFf", ".tif", "a1.tif", "1.tif.bak", "-1.tif", "._5.tif",
                           "notes.txt", "1 .tif", "+2.tif", "0x3.tif", "."});
  REQUIRE(r.ok());
  std::vector<int64_t> zs;
  for (const auto& s : *r) zs.push_back(s.z);
  CHECK(zs == std::vector<int64_t>{3, 7, 8, 12});
  CHECK((*r)[3].name == "00012.TIF");
}

TEST_CASE("DiscoverSlices errors: duplicate z, none, huge numbers", "[tiff]") {
  auto dup = DiscoverSlices({"01.tif", "2.tif", "1.tif"});
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(dup.status().message(), "01.tif"));
  CHECK(Contains(dup.status().message(), "1.tif and") + Contains(dup.status().message(), "and 1.tif") >= 1);
  CHECK(Contains(dup.status().message(), "remove one"));

  auto dup2 = DiscoverSlices({"5.tif", "5.TIFF"});
  REQUIRE_FALSE(dup2.ok());
  CHECK(Contains(dup2.status().message(), "5.TIFF"));

  auto none = DiscoverSlices({"a.tif", "readme"});
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(none.status().message(), "no slice files (NNNN.tif)"));
  CHECK(Contains(DiscoverSlices({}).status().message(), "no slice files"));

  CHECK(DiscoverSlices({"1000000000.tif"}).ok());
  CHECK(DiscoverSlices({"0000000000001000000000.tif"}).ok());
  auto huge = DiscoverSlices({"1000000001.tif", "1.tif"});
  REQUIRE_FALSE(huge.ok());
  CHECK(Contains(huge.status().message(), "1000000001.tif"));
  auto huger = DiscoverSlices({"99999999999999999999999999.tif"});
  REQUIRE_FALSE(huger.ok());
  CHECK(Contains(huger.status().message(), "99999999999999999999999999.tif"));
}

// ---------------------------------------------------------------------------------------------

struct LayoutCase {
  const char* label;
  TiffSpec spec;
};

std::vector<LayoutCase> LayoutCases() {
  auto S = [](auto f) {
    TiffSpec s;
    f(s);
    return s;
  };
  std::vector<LayoutCase> c = {
      {"raw whole-image strip", S([](TiffSpec&) {})},
      {"raw rps=1", S([](TiffSpec& s) { s.rows_per_strip = 1; })},
      {"raw rps=7", S([](TiffSpec& s) { s.rows_per_strip = 7; })},
      {"raw tiles 16", S([](TiffSpec& s) { s.tile = 16; })},
      {"lzw rps=7", S([](TiffSpec& s) {
         s.compression = COMPRESSION_LZW;
         s.rows_per_strip = 7;
       })},
      {"lzw+predictor rps=1", S([](TiffSpec& s) {
         s.compression = COMPRESSION_LZW;
         s.predictor = 2;
         s.rows_per_strip = 1;
       })},
      {"deflate+predictor whole", S([](TiffSpec& s) {
         s.compression = COMPRESSION_ADOBE_DEFLATE;
         s.predictor = 2;
       })},
      {"deflate rps=7", S([](TiffSpec& s) {
         s.compression = COMPRESSION_ADOBE_DEFLATE;
         s.rows_per_strip = 7;
       })},
      {"packbits rps=7", S([](TiffSpec& s) {
         s.compression = COMPRESSION_PACKBITS;
         s.rows_per_strip = 7;
       })},
      {"lzw tiles 32", S([](TiffSpec& s) {
         s.compression = COMPRESSION_LZW;
         s.tile = 32;
       })},
      {"deflate+predictor tiles 16", S([](TiffSpec& s) {
         s.compression = COMPRESSION_ADOBE_DEFLATE;
         s.predictor = 2;
         s.tile = 16;
       })},
      {"bigtiff raw rps=7", S([](TiffSpec& s) {
         s.bigtiff = true;
         s.rows_per_strip = 7;
       })},
      {"bigtiff lzw tiles", S([](TiffSpec& s) {
         s.bigtiff = true;
         s.compression = COMPRESSION_LZW;
         s.tile = 16;
       })},
      {"big-endian raw whole", S([](TiffSpec& s) { s.big_endian = true; })},
      {"big-endian raw rps=7", S([](TiffSpec& s) {
         s.big_endian = true;
         s.rows_per_strip = 7;
       })},
      {"big-endian raw tiles", S([](TiffSpec& s) {
         s.big_endian = true;
         s.tile = 16;
       })},
      {"big-endian lzw+predictor", S([](TiffSpec& s) {
         s.big_endian = true;
         s.compression = COMPRESSION_LZW;
         s.predictor = 2;
         s.rows_per_strip = 7;
       })},
      {"big-endian bigtiff deflate", S([](TiffSpec& s) {
         s.big_endian = true;
         s.bigtiff = true;
         s.compression = COMPRESSION_ADOBE_DEFLATE;
         s.rows_per_strip = 7;
       })},
      {"uint8 raw whole", S([](TiffSpec& s) { s.bits = 8; })},
      {"uint8 raw rps=7 no SampleFormat tag", S([](TiffSpec& s) {
         s.bits = 8;
         s.rows_per_strip = 7;
         s.write_sample_format = false;
       })},
      {"uint8 lzw+predictor tiles", S([](TiffSpec& s) {
         s.bits = 8;
         s.compression = COMPRESSION_LZW;
         s.predictor = 2;
         s.tile = 16;
       })},
      {"odd size 1x1", S([](TiffSpec& s) {
         s.width = 1;
         s.height = 1;
       })},
      {"odd size 130x67 lzw", S([](TiffSpec& s) {
         s.width = 130;
         s.height = 67;
         s.compression = COMPRESSION_LZW;
         s.rows_per_strip = 7;
       })},
  };
  if (TIFFIsCODECConfigured(COMPRESSION_ZSTD)) {
    c.push_back({"zstd rps=7", S([](TiffSpec& s) {
                   s.compression = COMPRESSION_ZSTD;
                   s.rows_per_strip = 7;
                 })});
    c.push_back({"zstd+predictor tiles", S([](TiffSpec& s) {
                   s.compression = COMPRESSION_ZSTD;
                   s.predictor = 2;
                   s.tile = 16;
                 })});
  } else {
    WARN("libtiff lacks zstd; zstd layouts not tested");
  }
  return c;
}

TEST_CASE("ReadBox matches the pattern for every layout and codec", "[tiff]") {
  ThreadPool pool(2);
  uint64_t seed = 1;
  for (const LayoutCase& lc : LayoutCases()) {
    INFO("layout: " << lc.label);
    TempDir dir;
    for (int z = 0; z < 4; ++z) WriteSlice(dir, "000" + std::to_string(z) + ".tif", z, lc.spec);
    for (uint64_t memory : {uint64_t{1} << 30, uint64_t{64} << 10}) {
      INFO("memory " << memory);
      auto r = OpenStack(dir, memory == (1ull << 30) ? &pool : nullptr, memory);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      TiffStack& stack = **r;
      CHECK(stack.shape() == Vec3{4, lc.spec.height, lc.spec.width});
      CHECK(stack.dtype() == (lc.spec.bits == 8 ? DType::kUint8 : DType::kUint16));
      CHECK(stack.warnings().empty());
      CheckRandomBoxes(stack, seed++, 25);
    }
  }
}

// Reads `box` with `step` and compares every kept voxel with the pattern; returns the mismatches.
int64_t CheckStrided(TiffStack& stack, const Box& box, int64_t step, const std::vector<int64_t>& zero_z = {}) {
  const int bits = stack.dtype() == DType::kUint8 ? 8 : 16;
  const Vec3 os = StridedShape(box, step);
  std::vector<uint8_t> buf(static_cast<size_t>(os[0] * os[1] * os[2]) * DTypeSize(stack.dtype()), 0xCD);
  Status st = stack.ReadBoxStrided(box, step, buf.data());
  INFO(st.ToString() << " box " << box.ToString() << " step " << step);
  REQUIRE(st.ok());
  int64_t bad = 0;
  size_t i = 0;
  for (int64_t kz = 0; kz < os[0]; ++kz)
    for (int64_t ky = 0; ky < os[1]; ++ky)
      for (int64_t kx = 0; kx < os[2]; ++kx, ++i) {
        uint64_t got = buf[i];
        if (bits == 16) {
          uint16_t v;
          std::memcpy(&v, &buf[2 * i], 2);
          got = v;
        }
        const int64_t z = box.lo[0] + kz * step, y = box.lo[1] + ky * step, x = box.lo[2] + kx * step;
        if (got != Expected(z, y, x, bits, zero_z)) ++bad;
      }
  return bad;
}

TEST_CASE("ReadBoxStrided matches the pattern for every layout and codec, gaps included", "[tiff]") {
  struct Quiet {  // the gap warning, once per stack
    Quiet() {
      SetLogSink([](LogLevel, std::string_view) {});
    }
    ~Quiet() { SetLogSink(nullptr); }
  } quiet;
  ThreadPool pool(2);
  std::mt19937_64 rng(5);
  for (const LayoutCase& lc : LayoutCases()) {
    INFO("layout: " << lc.label);
    TempDir dir;
    for (int z = 0; z < 9; ++z)
      if (z != 5) WriteSlice(dir, "000" + std::to_string(z) + ".tif", z, lc.spec);
    for (uint64_t memory : {uint64_t{1} << 30, uint64_t{64} << 10}) {
      INFO("memory " << memory);
      auto r = OpenStack(dir, memory == (1ull << 30) ? &pool : nullptr, memory);
      REQUIRE(r.ok());
      TiffStack& stack = **r;
      for (int64_t step : {1, 2, 3, 4, 7, 16, 200})
        CHECK(CheckStrided(stack, BoxFromShape(stack.shape()), step, {5}) == 0);
      for (int i = 0; i < 20; ++i) {
        const Box b = RandomBox(rng, stack.shape());
        for (int64_t step : {2, 5}) CHECK(CheckStrided(stack, b, step, {5}) == 0);
      }
    }
  }
}

TEST_CASE("ReadBoxStrided reads the kept rows of uncompressed data, the strips with kept rows of compressed data",
          "[tiff]") {
  TiffSpec raw;
  raw.width = 256;
  raw.height = 256;
  raw.rows_per_strip = 32;
  TiffSpec deflate = raw;
  deflate.compression = COMPRESSION_ADOBE_DEFLATE;
  deflate.rows_per_strip = 4;
  for (const TiffSpec& spec : {raw, deflate}) {
    INFO("compression " << spec.compression);
    TempDir dir;
    for (int z = 0; z < 16; ++z) WriteSlice(dir, std::to_string(z) + ".tif", z, spec);
    Stats stats;
    auto r = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kError, &stats);
    REQUIRE(r.ok());
    const uint64_t before = stats.source_bytes_read;
    CHECK(CheckStrided(**r, Box{{0, 0, 0}, {16, 256, 256}}, 8) == 0);  // slices 0 and 8, rows 0, 8, ...
    const uint64_t read = stats.source_bytes_read - before;
    if (spec.compression == COMPRESSION_NONE) {
      CHECK(read == 2 * 32 * (31 * 8 + 1) * 2);  // 32 kept rows of 2 slices, columns 0..248
      CHECK(stats.strips_decoded == 0);          // not through the strip cache
    } else {
      CHECK(stats.strips_decoded == 2 * 32);  // every other 4-row strip of 2 slices
      CHECK(read < 16 * 256 * 256 * 2 / 16);
    }
  }
}

TEST_CASE("Scattered uncompressed strips (not back to back) read correctly", "[tiff]") {
  // Write strips in reverse order so their file offsets descend.
  TempDir dir;
  for (int z = 0; z < 2; ++z) {
    const int64_t w = 40, h = 50, rps = 9;
    TIFF* tif = TIFFOpen((dir / (std::to_string(z) + ".tif")).c_str(), "w");
    REQUIRE(tif);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(w));
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(h));
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(16));
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(1));
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, uint32_t(rps));
    for (int64_t s = CeilDiv(h, rps) - 1; s >= 0; --s) {
      int64_t rows = std::min(rps, h - s * rps);
      std::vector<uint16_t> buf(static_cast<size_t>(rows * w));
      for (int64_t y = 0; y < rows; ++y)
        for (int64_t x = 0; x < w; ++x) buf[static_cast<size_t>(y * w + x)] = uint16_t(Pattern(z, s * rps + y, x));
      REQUIRE(TIFFWriteEncodedStrip(tif, uint32_t(s), buf.data(), tmsize_t(buf.size() * 2)) >= 0);
    }
    TIFFClose(tif);
  }
  for (uint64_t memory : {uint64_t{1} << 30, uint64_t{16} << 10}) {
    auto r = OpenStack(dir, nullptr, memory);
    REQUIRE(r.ok());
    CheckRandomBoxes(**r, 99, 30);
  }
}

TEST_CASE("Uncompressed single-strip slices are read in parts, not whole", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.width = 512;
  spec.height = 512;  // 512 KiB per slice, one strip
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  Stats stats;
  auto r = OpenStack(dir, nullptr, 4u << 20, BadSlicePolicy::kError, &stats);  // 64 KiB virtual strips
  REQUIRE(r.ok());
  uint64_t before = stats.source_bytes_read;
  CHECK(CheckBox(**r, Box{{0, 10, 100}, {2, 20, 200}}) == 0);
  uint64_t read = stats.source_bytes_read - before;
  CHECK(read >= 2 * 10 * 512 * 2);
  CHECK(read <= 2 * 80 * 1024);  // two 64 KiB virtual strips plus a little
  CHECK(stats.strips_decoded == 2);
  uint64_t opened = stats.source_files_opened;
  CHECK(CheckBox(**r, Box{{0, 12, 0}, {2, 18, 512}}) == 0);  // same rows: all from cache
  CHECK(stats.source_files_opened == opened);
  CHECK(stats.strip_cache_hits == 2);
  CHECK(CheckBox(**r, Box{{0, 0, 0}, {2, 512, 512}}) == 0);
}

TEST_CASE("Gaps in z read as zeros with one compact warning", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.rows_per_strip = 7;
  for (int z : {0, 1, 2, 3, 5, 6, 9}) WriteSlice(dir, std::to_string(z) + ".tif", z, spec);
  ThreadPool pool(2);
  auto r = OpenStack(dir, &pool);
  REQUIRE(r.ok());
  TiffStack& stack = **r;
  CHECK(stack.shape()[0] == 10);
  REQUIRE(stack.warnings().size() == 1);
  CHECK(stack.warnings()[0] == "3 missing slices read as zeros: z=4, 7-8");
  CHECK(stack.slices().size() == 7);
  CheckRandomBoxes(stack, 5, 20, {4, 7, 8});
  CHECK(Contains(stack.Describe(), "(10 slices, 67x130 uint16, 3 missing)"));
}

TEST_CASE("Duplicate z in a directory names both files", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  WriteSlice(dir, "01.tif", 1, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(r.status().message(), "01.tif and 1.tif"));
  CHECK(Contains(r.status().message(), dir.path));
}

TEST_CASE("Mismatched slice: error names both files and shapes; bad_slices=zero reads zeros", "[tiff]") {
  TempDir dir;
  TiffSpec good;
  good.width = 100;
  good.height = 201;
  TiffSpec odd = good;
  odd.height = 200;
  WriteSlice(dir, "00000.tif", 0, good);
  WriteSlice(dir, "00001.tif", 1, good);
  WriteSlice(dir, "00017.tif", 17, odd);
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(r.status().message(),
                 "slice 00017.tif is 100x200 uint16 but 00000.tif is 100x201 uint16; fix or remove it, or mount "
                 "with -o bad_slices=zero"));

  auto z = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  TiffStack& stack = **z;
  CHECK(stack.shape() == Vec3{18, 201, 100});
  bool warned = false;
  for (const auto& w : stack.warnings()) warned |= Contains(w, "00017.tif");
  CHECK(warned);
  CHECK(CheckBox(stack, BoxFromShape(stack.shape()), {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}) == 0);
}

TEST_CASE("The shape most slices share wins: an odd first slice is the one named and zeroed", "[tiff]") {
  TempDir dir;
  TiffSpec good;
  TiffSpec odd = good;
  odd.width = 4000;  // e.g. a hostile or stray 0.tif
  WriteSlice(dir, "0.tif", 0, odd);
  for (int z = 1; z < 4; ++z) WriteSlice(dir, std::to_string(z) + ".tif", z, good);
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "slice 0.tif is 4000x130 uint16 but 1.tif is 67x130 uint16"));
  auto z = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  CHECK((*z)->shape() == Vec3{4, 130, 67});
  CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {0}) == 0);
}

TEST_CASE("A uint8 slice among uint16 slices is a mismatch", "[tiff]") {
  TempDir dir;
  TiffSpec a;
  TiffSpec b = a;
  b.bits = 8;
  WriteSlice(dir, "0.tif", 0, a);
  WriteSlice(dir, "1.tif", 1, b);
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "1.tif is 67x130 uint8 but 0.tif is 67x130 uint16"));
}

TEST_CASE("Not-a-TIFF named like a slice: error naming it, or zeros", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "2.tif", 2, spec);
  std::ofstream(dir / "1.tif") << "this is not a TIFF file at all";

  // libtiff must not print by itself: capture stderr around Open.
  std::string captured;
  {
    fflush(stderr);
    int saved = dup(2);
    std::string errpath = dir / "stderr.txt";
    int fd = ::open(errpath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    dup2(fd, 2);
    auto r = OpenStack(dir);
    fflush(stderr);
    dup2(saved, 2);
    ::close(saved);
    ::close(fd);
    std::ifstream in(errpath);
    captured.assign(std::istreambuf_iterator<char>(in), {});
    fs::remove(errpath);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), "1.tif"));
    CHECK(Contains(r.status().message(), "not a readable TIFF"));
    CHECK(Contains(r.status().message(), "bad_slices=zero"));
  }
  CHECK(captured.find("TIFF") == std::string::npos);

  auto z = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {1}) == 0);
  CHECK(Contains((*z)->Describe(), "1 bad read as zeros"));
}

TEST_CASE("Unsupported pixel types name the file and field", "[tiff]") {
  struct Case {
    const char* label;
    TiffSpec spec;
    const char* field;
    const char* hint;
  };
  TiffSpec f32;
  f32.bits = 32;
  f32.sample_format = SAMPLEFORMAT_IEEEFP;
  TiffSpec rgb;
  rgb.bits = 8;
  rgb.samples = 3;
  f32.bits = 64;  // float64
  TiffSpec i8;
  i8.bits = 8;
  i8.sample_format = SAMPLEFORMAT_INT;
  TiffSpec u24;
  u24.bits = 24;
  TiffSpec grey_alpha;
  grey_alpha.bits = 8;
  grey_alpha.samples = 2;
  grey_alpha.extra_samples = {EXTRASAMPLE_UNASSALPHA};
  TiffSpec white;
  white.photometric = PHOTOMETRIC_MINISWHITE;
  TiffSpec colour_palette;
  colour_palette.bits = 8;
  colour_palette.photometric = PHOTOMETRIC_PALETTE;
  colour_palette.colormap.resize(3 * 256);
  for (int i = 0; i < 256; ++i) {
    colour_palette.colormap[i] = static_cast<uint16_t>(i * 257);        // red ramp
    colour_palette.colormap[256 + i] = static_cast<uint16_t>(i * 128);  // green half
    colour_palette.colormap[512 + i] = 0;
  }
  TiffSpec cmyk;
  cmyk.bits = 8;
  cmyk.photometric = PHOTOMETRIC_SEPARATED;
  // Each refusal names the field and says how to convert (the `hint`).
  for (const Case& c : {Case{"float64", f32, "SampleFormat=3 (floating point, 64 bits)", "gdal_translate -ot Float32"},
                        Case{"rgb", rgb, "SamplesPerPixel=3 (RGB)", "-channel G -separate"},
                        Case{"int8", i8, "SampleFormat=2 (signed integer, 8 bits)", "astype('int16')"},
                        Case{"uint24", u24, "BitsPerSample=24", "-depth 16"},
                        Case{"grey+alpha", grey_alpha, "grey + ExtraSamples alpha", "-alpha off"},
                        Case{"minwhite", white, "MinIsWhite", "tiffset -s 262 1 IN"},
                        Case{"palette", colour_palette, "palette", "-colorspace Gray"},
                        Case{"separated", cmyk, "Photometric=5", "-colorspace Gray"}}) {
    INFO(c.label);
    TempDir dir;
    WriteSlice(dir, "0.tif", 0, c.spec);
    WriteSlice(dir, "1.tif", 1, c.spec);
    auto r = OpenStack(dir);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK(r.status().code() == ErrorCode::kUnsupported);
    CHECK(Contains(r.status().message(), "0.tif"));
    CHECK(Contains(r.status().message(), c.field));
    CHECK(Contains(r.status().message(), c.hint));
    // Nothing usable at all: bad_slices=zero cannot help.
    CHECK_FALSE(OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero).ok());
  }
}

TEST_CASE("Missing directory, a file as directory, an empty directory", "[tiff]") {
  TempDir dir;
  TiffStackOptions o;
  auto missing = TiffStack::Open(dir / "nope", o);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);
  CHECK(Contains(missing.status().message(), dir / "nope"));

  std::ofstream(dir / "file") << "x";
  auto file = TiffStack::Open(dir / "file", o);
  REQUIRE_FALSE(file.ok());
  CHECK(file.status().code() == ErrorCode::kInvalidArgument);

  std::ofstream(dir / "scan_0001.tif") << "x";
  auto empty = TiffStack::Open(dir.path, o);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(empty.status().message(), "no slice files (NNNN.tif) in " + dir.path));
  CHECK(Contains(empty.status().message(), "scan_0001.tif"));
}

TEST_CASE("A FIFO or directory named like a slice does not hang Open", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  REQUIRE(mkfifo((dir / "5.tif").c_str(), 0600) == 0);
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "5.tif is a FIFO"));

  REQUIRE(mkdir((dir / "3.tif").c_str(), 0700) == 0);
  ThreadPool pool(2);
  auto z = OpenStack(dir, &pool, 1ull << 30, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  CHECK((*z)->shape()[0] == 6);
  CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {2, 3, 4, 5}) == 0);
}

TEST_CASE("Symlinks to slices are followed", "[tiff]") {
  TempDir dir;
  TempDir other;
  TiffSpec spec;
  WriteSlice(other, "x.tif", 1, spec);
  WriteSlice(dir, "0.tif", 0, spec);
  fs::create_symlink(other / "x.tif", dir / "1.tif");
  auto r = OpenStack(dir);
  REQUIRE(r.ok());
  CHECK(CheckBox(**r, BoxFromShape((*r)->shape())) == 0);
}

// A minimal little-endian uncompressed TIFF with the IFD first and the pixels after it, so
// that cutting the file loses pixels but keeps a readable header.
void WriteHeaderFirstTiff(const std::string& path, int64_t z, int64_t w, int64_t h, size_t keep_bytes,
                          uint16_t compression = COMPRESSION_NONE) {
  std::vector<uint8_t> f;
  auto u16 = [&](uint16_t v) {
    f.push_back(uint8_t(v));
    f.push_back(uint8_t(v >> 8));
  };
  auto u32 = [&](uint32_t v) {
    u16(uint16_t(v));
    u16(uint16_t(v >> 16));
  };
  auto entry = [&](uint16_t tag, uint16_t type, uint32_t value) {
    u16(tag);
    u16(type);
    u32(1);
    if (type == 3) {
      u16(uint16_t(value));
      u16(0);
    } else
      u32(value);
  };
  const uint16_t n = 8;
  const uint32_t data_off = 8 + 2 + n * 12 + 4;
  u16(0x4949);  // "II": little-endian
  u16(42);
  u32(8);
  u16(n);
  entry(256, 4, uint32_t(w));
  entry(257, 4, uint32_t(h));
  entry(258, 3, 16);
  entry(259, 3, compression);
  entry(262, 3, 1);
  entry(273, 4, data_off);
  entry(278, 4, uint32_t(h));
  entry(279, 4, uint32_t(w * h * 2));
  u32(0);
  REQUIRE(f.size() == data_off);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) u16(uint16_t(Pattern(z, y, x)));
  f.resize(std::min(f.size(), keep_bytes));
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
}

TEST_CASE("Truncated slices: error at Open naming the offset, zeros, or IoError when cut after Open", "[tiff]") {
  TempDir dir;
  WriteHeaderFirstTiff(dir / "0.tif", 0, 67, 130, SIZE_MAX);
  WriteHeaderFirstTiff(dir / "1.tif", 1, 67, 130, 5000);
  {
    auto r = OpenStack(dir);
    REQUIRE(r.ok() == false);
    CHECK(r.status().code() == ErrorCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), "1.tif is truncated"));
    CHECK(Contains(r.status().message(), "5000 bytes"));
  }
  {
    auto z = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
    REQUIRE(z.ok());
    CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {1}) == 0);
  }
  // A libtiff-written file cut in half loses its directory (written last).
  TiffSpec spec;
  WriteSlice(dir, "2.tif", 2, spec);
  fs::resize_file(dir / "2.tif", fs::file_size(dir / "2.tif") / 2);
  {
    auto r = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
    REQUIRE(r.ok());
    CHECK((*r)->warnings().size() == 2);
  }
  // Cut after Open: the read fails cleanly instead of returning mixed or garbage data.
  WriteHeaderFirstTiff(dir / "1.tif", 1, 67, 130, SIZE_MAX);
  WriteSlice(dir, "2.tif", 2, spec);
  auto r = OpenStack(dir, nullptr, 64 << 10);
  REQUIRE(r.ok());
  fs::resize_file(dir / "1.tif", 3000);
  std::vector<uint8_t> buf(130 * 67 * 2);
  Status st = (*r)->ReadBox(Box{{1, 0, 0}, {2, 130, 67}}, buf.data());
  CHECK(st.code() == ErrorCode::kIoError);
  CHECK(Contains(st.message(), "1.tif changed since mount"));
  CHECK(CheckBox(**r, Box{{2, 0, 0}, {3, 130, 67}}) == 0);
}

TEST_CASE("A strip or tile that decodes to more than the strip budget is refused (deflate bombs)", "[tiff]") {
  TempDir dir;
  TiffSpec strip;  // 67x130 uint16 in one deflate strip: 17420 bytes decoded
  strip.compression = COMPRESSION_ADOBE_DEFLATE;
  TiffSpec tile = strip;
  tile.tile = 96;  // 96x96x2 = 18432 bytes per tile
  WriteSlice(dir, "0.tif", 0, strip);
  WriteSlice(dir, "1.tif", 1, tile);
  WriteSlice(dir, "2.tif", 2, TiffSpec{});  // uncompressed: read in row ranges, never refused
  auto r = OpenStack(dir, nullptr, 16 << 10);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kResourceExhausted);
  CHECK(Contains(r.status().message(), "slice 0.tif: one strip decodes to 0.0 MiB, more than the 0.0 MiB"));
  CHECK(Contains(r.status().message(), "(1 more bad slices)"));
  auto z = OpenStack(dir, nullptr, 16 << 10, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {0, 1}) == 0);
  auto big = OpenStack(dir, nullptr, 64 << 10);
  REQUIRE(big.ok());
  CHECK(CheckBox(**big, BoxFromShape((*big)->shape())) == 0);
}

TEST_CASE("A codec missing from libtiff is kUnsupported naming the codec", "[tiff]") {
  TempDir dir;
  WriteHeaderFirstTiff(dir / "0.tif", 0, 16, 16, SIZE_MAX, 34712);  // JPEG 2000: never in libtiff
  WriteHeaderFirstTiff(dir / "1.tif", 1, 16, 16, SIZE_MAX);
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().message());
  CHECK(r.status().code() == ErrorCode::kUnsupported);
  CHECK(Contains(r.status().message(), "slice 0.tif: Compression=34712"));
  auto z = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {0}) == 0);
}

TEST_CASE("Many bad slices: error counts them; zero mode lists a few and summarizes", "[tiff]") {
  TempDir dir;
  WriteSlice(dir, "0.tif", 0, TiffSpec{});
  for (int z = 1; z <= 12; ++z) std::ofstream(dir / (std::to_string(z) + ".tif")) << "junk";
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "slice 1.tif"));
  CHECK(Contains(r.status().message(), "(11 more bad slices)"));
  auto z = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  const auto& w = (*z)->warnings();
  REQUIRE(w.size() == 11);
  CHECK(w.back() == "12 bad slices read as zeros: z=1-12");
}

TEST_CASE("Uncompressed full-width rows are read straight into the box, partial widths through the cache", "[tiff]") {
  for (const bool big_endian : {false, true}) {
    INFO("big-endian " << big_endian);
    TempDir dir;
    TiffSpec spec;
    spec.width = 512;
    spec.height = 512;  // 1 KiB rows, strips of 16 rows back to back: 64-row virtual strips
    spec.rows_per_strip = 16;
    spec.big_endian = big_endian;
    WriteSlice(dir, "0.tif", 0, spec);
    WriteSlice(dir, "1.tif", 1, spec);
    Stats stats;
    auto r = OpenStack(dir, nullptr, 4u << 20, BadSlicePolicy::kError, &stats);
    REQUIRE(r.ok());
    // Rows 10..199, full width: one read of exactly those rows per slice (they touch virtual
    // units 0..3), none of them cached, although units 0 and 3 are covered only in part (a
    // materialize unit of 128 rows in 256-row units was such a read).
    const uint64_t read0 = stats.source_bytes_read;
    CHECK(CheckBox(**r, Box{{0, 10, 0}, {2, 200, 512}}) == 0);
    CHECK(stats.strips_decoded == 2 * 4);
    CHECK(stats.source_bytes_read - read0 == 2 * 190 * 1024);  // (the header was read at opening)
    CHECK(stats.strip_cache_hits == 0);
    // Part of the width: through the cache (unit 1, rows 64..127, loaded once).
    CHECK(CheckBox(**r, Box{{0, 70, 3}, {2, 80, 100}}) == 0);
    CHECK(stats.strips_decoded == 2 * 5);
    CHECK(CheckBox(**r, Box{{0, 100, 0}, {2, 110, 50}}) == 0);
    CHECK(stats.strip_cache_hits == 2);
    CHECK(stats.strips_decoded == 2 * 5);
    // Full width in unit 1, which the reads above cached: from the cache.
    CHECK(CheckBox(**r, Box{{0, 64, 0}, {2, 70, 512}}) == 0);
    CHECK(stats.strip_cache_hits == 4);
    CHECK(stats.strips_decoded == 2 * 5);
    // Rows 100..140, full width: unit 1's rows from the cache, unit 2's straight.
    CHECK(CheckBox(**r, Box{{0, 100, 0}, {2, 140, 512}}) == 0);
    CHECK(stats.strip_cache_hits == 6);
    CHECK(stats.strips_decoded == 2 * 6);
    // The whole slice: the last unit ends at the image's last row.
    CHECK(CheckBox(**r, Box{{0, 0, 0}, {2, 512, 512}}) == 0);
  }
}

TEST_CASE("Each slice file is opened once per ReadBox and not at all when cached", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.compression = COMPRESSION_LZW;
  spec.rows_per_strip = 3;
  for (int z = 0; z < 3; ++z) WriteSlice(dir, std::to_string(z) + ".tif", z, spec);
  Stats stats;
  ThreadPool pool(2);
  auto r = OpenStack(dir, &pool, 1ull << 30, BadSlicePolicy::kError, &stats);
  REQUIRE(r.ok());
  CHECK(stats.source_files_opened == 3);  // header scan
  CHECK(CheckBox(**r, Box{{0, 10, 5}, {3, 100, 60}}) == 0);
  CHECK(stats.source_files_opened == 6);
  CHECK(stats.strips_decoded == 3 * 31);  // rows 9..101 -> strips 3..33
  CHECK(CheckBox(**r, Box{{0, 20, 0}, {3, 40, 67}}) == 0);
  CHECK(stats.source_files_opened == 6);
  CHECK(stats.strips_decoded == 3 * 31);
}

TEST_CASE("A corrupt compressed strip is an IoError naming slice and strip", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.compression = COMPRESSION_ADOBE_DEFLATE;
  spec.rows_per_strip = 10;
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  uint64_t off, len;
  {
    TIFF* tif = TIFFOpen((dir / "1.tif").c_str(), "r");
    REQUIRE(tif);
    off = TIFFGetStrileOffset(tif, 3);
    len = TIFFGetStrileByteCount(tif, 3);
    TIFFClose(tif);
  }
  {
    std::fstream f(dir / "1.tif", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(off));
    std::string junk(len, '\xff');
    f.write(junk.data(), std::streamsize(len));
  }
  auto r = OpenStack(dir);
  REQUIRE(r.ok());
  std::vector<uint16_t> buf(130 * 67);
  Status st = (*r)->ReadBox(Box{{1, 25, 0}, {2, 35, 67}}, buf.data());
  CHECK(st.code() == ErrorCode::kIoError);
  INFO(st.message());
  CHECK(Contains(st.message(), "slice 1.tif"));
  CHECK(Contains(st.message(), "strip 3"));
  CHECK(Contains(st.message(), "8 (AdobeDeflate)"));
  // The failure is not cached: the same error again, and good strips still read.
  CHECK((*r)->ReadBox(Box{{1, 25, 0}, {2, 35, 67}}, buf.data()).code() == ErrorCode::kIoError);
  CHECK(CheckBox(**r, Box{{0, 0, 0}, {2, 20, 67}}) == 0);
}

TEST_CASE("Concurrent readers with a small cache all see the pattern", "[tiff]") {
  TempDir dir;
  TiffSpec a;
  a.compression = COMPRESSION_LZW;
  a.predictor = 2;
  a.rows_per_strip = 5;
  TiffSpec b;
  b.rows_per_strip = 3;
  for (int z = 0; z < 6; ++z) WriteSlice(dir, std::to_string(z) + ".tif", z, z % 2 ? a : b);
  ThreadPool pool(2);
  Stats stats;
  for (uint64_t memory : {uint64_t{64} << 10, uint64_t{1} << 30}) {
    auto r = OpenStack(dir, &pool, memory, BadSlicePolicy::kError, &stats);
    REQUIRE(r.ok());
    TiffStack& stack = **r;
    std::atomic<int64_t> mismatches{0}, failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(1000 + t);
        for (int i = 0; i < 40; ++i) {
          Box box = RandomBox(rng, stack.shape());
          std::vector<uint16_t> buf(static_cast<size_t>(box.volume()));
          if (!stack.ReadBox(box, buf.data()).ok()) {
            ++failures;
            continue;
          }
          size_t k = 0;
          for (int64_t z = box.lo[0]; z < box.hi[0]; ++z)
            for (int64_t y = box.lo[1]; y < box.hi[1]; ++y)
              for (int64_t x = box.lo[2]; x < box.hi[2]; ++x, ++k)
                if (buf[k] != uint16_t(Pattern(z, y, x))) ++mismatches;
        }
      });
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
    CHECK(mismatches == 0);
  }
  CHECK(stats.strip_cache_hits > 0);
  CHECK(stats.strips_decoded > 0);
}

TEST_CASE("Fingerprint and Describe", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  auto r = OpenStack(dir);
  REQUIRE(r.ok());
  CHECK((*r)->Describe() == "TIFF stack " + dir.path + " (2 slices, 67x130 uint16)");
  std::string fp = (*r)->Fingerprint();
  CHECK(Contains(fp, "67x130 uint16"));
  CHECK(Contains(fp, "1.tif:" + std::to_string(fs::file_size(dir / "1.tif"))));
  // Rewriting a slice (new mtime) changes the fingerprint.
  struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 678}};
  REQUIRE(utimensat(AT_FDCWD, (dir / "1.tif").c_str(), times, 0) == 0);
  auto r2 = OpenStack(dir);
  REQUIRE(r2.ok());
  CHECK((*r2)->Fingerprint() != fp);
  // The old stack notices the change instead of mixing data.
  std::vector<uint16_t> buf(67);
  Status st = (*r)->ReadBox(Box{{1, 0, 0}, {2, 1, 67}}, buf.data());
  CHECK(st.code() == ErrorCode::kIoError);
  CHECK(Contains(st.message(), "changed since mount"));
}

TEST_CASE("ReadBox rejects boxes outside the shape", "[tiff]") {
  TempDir dir;
  WriteSlice(dir, "0.tif", 0, TiffSpec{});
  auto r = OpenStack(dir);
  REQUIRE(r.ok());
  std::vector<uint16_t> buf(200 * 200);
  CHECK((*r)->ReadBox(Box{{0, 0, 0}, {1, 131, 67}}, buf.data()).code() == ErrorCode::kInvalidArgument);
  CHECK((*r)->ReadBox(Box{{0, 0, 0}, {0, 1, 1}}, buf.data()).code() == ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Multi-page files, page=, sparse strips and tiles, palettes.

Result<std::unique_ptr<TiffStack>> OpenSource(const std::string& source, int page = -1, int channel = -1, int time = -1,
                                              BadSlicePolicy bad = BadSlicePolicy::kError, Stats* stats = nullptr) {
  TiffStackOptions o;
  o.page = page;
  o.channel = channel;
  o.time = time;
  o.bad_slices = bad;
  o.stats = stats;
  return TiffStack::Open(source, o);
}

// `n` pages of Pattern(z) (z = the page's index among full-resolution pages); a reduced-resolution
// page after every third one.
void WritePages(const std::string& path, int n, TiffSpec spec, int64_t z_offset = 0) {
  std::vector<std::pair<TiffSpec, testing::PixelFn>> pages;
  for (int z = 0; z < n; ++z) {
    pages.emplace_back(spec, [z, z_offset](int64_t y, int64_t x) { return Pattern(z + z_offset, y, x); });
    if (z % 3 == 2) {
      TiffSpec thumb = spec;
      thumb.width = 8;
      thumb.height = 8;
      thumb.tile = 0;
      thumb.rows_per_strip = 0;
      thumb.subfile_type = FILETYPE_REDUCEDIMAGE;
      thumb.description.clear();
      pages.emplace_back(thumb, [](int64_t, int64_t) { return 7777; });
    }
  }
  testing::WriteTiffPages(path, pages);
}

TEST_CASE("One multi-page file: its full-resolution pages are the z slices", "[tiff]") {
  struct Case {
    const char* label;
    TiffSpec spec;
  };
  TiffSpec raw;
  TiffSpec deflate;
  deflate.compression = COMPRESSION_ADOBE_DEFLATE;
  deflate.rows_per_strip = 16;
  TiffSpec tiles;
  tiles.tile = 32;
  tiles.compression = COMPRESSION_LZW;
  tiles.bigtiff = true;
  TiffSpec be8;
  be8.bits = 8;
  be8.big_endian = true;
  be8.rows_per_strip = 7;
  for (const Case& c : {Case{"raw", raw}, Case{"deflate", deflate}, Case{"tiles", tiles}, Case{"be8", be8}}) {
    INFO(c.label);
    TempDir dir;
    WritePages(dir / "stack.tif", 10, c.spec);
    ThreadPool pool(2);
    TiffStackOptions o;
    o.pool = &pool;
    auto r = TiffStack::Open(dir / "stack.tif", o);
    INFO(r.status().message());
    REQUIRE(r.ok());
    CHECK((*r)->shape() == Vec3{10, c.spec.height, c.spec.width});
    CheckRandomBoxes(**r, 11, 20);
    CHECK(Contains((*r)->Describe(), "multi-page TIFF " + dir.path + "/stack.tif (10 pages as z"));
    // The directory holding only that file serves the same.
    auto d = TiffStack::Open(dir.path, o);
    REQUIRE(d.ok());
    CHECK((*d)->shape()[0] == 10);
    CHECK(CheckBox(**d, BoxFromShape((*d)->shape())) == 0);
  }
}

TEST_CASE("Reading a deep page reads one directory, not the pages before it", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.width = 16;
  spec.height = 16;
  spec.compression = COMPRESSION_ADOBE_DEFLATE;  // decoded by libtiff, so its directory is read
  WritePages(dir / "deep.tif", 300, spec);
  auto bytes_for = [&](int64_t z) {
    Stats stats;
    auto r = OpenSource(dir / "deep.tif", -1, -1, -1, BadSlicePolicy::kError, &stats);
    REQUIRE(r.ok());
    const uint64_t before = stats.source_bytes_read;
    CHECK(CheckBox(**r, Box{{z, 0, 0}, {z + 1, 1, 1}}) == 0);
    return stats.source_bytes_read - before;
  };
  const uint64_t first = bytes_for(0), last = bytes_for(299);
  INFO("bytes read for page 0: " << first << ", for page 299: " << last);
  // 300 directories are ~60 KB; one is a few hundred bytes.
  CHECK(last < first + 2048);
  CHECK(last < 8192);
}

TEST_CASE("Pages of another shape are named; bad_slices=zero zeroes them only", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  TiffSpec odd = spec;
  odd.width = 66;
  std::vector<std::pair<TiffSpec, testing::PixelFn>> pages;
  for (int z = 0; z < 5; ++z)
    pages.emplace_back(z == 2 ? odd : spec, [z](int64_t y, int64_t x) { return Pattern(z, y, x); });
  testing::WriteTiffPages(dir / "s.tif", pages);
  auto r = OpenSource(dir / "s.tif");
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "page 2 of s.tif is 66x130 uint16 but page 0 of s.tif is 67x130 uint16"));
  auto z = OpenSource(dir / "s.tif", -1, -1, -1, BadSlicePolicy::kZero);
  REQUIRE(z.ok());
  CHECK(CheckBox(**z, BoxFromShape((*z)->shape()), {2}) == 0);
}

TEST_CASE("ImageJ hyperstack in one file: channel= and t= choose the pages", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.width = 20;
  spec.height = 12;
  // 2 frames x 3 slices x 2 channels, page = c + 2 * (z + 3 * t); page p holds Pattern(p).
  std::vector<std::pair<TiffSpec, testing::PixelFn>> pages;
  for (int p = 0; p < 12; ++p) {
    TiffSpec s = spec;
    if (p == 0) s.description = "ImageJ=1.54f\nimages=12\nchannels=2\nslices=3\nframes=2\nhyperstack=true\n";
    pages.emplace_back(s, [p](int64_t y, int64_t x) { return Pattern(p, y, x); });
  }
  testing::WriteTiffPages(dir / "h.tif", pages);
  auto refused = OpenSource(dir / "h.tif");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(refused.status().message(), "channels=2, slices=3, frames=2"));
  CHECK(Contains(refused.status().message(), "-o channel=0..1"));
  CHECK(Contains(refused.status().message(), "-o t=0..1"));
  for (int c = 0; c < 2; ++c)
    for (int t = 0; t < 2; ++t) {
      auto r = OpenSource(dir / "h.tif", -1, c, t);
      REQUIRE(r.ok());
      REQUIRE((*r)->shape() == Vec3{3, 12, 20});
      std::vector<uint16_t> buf(3 * 12 * 20);
      REQUIRE((*r)->ReadBox(BoxFromShape((*r)->shape()), buf.data()).ok());
      int64_t bad = 0;
      for (int z = 0; z < 3; ++z)
        for (int y = 0; y < 12; ++y)
          for (int x = 0; x < 20; ++x)
            if (buf[(z * 12 + y) * 20 + x] != (Pattern(c + 2 * (z + 3 * t), y, x) & 0xFFFF)) ++bad;
      CHECK(bad == 0);
      CHECK(Contains((*r)->Fingerprint(), "c=" + std::to_string(c) + " t=" + std::to_string(t)));
    }
  CHECK(OpenSource(dir / "h.tif", -1, 0, 0).value()->Fingerprint() !=
        OpenSource(dir / "h.tif", -1, 1, 0).value()->Fingerprint());
  CHECK(Contains(OpenSource(dir / "h.tif", -1, 2, 0).status().message(), "-o channel=2 is out of range"));
  // page= is for directories of slice files.
  CHECK(Contains(OpenSource(dir / "h.tif", 1).status().message(), "page=1"));
}

TEST_CASE("Slice files with several pages: refused, or page= picks one of every file", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.compression = COMPRESSION_LZW;
  for (int z = 0; z < 3; ++z) {
    // page 0: Pattern(z + 50), then a thumbnail, page 1: Pattern(z).
    TiffSpec thumb = spec;
    thumb.width = thumb.height = 8;
    thumb.subfile_type = FILETYPE_REDUCEDIMAGE;
    testing::WriteTiffPages(dir / (std::to_string(z) + ".tif"),
                            {{spec, [z](int64_t y, int64_t x) { return Pattern(z + 50, y, x); }},
                             {thumb, [](int64_t, int64_t) { return 1; }},
                             {spec, [z](int64_t y, int64_t x) { return Pattern(z, y, x); }}});
  }
  auto refused = OpenStack(dir);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == ErrorCode::kUnsupported);
  CHECK(Contains(refused.status().message(), "slice 0.tif is a multi-page TIFF with 2 full-resolution pages"));
  CHECK(Contains(refused.status().message(), "-o page=N"));
  auto r = OpenSource(dir.path, 1);
  REQUIRE(r.ok());
  CHECK(CheckBox(**r, BoxFromShape((*r)->shape())) == 0);
  CHECK(Contains((*r)->Fingerprint(), "page=1"));
  CHECK(Contains((*r)->Describe(), "page 1 of each file"));
  auto p0 = OpenSource(dir.path, 0);
  REQUIRE(p0.ok());
  CHECK((*p0)->Fingerprint() != (*r)->Fingerprint());
  auto none = OpenSource(dir.path, 2);
  REQUIRE_FALSE(none.ok());
  CHECK(Contains(none.status().message(), "slice 0.tif has 2 full-resolution pages, so it has no page 2"));
  CHECK(Contains(OpenSource(dir.path, -1, 0).status().message(), "directory of slice files"));
}

// Pattern, or 0 where `zero(z, y, x)`.
int64_t CheckBoxWithHoles(TiffStack& stack, const std::function<bool(int64_t, int64_t, int64_t)>& zero,
                          std::optional<Box> part = std::nullopt) {
  const Box box = part ? *part : BoxFromShape(stack.shape());
  const int bits = stack.dtype() == DType::kUint8 ? 8 : 16;
  std::vector<uint8_t> buf(static_cast<size_t>(box.volume()) * DTypeSize(stack.dtype()), 0xCD);
  Status st = stack.ReadBox(box, buf.data());
  INFO(st.ToString());
  REQUIRE(st.ok());
  int64_t bad = 0;
  size_t i = 0;
  for (int64_t z = box.lo[0]; z < box.hi[0]; ++z)
    for (int64_t y = box.lo[1]; y < box.hi[1]; ++y)
      for (int64_t x = box.lo[2]; x < box.hi[2]; ++x, ++i) {
        uint64_t got = buf[i];
        if (bits == 16) {
          uint16_t v;
          std::memcpy(&v, &buf[2 * i], 2);
          got = v;
        }
        const uint64_t want = zero(z, y, x) ? 0 : Expected(z, y, x, bits, {});
        if (got != want) ++bad;
      }
  return bad;
}

// ReadBoxStrided(whole volume, step) equals every step-th voxel of ReadBox(whole volume).
bool StridedMatchesFull(TiffStack& stack, int64_t step) {
  const Box box = BoxFromShape(stack.shape());
  const size_t bps = DTypeSize(stack.dtype());
  std::vector<uint8_t> full(static_cast<size_t>(box.volume()) * bps);
  REQUIRE(stack.ReadBox(box, full.data()).ok());
  const Vec3 os = StridedShape(box, step);
  std::vector<uint8_t> strided(static_cast<size_t>(os[0] * os[1] * os[2]) * bps, 0xCD);
  Status st = stack.ReadBoxStrided(box, step, strided.data());
  INFO(st.ToString());
  REQUIRE(st.ok());
  const Vec3 shape = stack.shape();
  size_t i = 0;
  for (int64_t z = 0; z < os[0]; ++z)
    for (int64_t y = 0; y < os[1]; ++y)
      for (int64_t x = 0; x < os[2]; ++x, ++i) {
        const size_t f = static_cast<size_t>(((z * step) * shape[1] + y * step) * shape[2] + x * step);
        if (std::memcmp(&strided[i * bps], &full[f * bps], bps) != 0) return false;
      }
  return true;
}

TEST_CASE("Sparse strips and tiles (offset 0, byte count 0) read as zeros", "[tiff]") {
  struct Case {
    const char* label;
    TiffSpec spec;
    int64_t unit_rows;  // strips: rows per strip; tiles: tile edge
  };
  TiffSpec raw;
  raw.rows_per_strip = 10;
  TiffSpec deflate = raw;
  deflate.compression = COMPRESSION_ADOBE_DEFLATE;
  TiffSpec tiles;
  tiles.tile = 32;
  TiffSpec tiles_zstd = tiles;
  tiles_zstd.compression = COMPRESSION_ZSTD;
  for (Case c : {Case{"raw strips", raw, 10}, Case{"deflate strips", deflate, 10}, Case{"tiles", tiles, 32},
                 Case{"zstd tiles", tiles_zstd, 32}}) {
    INFO(c.label);
    TempDir dir;
    // Slice 1: units 0 and 3 sparse; slice 2: every unit sparse (a blank slice GDAL writes).
    for (int z = 0; z < 3; ++z) {
      TiffSpec s = c.spec;
      if (z == 1) s.skip_unit = [](uint32_t u) { return u == 0 || u == 3; };
      if (z == 2) s.skip_unit = [](uint32_t) { return true; };
      WriteSlice(dir, std::to_string(z) + ".tif", z, s);
    }
    const bool tiled = c.spec.tile > 0;
    const int64_t tiles_x = CeilDiv(c.spec.width, c.unit_rows);
    auto zero = [&](int64_t z, int64_t y, int64_t x) {
      if (z == 2) return true;
      if (z != 1) return false;
      const int64_t unit = tiled ? (y / c.unit_rows) * tiles_x + x / c.unit_rows : y / c.unit_rows;
      return unit == 0 || unit == 3;
    };
    for (BadSlicePolicy policy : {BadSlicePolicy::kError, BadSlicePolicy::kZero}) {
      auto r = OpenStack(dir, nullptr, 1ull << 30, policy);
      INFO(r.status().message());
      REQUIRE(r.ok());
      CHECK(CheckBoxWithHoles(**r, zero) == 0);
      CHECK(StridedMatchesFull(**r, 2));  // algorithm=nearest's reader, raw rows included
      CHECK_FALSE(Contains((*r)->Describe(), "bad"));
      CHECK((*r)->warnings().empty());
    }
    // The same slices as pages of one file.
    std::vector<std::pair<TiffSpec, testing::PixelFn>> pages;
    for (int z = 0; z < 3; ++z) {
      TiffSpec s = c.spec;
      if (z == 1) s.skip_unit = [](uint32_t u) { return u == 0 || u == 3; };
      if (z == 2) s.skip_unit = [](uint32_t) { return true; };
      pages.emplace_back(s, [z](int64_t y, int64_t x) { return Pattern(z, y, x); });
    }
    testing::WriteTiffPages(dir / "pages.tif", pages);
    auto m = OpenSource(dir / "pages.tif");
    REQUIRE(m.ok());
    CHECK(CheckBoxWithHoles(**m, zero) == 0);
    CHECK(StridedMatchesFull(**m, 3));
  }
}

TEST_CASE("Full-width rows of separate uncompressed strips are read one pread per strip, strips in part too",
          "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.width = 300;
  spec.height = 100;
  spec.rows_per_strip = 10;
  spec.skip_unit = [](uint32_t u) { return u == 4; };  // sparse strip 4: the strips are not back to back
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  auto zero = [](int64_t, int64_t y, int64_t) { return y / 10 == 4; };
  Stats stats;
  auto r = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kError, &stats);
  REQUIRE(r.ok());
  // Rows 7..63: strips 0 (in part) to 6 (in part), strip 4 sparse (zeros, no read).
  const uint64_t read0 = stats.source_bytes_read;
  CHECK(CheckBoxWithHoles(**r, zero, Box{{0, 7, 0}, {2, 63, 300}}) == 0);
  CHECK(stats.strips_decoded == 2 * 7);
  CHECK(stats.source_bytes_read - read0 >= 2 * (63 - 7 - 10) * 600);
  CHECK(stats.source_bytes_read - read0 <= 2 * (63 - 7 - 10) * 600 + 2 * 1024);  // and the strip offsets
  CHECK(stats.strip_cache_hits == 0);
  CHECK(CheckBoxWithHoles(**r, zero, Box{{0, 35, 0}, {2, 36, 300}}) == 0);  // one row
  CHECK(CheckBoxWithHoles(**r, zero, Box{{0, 41, 0}, {2, 99, 300}}) == 0);  // from inside the sparse strip
  CHECK(stats.strip_cache_hits == 0);
}

TEST_CASE("Compressed strips a full-width box covers whole are decoded straight into it, the rest through the cache",
          "[tiff]") {
  for (const uint16_t compression : {uint16_t{COMPRESSION_ADOBE_DEFLATE}, uint16_t{COMPRESSION_LZW}}) {
    INFO("compression " << compression);
    TempDir dir;
    TiffSpec spec;
    spec.width = 200;
    spec.height = 120;
    spec.rows_per_strip = 10;
    spec.compression = compression;
    spec.predictor = 2;
    WriteSlice(dir, "0.tif", 0, spec);
    spec.skip_unit = [](uint32_t u) { return u == 5; };  // slice 1: strip 5 (rows 50..59) sparse
    WriteSlice(dir, "1.tif", 1, spec);
    auto zero = [](int64_t z, int64_t y, int64_t) { return z == 1 && y / 10 == 5; };
    Stats stats;
    auto r = OpenStack(dir, nullptr, 1ull << 30, BadSlicePolicy::kError, &stats);
    REQUIRE(r.ok());
    // Rows 15..84: strips 2..7 whole (straight, not cached), 1 and 8 in part (cached).
    CHECK(CheckBoxWithHoles(**r, zero, Box{{0, 15, 0}, {2, 85, 200}}) == 0);
    CHECK(stats.strips_decoded == 2 * 8);
    CHECK(stats.strip_cache_hits == 0);
    // Part of the width in strips 1 (cached) and 2 (decoded straight before, so decoded now).
    CHECK(CheckBoxWithHoles(**r, zero, Box{{0, 12, 50}, {2, 25, 60}}) == 0);
    CHECK(stats.strip_cache_hits == 2);
    CHECK(stats.strips_decoded == 2 * 9);
    // Full width over strip 2, now cached: from the cache.
    CHECK(CheckBoxWithHoles(**r, zero, Box{{0, 20, 0}, {2, 30, 200}}) == 0);
    CHECK(stats.strip_cache_hits == 4);
    CHECK(stats.strips_decoded == 2 * 9);
    CHECK(CheckBoxWithHoles(**r, zero) == 0);  // the whole volume, the sparse strip included
  }
}

TEST_CASE("A sparse uncompressed row larger than the strip budget is refused, not allocated", "[tiff]") {
  // Found by fuzz_tiff_slice: a few hundred bytes of header claim rows of gigabytes; with data a
  // raw strip is bounded by the file's size, a sparse one is not.
  TempDir dir;
  TiffSpec spec;
  spec.width = int64_t{1} << 24;  // 32 MiB per uint16 row
  spec.height = 4;
  spec.rows_per_strip = 1;
  spec.skip_unit = [](uint32_t) { return true; };
  WriteSlice(dir, "0.tif", 0, spec);
  REQUIRE(fs::file_size(dir / "0.tif") < 4096);
  auto r = OpenStack(dir, nullptr, 16ull << 20);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kResourceExhausted);
  CHECK(Contains(r.status().message(), "one row decodes to 32.0 MiB"));
}

TEST_CASE("A strip with an offset but no bytes is still bad (only offset 0 with 0 bytes is sparse)", "[tiff]") {
  TempDir dir;
  TiffSpec spec;
  spec.rows_per_strip = 10;
  spec.compression = COMPRESSION_ADOBE_DEFLATE;
  WriteSlice(dir, "0.tif", 0, spec);
  WriteSlice(dir, "1.tif", 1, spec);
  {
    // Classic little-endian TIFF: zero the byte count of strip 2 in the StripByteCounts array.
    std::fstream f(dir / "1.tif", std::ios::in | std::ios::out | std::ios::binary);
    auto u16 = [&](std::streamoff at) {
      uint16_t v = 0;
      f.seekg(at);
      f.read(reinterpret_cast<char*>(&v), 2);
      return v;
    };
    auto u32 = [&](std::streamoff at) {
      uint32_t v = 0;
      f.seekg(at);
      f.read(reinterpret_cast<char*>(&v), 4);
      return v;
    };
    const uint32_t ifd = u32(4);
    bool patched = false;
    for (uint16_t e = 0, n = u16(ifd); e < n; ++e) {
      const std::streamoff entry = ifd + 2 + 12 * e;
      if (u16(entry) != TIFFTAG_STRIPBYTECOUNTS) continue;
      const uint16_t type = u16(entry + 2);
      REQUIRE(u32(entry + 4) > 2);
      const std::streamoff at = u32(entry + 8) + 2 * (type == TIFF_SHORT ? 2 : 4);
      const uint32_t zero = 0;
      f.seekp(at);
      f.write(reinterpret_cast<const char*>(&zero), type == TIFF_SHORT ? 2 : 4);
      patched = true;
    }
    REQUIRE(patched);
  }
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "slice 1.tif: strip 2 has no data"));
}

TiffSpec PaletteSpec(int bits, const std::function<uint16_t(uint32_t)>& entry) {
  TiffSpec spec;
  spec.bits = bits;
  spec.photometric = PHOTOMETRIC_PALETTE;
  const uint32_t n = 1u << bits;
  spec.colormap.resize(3 * n);
  for (uint32_t i = 0; i < n; ++i) spec.colormap[i] = spec.colormap[n + i] = spec.colormap[2 * n + i] = entry(i);
  return spec;
}

TEST_CASE("Palette images whose colour map is the grey ramp are served as their indices", "[tiff]") {
  struct Case {
    const char* label;
    TiffSpec spec;
  };
  for (const Case& c : {Case{"8-bit i*257", PaletteSpec(8, [](uint32_t i) { return static_cast<uint16_t>(i * 257); })},
                        Case{"8-bit i<<8", PaletteSpec(8, [](uint32_t i) { return static_cast<uint16_t>(i << 8); })},
                        Case{"8-bit i", PaletteSpec(8, [](uint32_t i) { return static_cast<uint16_t>(i); })},
                        Case{"16-bit i", PaletteSpec(16, [](uint32_t i) { return static_cast<uint16_t>(i); })}}) {
    INFO(c.label);
    TempDir dir;
    WriteSlice(dir, "0.tif", 0, c.spec);
    WriteSlice(dir, "1.tif", 1, c.spec);
    auto r = OpenStack(dir);
    INFO(r.status().message());
    REQUIRE(r.ok());
    CHECK(CheckBox(**r, BoxFromShape((*r)->shape())) == 0);
  }
  // Grey but not the identity (a contrast-stretched map): its indices are not its grey levels.
  TempDir dir;
  WriteSlice(dir, "0.tif", 0,
             PaletteSpec(8, [](uint32_t i) { return static_cast<uint16_t>(std::min(i * 2, 255u) * 257); }));
  auto r = OpenStack(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kUnsupported);
  CHECK(Contains(r.status().message(), "Photometric=3 (palette)"));
  CHECK(Contains(r.status().message(), "entry 1 is R,G,B = 514,514,514"));
  CHECK(Contains(r.status().message(), "convert IN -colorspace Gray OUT"));
}

}  // namespace
}  // namespace oz
