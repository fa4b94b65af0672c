// format=precomputed: the info document (sizes, resolutions in nm from every unit, chunk sizes,
// encodings), chunk names and their strict parsing, chunk files against the engine's voxels
// (clipped, x fastest; gzip decompresses to raw; JPEG decodes within a PSNR bound), identity of
// interior raw/gzip files with the engine's bytes, the derived files' disk cache across a
// remount, the option checks, and the JPEG codec itself.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/codec/jpeg.h"
#include "core/codec/zarr_codec.h"
#include "core/format/format.h"
#include "core/format/precomputed/precomputed_format.h"
#include "core/format/precomputed/precomputed_tree.h"
#include "core/source/view.h"
#include "mem_volume.h"
#include "mountopts/mount_options.h"

namespace oz {
namespace {

using nlohmann::json;

struct Fixture {
  std::shared_ptr<testing::MemVolume> mem;
  std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(2);
  Stats stats;
  std::unique_ptr<DiskCache> cache;
  std::unique_ptr<ChunkEngine> engine;
  std::unique_ptr<FormatTree> tree;
  Options options;

  // Prepares `o` as the session does (format=precomputed) over a 21x30x45 volume.
  Fixture(Options o, DType dtype = DType::kUint16, const std::string& cache_dir = "") {
    mem = std::make_shared<testing::MemVolume>(Vec3{21, 30, 45}, dtype, 3, 0.3);
    const FormatSpec* f = FindFormat("precomputed");
    REQUIRE(f);
    o.format = "precomputed";
    const Status st = f->prepare(&o, o.bytes1 ? DType::kUint8 : dtype);
    INFO(st.ToString());
    REQUIRE(st.ok());
    options = o;
    if (!cache_dir.empty()) {
      DiskCacheOptions co;
      co.dir = cache_dir;
      co.stats = &stats;
      auto c = DiskCache::Open(co);
      REQUIRE(c.ok());
      cache = std::move(c).value();
    }
    auto g = ComputeViewGeometry(mem->shape(), o);
    REQUIRE(g.ok());
    ChunkEngineConfig ec;
    ec.options = o;
    ec.pool = pool.get();
    ec.stats = &stats;
    ec.cache = cache.get();
    ec.codec_options = f->codec_options(o);
    auto e = ChunkEngine::Make(std::make_shared<ViewVolume>(mem, *g, o.bytes1), ec);
    REQUIRE(e.ok());
    engine = std::move(e).value();
    tree = f->make_tree(engine.get(), "/mem");
  }

