// Zarr chunk decoders: every compressor round-trips; hostile inputs (a blosc header claiming a huge
// size, truncated or over-long zlib/gzip streams, garbage) are kCorrupt and never write past the
// output buffer. Also the zlib/gzip output codecs of ChunkCodec.
#include <blosc.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/zarr_codec.h"

namespace oz {
namespace {

std::string Sample(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>((i / 7) % 251 + ((x >> 28) & 3));
  }
  return s;
}

std::string Blosc(const std::string& raw, const char* cname, int shuffle, size_t typesize = 2) {
  std::string out(raw.size() + BLOSC_MAX_OVERHEAD, '\0');
  int n = blosc_compress_ctx(5, shuffle, typesize, raw.size(), raw.data(), out.data(), out.size(), cname, 0, 1);
  REQUIRE(n > 0);
  out.resize(static_cast<size_t>(n));
  return out;
}

// Decodes into a buffer with guard bytes after the chunk; checks the guard is intact.
Status DecodeGuarded(const ZarrCompressor& c, const std::string& in, size_t nbytes, std::string* out) {
  std::vector<char> buf(nbytes + 64, '\x5a');
  Status s = DecodeZarrChunk(c, in, buf.data(), nbytes);
  for (size_t i = nbytes; i < buf.size(); ++i) REQUIRE(buf[i] == '\x5a');
  out->assign(buf.data(), nbytes);
  return s;
}

ZarrCompressor Comp(ZarrCompressorId id) {
  ZarrCompressor c;
  c.id = id;
  return c;
}

TEST_CASE("DecodeZarrChunk: null, every blosc cname and shuffle, zlib and gzip round-trip") {
  const std::string raw = Sample(16 * 16 * 16 * 2);
  std::string got;
  REQUIRE(DecodeGuarded(Comp(ZarrCompressorId::kNone), raw, raw.size(), &got).ok());
  CHECK(got == raw);

  for (const char* cname : {"blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"}) {
    if (blosc_compname_to_compcode(cname) < 0) continue;  // not in this c-blosc
    for (int shuffle : {0, 1, 2}) {
      INFO(cname << " shuffle " << shuffle);
      REQUIRE(DecodeGuarded(Comp(ZarrCompressorId::kBlosc), Blosc(raw, cname, shuffle), raw.size(), &got).ok());
      CHECK(got == raw);
    }
  }
  for (int level : {0, 1, 9}) {
    for (bool gzip : {false, true}) {
      INFO("level " << level << " gzip " << gzip);
      auto enc = ZlibEncode(raw.data(), raw.size(), level, gzip);
      REQUIRE(enc.ok());
      CHECK(static_cast<unsigned char>((*enc)[0]) == (gzip ? 0x1f : 0x78));
      REQUIRE(
          DecodeGuarded(Comp(gzip ? ZarrCompressorId::kGzip : ZarrCompressorId::kZlib), *enc, raw.size(), &got).ok());
      CHECK(got == raw);
    }
  }
}

TEST_CASE("DecodeZarrChunk: gzip members concatenated and zero padding read as Python's gzip does") {
  const std::string a = Sample(1000), b = Sample(500);
  auto ea = ZlibEncode(a.data(), a.size(), 6, true);
  auto eb = ZlibEncode(b.data(), b.size(), 6, true);
  REQUIRE(ea.ok());
  REQUIRE(eb.ok());
  std::string got;
  REQUIRE(DecodeGuarded(Comp(ZarrCompressorId::kGzip), *ea + *eb, 1500, &got).ok());
  CHECK(got == a + b);
  REQUIRE(DecodeGuarded(Comp(ZarrCompressorId::kGzip), *ea + std::string(8, '\0'), 1000, &got).ok());
  CHECK(got == a);
}

TEST_CASE("DecodeZarrChunk: short, long, truncated and garbage chunks are kCorrupt") {
  const std::string raw = Sample(4096);
  std::string got;
  struct Case {
    const char* what;
    ZarrCompressorId id;
    std::string in;
    size_t nbytes;
    const char* says;
  };
  auto zlib = *ZlibEncode(raw.data(), raw.size(), 1, false);
  auto gzip = *ZlibEncode(raw.data(), raw.size(), 1, true);
  const std::vector<Case> cases = {
      {"raw short", ZarrCompressorId::kNone, raw.substr(0, 100), raw.size(), "100 bytes"},
      {"raw long", ZarrCompressorId::kNone, raw + "x", raw.size(), "4097 bytes"},
      {"zlib truncated", ZarrCompressorId::kZlib, zlib.substr(0, zlib.size() / 2), raw.size(), "truncated"},
      {"zlib missing checksum", ZarrCompressorId::kZlib, zlib.substr(0, zlib.size() - 2), raw.size(), "truncated"},
      {"zlib long", ZarrCompressorId::kZlib, zlib, raw.size() - 1, "more than"},
      {"zlib short", ZarrCompressorId::kZlib, zlib, raw.size() + 1, "decodes to 4096 bytes"},
      {"zlib trailing", ZarrCompressorId::kZlib, zlib + "junk", raw.size(), "after the end"},
      {"zlib garbage", ZarrCompressorId::kZlib, "this is not zlib data", raw.size(), "invalid"},
      {"zlib empty", ZarrCompressorId::kZlib, "", raw.size(), "truncated"},
      {"gzip as zlib", ZarrCompressorId::kZlib, gzip, raw.size(), "invalid"},
      {"gzip truncated", ZarrCompressorId::kGzip, gzip.substr(0, gzip.size() - 5), raw.size(), "truncated"},
      {"gzip long", ZarrCompressorId::kGzip, gzip, 100, "more than"},
      {"gzip trailing junk", ZarrCompressorId::kGzip, gzip + "junk", raw.size(), "invalid"},
      {"blosc short", ZarrCompressorId::kBlosc, "abc", raw.size(), "less than a blosc header"},
      {"blosc garbage", ZarrCompressorId::kBlosc, std::string(64, '\x7f'), raw.size(), "blosc"},
      {"blosc size mismatch", ZarrCompressorId::kBlosc, Blosc(raw, "lz4", 1), raw.size() / 2, "expected 2048"},
      {"blosc truncated", ZarrCompressorId::kBlosc, Blosc(raw, "lz4", 1).substr(0, 40), raw.size(), "blosc"},
      {"blosc trailing", ZarrCompressorId::kBlosc, Blosc(raw, "zstd", 1) + "xx", raw.size(), "blosc"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Status s = DecodeGuarded(Comp(c.id), c.in, c.nbytes, &got);
    CHECK(s.code() == ErrorCode::kCorrupt);
    CHECK_THAT(s.message(), Catch::Contains(c.says));
  }
}

TEST_CASE("BloscDecode: a hostile header claiming a huge size is refused before decompressing") {
  const std::string raw = Sample(4096);
  std::string enc = Blosc(raw, "lz4", 1);
  // Header bytes 4..7: nbytes (uncompressed size), little-endian. Claim 4 GiB - 1.
  std::string huge = enc;
  const uint32_t big = 0xFFFFFFFFu;
  std::memcpy(huge.data() + 4, &big, 4);
  std::string got;
  Status s = DecodeGuarded(Comp(ZarrCompressorId::kBlosc), huge, raw.size(), &got);
  CHECK(s.code() == ErrorCode::kCorrupt);
  // Claim exactly the expected size but lie about the compressed size (bytes 12..15).
  std::string lie = enc;
  const uint32_t cb = static_cast<uint32_t>(enc.size() + 1000);
  std::memcpy(lie.data() + 12, &cb, 4);
  s = DecodeGuarded(Comp(ZarrCompressorId::kBlosc), lie, raw.size(), &got);
  CHECK(s.code() == ErrorCode::kCorrupt);
  // Random corruption of the payload: an error or (rarely) different bytes, never a crash.
  for (size_t i = 16; i < enc.size(); i += 7) {
    std::string bad = enc;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)DecodeGuarded(Comp(ZarrCompressorId::kBlosc), bad, raw.size(), &got);
  }
}

TEST_CASE("ChunkCodec: zlib and gzip output round-trip, metadata and cache tags") {
  const std::string raw = Sample(8 * 8 * 8 * 2);
  for (Compression c : {Compression::kZlib, Compression::kGzip}) {
    Options o;
    o.compression = c;
    o.zlib_level = 4;
    auto codec = ChunkCodec::Make(o, DType::kUint16);
    REQUIRE(codec.ok());
    CHECK(!codec->raw());
    auto enc = codec->Encode(raw.data(), raw.size());
    REQUIRE(enc.ok());
    auto enc2 = codec->Encode(raw.data(), raw.size());
    CHECK(*enc == *enc2);  // deterministic (gzip mtime 0)
    std::string back(raw.size(), '\0');
    REQUIRE(codec->Decode(*enc, back.data(), back.size()).ok());
    CHECK(back == raw);
    const std::string id = c == Compression::kZlib ? "zlib" : "gzip";
    CHECK(codec->CompressorJson() == nlohmann::json({{"id", id}, {"level", 4}}));
    CHECK(codec->CacheTag() == id + ":4");
  }
  Options bad;
  bad.compression = Compression::kZlib;
  bad.zlib_level = 10;
  CHECK(ChunkCodec::Make(bad, DType::kUint8).status().code() == ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace oz
