// Materialize implementation. Paths of data files and documents are the format tree's own
// (FormatTree::DataFileRel, DocumentPaths), so a mount and DEST are identical. For a sharded
// format a unit is a block of shard x shard top-level chunk rows, so that every shard of every
// level lies inside one unit: its inner chunks are collected as the unit's trees complete and the
// shard is written (assembled by the format) when its last inner chunk arrives.
#include "core/session/materialize.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/session/extra_files.h"
#include "core/store/atomic_file.h"

namespace oz {
namespace {

constexpr const char* kStateDir = ".omezarr-materialize";

std::string Hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::string HumanBytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  while (b >= 1024 && i < 5) b /= 1024, ++i;
  char s[32];
  std::snprintf(s, sizeof s, "%.1f %s", b, u[i]);
  return s;
}

struct Plan {
  const FormatTree* tree = nullptr;
  int levels = 1;
  int top = 0;  // level of the units
  int min_level = 0;
  int64_t shard = 1;         // a unit is shard x shard top-level chunk rows
  int64_t zc0 = 0, zc1 = 0;  // this part's z-slabs (units along z)
  int64_t ny = 0;            // units along y
  std::string tree_id;
};

std::string UnitName(const Plan& p, int64_t zu, int64_t yu) {
  return "L" + std::to_string(p.top) + "-z" + std::to_string(zu) + "-y" + std::to_string(yu) +
         (p.shard > 1 ? "-shard" + std::to_string(p.shard) : std::string()) + "-levels" + std::to_string(p.min_level) +
         "-" + std::to_string(p.top);
}

Result<Plan> MakePlan(const Session& s, const MaterializeOptions& o) {
  const Pyramid& py = s.engine->pyramid();
  Plan p;
  p.levels = py.levels();
  p.top = o.max_level < 0 ? py.levels() - 1 : o.max_level;
  p.min_level = o.min_level;
  if (p.min_level < 0 || p.top >= py.levels() || p.min_level > p.top)
    return InvalidArgumentError("--levels " + std::to_string(o.min_level) + "-" + std::to_string(p.top) +
                                ": levels must satisfy 0 <= A <= B <= " + std::to_string(py.levels() - 1));
  if (o.parts < 1 || o.part < 0 || o.part >= o.parts)
    return InvalidArgumentError("--part " + std::to_string(o.part + 1) + "/" + std::to_string(o.parts) +
                                ": expected i/N with 1 <= i <= N");
  p.tree = s.tree.get();
  p.shard = s.tree->shard();
  const Vec3 g = py.grid(p.top);
  const int64_t nz = (g[0] + p.shard - 1) / p.shard;
  p.zc0 = nz * o.part / o.parts;
  p.zc1 = nz * (o.part + 1) / o.parts;
  p.ny = (g[1] + p.shard - 1) / p.shard;
  // Everything that shapes the bytes: the engine's cache key material (source fingerprint, view,
  // chunk, codec, algorithm) plus levels, the empty-chunk policy and the format's layout.
  const std::string layout = s.tree->LayoutTag();
  p.tree_id = Hash128Hex(s.engine->CacheKey(1, {0, 0, 0}) + "|levels=" + std::to_string(p.levels) +
                         "|empty=" + (s.options.empty == EmptyPolicy::kOmit ? "omit" : "keep") +
                         (layout.empty() ? std::string() : "|layout=" + layout));
  return p;
}

// Chunks of levels [min_level, top] in unit (zu, yu).
uint64_t UnitChunks(const Pyramid& py, const Plan& p, int64_t zu, int64_t yu) {
  uint64_t n = 0;
  for (int k = p.min_level; k <= p.top; ++k) {
    const Vec3 g = py.grid(k);
    const int64_t f = p.shard << (p.top - k);
    const int64_t nz = std::min((zu + 1) * f, g[0]) - std::min(zu * f, g[0]);
    const int64_t ny = std::min((yu + 1) * f, g[1]) - std::min(yu * f, g[1]);
    n += static_cast<uint64_t>(nz * ny * g[2]);
  }
  return n;
}

uint64_t ChunksInRun(const Pyramid& py, const Plan& p) {
  uint64_t n = 0;
  for (int k = p.min_level; k <= p.top; ++k) {
    const Vec3 g = py.grid(k);
    const int64_t f = p.shard << (p.top - k);
    const int64_t z0 = p.zc0 * f, z1 = std::min(p.zc1 * f, g[0]);
    if (z1 > z0) n += static_cast<uint64_t>((z1 - z0) * g[1] * g[2]);
  }
  return n;
}

bool DirIsEmpty(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return true;
  bool empty = true;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  closedir(d);
  return empty;
}

// Walks DEST (skipping the state dir) collecting relative file paths.
void ListFiles(const std::string& root, const std::string& rel, std::vector<std::string>* out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || (rel.empty() && n == kStateDir)) continue;
    const std::string r = rel.empty() ? n : rel + "/" + n;
    struct stat st;
    if (lstat((root + "/" + r).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode))
      ListFiles(root, r, out);
    else
      out->push_back(r);
  }
  closedir(d);
}

