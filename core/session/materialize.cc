// Materialize implementation. Paths of data files and documents are the format tree's own
// (FormatTree::DataFileRel, DocumentPaths), so a mount and DEST are identical. For a sharded
// format a unit is a block of shard x shard top-level chunk rows, so that every shard of every
// level lies inside one unit: its inner chunks are collected as the unit's trees complete and the
// shard is written (assembled by the format) when its last inner chunk arrives.
#include "core/session/materialize.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
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
  // --part with levels above the parts' level: the run's B (> top); the parts write levels
  // min_level..top, and levels top+1..finish_top are computed from them once all parts are done.
  int finish_top = -1;
  int64_t shard = 1;       // a unit is shard x shard top-level chunk rows
  int64_t nz = 0, ny = 0;  // units along z and y
  int64_t u0 = 0, u1 = 0;  // this part's units: [u0, u1) in (z, y) row-major order
  std::string tree_id;
};

std::string UnitName(const Plan& p, int64_t zu, int64_t yu) {
  return "L" + std::to_string(p.top) + "-z" + std::to_string(zu) + "-y" + std::to_string(yu) +
         (p.shard > 1 ? "-shard" + std::to_string(p.shard) : std::string()) + "-levels" + std::to_string(p.min_level) +
         "-" + std::to_string(p.top);
}

// Units (z-slabs x y-bands of shard x shard chunk rows, all columns) of level k.
void UnitGrid(const Pyramid& py, int64_t shard, int k, int64_t* nz, int64_t* ny) {
  const Vec3 g = py.grid(k);
  *nz = (g[0] + shard - 1) / shard;
  *ny = (g[1] + shard - 1) / shard;
}

// The level whose units N parts share: the highest of [a, b] with at least 4N units (parts within
// about 25% of each other), else the highest with at least N (every part has work), else a.
int PartLevel(const Pyramid& py, int64_t shard, int a, int b, int parts) {
  if (parts <= 1) return b;
  int enough = -1;
  for (int k = b; k >= a; --k) {
    int64_t nz, ny;
    UnitGrid(py, shard, k, &nz, &ny);
    if (nz * ny >= 4 * static_cast<int64_t>(parts)) return k;
    if (enough < 0 && nz * ny >= parts) enough = k;
  }
  return enough >= 0 ? enough : a;
}

Result<Plan> MakePlan(const Session& s, const MaterializeOptions& o) {
  const Pyramid& py = s.engine->pyramid();
  Plan p;
  p.levels = py.levels();
  const int b = o.max_level < 0 ? py.levels() - 1 : o.max_level;
  p.min_level = o.min_level;
  if (p.min_level < 0 || b >= py.levels() || p.min_level > b)
    return InvalidArgumentError("--levels " + std::to_string(o.min_level) + "-" + std::to_string(b) +
                                ": levels must satisfy 0 <= A <= B <= " + std::to_string(py.levels() - 1));
  if (o.parts < 1 || o.part < 0 || o.part >= o.parts)
    return InvalidArgumentError("--part " + std::to_string(o.part + 1) + "/" + std::to_string(o.parts) +
                                ": expected i/N with 1 <= i <= N");
  p.tree = s.tree.get();
  p.shard = s.tree->shard();
  p.top = PartLevel(py, p.shard, p.min_level, b, o.parts);
  if (p.top < b) p.finish_top = b;
  UnitGrid(py, p.shard, p.top, &p.nz, &p.ny);
  const int64_t units = p.nz * p.ny;
  p.u0 = units * o.part / o.parts;
  p.u1 = units * (o.part + 1) / o.parts;
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
  for (int64_t u = p.u0; u < p.u1; ++u) n += UnitChunks(py, p, u / p.ny, u % p.ny);
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
  DestChunks(const FormatTree* tree, std::string tree_id, std::string dest, std::string units_dir)
      : tree_(tree), tree_id_(std::move(tree_id)), dest_(std::move(dest)), units_dir_(std::move(units_dir)) {}

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
        data = ReadFile(dest_ + "/" + tree_->DataFileRel(level, idx));
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
      LogWarning("DEST file " + tree_->DataFileRel(level, idx) + " does not match its manifest entry (" +
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
      auto manifest = ParseManifest(*text, tree_id_);  // other trees' manifests: not ours
      if (!manifest) continue;
      for (const ManifestEntry& m : *manifest) {
        Entry e;
        if (!tree_->ParseDataFileRel(m.rel, &e.level, &e.idx)) continue;
        e.empty = m.empty;
        e.size = m.size;
        e.hash = m.hash;
        entries_.push_back(e);
      }
    }
    std::sort(entries_.begin(), entries_.end(), Less);
  }

  const FormatTree* tree_;
  const std::string tree_id_;
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

