// ZarrVolume over an in-memory store: ReadBox against a brute-force reference (odd shapes, partial
// edge chunks, absent chunks with a fill value, both separators, >u2, order F, 2-D and 5-D
// arrays, every compressor), OME-Zarr groups and source_level, errors, single-flight, stats,
// fingerprint, and the defaults a zarr source gives the options.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <thread>

#include "core/source/zarr_source.h"
#include "core/sync/thread_pool.h"
#include "tests/unit/zarr_fixture.h"

namespace oz {
namespace {

using nlohmann::json;
using testing::MemStore;
using testing::WriteZarrArray;
using testing::ZarrSpec;

uint16_t Value(const std::vector<int64_t>& pos, bool u8) {
  // Last three coordinates; leading ones are 0.
  const size_t r = pos.size();
  const int64_t z = r >= 3 ? pos[r - 3] : 0, y = pos[r - 2], x = pos[r - 1];
  const uint32_t v = static_cast<uint32_t>(z * 7919 + y * 257 + x * 13 + ((z * y + x) % 11) * 1000);
  return static_cast<uint16_t>(u8 ? (v & 0xff) : (v & 0xffff));
}

// Absent chunks: a deterministic subset.
bool Absent(const std::vector<int64_t>& ci) {
  int64_t s = 0;
  for (int64_t c : ci) s = s * 31 + c;
  return s % 5 == 2;
}

// Reads `box` and compares with the reference; absent chunks must read as `fill`.
void CheckBox(ZarrVolume& v, const ZarrSpec& spec, const Box& box, bool with_absent) {
  const bool u8 = spec.dtype == "|u1";
  const size_t item = u8 ? 1 : 2;
  std::vector<uint8_t> buf(static_cast<size_t>(box.volume()) * item, 0xCD);
  Status st = v.ReadBox(box, buf.data());
  INFO(st.ToString() << " box " << box.ToString());
  REQUIRE(st.ok());
  const uint16_t fill = spec.fill_value.is_null() ? 0 : spec.fill_value.get<uint16_t>();
  const Vec3& c = v.metadata().chunks3;
  const size_t rank = spec.shape.size();
  int64_t bad = 0;
  size_t i = 0;
  for (int64_t z = box.lo[0]; z < box.hi[0]; ++z)
    for (int64_t y = box.lo[1]; y < box.hi[1]; ++y)
      for (int64_t x = box.lo[2]; x < box.hi[2]; ++x, ++i) {
        std::vector<int64_t> pos(rank, 0), ci(rank, 0);
        const int64_t zyx[3] = {z, y, x};
        for (int d = 0; d < 3; ++d) {
          const int64_t a = static_cast<int64_t>(rank) - 3 + d;
          if (a < 0) continue;
          pos[static_cast<size_t>(a)] = zyx[d];
          ci[static_cast<size_t>(a)] = zyx[d] / c[d];
        }
        const uint16_t want = with_absent && Absent(ci) ? fill : Value(pos, u8);
        uint16_t got = u8 ? buf[i] : static_cast<uint16_t>(buf[2 * i] | (buf[2 * i + 1] << 8));
        if (got != want && bad++ < 5)
          FAIL_CHECK("voxel " << z << "," << y << "," << x << ": " << got << " != " << want);
      }
  CHECK(bad == 0);
}

std::unique_ptr<ZarrVolume> OpenOk(std::shared_ptr<MemStore> store, ZarrSourceOptions o = {}) {
  auto v = ZarrVolume::Open(std::move(store), o);
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return std::move(v).value();
}

// Whole volume, single voxels at the corners, and random boxes.
void CheckAll(ZarrVolume& v, const ZarrSpec& spec, bool with_absent) {
  const Vec3 s = v.shape();
  CheckBox(v, spec, BoxFromShape(s), with_absent);
  CheckBox(v, spec, Box{{s[0] - 1, s[1] - 1, s[2] - 1}, s}, with_absent);
  CheckBox(v, spec, Box{{0, 0, 0}, {1, 1, 1}}, with_absent);
  std::mt19937 rng(7);
  for (int k = 0; k < 12; ++k) {
    Box b;
    for (int a = 0; a < 3; ++a) {
      b.lo[a] = std::uniform_int_distribution<int64_t>(0, s[a] - 1)(rng);
      b.hi[a] = std::uniform_int_distribution<int64_t>(b.lo[a] + 1, s[a])(rng);
    }
    CheckBox(v, spec, b, with_absent);
  }
}

// ReadBoxStrided of `box` equals ReadBox of it, subsampled.
void CheckStrided(ZarrVolume& v, const Box& box, int64_t step) {
  const size_t item = DTypeSize(v.dtype());
  std::vector<uint8_t> all(static_cast<size_t>(box.volume()) * item);
  REQUIRE(v.ReadBox(box, all.data()).ok());
  const Vec3 os = StridedShape(box, step), bs = box.shape();
  std::vector<uint8_t> got(static_cast<size_t>(os[0] * os[1] * os[2]) * item, 0xCD);
  Status st = v.ReadBoxStrided(box, step, got.data());
  INFO(st.ToString() << " box " << box.ToString() << " step " << step);
  REQUIRE(st.ok());
  int64_t bad = 0;
  for (int64_t z = 0; z < os[0]; ++z)
    for (int64_t y = 0; y < os[1]; ++y)
      for (int64_t x = 0; x < os[2]; ++x)
        bad += std::memcmp(got.data() + static_cast<size_t>((z * os[1] + y) * os[2] + x) * item,
                           all.data() + static_cast<size_t>(((z * step) * bs[1] + y * step) * bs[2] + x * step) * item,
                           item) != 0;
  CHECK(bad == 0);
}

TEST_CASE("ZarrVolume::ReadBox equals the reference for every layout") {
  struct Layout {
    const char* what;
    ZarrSpec spec;
  };
  const json blosc = {{"id", "blosc"}, {"cname", "zstd"}, {"clevel", 3}, {"shuffle", 2}, {"blocksize", 0}};
  const json zlib = {{"id", "zlib"}, {"level", 1}};
  const json gzip = {{"id", "gzip"}, {"level", 5}};
  const std::vector<Layout> layouts = {
      {"u2 odd shape, cubic chunks", {{37, 50, 61}, {16, 16, 16}, "<u2", 'C', '.', nullptr, 0}},
      {"u1 non-cubic chunks, slash", {{37, 50, 61}, {5, 17, 64}, "|u1", 'C', '/', blosc, 0}},
      {">u2 zlib", {{20, 21, 22}, {8, 8, 8}, ">u2", 'C', '.', zlib, 0}},
      {"u2 gzip, fill 1234", {{19, 33, 7}, {4, 10, 3}, "<u2", 'C', '/', gzip, 1234}},
      {"order F >u2", {{13, 17, 19}, {4, 5, 6}, ">u2", 'F', '.', nullptr, 7}},
      {"order F u1 blosc", {{13, 17, 19}, {8, 3, 5}, "|u1", 'F', '/', blosc, nullptr}},
      {"chunk larger than shape", {{5, 6, 7}, {8, 8, 8}, "<u2", 'C', '.', nullptr, 0}},
      {"5-D t,c,z,y,x", {{1, 1, 9, 10, 11}, {1, 1, 4, 4, 4}, "<u2", 'C', '/', zlib, 0}},
      {"5-D order F", {{1, 1, 9, 10, 11}, {1, 1, 4, 3, 5}, ">u2", 'F', '.', nullptr, 0}},
      {"2-D", {{30, 41}, {8, 16}, "|u1", 'C', '.', nullptr, 3}},
  };
  ThreadPool pool(3);
  for (const Layout& l : layouts) {
    for (bool with_absent : {false, true}) {
      INFO(l.what << (with_absent ? ", with absent chunks" : ""));
      auto store = std::make_shared<MemStore>();
      const bool u8 = l.spec.dtype == "|u1";
      WriteZarrArray(
          *store, "", l.spec, [u8](const std::vector<int64_t>& p) { return Value(p, u8); },
          with_absent ? std::function<bool(const std::vector<int64_t>&)>(Absent) : nullptr);
      ZarrSourceOptions o;
      o.pool = &pool;
      o.memory_bytes = 64 << 10;  // small: exercises eviction
      auto v = OpenOk(store, o);
      CHECK(v->dtype() == (u8 ? DType::kUint8 : DType::kUint16));
      CheckAll(*v, l.spec, with_absent);
      std::mt19937 rng(3);
      const Vec3 shape = v->shape();
      for (int64_t step : {2, 3, 8, 100}) CheckStrided(*v, BoxFromShape(shape), step);
      for (int k = 0; k < 8; ++k) {
        Box b;
        for (int a = 0; a < 3; ++a) {
          b.lo[a] = std::uniform_int_distribution<int64_t>(0, shape[a] - 1)(rng);
          b.hi[a] = std::uniform_int_distribution<int64_t>(b.lo[a] + 1, shape[a])(rng);
        }
        CheckStrided(*v, b, 2 + k % 4);
      }
    }
  }
}

TEST_CASE("ZarrVolume::ReadBoxStrided reads only the source chunks that hold kept voxels") {
  auto store = std::make_shared<MemStore>();
  ZarrSpec spec{{64, 64, 64}, {8, 8, 8}, "<u2", 'C', '.', nullptr, 0};
  WriteZarrArray(*store, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); });
  Stats stats;
  ZarrSourceOptions o;
  o.stats = &stats;
  auto v = OpenOk(store, o);
  CheckStrided(*v, BoxFromShape({64, 64, 64}), 16);  // ReadBox first: all 512 chunks
  CHECK(stats.source_chunk_reads == 512);
  auto w = OpenOk(store, o);  // a cold cache
  std::vector<uint16_t> buf(4 * 4 * 4);
  REQUIRE(w->ReadBoxStrided(BoxFromShape({64, 64, 64}), 16, buf.data()).ok());
  CHECK(stats.source_chunk_reads == 512 + 4 * 4 * 4);  // chunks 0, 2, 4, 6 on each axis
  CHECK(buf[1] == Value({0, 0, 16}, false));
}