struct ManifestEntry {
  std::string rel;
  bool empty = false;
  uint64_t size = 0;
  uint64_t hash = 0;
};

std::string FormatManifest(const std::string& tree_id, std::vector<ManifestEntry> entries) {
  std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.rel < b.rel; });
  std::string m = "omezarr-materialize unit manifest 1\ntree " + tree_id + "\n";
  for (auto& e : entries)
    m += e.empty ? "E " + e.rel + "\n" : "F " + e.rel + " " + std::to_string(e.size) + " " + Hex64(e.hash) + "\n";
  return m;
}

// Parses a manifest; nullopt if it is not one of this tree.
std::optional<std::vector<ManifestEntry>> ParseManifest(const std::string& text, const std::string& tree_id) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != "omezarr-materialize unit manifest 1") return std::nullopt;
  if (!std::getline(in, line) || line != "tree " + tree_id) return std::nullopt;
  std::vector<ManifestEntry> out;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    ManifestEntry e;
    ls >> kind >> e.rel;
    if (kind == "E") {
      e.empty = true;
    } else if (kind == "F") {
      std::string h;
      ls >> e.size >> h;
      if (h.size() != 16 || h.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
      e.hash = std::stoull(h, nullptr, 16);
    } else {
      return std::nullopt;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Origins of reused chunks (ProvidedChunk::origin).
constexpr int kFromDest = 1;
constexpr int kFromCache = 2;

// DEST's chunk files as recorded by the unit manifests of earlier runs of this tree (any --levels
// range or part; the units of this run included, e.g. for --verify). A file is handed on only
// while its size and XXH64 match an entry; an "empty" entry stands for an all-zero chunk. The
// manifests are read at the first question, so a run with nothing to compute never reads them.
// Memory: about 56 bytes per listed chunk.
class DestChunks : public ChunkProvider {
 public:
  DestChunks(const Plan& plan, std::string dest, std::string units_dir)
      : plan_(plan), dest_(std::move(dest)), units_dir_(std::move(units_dir)) {}

  bool Has(int level, const Vec3& idx) override {
    std::call_once(loaded_, [this] { Load(); });
    auto [lo, hi] = std::equal_range(entries_.begin(), entries_.end(), Entry{level, idx}, Less);
    return lo != hi;
  }

  ProvidedChunk Fetch(int level, const Vec3& idx) override {
    std::call_once(loaded_, [this] { Load(); });
    auto [lo, hi] = std::equal_range(entries_.begin(), entries_.end(), Entry{level, idx}, Less);
    ProvidedChunk p;
    bool empty = false, read = false;
    Result<std::string> data = NotFoundError("");
    uint64_t hash = 0;
    for (auto it = lo; it != hi; ++it) {
      if (it->empty) {
        empty = true;
        continue;
      }
      if (!read) {
        read = true;
        data = ReadFile(dest_ + "/" + plan_.tree->DataFileRel(level, idx));
        if (data.ok()) hash = Xxh64(*data);
      }
      if (data.ok() && data->size() == it->size && hash == it->hash) {
        p.kind = ProvidedChunk::Kind::kBytes;
        p.bytes = std::make_shared<const std::string>(std::move(data).value());
        p.origin = kFromDest;
        return p;
      }
    }
    if (empty) {
      p.kind = ProvidedChunk::Kind::kEmpty;
      p.origin = kFromDest;
      return p;
    }
    static RateLimiter rl;
    uint64_t suppressed = 0;
    if (read && rl.Allow(&suppressed))
      LogWarning("DEST file " + plan_.tree->DataFileRel(level, idx) + " does not match its manifest entry (" +
                 (data.ok() ? std::string("size or checksum differs") : data.status().message()) +
                 "); computing it instead" +
                 (suppressed ? " (" + std::to_string(suppressed) + " similar warnings suppressed)" : ""));
    return p;
  }

 private:
  struct Entry {
    int level = 0;
    Vec3 idx{0, 0, 0};
    bool empty = false;
    uint64_t size = 0, hash = 0;
  };
  static bool Less(const Entry& a, const Entry& b) {
    return std::tie(a.level, a.idx[0], a.idx[1], a.idx[2]) < std::tie(b.level, b.idx[0], b.idx[1], b.idx[2]);
  }

  void Load() {
    DIR* d = opendir(units_dir_.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && n.rfind(".tmp.", 0) != 0) names.push_back(std::move(n));
    }
    closedir(d);
    for (const std::string& n : names) {
      auto text = ReadFile(units_dir_ + "/" + n);
      if (!text.ok()) continue;
      auto manifest = ParseManifest(*text, plan_.tree_id);  // other trees' manifests: not ours
      if (!manifest) continue;
      for (const ManifestEntry& m : *manifest) {
        Entry e;
        if (!plan_.tree->ParseDataFileRel(m.rel, &e.level, &e.idx)) continue;
        e.empty = m.empty;
        e.size = m.size;
        e.hash = m.hash;
        entries_.push_back(e);
      }
    }
    std::sort(entries_.begin(), entries_.end(), Less);
  }

  const Plan plan_;
  const std::string dest_, units_dir_;
  std::once_flag loaded_;
  std::vector<Entry> entries_;  // sorted; written once under loaded_
};

// DEST first (a chunk there needs no write), then the shared cache. Counts the chunks of levels
// below the run's lowest level read from each.
class ExistingChunks : public ChunkProvider {
 public:
  ExistingChunks(ChunkProvider* dest, ChunkProvider* cache, int min_level)
      : dest_(dest), cache_(cache), min_level_(min_level) {}
  bool Has(int level, const Vec3& idx) override {
    return (dest_ && dest_->Has(level, idx)) || (cache_ && cache_->Has(level, idx));
  }
  ProvidedChunk Fetch(int level, const Vec3& idx) override {
    ProvidedChunk p;
    if (dest_ && dest_->Has(level, idx)) p = dest_->Fetch(level, idx);
    if (p.kind == ProvidedChunk::Kind::kMissing && cache_ && cache_->Has(level, idx)) p = cache_->Fetch(level, idx);
    if (level < min_level_ && p.kind != ProvidedChunk::Kind::kMissing)
      (p.origin == kFromDest ? lower_from_dest : lower_from_cache)++;
    return p;
  }
  std::atomic<uint64_t> lower_from_dest{0}, lower_from_cache{0};

 private:
  ChunkProvider* dest_;
  ChunkProvider* cache_;
  const int min_level_;
};

// Differences between DEST's array documents (.zarray, zarr.json) and this tree's, member by
// member (layout and members DEST has in addition do not count), e.g.
// "0/.zarray: compressor is null in DEST, {...} in this run"; empty if none (or none in DEST).
std::string ZarrayDifferences(const std::string& dest, FormatTree& tree) {
  std::string out;
  for (const std::string& rel : tree.ArrayDocumentPaths()) {
    auto theirs = ReadFile(dest + "/" + rel);
    auto ours = tree.Read("/" + rel);
    if (!theirs.ok() || !ours.ok() || *theirs == **ours) continue;
    const auto a = nlohmann::json::parse(*theirs, nullptr, false);
    const auto b = nlohmann::json::parse(**ours, nullptr, false);
    std::string what;
    if (!a.is_object()) {
      what = "not a JSON object in DEST";
    } else {
      for (auto it = b.begin(); it != b.end(); ++it) {
        auto mine = a.find(it.key());
        if (mine != a.end() && *mine == it.value()) continue;
        what += (what.empty() ? "" : ", ") + it.key() + " is " + (mine != a.end() ? mine->dump() : "missing") +
                " in DEST, " + it.value().dump() + " in this run";
      }
    }
    if (!what.empty()) out += (out.empty() ? "" : "; ") + rel + ": " + what;
  }
  return out;
}

// True if every listed file exists with its size and hash (and empty chunks have no file).
bool VerifyEntries(const std::string& dest, const std::vector<ManifestEntry>& entries, std::string* why) {
  for (const auto& e : entries) {
    const std::string path = dest + "/" + e.rel;
    if (e.empty) {
      if (access(path.c_str(), F_OK) == 0) {
        *why = e.rel + " should be absent (empty chunk) but exists";
        return false;
      }
      continue;
    }
    auto data = ReadFile(path);
    if (!data.ok()) {
      *why = data.status().message();
      return false;
    }
    if (data->size() != e.size || Xxh64(*data) != e.hash) {
      *why = e.rel + " differs from its manifest entry (size or checksum)";
      return false;
    }
  }
  return true;
}

}  // namespace