// The run's file writes, on threads of their own: the engine reads, downsamples and encodes the
// next chunks while earlier ones are written and hashed (a pipeline, not phases). Files are
// queued per unit; a closed unit is finished (FinishFn: syncfs, then its manifest) by whichever
// thread completes its last file, so the engine never waits for a unit's writes either. The
// queue holds at most max_bytes of file bytes (one file more when empty): a full queue makes the
// engine's sink wait, so memory stays bounded and the writes set the pace when they are slower.
class FileWriter {
 public:
  struct Unit {
    std::string name;                    // manifest file name
    std::string where;                   // for errors: "5/0/1/*"
    std::vector<ManifestEntry> entries;  // guarded by the writer's mutex until finished
    int64_t pending = 0;
    bool closed = false;
    Status status;  // first failure (compute or write)
  };
  using FinishFn = std::function<void(Unit&)>;      // once per unit, no lock held
  using WrittenFn = std::function<void(uint64_t)>;  // bytes of each file written

  // fsync: units are synced (FinishFn); then each file's writeback starts as it is written.
  FileWriter(int threads, uint64_t max_bytes, std::string dest, bool fsync, FinishFn finish, WrittenFn written)
      : max_bytes_(max_bytes),
        dest_(std::move(dest)),
        fsync_(fsync),
        finish_(std::move(finish)),
        written_(std::move(written)) {
    for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~FileWriter() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  std::shared_ptr<Unit> Open(std::string name, std::string where) {
    auto u = std::make_shared<Unit>();
    u->name = std::move(name);
    u->where = std::move(where);
    std::lock_guard<std::mutex> l(mu_);
    ++open_units_;
    return u;
  }

  // Queues one data file: bytes (written at rel unless keep: already there and checked), or
  // nullptr (empty: any file at rel is removed). Waits while the queue is full.
  // The hash for the manifest is taken here, on the engine's thread, soon after the chunk was cut
  // or encoded there (on a writer thread it came from memory: uncompressed 2 GiB stack, --no-fsync,
  // 1.32-1.47 s against 1.27-1.36 s here, 19k against 13k page faults).
  void Put(const std::shared_ptr<Unit>& u, std::string rel, ChunkBytes bytes, bool keep) {
    const uint64_t size = bytes && !keep ? bytes->size() : 0;
    const uint64_t hash = bytes ? Xxh64(*bytes) : 0;
    std::unique_lock<std::mutex> l(mu_);
    space_cv_.wait(l, [&] { return queued_bytes_ == 0 || queued_bytes_ + size <= max_bytes_; });
    queued_bytes_ += size;
    ++u->pending;
    jobs_.push_back(Job{u, std::move(rel), std::move(bytes), keep, size, hash});
    cv_.notify_one();
  }

  // No more files for u; status: the unit's computation. Finishes u now if its files are written.
  void Close(const std::shared_ptr<Unit>& u, const Status& status) {
    bool finish;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!status.ok() && u->status.ok()) u->status = status;
      u->closed = true;
      finish = u->pending == 0;
    }
    if (finish) FinishUnit(*u);
  }

  // Waits until every opened unit is finished.
  void Drain() {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return open_units_ == 0; });
  }

 private:
  struct Job {
    std::shared_ptr<Unit> unit;
    std::string rel;
    ChunkBytes bytes;
    bool keep;
    uint64_t size;
    uint64_t hash;  // Xxh64 of bytes
  };

  void FinishUnit(Unit& u) {
    finish_(u);
    std::lock_guard<std::mutex> l(mu_);
    if (--open_units_ == 0) done_cv_.notify_all();
  }

  Status Write(const Job& j, ManifestEntry* e) {
    e->rel = j.rel;
    const std::string path = dest_ + "/" + j.rel;
    // Directories exist for every file row, empty or not, as in the mount.
    const std::string dir = path.substr(0, path.rfind('/'));
    bool known;
    {
      std::lock_guard<std::mutex> l(mu_);
      known = made_dirs_.count(dir) != 0;
    }
    if (!known) {
      OZ_RETURN_IF_ERROR(MakeDirs(dir));  // idempotent: concurrent callers are fine
      std::lock_guard<std::mutex> l(mu_);
      made_dirs_.insert(dir);
    }
    if (!j.bytes) {
      if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "remove " + path);
      e->empty = true;
      return OkStatus();
    }
    if (!j.keep) {  // else: this very file, checked against an earlier manifest just now
      AtomicWriteOptions wo;
      wo.fsync_file = false;  // one syncfs per unit instead (see FinishFn)
      wo.fsync_dir = false;
      wo.start_writeback = fsync_;  // the disk writes while the next files are computed
      wo.fault_site = "materialize";
      OZ_RETURN_IF_ERROR(WriteFileAtomic(path, *j.bytes, wo));
    }
    e->size = j.bytes->size();
    e->hash = j.hash;
    return OkStatus();
  }

  void Loop() {
    for (;;) {
      Job j;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        j = std::move(jobs_.front());
        jobs_.pop_front();
      }
      ManifestEntry e;
      Status st;
      try {
        st = Write(j, &e);
      } catch (const std::bad_alloc&) {
        st = ResourceExhaustedError("out of memory writing " + j.rel);
      }
      if (st.ok() && j.size) written_(j.size);
      bool finish;
      {
        std::lock_guard<std::mutex> l(mu_);
        queued_bytes_ -= j.size;
        if (st.ok())
          j.unit->entries.push_back(std::move(e));
        else if (j.unit->status.ok())
          j.unit->status = st;
        finish = --j.unit->pending == 0 && j.unit->closed;
      }
      space_cv_.notify_all();
      j.bytes.reset();  // the memory goes before the unit's finish (a syncfs) starts
      if (finish) FinishUnit(*j.unit);
    }
  }

  const uint64_t max_bytes_;
  const std::string dest_;
  const bool fsync_;
  FinishFn finish_;
  WrittenFn written_;
  std::mutex mu_;
  std::condition_variable cv_, space_cv_, done_cv_;
  std::deque<Job> jobs_;
  uint64_t queued_bytes_ = 0;
  int64_t open_units_ = 0;
  std::set<std::string> made_dirs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// True if every unit of plan's top level (all parts) has a manifest of this tree.