TEST_CASE("ZarrVolume: absent chunks are fetched once and read as the fill value; stats count") {
  auto store = std::make_shared<MemStore>();
  ZarrSpec spec{{16, 16, 16}, {8, 8, 8}, "<u2", 'C', '.', json{{"id", "zlib"}, {"level", 1}}, 500};
  WriteZarrArray(
      *store, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); },
      [](const std::vector<int64_t>& ci) { return ci[0] == 1 && ci[1] == 1 && ci[2] == 1; });
  Stats stats;
  ZarrSourceOptions o;
  o.stats = &stats;
  auto v = OpenOk(store, o);
  std::vector<uint16_t> buf(16 * 16 * 16);
  REQUIRE(v->ReadBox(BoxFromShape({16, 16, 16}), buf.data()).ok());
  CHECK(buf[static_cast<size_t>((15 * 16 + 15) * 16 + 15)] == 500);
  CHECK(stats.source_chunk_reads == 8);
  CHECK(stats.source_chunks_missing == 1);
  CHECK(stats.source_chunks_decoded == 7);
  REQUIRE(v->ReadBox(BoxFromShape({16, 16, 16}), buf.data()).ok());
  CHECK(stats.source_chunk_reads == 8);  // all from the cache, the absent chunk too
  CHECK(stats.source_chunk_cache_hits == 8);
  CHECK(store->Reads("1.1.1") == 1);
}

