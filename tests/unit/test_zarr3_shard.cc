// CRC-32C test vectors, the zarr v3 shard index layout, ShardContent range reads and their
// refusal of an inner chunk whose size changed, and the format= / shard= options.
#include <catch2/catch.hpp>
#include <cstring>

#include "core/codec/crc32c.h"
#include "core/format/format.h"
#include "core/format/zarr3/shard.h"
#include "mountopts/mount_options.h"

namespace oz {
namespace {

uint64_t Le64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int b = 0; b < 8; ++b) v |= static_cast<uint64_t>(static_cast<uint8_t>(s[at + b])) << (8 * b);
  return v;
}

TEST_CASE("crc32c: published check values", "[zarr3][crc32c]") {
  CHECK(Crc32c("123456789") == 0xE3069283u);
  CHECK(Crc32c("") == 0u);
  CHECK(Crc32c(std::string(32, '\0')) == 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
  CHECK(Crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  CHECK(Crc32c(inc) == 0x46DD794Eu);
  // Continuing over pieces equals one pass, for every split.
  const std::string text = "The quick brown fox jumps over the lazy dog, twice over the lazy dog";
  for (size_t k = 0; k <= text.size(); ++k)
    CHECK(Crc32c(text.data() + k, text.size() - k, Crc32c(text.data(), k)) == Crc32c(text));
}

TEST_CASE("shard index: offsets in order, absent pairs, crc32c of the entries", "[zarr3]") {
  const std::vector<uint64_t> sizes = {5, kShardAbsent, 3, 0};
  const std::string idx = EncodeShardIndex(sizes);
  REQUIRE(idx.size() == 4 * 16 + 4);
  CHECK(Le64(idx, 0) == 0);
  CHECK(Le64(idx, 8) == 5);
  CHECK(Le64(idx, 16) == kShardAbsent);
  CHECK(Le64(idx, 24) == kShardAbsent);
  CHECK(Le64(idx, 32) == 5);
  CHECK(Le64(idx, 40) == 3);
  CHECK(Le64(idx, 48) == 8);
  CHECK(Le64(idx, 56) == 0);
  uint32_t crc = 0;
  std::memcpy(&crc, idx.data() + 64, 4);
  CHECK(crc == Crc32c(idx.data(), 64));
}

TEST_CASE("shard assembly and ranged reads agree; a changed inner chunk is an error", "[zarr3]") {
  auto a = std::make_shared<const std::string>("AAAAA");
  auto c = std::make_shared<const std::string>("CCC");
  std::vector<ChunkBytes> inner = {a, nullptr, c, nullptr};
  const std::string whole = AssembleZarr3Shard(inner);
  CHECK(whole.substr(0, 8) == "AAAAACCC");
  CHECK(AssembleZarr3Shard({nullptr, nullptr}).empty());
  std::vector<uint64_t> sizes = {5, kShardAbsent, 3, kShardAbsent};
  ShardContent sc(sizes, [&](size_t i) -> Result<ChunkBytes> { return inner[i]; });
  REQUIRE(sc.size() == whole.size());
  for (uint64_t off = 0; off <= whole.size(); ++off)
    for (size_t n : {size_t{1}, size_t{2}, size_t{7}, size_t{100}}) {
      std::string buf(n, '?');
      auto r = sc.ReadAt(off, n, buf.data());
      REQUIRE(r.ok());
      REQUIRE(buf.substr(0, *r) == whole.substr(off, n));
    }
  ShardContent bad(sizes, [&](size_t i) -> Result<ChunkBytes> {
    return i == 2 ? std::make_shared<const std::string>("CCCC") : inner[i];
  });
  std::string buf(100, '\0');
  CHECK(bad.ReadAt(0, 20, buf.data()).status().code() == ErrorCode::kInternal);
  ShardContent failing(sizes, [&](size_t) -> Result<ChunkBytes> { return IoError("source gone"); });
  CHECK(failing.ReadAt(0, 4, buf.data()).status().code() == ErrorCode::kIoError);
  // The index alone needs no inner chunk.
  auto tail = failing.ReadAt(8, 100, buf.data());
  REQUIRE(tail.ok());
  CHECK(*tail == 4 * 16 + 4);
}

TEST_CASE("format= and shard= options", "[zarr3][options]") {
  Options o;
  MountFlags f;
  REQUIRE(ParseOptionString("format=ome-zarr-0.5,shard=8", &o, &f).ok());
  CHECK(o.format == "ome-zarr-0.5");
  CHECK(o.shard == 8);
  auto bad = ParseOptionString("format=zarr3", &o, &f);
  CHECK(bad.message().find("ome-zarr-0.4, ome-zarr-0.5") != std::string::npos);
  CHECK(ParseOptionString("shard=3", &o, &f).message().find("power of two") != std::string::npos);
  CHECK(!ParseOptionString("shard=0", &o, &f).ok());
  CHECK(!ParseOptionString("shard=128", &o, &f).ok());
  // The --help row lists exactly the registered formats.
  CHECK(OptionsHelpText().find("format=" + FormatNames("|")) != std::string::npos);
  CHECK(FindFormat("ome-zarr-0.4") == &Formats().front());
}

}  // namespace
}  // namespace oz