bool AllUnitsDone(const Plan& plan, const std::string& units_dir) {
  for (int64_t u = 0; u < plan.nz * plan.ny; ++u) {
    auto text = ReadFile(units_dir + "/" + UnitName(plan, u / plan.ny, u % plan.ny));
    if (!text.ok() || !ParseManifest(*text, plan.tree_id)) return false;
  }
  return true;
}

Plan AtLevel(const Session& s, Plan p, int k) {
  p.top = k;
  p.finish_top = -1;
  UnitGrid(s.engine->pyramid(), p.shard, k, &p.nz, &p.ny);
  p.u0 = 0;
  p.u1 = p.nz * p.ny;
  return p;
}

void AddCounts(const MaterializeCounts& a, MaterializeCounts* to) {
  to->chunks_total += a.chunks_total;
  to->chunks_done += a.chunks_done;
  to->chunks_written += a.chunks_written;
  to->chunks_from_cache += a.chunks_from_cache;
  to->chunks_kept += a.chunks_kept;
  to->chunks_skipped += a.chunks_skipped;
  to->chunks_empty += a.chunks_empty;
  to->units_failed += a.units_failed;
  to->bytes_written += a.bytes_written;
  to->files_deleted += a.files_deleted;
  to->lower_from_dest += a.lower_from_dest;
  to->lower_from_cache += a.lower_from_cache;
  to->source_bytes_read += a.source_bytes_read;
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
         "): " + std::to_string(ChunksInRun(py, *plan)) + " chunks of levels " + std::to_string(plan->min_level) + "-" +
         std::to_string(plan->top) + ", units " + std::to_string(plan->u0) + ".." + std::to_string(plan->u1 - 1) +
         " of " + std::to_string(plan->nz * plan->ny) + " (z-slabs x y-bands of level " + std::to_string(plan->top) +
         ")" +
         (plan->finish_top > plan->top
              ? "; levels " + std::to_string(plan->top + 1) + "-" + std::to_string(plan->finish_top) +
                    " are computed from them by the last part to finish (or --finish)"
              : std::string()) +
         "\n";
  return r;
}