TEST_CASE("ZarrVolume: concurrent readers of one chunk fetch and decode it once") {
  auto store = std::make_shared<MemStore>();
  ZarrSpec spec{{64, 64, 64}, {64, 64, 64}, "<u2", 'C', '.', json{{"id", "gzip"}, {"level", 6}}, 0};
  WriteZarrArray(*store, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); });
  Stats stats;
  ZarrSourceOptions o;
  o.stats = &stats;
  auto v = OpenOk(store, o);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      std::vector<uint16_t> buf(8 * 8 * 8);
      Box b{{t * 8, t * 8, 0}, {t * 8 + 8, t * 8 + 8, 8}};
      if (!v->ReadBox(b, buf.data()).ok()) ++failures;
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(store->Reads("0.0.0") == 1);
  CHECK(stats.source_chunks_decoded == 1);
}

TEST_CASE("ZarrVolume: errors name the chunk; failures are not cached") {
  auto store = std::make_shared<MemStore>("mem://s");
  ZarrSpec spec{{8, 8, 16}, {8, 8, 8}, "<u2", 'C', '/', json{{"id", "zlib"}, {"level", 1}}, 0};
  WriteZarrArray(*store, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); });
  auto v = OpenOk(store);
  std::vector<uint16_t> buf(8 * 8 * 16);

  std::string good;
  {
    auto r = store->Read("0/0/1", 1 << 20);
    good = (*r)->data;
  }
  store->Put("0/0/1", good.substr(0, good.size() / 2));  // truncated
  Status s = v->ReadBox(BoxFromShape({8, 8, 16}), buf.data());
  CHECK(s.code() == ErrorCode::kCorrupt);
  CHECK_THAT(s.message(), Catch::Contains("mem://s/0/0/1"));
  CHECK_THAT(s.message(), Catch::Contains("truncated"));

  store->Put("0/0/1", std::string(1 << 20, 'x'));  // far larger than a chunk can be
  s = v->ReadBox(BoxFromShape({8, 8, 16}), buf.data());
  CHECK(s.code() == ErrorCode::kCorrupt);

  store->Put("0/0/1", good);  // repaired: the failure was not cached
  CHECK(v->ReadBox(BoxFromShape({8, 8, 16}), buf.data()).ok());

  store->FailKey("0/0/0");
  auto v2 = OpenOk(store);
  s = v2->ReadBox(BoxFromShape({8, 8, 16}), buf.data());
  CHECK(s.code() == ErrorCode::kIoError);
  CHECK_THAT(s.message(), Catch::Contains("injected"));

  CHECK(v->ReadBox(Box{{0, 0, 0}, {9, 1, 1}}, buf.data()).code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("ZarrVolume: OME-Zarr group, source_level, and metadata errors at Open") {
  auto store = std::make_shared<MemStore>("mem://g");
  store->Put(".zgroup", R"({"zarr_format": 2})");
  store->Put(".zattrs", R"({"multiscales": [{"version": "0.4", "datasets": [{"path": "0"}, {"path": "s1"}]}]})");
  ZarrSpec l0{{20, 20, 20}, {8, 8, 8}, "<u2", 'C', '/', nullptr, 0};
  ZarrSpec l1{{10, 10, 10}, {4, 4, 4}, "|u1", 'C', '.', nullptr, 0};
  WriteZarrArray(*store, "0/", l0, [](const std::vector<int64_t>& p) { return Value(p, false); });
  WriteZarrArray(*store, "s1/", l1, [](const std::vector<int64_t>& p) { return Value(p, true); });

  auto v0 = OpenOk(store);
  CHECK(v0->shape() == Vec3{20, 20, 20});
  CHECK(v0->array_path() == "0");
  CHECK_THAT(v0->Describe(), Catch::Contains("zarr v2 array mem://g/0 (shape 20x20x20, <u2"));
  CheckAll(*v0, l0, false);

  ZarrSourceOptions o;
  o.source_level = 1;
  auto v1 = OpenOk(store, o);
  CHECK(v1->shape() == Vec3{10, 10, 10});
  CHECK(v1->dtype() == DType::kUint8);
  CheckAll(*v1, l1, false);
  CHECK(v0->Fingerprint() != v1->Fingerprint());

  o.source_level = 2;
  auto bad = ZarrVolume::Open(store, o);
  CHECK(bad.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("source_level=2"));
  CHECK_THAT(bad.status().message(), Catch::Contains("2 datasets"));

  // Unsafe dataset path.
  store->Put(".zattrs", R"({"multiscales": [{"datasets": [{"path": "../outside"}]}]})");
  auto unsafe = ZarrVolume::Open(store, {});
  CHECK(unsafe.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(unsafe.status().message(), Catch::Contains("mem://g/.zattrs"));
  CHECK_THAT(unsafe.status().message(), Catch::Contains("datasets[0].path"));

  // A dataset without .zarray.
  store->Put(".zattrs", R"({"multiscales": [{"datasets": [{"path": "missing"}]}]})");
  auto missing = ZarrVolume::Open(store, {});
  CHECK(missing.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(missing.status().message(), Catch::Contains("mem://g/missing/.zarray"));

  // A group without multiscales.
  store->Erase(".zattrs");
  auto plain = ZarrVolume::Open(store, {});
  CHECK(plain.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(plain.status().message(), Catch::Contains("without .zattrs"));

  // An array with source_level > 0; hostile .zarray names the file and field.
  auto arr = std::make_shared<MemStore>("mem://a");
  arr->Put(".zarray", R"({"zarr_format": 2, "shape": [10, 10], "chunks": [0, 5], "dtype": "<u2",
                          "order": "C", "fill_value": 0, "compressor": null, "filters": null})");
  auto hostile = ZarrVolume::Open(arr, {});
  CHECK(hostile.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(hostile.status().message(), Catch::Contains("mem://a/.zarray: field \"chunks\""));
  WriteZarrArray(*arr, "", l0, [](const std::vector<int64_t>& p) { return Value(p, false); });
  o.source_level = 1;
  auto lvl = ZarrVolume::Open(arr, o);
  CHECK(lvl.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(lvl.status().message(), Catch::Contains("not an OME-Zarr group"));

  auto empty = std::make_shared<MemStore>("mem://e");
  CHECK(ZarrVolume::Open(empty, {}).status().code() == ErrorCode::kNotFound);
  auto isz = IsZarrStore(*empty);
  REQUIRE(isz.ok());
  CHECK(!*isz);
  CHECK(*IsZarrStore(*arr));
  empty->Put("zarr.json", "{}");
  CHECK(ZarrVolume::Open(empty, {}).status().code() == ErrorCode::kUnsupported);

  // Oversized metadata is refused unread.
  auto huge = std::make_shared<MemStore>("mem://h");
  huge->Put(".zarray", std::string(kMaxMetadataBytes + 1, ' '));
  CHECK(ZarrVolume::Open(huge, {}).status().code() == ErrorCode::kCorrupt);
}

TEST_CASE("ZarrVolume: options.chunk_store gets the fingerprint and serves every chunk read") {
  // A store that counts the reads passing through it.
  class Counting : public KvStore {
   public:
    explicit Counting(std::shared_ptr<KvStore> base) : base_(std::move(base)) {}
    Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
      ++reads;
      return base_->Read(key, max_bytes);
    }
    std::string Describe() const override { return base_->Describe(); }
    std::atomic<int> reads{0};

   private:
    std::shared_ptr<KvStore> base_;
  };

  auto store = std::make_shared<MemStore>("mem://w");
  ZarrSpec spec{{8, 8, 8}, {4, 4, 4}, "|u1", 'C', '.', nullptr, 0};
  WriteZarrArray(*store, "", spec, [](const std::vector<int64_t>& p) { return Value(p, true); });
  std::shared_ptr<Counting> wrapper;
  std::string seen;
  ZarrSourceOptions o;
  o.chunk_store = [&](std::shared_ptr<KvStore> base, const std::string& fingerprint) {
    seen = fingerprint;
    wrapper = std::make_shared<Counting>(std::move(base));
    return std::shared_ptr<KvStore>(wrapper);
  };
  auto v = OpenOk(store, o);
  REQUIRE(wrapper);
  CHECK(seen == v->Fingerprint());
  CHECK(wrapper->reads == 0);  // metadata was read before the wrapper existed
  const int before = store->TotalReads();
  CheckBox(*v, spec, BoxFromShape(v->shape()), false);
  CHECK(wrapper->reads == 8);  // every chunk read goes through the wrapper, once
  CHECK(store->TotalReads() == before + 8);
}

TEST_CASE("ZarrVolume::Fingerprint changes with the .zarray and the store") {
  ZarrSpec spec{{8, 8, 8}, {4, 4, 4}, "<u2", 'C', '.', nullptr, 0};
  auto a = std::make_shared<MemStore>("mem://a");
  WriteZarrArray(*a, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); });
  auto b = std::make_shared<MemStore>("mem://b");
  WriteZarrArray(*b, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); });
  const std::string fa = OpenOk(a)->Fingerprint();
  CHECK(fa == OpenOk(a)->Fingerprint());
  CHECK(fa != OpenOk(b)->Fingerprint());
  spec.fill_value = 9;
  WriteZarrArray(*a, "", spec, [](const std::vector<int64_t>& p) { return Value(p, false); });
  CHECK(fa != OpenOk(a)->Fingerprint());
}