  // Voxels of chunk idx clipped to its level, x fastest, little-endian (the reference).
  std::string Clipped(int level, const Vec3& idx) {
    const int64_t c = engine->pyramid().chunk();
    const size_t b = DTypeSize(engine->dtype());
    std::vector<uint8_t> full(engine->raw_chunk_bytes());
    REQUIRE(engine->ComputeUncached(level, idx, full.data()).ok());
    const Vec3 s = engine->pyramid().ChunkBox(level, idx).shape();
    std::string out;
    for (int64_t z = 0; z < s[0]; ++z)
      for (int64_t y = 0; y < s[1]; ++y)
        for (int64_t x = 0; x < s[2]; ++x)
          out.append(reinterpret_cast<const char*>(full.data()) + static_cast<size_t>((z * c + y) * c + x) * b, b);
    return out;
  }
};

json Info(FormatTree& t) {
  auto b = t.Read("/info");
  REQUIRE(b.ok());
  return json::parse(**b);
}

double Psnr(const std::string& a, const std::string& b) {
  REQUIRE(a.size() == b.size());
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(static_cast<uint8_t>(a[i])) - static_cast<uint8_t>(b[i]);
    se += d * d;
  }
  if (se == 0) return INFINITY;
  return 10 * std::log10(255.0 * 255.0 / (se / static_cast<double>(a.size())));
}

TEST_CASE("precomputed info: scales in x, y, z order, nanometres, encodings", "[precomputed]") {
  Options o;
  o.chunk = 8;
  o.levels = 3;
  o.voxel_size = {2.0, 7.91, 7.91};  // z, y, x
  o.unit = "micrometer";
  Fixture fx(o);
  const json info = Info(*fx.tree);
  CHECK(info["@type"] == "neuroglancer_multiscale_volume");
  CHECK(info["type"] == "image");
  CHECK(info["data_type"] == "uint16");
  CHECK(info["num_channels"] == 1);
  REQUIRE(info["scales"].size() == 3);
  const json& s0 = info["scales"][0];
  CHECK(s0["key"] == "0");
  CHECK(s0["size"] == json({45, 30, 21}));
  CHECK(s0["resolution"] == json({7910.0, 7910.0, 2000.0}));
  CHECK(s0["voxel_offset"] == json({0, 0, 0}));
  CHECK(s0["chunk_sizes"] == json({{8, 8, 8}}));
  CHECK(s0["encoding"] == "raw");
  CHECK(info["scales"][2]["size"] == json({12, 8, 6}));
  CHECK(info["scales"][2]["resolution"] == json({31640.0, 31640.0, 8000.0}));
  CHECK(info["omezarrfs"].count("content_encoding") == 0);
  CHECK(info["omezarrfs"]["options"]["empty"] == "keep");

  Options g;
  g.chunk = 16;
  g.levels = 1;
  g.compression = Compression::kGzip;
  g.given.compression = true;
  Fixture fg(g);
  const json ig = Info(*fg.tree);
  CHECK(ig["scales"].size() == 1);
  CHECK(ig["scales"][0]["encoding"] == "raw");
  CHECK(ig["scales"][0]["resolution"] == json({1.0, 1.0, 1.0}));  // no unit, voxel_size 1: 1 nm
  CHECK(ig["omezarrfs"]["content_encoding"] == "gzip");

  Options j;
  j.chunk = 8;
  j.levels = 2;
  j.compression = Compression::kJpeg;
  j.given.compression = true;
  j.bytes1 = true;
  Fixture fj(j);
  const json ij = Info(*fj.tree);
  CHECK(ij["data_type"] == "uint8");
  CHECK(ij["scales"][1]["encoding"] == "jpeg");
  CHECK(ij["omezarrfs"]["options"]["jpeg_quality"] == 95);
}

TEST_CASE("precomputed: every unit= has a factor to nanometres", "[precomputed]") {
  // The units --help lists are the ones unit= accepts.
  const std::string help = OptionsHelpText();
  const size_t at = help.find("Units (unit=NAME)");
  REQUIRE(at != std::string::npos);
  std::istringstream in(help.substr(help.find('\n', at)));
  std::string u;
  int n = 0;
  while (in >> u) {
    INFO(u);
    CHECK(NanometresPerUnit(u) > 0);
    ++n;
  }
  CHECK(n == 26);
  CHECK(NanometresPerUnit("") == 1);
  CHECK(NanometresPerUnit("nanometer") == 1);
  CHECK(NanometresPerUnit("micrometer") == 1000);
  CHECK(NanometresPerUnit("millimeter") == 1e6);
  CHECK(NanometresPerUnit("angstrom") == Approx(0.1));
  CHECK(NanometresPerUnit("inch") == Approx(2.54e7));
  CHECK(NanometresPerUnit("furlong") == 0);
}

TEST_CASE("precomputed chunk names: the clipped box, x y z, strictly parsed", "[precomputed]") {
  Options o;
  o.chunk = 8;
  o.levels = 3;
  Fixture fx(o);
  FormatTree& t = *fx.tree;
  CHECK(t.DataFileRel(0, {0, 0, 0}) == "0/0-8_0-8_0-8");
  CHECK(t.DataFileRel(0, {2, 3, 5}) == "0/40-45_24-30_16-21");  // edge: clipped on every axis
  CHECK(t.DataFileRel(2, {0, 0, 1}) == "2/8-12_0-8_0-6");
  int level = -1;
  Vec3 idx;
  REQUIRE(t.ParseDataFileRel("0/40-45_24-30_16-21", &level, &idx));
  CHECK(level == 0);
  CHECK(idx == Vec3{2, 3, 5});
  for (const char* bad : {"0/0-8_0-8_0-9", "0/0-8_0-8", "0/0-8_0-8_0-8_0-8", "0/00-8_0-8_0-8", "0/4-12_0-8_0-8",
                          "0/48-53_0-8_0-8", "0/40-48_24-30_16-21", "3/0-8_0-8_0-8", "0/0-8_0-8_0-8/x",
                          "0/+0-8_0-8_0-8", "0/0-8_0-8_0-8 ", "0/0_8-0_8-0_8", "01/0-8_0-8_0-8"}) {
    INFO(bad);
    CHECK_FALSE(t.ParseDataFileRel(bad, &level, &idx));
  }
  CHECK(t.Stat("/0/0-8_0-8_0-9").status().code() == ErrorCode::kNotFound);
  CHECK(t.Stat("/0/0-8_0-8_0-8/x").status().code() == ErrorCode::kNotDirectory);
  CHECK(t.Stat("/info/x").status().code() == ErrorCode::kNotDirectory);
  CHECK(t.Stat("/3").status().code() == ErrorCode::kNotFound);
  CHECK(t.List("/info").status().code() == ErrorCode::kNotDirectory);
  auto root = t.List("/");
  REQUIRE(root.ok());
  CHECK(root->size() == 4);
  auto l0 = t.List("/0");
  REQUIRE(l0.ok());
  CHECK(l0->size() == 3 * 4 * 6);  // empty=keep: every chunk, the zero ones too
  CHECK(!t.DataFilesAreEngineChunks());
  CHECK(!t.RowDirectories());
}

TEST_CASE("precomputed raw and gzip files are the clipped voxels; interior files are the engine's bytes",
          "[precomputed]") {
  for (Compression comp : {Compression::kNone, Compression::kGzip}) {
    for (Algorithm alg : {Algorithm::kMean, Algorithm::kMax}) {
      Options o;
      o.chunk = 8;
      o.levels = 3;
      o.algorithm = alg;
      o.compression = comp;
      o.given.compression = true;
      Fixture fx(o);
      const Pyramid& p = fx.engine->pyramid();
      for (int l = 0; l < p.levels(); ++l) {
        const Vec3 g = p.grid(l);
        for (int64_t z = 0; z < g[0]; ++z)
          for (int64_t y = 0; y < g[1]; ++y)
            for (int64_t x = 0; x < g[2]; ++x) {
              const Vec3 idx{z, y, x};
              const std::string rel = "/" + fx.tree->DataFileRel(l, idx);
              INFO(rel << " " << CompressionName(comp));
              auto b = fx.tree->Read(rel);
              REQUIRE(b.ok());
              auto st = fx.tree->Stat(rel);
              REQUIRE(st.ok());
              CHECK(st->size == (*b)->size());
              const std::string want = fx.Clipped(l, idx);
              std::string got = **b;
              if (comp == Compression::kGzip) {
                std::string raw(want.size(), '\0');
                REQUIRE(ZlibDecode(got, raw.data(), raw.size(), true).ok());
                got = raw;
              }
              CHECK(got == want);
              const Box box = p.ChunkBox(l, idx);
              if (box.shape() == Vec3{8, 8, 8}) {
                auto e = fx.engine->GetChunk(l, idx);
                REQUIRE(e.ok());
                CHECK(**e == **b);  // identity: the engine chunk is the file
              }
            }
      }
    }
  }
}

TEST_CASE("precomputed jpeg: x wide, y*z high, within the quality's error; cached across a remount", "[precomputed]") {
  const std::string dir = std::filesystem::temp_directory_path() / ("oz_pc_cache." + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  Options o;
  o.chunk = 16;
  o.levels = 3;
  o.compression = Compression::kJpeg;
  o.given.compression = true;
  o.bytes1 = true;
  std::map<std::string, std::string> first;
  {
    Fixture fx(o, DType::kUint16, dir);
    const Pyramid& p = fx.engine->pyramid();
    for (int l = 0; l < p.levels(); ++l) {
      const Vec3 g = p.grid(l);
      for (int64_t z = 0; z < g[0]; ++z)
        for (int64_t y = 0; y < g[1]; ++y)
          for (int64_t x = 0; x < g[2]; ++x) {
            const Vec3 idx{z, y, x};
            const std::string rel = "/" + fx.tree->DataFileRel(l, idx);
            INFO(rel);
            auto b = fx.tree->Read(rel);
            REQUIRE(b.ok());
            const Vec3 s = p.ChunkBox(l, idx).shape();
            const std::string want = fx.Clipped(l, idx);
            std::string got(want.size(), '\0');
            // The wrong size is refused; the right one decodes.
            CHECK(!JpegDecodeGray(**b, static_cast<uint32_t>(s[2] + 1), static_cast<uint32_t>(s[1] * s[0]),
                                  reinterpret_cast<uint8_t*>(got.data()))
                       .ok());
            REQUIRE(JpegDecodeGray(**b, static_cast<uint32_t>(s[2]), static_cast<uint32_t>(s[1] * s[0]),
                                   reinterpret_cast<uint8_t*>(got.data()))
                        .ok());
            // The test volume is noise over a gradient (the hardest case for JPEG); the scroll-like
            // figures are in bench/RESULTS.md.
            CHECK(Psnr(got, want) >= 30);
            auto again = fx.tree->FileBytes(l, idx, *fx.engine->GetChunk(l, idx));
            REQUIRE(again.ok());
            CHECK(**again == **b);  // materialize's path gives the same bytes
            first[rel] = **b;
          }
    }
  }
  {
    Fixture fx(o, DType::kUint16, dir);
    for (const auto& [rel, bytes] : first) {
      auto b = fx.tree->Read(rel);
      REQUIRE(b.ok());
      CHECK(**b == bytes);
    }
    CHECK(fx.stats.chunks_computed == 0);  // neither computed nor encoded again
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("precomputed: what the format cannot express is refused with the fix", "[precomputed]") {
  const FormatSpec* f = FindFormat("precomputed");
  REQUIRE(f);
  auto err = [&](Options o, DType served) {
    const Status st = f->prepare(&o, served);
    REQUIRE(!st.ok());
    CHECK(st.code() == ErrorCode::kInvalidArgument);
    return st.message();
  };
  auto has = [](const std::string& m, const char* part) {
    INFO(m);
    CHECK(m.find(part) != std::string::npos);
  };
  Options o;
  o.compression = Compression::kJpeg;
  o.given.compression = true;
  has(err(o, DType::kUint16), "bytes=1");
  o.chunk = 256;
  o.given.chunk = true;
  has(err(o, DType::kUint8), "chunk=255");
  {
    Options z = o;  // a chunk edge not given (a zarr source's) becomes 128 with jpeg
    z.given.chunk = false;
    REQUIRE(f->prepare(&z, DType::kUint8).ok());
    CHECK(z.chunk == 128);
  }
  o.chunk = 128;
  o.jpeg_quality = 0;
  has(err(o, DType::kUint8), "jpeg_quality=0");
  o.jpeg_quality = 101;
  has(err(o, DType::kUint8), "jpeg_quality=101");
  for (Compression c : {Compression::kBlosc, Compression::kZlib, Compression::kZstd}) {
    Options b;
    b.compression = c;
    b.given.compression = true;
    const std::string m = err(b, DType::kUint16);
    has(m, "compression=none");
    has(m, std::string(CompressionName(c)).c_str());
  }
  Options sh;
  sh.shard = 2;
  has(err(sh, DType::kUint16), "sharded precomputed");
  // Defaults: a compressor not given (a zarr source's) becomes raw; empty=keep unless given.
  Options d;
  d.compression = Compression::kBlosc;
  REQUIRE(f->prepare(&d, DType::kUint16).ok());
  CHECK(d.compression == Compression::kNone);
  CHECK(d.empty == EmptyPolicy::kKeep);
  CHECK(d.shard == 1);
  Options e;
  e.empty = EmptyPolicy::kOmit;
  e.given.empty = true;
  REQUIRE(f->prepare(&e, DType::kUint16).ok());
  CHECK(e.empty == EmptyPolicy::kOmit);
  // The engine keeps lossless chunks under the JPEG files.
  Options j;
  j.compression = Compression::kJpeg;
  CHECK(f->codec_options(j).compression == Compression::kNone);
  Options g;
  g.compression = Compression::kGzip;
  CHECK(f->codec_options(g).compression == Compression::kGzip);
  // The zarr formats refuse jpeg, naming format=precomputed.
  for (const char* name : {"ome-zarr-0.4", "ome-zarr-0.5"}) {
    Options z;
    z.compression = Compression::kJpeg;
    const Status st = FindFormat(name)->prepare(&z, DType::kUint8);
    INFO(name);
    REQUIRE(!st.ok());
    CHECK(st.message().find("format=precomputed") != std::string::npos);
  }
  // The engine's codec refuses jpeg outright (it is not a chunk codec).
  Options c;
  c.compression = Compression::kJpeg;
  CHECK(!ChunkCodec::Make(c, DType::kUint8).ok());
}

TEST_CASE("jpeg options parse", "[precomputed][options]") {
  Options o;
  MountFlags f;
  REQUIRE(ParseOptionString("format=precomputed,compression=jpeg,jpeg_quality=80", &o, &f).ok());
  CHECK(o.format == "precomputed");
  CHECK(o.compression == Compression::kJpeg);
  CHECK(o.jpeg_quality == 80);
  CHECK(!o.given.empty);
  REQUIRE(ParseOptionString("empty=omit", &o, &f).ok());
  CHECK(o.given.empty);
  for (const char* bad : {"jpeg_quality=0", "jpeg_quality=101", "jpeg_quality=high"}) {
    INFO(bad);
    const Status st = ParseOptionString(bad, &o, &f);
    CHECK(!st.ok());
    CHECK(st.message().find("1 to 100") != std::string::npos);
  }
}

TEST_CASE("JPEG codec: round trip of a smooth image, bounds, determinism", "[precomputed]") {
  const uint32_t w = 40, h = 24;
  std::vector<uint8_t> img(w * h);
  for (uint32_t y = 0; y < h; ++y)
    for (uint32_t x = 0; x < w; ++x) img[y * w + x] = static_cast<uint8_t>(100 + 60 * std::sin(x / 7.0 + y / 5.0));
  auto a = JpegEncodeGray(img.data(), w, h, 95);
  REQUIRE(a.ok());
  auto b = JpegEncodeGray(img.data(), w, h, 95);
  REQUIRE(b.ok());
  CHECK(*a == *b);
  CHECK(a->substr(0, 2) == "\xff\xd8");
  std::string out(w * h, '\0');
  REQUIRE(JpegDecodeGray(*a, w, h, reinterpret_cast<uint8_t*>(out.data())).ok());
  CHECK(Psnr(out, std::string(img.begin(), img.end())) > 40);
  auto low = JpegEncodeGray(img.data(), w, h, 10);
  REQUIRE(low.ok());
  CHECK(low->size() < a->size());
  CHECK(JpegEncodeGray(img.data(), 0, h, 95).status().code() == ErrorCode::kInvalidArgument);
  CHECK(JpegEncodeGray(img.data(), 70000, 1, 95).status().code() == ErrorCode::kInvalidArgument);
  CHECK(JpegEncodeGray(img.data(), w, h, 0).status().code() == ErrorCode::kInvalidArgument);
  CHECK(JpegDecodeGray("not a jpeg", w, h, reinterpret_cast<uint8_t*>(out.data())).code() == ErrorCode::kCorrupt);
  CHECK(JpegDecodeGray(a->substr(0, 20), w, h, reinterpret_cast<uint8_t*>(out.data())).code() == ErrorCode::kCorrupt);
  CHECK(JpegLibraryTag().find("libjpeg") == 0);
}

}  // namespace
}  // namespace oz