std::string DryRunReport(const Session& s, const MaterializeOptions& o) {
  const Pyramid& py = s.engine->pyramid();
  auto plan = MakePlan(s, o);
  if (!plan.ok()) return plan.status().message() + "\n";
  const uint64_t raw = s.engine->raw_chunk_bytes();
  std::string r = "level  shape (z, y, x)              chunks        bytes (uncompressed, all chunks)\n";
  uint64_t total_chunks = 0, total_bytes = 0;
  for (int k = plan->min_level; k <= plan->top; ++k) {
    const Vec3 g = py.grid(k);
    const uint64_t n = static_cast<uint64_t>(g[0] * g[1] * g[2]);
    char line[160];
    std::snprintf(line, sizeof line, "%5d  %-28s %10llu  %14s\n", k, ToString(py.shape(k)).c_str(),
                  static_cast<unsigned long long>(n), HumanBytes(static_cast<double>(n * raw)).c_str());
    r += line;
    total_chunks += n;
    total_bytes += n * raw;
  }
  r += "total  " + std::to_string(total_chunks) + " chunks, at most " + HumanBytes(static_cast<double>(total_bytes)) +
       " on disk (empty chunks are omitted with empty=omit; compression=blosc makes files smaller)\n";
  if (o.parts > 1)
    r += "this part (" + std::to_string(o.part + 1) + "/" + std::to_string(o.parts) +
         "): " + std::to_string(ChunksInRun(py, *plan)) + " chunks, units along z " + std::to_string(plan->zc0) + ".." +
         std::to_string(plan->zc1 - 1) + "\n";
  return r;
}