TEST_CASE("ApplyZarrDefaults: chunk and compression from the source unless given") {
  ZarrArrayMetadata m;
  m.chunks3 = {64, 64, 64};
  m.compressor.id = ZarrCompressorId::kBlosc;
  m.compressor.cname = "zstd";
  m.compressor.clevel = 3;
  m.compressor.shuffle = -1;

  Options o;
  auto notes = ApplyZarrDefaults(m, DType::kUint16, &o);
  CHECK(notes.size() == 2);
  CHECK(o.chunk == 64);
  CHECK(o.compression == Compression::kBlosc);
  CHECK(o.blosc_cname == "zstd");
  CHECK(o.blosc_clevel == 3);
  CHECK(o.blosc_shuffle == 1);  // auto: byte shuffle for 2-byte items
  o = Options{};
  ApplyZarrDefaults(m, DType::kUint8, &o);
  CHECK(o.blosc_shuffle == 2);  // auto: bit shuffle for 1-byte items

  o = Options{};
  o.blosc_cname = "lz4";
  o.given.blosc_cname = true;
  o.chunk = 32;
  o.given.chunk = true;
  notes = ApplyZarrDefaults(m, DType::kUint16, &o);
  CHECK(notes.size() == 1);
  CHECK(o.chunk == 32);
  CHECK(o.blosc_cname == "lz4");
  CHECK(o.blosc_clevel == 3);

  o = Options{};
  o.compression = Compression::kNone;
  o.given.compression = true;
  ApplyZarrDefaults(m, DType::kUint16, &o);
  CHECK(o.compression == Compression::kNone);

  m.chunks3 = {1, 512, 512};
  m.compressor = ZarrCompressor{};
  m.compressor.id = ZarrCompressorId::kGzip;
  m.compressor.level = -1;
  o = Options{};
  notes = ApplyZarrDefaults(m, DType::kUint16, &o);
  CHECK(o.chunk == 128);
  CHECK_THAT(notes[0], Catch::Contains("not cubic"));
  CHECK(o.compression == Compression::kGzip);
  CHECK(o.zlib_level == 6);

  m.chunks3 = {1024, 1024, 1024};
  o = Options{};
  ApplyZarrDefaults(m, DType::kUint8, &o);
  CHECK(o.chunk == 512);
  m.chunks3 = {4, 4, 4};
  m.compressor = ZarrCompressor{};
  o = Options{};
  ApplyZarrDefaults(m, DType::kUint8, &o);
  CHECK(o.chunk == 16);
  CHECK(o.compression == Compression::kNone);
}

}  // namespace
}  // namespace oz