namespace {

// Levels k+1..b computed from DEST's level k (written by --part runs), one run at a time: parts
// that complete together take turns on DEST's finish lock, and the later ones find the units done.
Result<MaterializeReport> FinishParts(Session& s, const MaterializeOptions& o, int k, int b,
                                      const MaterializeProgressFn& progress) {
  const std::string lock_path = o.dest + "/" + kStateDir + "/finish.lock";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "open " + lock_path);
  while (flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) {
      const int err = errno;
      close(fd);
      return ErrnoError(err, "lock " + lock_path);
    }
  LogInfo("all parts done: computing levels " + std::to_string(k + 1) + "-" + std::to_string(b) +
          " from DEST's level " + std::to_string(k));
  MaterializeOptions f = o;
  f.part = 0;
  f.parts = 1;
  f.finish = false;
  f.delete_extra = false;
  f.min_level = k + 1;
  f.max_level = b;
  auto r = Materialize(s, f, progress);
  close(fd);  // releases the lock
  return r;
}

}  // namespace

void AttachBase(Session& s) {
  if (s.options.base_dir.empty()) return;
  const std::string given = s.options.base_dir;
  auto unused = [&](const std::string& why) {
    const std::string m = "base=" + given + " is not used: " + why + "; chunks are computed from the source";
    LogWarning(m);
    s.warnings.push_back(m);
  };
  char buf[PATH_MAX];
  if (!realpath(given.c_str(), buf)) return unused(std::string("cannot open it (") + std::strerror(errno) + ")");
  const std::string dest = buf;
  if (!s.tree->DataFilesAreEngineChunks())
    return unused("format " + s.options.format + (s.tree->shard() > 1 ? " with shard" : "") +
                  ": its files are not read back yet (only unsharded zarr v2 trees are)");
  auto plan = MakePlan(s, MaterializeOptions{});
  if (!plan.ok()) return unused(plan.status().message());
  const std::string state_dir = dest + "/" + kStateDir;
  auto state = ReadFile(state_dir + "/state");
  if (!state.ok())
    return unused("it is not an omezarr-materialize destination (no " + std::string(kStateDir) + "/state)");
  if (state->find("tree " + plan->tree_id + "\n") == std::string::npos) {
    const std::string diff = ZarrayDifferences(dest, *s.tree);
    return unused(
        "it was written from another source state or with other options (" +
        (diff.empty() ? std::string("the source's fingerprint or an option that shapes the bytes differs") : diff) +
        ")");
  }
  s.base = std::make_unique<DestChunks>(s.tree.get(), plan->tree_id, dest, state_dir + "/units");
  s.engine->SetBase(s.base.get());
  LogInfo("base=" + dest + ": chunks listed in its unit manifests are served from it (checked by size and XXH64)");
}