Result<MaterializeReport> Materialize(Session& s, const MaterializeOptions& o, const MaterializeProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  OZ_ASSIGN_OR_RETURN(Plan plan, MakePlan(s, o));
  const std::string& dest = o.dest;
  const std::string state_dir = dest + "/" + kStateDir;
  const std::string units_dir = state_dir + "/units";
  const std::string state_file = state_dir + "/state";
  const std::string state_text = "omezarr-materialize state 1\ntree " + plan.tree_id + "\nsource " + s.source + "\n";

  // Is DEST ours, and for this tree?
  struct stat st;
  const bool exists = stat(dest.c_str(), &st) == 0;
  if (exists && !S_ISDIR(st.st_mode)) return InvalidArgumentError("DEST " + dest + " exists and is not a directory");
  if (exists && !DirIsEmpty(dest)) {
    // The state dir marks DEST as ours; its state file may not exist yet when a sibling --part
    // created DEST a moment ago (it is written atomically, with the same bytes by every part).
    struct stat sd;
    const bool ours = stat(state_dir.c_str(), &sd) == 0 && S_ISDIR(sd.st_mode);
    auto prev = ReadFile(state_file);
    const bool same = ours && (!prev.ok() || prev->find("tree " + plan.tree_id + "\n") != std::string::npos);
    if (!ours && !o.overwrite)
      return InvalidArgumentError("DEST " + dest +
                                  " is not empty and was not written by omezarr-materialize; pass --overwrite "
                                  "to write into it anyway (files of the tree are replaced, others kept unless "
                                  "--delete)");
    if (ours && !same && !o.overwrite) {
      const std::string diff = ZarrayDifferences(dest, *s.tree);
      return InvalidArgumentError("DEST " + dest +
                                  " was written by omezarr-materialize from another source state or with other "
                                  "options" +
                                  (diff.empty() ? std::string() : " (" + diff + ")") +
                                  "; run with the same SOURCE and -o options, or pass --overwrite to rewrite it "
                                  "(everything is then computed from the source)");
    }
    // Same tree: its files are reused (as the base of upper levels, or kept), so its metadata must
    // say so too. A .zarray edited since is not silently replaced.
    if (same && !o.overwrite) {
      const std::string diff = ZarrayDifferences(dest, *s.tree);
      if (!diff.empty())
        return InvalidArgumentError("DEST " + dest + " holds .zarray documents that differ from this tree's (" + diff +
                                    "), so its chunk files may not be what this run expects; restore them, or pass "
                                    "--overwrite to replace them (chunk files are reused only where they match "
                                    "their manifests)");
    }
    if (!same && o.parts > 1)
      LogWarning("--overwrite with --part: other parts must use the same options, or they will redo this part's units");
  }
  OZ_RETURN_IF_ERROR(MakeDirs(units_dir));
  // Manifest temps of killed runs; younger ones may belong to a part running right now.
  SweepTempFiles(units_dir, 60);
  SweepTempFiles(state_dir, 60);
  OZ_RETURN_IF_ERROR(WriteFileAtomic(state_file, state_text));
  for (const std::string& rel : s.tree->DocumentPaths()) {
    OZ_ASSIGN_OR_RETURN(ChunkBytes doc, s.tree->Read("/" + rel));
    const std::string path = dest + "/" + rel;
    OZ_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/'))));
    // Metadata temps of killed runs (DEST and DEST/L); younger ones may be a sibling part's.
    SweepTempFiles(path.substr(0, path.rfind('/')), 60);
    OZ_RETURN_IF_ERROR(WriteFileAtomic(path, *doc));
  }

  MaterializeReport report;
  std::mutex mu;  // guards report.counts when called from sinks
  report.counts.chunks_total = ChunksInRun(s.engine->pyramid(), plan);
  auto tick = [&] {
    if (progress) progress(report.counts);
  };
  const std::string range = std::to_string(plan.min_level) + "-" + std::to_string(plan.top);
  int dest_fd = open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  // Existing chunks: DEST's own (earlier runs of this tree), then the shared cache, if any.
  DestChunks dest_chunks(plan, dest, units_dir);
  std::unique_ptr<DiskCache> cache;
  std::unique_ptr<ChunkProvider> cache_chunks;
  if (!o.cache_dir.empty()) {
    DiskCacheOptions co;
    co.dir = o.cache_dir;
    co.stats = &s.stats;
    auto c = DiskCache::OpenReadOnly(co);
    if (c.ok()) {
      cache = std::move(c).value();
      cache_chunks = s.engine->MakeCacheProvider(cache.get(), kFromCache);
    } else {
      LogWarning("cache=" + o.cache_dir + " is not used: " + c.status().message() + "; computing every chunk");
    }
  }
  // DEST's files are reused chunk by chunk only where each file is an engine chunk: shards and
  // derived files (precomputed) are not read back yet, so such a tree's lower levels come from the
  // source (or the cache).
  const bool reuse_dest = s.tree->DataFilesAreEngineChunks();
  if (!reuse_dest && plan.min_level > 0)
    LogInfo("format " + s.options.format + (plan.shard > 1 ? " with shard=" + std::to_string(plan.shard) : "") +
            ": levels below " + std::to_string(plan.min_level) +
            " are computed again from the source (its DEST files are not read back)");
  ExistingChunks existing(reuse_dest ? &dest_chunks : nullptr, cache_chunks.get(), plan.min_level);
  const uint64_t source_bytes0 = s.stats.source_bytes_read;

  const Pyramid& py = s.engine->pyramid();
  const int64_t n = plan.shard;
  const Vec3 top_grid = py.grid(plan.top);
  // Rows sharing a directory (precomputed): temps there may be a sibling part's, in flight.
  if (!s.tree->RowDirectories())
    for (int k = plan.min_level; k <= plan.top; ++k) {
      const std::string rel = s.tree->DataFileRel(k, {0, 0, 0});
      SweepTempFiles(dest + "/" + rel.substr(0, rel.rfind('/')), 60);
    }
  for (int64_t zu = plan.zc0; zu < plan.zc1; ++zu) {
    for (int64_t yu = 0; yu < plan.ny; ++yu) {
      const std::string unit_name = UnitName(plan, zu, yu);
      const std::string manifest_path = units_dir + "/" + unit_name;
      if (auto text = ReadFile(manifest_path); text.ok()) {
        if (auto entries = ParseManifest(*text, plan.tree_id)) {
          std::string why;
          if (!o.verify || VerifyEntries(dest, *entries, &why)) {
            std::lock_guard<std::mutex> l(mu);
            if (n == 1) {
              for (auto& e : *entries) (e.empty ? report.counts.chunks_empty : report.counts.chunks_skipped)++;
              report.counts.chunks_done += entries->size();
            } else {  // counts are of chunks: a shard's entry stands for its inner chunks
              const uint64_t chunks = UnitChunks(py, plan, zu, yu);
              report.counts.chunks_skipped += chunks;
              report.counts.chunks_done += chunks;
            }
            tick();
            continue;
          }
          LogWarning("--verify: unit " + unit_name + " is redone: " + why);
        }
      }
      // Each data file row directory belongs to exactly one unit, so temp files in this unit's
      // rows are leftovers of an earlier, killed run of it (never at final names): sweep them
      // before this run writes there.
      for (int k = plan.min_level; k <= plan.top && s.tree->RowDirectories(); ++k) {
        const int64_t f = int64_t{1} << (plan.top - k);  // file rows of level k per unit
        const Vec3 g = s.tree->FileGrid(k);
        for (int64_t z = zu * f; z < std::min((zu + 1) * f, g[0]); ++z)
          for (int64_t y = yu * f; y < std::min((yu + 1) * f, g[1]); ++y) {
            const std::string row = s.tree->DataFileRel(k, {z, y, 0});
            SweepTempFiles(dest + "/" + row.substr(0, row.rfind('/')), 0);
          }
      }
      std::vector<ManifestEntry> entries;
      std::set<std::string> made_dirs;
      // Writes one data file (bytes), or removes it (nullptr: empty), and lists it.
      auto put_file = [&](const std::string& rel, const std::string* bytes, bool keep) -> Status {
        ManifestEntry e;
        e.rel = rel;
        const std::string path = dest + "/" + e.rel;
        // Directories exist for every file row, empty or not, as in the mount.
        const std::string dir = path.substr(0, path.rfind('/'));
        bool known;
        {
          std::lock_guard<std::mutex> l(mu);
          known = made_dirs.count(dir) != 0;
        }
        if (!known) {
          OZ_RETURN_IF_ERROR(MakeDirs(dir));  // idempotent: concurrent callers are fine
          std::lock_guard<std::mutex> l(mu);
          made_dirs.insert(dir);
        }
        if (!bytes) {
          if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "remove " + path);
          e.empty = true;
        } else {
          if (!keep) {  // else: this very file, checked against an earlier manifest just now
            AtomicWriteOptions wo;
            wo.fsync_file = false;  // one syncfs per unit instead (see the manifest step)
            wo.fsync_dir = false;
            wo.fault_site = "materialize";
            OZ_RETURN_IF_ERROR(WriteFileAtomic(path, *bytes, wo));
          }
          e.size = bytes->size();
          e.hash = Xxh64(*bytes);
        }
        std::lock_guard<std::mutex> l(mu);
        if (!e.empty && !keep) report.counts.bytes_written += e.size;
        entries.push_back(std::move(e));
        return OkStatus();
      };
      // Counts one chunk of the tree (a file, or an inner chunk of a shard).
      auto count_chunk = [&](bool empty, int origin) {
        std::lock_guard<std::mutex> l(mu);
        if (empty) {
          report.counts.chunks_empty++;
        } else if (origin == kFromDest) {
          report.counts.chunks_kept++;
        } else {
          report.counts.chunks_written++;
          if (origin == kFromCache) report.counts.chunks_from_cache++;
        }
        report.counts.chunks_done++;
        tick();
      };
      // Shards in progress (n > 1), by (level, shard index): inner chunks in C order.
      struct PendingShard {
        std::vector<ChunkBytes> inner;
        int64_t received = 0, expected = 0;
      };
      std::map<std::tuple<int, int64_t, int64_t, int64_t>, PendingShard> pending;  // guarded by mu
      auto sink = [&](int level, const Vec3& idx, const Result<ChunkBytes>& chunk, int origin) -> Status {
        if (!chunk.ok() && chunk.status().code() != ErrorCode::kNotFound) return chunk.status();
        const bool empty = !chunk.ok();
        if (n == 1) {
          ChunkBytes file;
          if (!empty) {
            OZ_ASSIGN_OR_RETURN(file, s.tree->FileBytes(level, idx, *chunk));
          }
          OZ_RETURN_IF_ERROR(put_file(s.tree->DataFileRel(level, idx), file.get(), origin == kFromDest));
          count_chunk(empty, origin);
          return OkStatus();
        }
        const Vec3 sidx{idx[0] / n, idx[1] / n, idx[2] / n};
        const size_t slot = static_cast<size_t>(((idx[0] % n) * n + idx[1] % n) * n + idx[2] % n);
        std::vector<ChunkBytes> done;
        {
          std::lock_guard<std::mutex> l(mu);
          PendingShard& ps = pending[{level, sidx[0], sidx[1], sidx[2]}];
          if (ps.inner.empty()) {
            ps.inner.resize(static_cast<size_t>(n * n * n));
            const Vec3 g = py.grid(level);
            ps.expected = 1;
            for (int a = 0; a < 3; ++a) ps.expected *= std::min(n, g[a] - sidx[a] * n);
          }
          if (!empty) ps.inner[slot] = *chunk;
          if (++ps.received == ps.expected) {
            done = std::move(ps.inner);
            pending.erase({level, sidx[0], sidx[1], sidx[2]});
          }
        }
        count_chunk(empty, origin);
        if (done.empty()) return OkStatus();
        const std::string shard = s.tree->AssembleShard(done);
        return put_file(s.tree->DataFileRel(level, sidx), shard.empty() ? nullptr : &shard, false);
      };
      // The unit's top-level chunk rows, in Morton order so that shards of the upper levels
      // complete (and leave memory) as early as possible.
      Status us;
      for (int64_t m = 0; m < n * n && us.ok(); ++m) {
        int64_t dz = 0, dy = 0;
        for (int b = 0; (int64_t{1} << (2 * b)) < n * n; ++b) {
          dy |= ((m >> (2 * b)) & 1) << b;
          dz |= ((m >> (2 * b + 1)) & 1) << b;
        }
        const int64_t zc = zu * n + dz, yc = yu * n + dy;
        if (zc >= top_grid[0] || yc >= top_grid[1]) continue;
        us = s.engine->ComputeTree(plan.top, zc, yc, plan.min_level, sink, &existing);
      }
      if (us.ok() && !pending.empty())
        us = InternalError(std::to_string(pending.size()) + " shards of unit " + unit_name + " did not complete");
      if (us.ok() && o.fsync && dest_fd >= 0 && syncfs(dest_fd) != 0) us = ErrnoError(errno, "syncfs " + dest);
      if (us.ok()) us = WriteFileAtomic(manifest_path, FormatManifest(plan.tree_id, entries));
      if (!us.ok()) {
        const std::string where =
            (plan.levels > 1 ? std::to_string(plan.top) + "/" : std::string()) +
            (n == 1 ? std::to_string(zu) + "/" + std::to_string(yu)
                    : "chunk rows " + std::to_string(zu * n) + ".." + std::to_string(zu * n + n - 1) + "/" +
                          std::to_string(yu * n) + ".." + std::to_string(yu * n + n - 1)) +
            "/*";
        report.failed.push_back(where + " (and levels " + range + " below it): " + us.ToString());
        LogError("unit " + where + " failed: " + us.ToString());
        std::lock_guard<std::mutex> l(mu);
        report.counts.units_failed++;
      }
    }
  }
  if (dest_fd >= 0) close(dest_fd);
  report.counts.lower_from_dest = existing.lower_from_dest;
  report.counts.lower_from_cache = existing.lower_from_cache;
  report.counts.source_bytes_read = s.stats.source_bytes_read - source_bytes0;

  if (o.delete_extra) {
    if (!report.failed.empty()) {
      LogWarning("--delete skipped: some units failed");
    } else {
      // The tree's files: metadata plus every file listed by the manifests of all units.
      const auto all_meta = s.tree->DocumentPaths();
      std::set<std::string> keep(all_meta.begin(), all_meta.end());
      bool complete = true;
      Plan whole = plan;
      whole.zc0 = 0;
      whole.zc1 = (s.engine->pyramid().grid(plan.top)[0] + plan.shard - 1) / plan.shard;
      for (int64_t zc = whole.zc0; zc < whole.zc1 && complete; ++zc)
        for (int64_t yc = 0; yc < plan.ny && complete; ++yc) {
          auto text = ReadFile(units_dir + "/" + UnitName(plan, zc, yc));
          auto entries = text.ok() ? ParseManifest(*text, plan.tree_id) : std::nullopt;
          if (!entries) {
            complete = false;
            break;
          }
          for (auto& e : *entries)
            if (!e.empty) keep.insert(e.rel);
        }
      if (!complete || plan.min_level != 0 || plan.top != plan.levels - 1) {
        LogWarning("--delete skipped: the whole tree (all parts, all levels) is not written yet");
      } else {
        std::vector<std::string> files;
        ListFiles(dest, "", &files);
        for (const std::string& f : files)
          if (!keep.count(f) && unlink((dest + "/" + f).c_str()) == 0) report.counts.files_deleted++;
      }
    }
  }
  // Extra directories of the mount (layers/): written whole by the first part, after --delete.
  if (o.part == 0 && s.mount) OZ_RETURN_IF_ERROR(WriteExtraFiles(*s.mount, dest, &report.counts.bytes_written));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace oz
