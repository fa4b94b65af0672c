// One test body run against every registered output format (and several option sets each):
// every listed file stats; the size read equals the stat size; byte ranges equal slices of the
// whole file; a data file's path round-trips through ParseDataFileRel; the documents are listed;
// and materialize writes exactly the files and bytes the tree serves.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "core/format/format.h"
#include "core/session/materialize.h"
#include "core/source/view.h"
#include "mem_volume.h"
#include "testing/mem_session.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

// Every file of the tree (relative path -> bytes), walking List from the root and checking each
// entry as it goes.
void Walk(FormatTree& t, const std::string& rel, std::map<std::string, std::string>* files, std::mt19937* rng) {
  auto list = t.List("/" + rel);
  REQUIRE(list.ok());
  for (const DirEntry& e : *list) {
    const std::string r = rel.empty() ? e.name : rel + "/" + e.name;
    INFO(r);
    auto st = t.Stat("/" + r);
    REQUIRE(st.ok());
    REQUIRE(st->kind == e.kind);
    if (e.kind == NodeKind::kDirectory) {
      Walk(t, r, files, rng);
      continue;
    }
    auto content = t.Open("/" + r);
    REQUIRE(content.ok());
    REQUIRE((*content)->size() == st->size);
    auto whole = t.Read("/" + r);
    REQUIRE(whole.ok());
    REQUIRE((*whole)->size() == st->size);
    for (int k = 0; k < 4 && st->size > 0; ++k) {
      const uint64_t off = std::uniform_int_distribution<uint64_t>(0, st->size - 1)(*rng);
      const size_t n = std::uniform_int_distribution<size_t>(1, 5000)(*rng);
      std::string buf(n, '\0');
      auto got = (*content)->ReadAt(off, n, buf.data());
      REQUIRE(got.ok());
      REQUIRE(*got == std::min<uint64_t>(n, st->size - off));
      REQUIRE(buf.substr(0, *got) == (*whole)->substr(off, *got));
    }
    auto past = (*content)->ReadAt(st->size, 10, nullptr);
    REQUIRE(past.ok());
    REQUIRE(*past == 0);
    (*files)[r] = **whole;
  }
}

std::map<std::string, std::string> ReadDir(const std::string& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().filename() == ".omezarr-materialize") {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    out[fs::relative(it->path(), root).string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

TEST_CASE("every format: listed files stat, read by range, round-trip, and materialize equals the tree",
          "[format][conformance]") {
  std::vector<Options> option_sets;
  {
    Options o;
    o.chunk = 8;
    o.levels = 3;
    option_sets.push_back(o);
    o.compression = Compression::kBlosc;
    o.shard = 2;
    option_sets.push_back(o);
    o.compression = Compression::kGzip;
    o.given.compression = true;  // (precomputed replaces a compression not given by none)
    o.shard = 0;                 // the format's default
    o.levels = 1;
    option_sets.push_back(o);
    // precomputed's encodings: jpeg (uint8 with bytes=1), gzip with empty=omit, raw with a view.
    o = Options();
    o.chunk = 8;
    o.levels = 3;
    o.compression = Compression::kJpeg;
    o.given.compression = true;
    o.bytes1 = true;
    o.jpeg_quality = 80;
    option_sets.push_back(o);
    o.compression = Compression::kGzip;
    o.bytes1 = false;
    o.empty = EmptyPolicy::kOmit;
    o.given.empty = true;
    option_sets.push_back(o);
    o = Options();
    o.chunk = 8;
    o.levels = 4;
    o.algorithm = Algorithm::kNearest;
    o.window = {SliceRange{2, 19}, SliceRange{}, SliceRange{3, std::nullopt}};
    o.shift = {1, 0, 2};
    option_sets.push_back(o);
  }
  // Every dtype, with the raw and the blosc option sets and the mode kernel.
  std::vector<std::pair<Options, DType>> cases;
  for (const Options& o : option_sets) cases.push_back({o, DType::kUint16});
  for (DType d : {DType::kUint8, DType::kUint32, DType::kUint64, DType::kInt16, DType::kFloat32})
    for (size_t i : {size_t{0}, size_t{1}}) {
      Options o = option_sets[i];
      o.algorithm = Algorithm::kMode;
      cases.push_back({o, d});
    }
  for (const FormatSpec& f : Formats()) {
    for (const auto& [base, dtype] : cases) {
      Options o = base;
      o.format = std::string(f.name);
      if (!f.prepare(&o, o.bytes1 ? DType::kUint8 : dtype).ok())
        continue;  // e.g. shard=2 in a format without sharding, int16 in precomputed
      DYNAMIC_SECTION(f.name << " " << DTypeName(dtype) << " shard=" << o.shard << " levels=" << o.levels << " "
                             << CompressionName(o.compression) << " empty=" << (o.empty == EmptyPolicy::kOmit)
                             << " window=" << o.window[0].start.has_value()) {
        auto s = testing::MemSession(std::make_shared<testing::MemVolume>(Vec3{21, 30, 45}, dtype, 7, 0.4), base, f);
        std::mt19937 rng(11);
        std::map<std::string, std::string> files;
        Walk(*s->tree, "", &files, &rng);
        for (const std::string& d : s->tree->DocumentPaths()) REQUIRE(files.count(d) == 1);
        size_t data_files = 0;
        for (const auto& [rel, bytes] : files) {
          int level = -1;
          Vec3 fidx;
          if (!s->tree->ParseDataFileRel(rel, &level, &fidx)) continue;
          ++data_files;
          REQUIRE(s->tree->DataFileRel(level, fidx) == rel);
        }
        REQUIRE(data_files + s->tree->DocumentPaths().size() == files.size());
        REQUIRE(data_files > 0);
        // A data file inside the zero region (x < 18) is absent with empty=omit: ENOENT, as
        // viewers expect (precomputed's default is empty=keep: a real all-zero file).
        if (o.chunk * o.shard <= 18 && o.empty == EmptyPolicy::kOmit && !o.window[0].start)
          REQUIRE(s->tree->Stat("/" + s->tree->DataFileRel(0, {0, 0, 0})).status().code() == ErrorCode::kNotFound);

        TempDir dest;
        MaterializeOptions mo;
        mo.dest = dest.path + "/out";
        mo.fsync = false;
        auto r = Materialize(*s, mo, nullptr);
        INFO(r.status().ToString());
        REQUIRE(r.ok());
        REQUIRE(r->failed.empty());
        auto written = ReadDir(mo.dest);
        REQUIRE(written.size() == files.size());
        for (const auto& [rel, bytes] : files) {
          INFO(rel);
          REQUIRE(written.count(rel) == 1);
          REQUIRE(written[rel] == bytes);
        }
      }
    }
  }
}

}  // namespace
}  // namespace oz