Result<MaterializeReport> Materialize(Session& s, const MaterializeOptions& o, const MaterializeProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  OZ_ASSIGN_OR_RETURN(Plan plan, MakePlan(s, o));
  const std::string& dest = o.dest;
  const std::string state_dir = dest + "/" + kStateDir;
  const std::string units_dir = state_dir + "/units";
  if (o.finish) {
    if (o.parts > 1) return InvalidArgumentError("--finish: give it without --part (it finishes what the parts wrote)");
    // The highest level whose units (levels A..K, all parts) are all done; the levels above it
    // are computed from DEST.
    for (int k = plan.top; k >= plan.min_level; --k) {
      if (!AllUnitsDone(AtLevel(s, plan, k), units_dir)) continue;
      if (k == plan.top) {
        MaterializeOptions f = o;
        f.finish = false;
        return Materialize(s, f, progress);  // everything is done: skips it all
      }
      return FinishParts(s, o, k, plan.top, progress);
    }
    return InvalidArgumentError("--finish: DEST " + dest + " holds no complete set of --part units for levels " +
                                std::to_string(plan.min_level) + "-" + std::to_string(plan.top) +
                                " with these options; run the missing --part i/N jobs first (a re-run of a "
                                "part skips its finished units)");
  }
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
  DestChunks dest_chunks(plan.tree, plan.tree_id, dest, units_dir);
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
  // A unit is done when its files are written: then one syncfs and its manifest.
  auto finish_unit = [&](FileWriter::Unit& u) {
    Status us = u.status;
    if (us.ok() && o.fsync && dest_fd >= 0 && syncfs(dest_fd) != 0) us = ErrnoError(errno, "syncfs " + dest);
    if (us.ok()) us = WriteFileAtomic(units_dir + "/" + u.name, FormatManifest(plan.tree_id, std::move(u.entries)));
    if (us.ok()) return;
    LogError("unit " + u.where + " failed: " + us.ToString());
    std::lock_guard<std::mutex> l(mu);
    report.failed.push_back(u.where + " (and levels " + range + " below it): " + us.ToString());
    report.counts.units_failed++;
  };
  auto written = [&](uint64_t bytes) {
    std::lock_guard<std::mutex> l(mu);
    report.counts.bytes_written += bytes;
  };
  // Queued file bytes: within the memory= slack (at most 96 MiB, at least two 4 MiB chunks).
  const uint64_t queue_bytes = std::clamp<uint64_t>(s.options.memory / 8, 8ull << 20, 96ull << 20);
  auto writer =
      std::make_unique<FileWriter>(static_cast<int>(s.pool->size()), queue_bytes, dest, o.fsync, finish_unit, written);
  // The queue's chunks, one more it admits when empty, and one being cut per thread.
  s.engine->PrepareTreeWalks(queue_bytes + (s.pool->size() + 1) * s.engine->raw_chunk_bytes());
  for (int64_t ui = plan.u0; ui < plan.u1; ++ui) {
    const int64_t zu = ui / plan.ny, yu = ui % plan.ny;
    {
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
      const std::string where =
          (plan.levels > 1 ? std::to_string(plan.top) + "/" : std::string()) +
          (n == 1 ? std::to_string(zu) + "/" + std::to_string(yu)
                  : "chunk rows " + std::to_string(zu * n) + ".." + std::to_string(zu * n + n - 1) + "/" +
                        std::to_string(yu * n) + ".." + std::to_string(yu * n + n - 1)) +
          "/*";
      std::shared_ptr<FileWriter::Unit> unit = writer->Open(unit_name, where);
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
          writer->Put(unit, s.tree->DataFileRel(level, idx), std::move(file), origin == kFromDest);
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
        std::string shard = s.tree->AssembleShard(done);
        writer->Put(unit, s.tree->DataFileRel(level, sidx),
                    shard.empty() ? nullptr : std::make_shared<const std::string>(std::move(shard)), false);
        return OkStatus();
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
      writer->Close(unit, us);
    }
  }
  writer->Drain();
  writer.reset();
  if (dest_fd >= 0) close(dest_fd);
  report.counts.lower_from_dest = existing.lower_from_dest;
  report.counts.lower_from_cache = existing.lower_from_cache;
  report.counts.source_bytes_read = s.stats.source_bytes_read - source_bytes0;

  // --part: the levels above the parts' level are computed by the part that completes the set.
  if (plan.finish_top > plan.top && report.failed.empty()) {
    if (AllUnitsDone(AtLevel(s, plan, plan.top), units_dir)) {
      auto f = FinishParts(s, o, plan.top, plan.finish_top, progress);
      if (!f.ok()) return f.status();
      AddCounts(f->counts, &report.counts);
      report.failed.insert(report.failed.end(), f->failed.begin(), f->failed.end());
    } else {
      LogInfo("part " + std::to_string(o.part + 1) + "/" + std::to_string(o.parts) + " done; levels " +
              std::to_string(plan.top + 1) + "-" + std::to_string(plan.finish_top) +
              " are computed by the last part to finish (or by --finish once all parts are done)");
    }
  }

  if (o.delete_extra) {
    if (!report.failed.empty()) {
      LogWarning("--delete skipped: some units failed");
    } else {
      // The tree's files: metadata plus every file listed by the manifests of all units.
      const auto all_meta = s.tree->DocumentPaths();
      std::set<std::string> keep(all_meta.begin(), all_meta.end());
      bool complete = true;
      for (int64_t zc = 0; zc < plan.nz && complete; ++zc)
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
