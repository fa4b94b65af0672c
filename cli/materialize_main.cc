// omezarr-materialize: writes the tree a mount of SOURCE would show into DEST (core only, no FUSE).
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

#include "core/base/log.h"
#include "core/session/materialize.h"
#include "core/version.h"
#include "mountopts/mount_options.h"

namespace {

const char kHelp[] =
    "usage: omezarr-materialize SOURCE DEST [-o opt[,opt...]] [options]\n"
    "\n"
    "Writes into DEST exactly the OME-Zarr tree that `omezarrfs SOURCE MNT -o ...` shows, byte for\n"
    "byte: SOURCE and -o are the mount's (see omezarrfs --help; mount-only options are ignored).\n"
    "Memory stays within -o memory= (default 1G). Files appear atomically; a re-run resumes, skipping\n"
    "the work already done (per top-level unit, recorded in DEST/.omezarr-materialize/).\n"
    "Chunks that exist already are reused, not recomputed: DEST's own files from earlier runs with the\n"
    "same SOURCE and options (so --levels A-B builds on the levels below A in DEST, not the source),\n"
    "and with -o cache=DIR the chunks a mount with that cache computed (read-only: the mount may be\n"
    "running; a cache of other options is simply not hit).\n"
    "\n"
    "options:\n"
    "  --levels A-B   write only levels A..B (default: all); levels below A come from DEST when an\n"
    "                 earlier run wrote them (not yet for sharded formats), else from the source\n"
    "  --part i/N     write the i-th of N disjoint shares, 1 <= i <= N: the units (z-slabs x y-bands)\n"
    "                 of a level K chosen from N (the highest with at least 4N units; with shard=S,\n"
    "                 S x S chunk rows, so shards never straddle parts) with the levels below it;\n"
    "                 the part that completes the set computes the levels above K from DEST. All N\n"
    "                 parts, run anywhere, concurrently and in any order on one DEST, give the full tree\n"
    "  --finish       compute the levels above the parts' level K from DEST (what the last part does;\n"
    "                 for a final job after an array of parts); fails if some part's units are missing\n"
    "  --dry-run      print per level shape, chunk count and bytes, and the disk estimate; write nothing\n"
    "  --verify       re-hash the files of units already done and redo any that differ\n"
    "  --delete       remove files in DEST that are not part of the tree (once the whole tree is written)\n"
    "  --overwrite    write into a non-empty DEST that this tool did not write (or wrote with other options)\n"
    "  --quiet        no progress output\n"
    "  --no-fsync     do not sync DEST before recording each unit as done (faster; a power loss may\n"
    "                 leave files that a later run trusts)\n"
    "  -h, --help     this text;  -V, --version  the version\n"
    "\n"
    "Exit status: 0 when every chunk is written; 1 when some units failed (listed; the rest is\n"
    "written and a re-run retries only the failed ones); 2 for usage errors.\n";

void Err(const std::string& m) { std::fprintf(stderr, "omezarr-materialize: %s\n", m.c_str()); }

bool ParseRange(const std::string& s, int* a, int* b) {
  int n = 0;
  if (std::sscanf(s.c_str(), "%d-%d%n", a, b, &n) == 2 && n == static_cast<int>(s.size())) return true;
  if (std::sscanf(s.c_str(), "%d%n", a, &n) == 1 && n == static_cast<int>(s.size())) {
    *b = *a;
    return true;
  }
  return false;
}

std::string Duration(double s) {
  char b[32];
  if (s < 60)
    std::snprintf(b, sizeof b, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(b, sizeof b, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string source, dest;
  oz::Options options;
  oz::MountFlags flags;
  oz::MaterializeOptions mo;
  bool dry_run = false, quiet = false;
  int lo = 0, hi = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        Err(std::string(name) + " needs a value");
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::printf("omezarr-materialize %s\n", OMEZARRFS_VERSION);
      return 0;
    } else if (a == "-o" || (a.rfind("-o", 0) == 0 && a.size() > 2)) {
      const std::string v = a == "-o" ? value("-o") : a.substr(2);
      if (oz::Status s = oz::ParseOptionString(v, &options, &flags); !s.ok()) {
        Err(s.message());
        return 2;
      }
    } else if (a == "--levels") {
      if (!ParseRange(value("--levels"), &lo, &hi)) {
        Err("--levels " + std::string(argv[i]) + ": expected A-B (e.g. 0-5) or one level");
        return 2;
      }
    } else if (a == "--part") {
      int pi = 0, pn = 0, n = 0;
      std::string v = value("--part");
      if (std::sscanf(v.c_str(), "%d/%d%n", &pi, &pn, &n) != 2 || n != static_cast<int>(v.size()) || pn < 1 || pi < 1 ||
          pi > pn) {
        Err("--part " + v + ": expected i/N with 1 <= i <= N, e.g. --part 3/8");
        return 2;
      }
      mo.part = pi - 1;
      mo.parts = pn;
    } else if (a == "--finish") {
      mo.finish = true;
    } else if (a == "--dry-run") {
      dry_run = true;
    } else if (a == "--verify") {
      mo.verify = true;
    } else if (a == "--delete") {
      mo.delete_extra = true;
    } else if (a == "--overwrite") {
      mo.overwrite = true;
    } else if (a == "--quiet" || a == "-q") {
      quiet = true;
    } else if (a == "--no-fsync") {
      mo.fsync = false;
    } else if (!a.empty() && a[0] == '-') {
      Err("unknown option '" + a + "' (see omezarr-materialize --help)");
      return 2;
    } else if (source.empty()) {
      source = a;
    } else if (dest.empty()) {
      dest = a;
    } else {
      Err("unexpected argument '" + a + "': expected SOURCE DEST");
      return 2;
    }
  }
  if (mo.finish && mo.parts > 1) {
    Err("--finish runs after the --part jobs, without --part");
    return 2;
  }
  if (source.empty() || dest.empty()) {
    Err("expected SOURCE and DEST (see omezarr-materialize --help)");
    return 2;
  }
  if (!flags.log_level.empty() && flags.log_level != "info")
    oz::SetLogLevel(flags.log_level == "debug"     ? oz::LogLevel::kDebug
                    : flags.log_level == "warning" ? oz::LogLevel::kWarning
                                                   : oz::LogLevel::kError);
  if (!flags.log_file.empty()) oz::SetLogFile(flags.log_file);
  mo.dest = dest;
  mo.cache_dir = options.cache_dir;  // only an explicit -o cache=DIR is shared
  mo.min_level = lo;
  mo.max_level = hi;

  if (options.prebuild >= 0) {
    Err("-o prebuild=" + std::to_string(options.prebuild) +
        " is a mount option (a background build into the mount's cache); omezarr-materialize writes levels "
        "itself: use --levels " +
        std::to_string(options.prebuild) + "-B instead");
    return 2;
  }
  oz::SessionParams sp;
  sp.source = source;
  sp.options = options;
  sp.use_cache = false;
  auto session = oz::OpenSession(sp);
  if (!session.ok()) {
    Err("cannot read " + source + ": " + session.status().message());
    return 1;
  }
  if (dry_run) {
    std::fputs(oz::DryRunReport(**session, mo).c_str(), stdout);
    return 0;
  }

  const bool tty = isatty(2);
  std::mutex mu;
  auto t0 = std::chrono::steady_clock::now();
  auto last = t0 - std::chrono::hours(1);
  auto show = [&](const oz::MaterializeCounts& c, bool final) {
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - t0).count();
    const double mbs = secs > 0 ? static_cast<double>(c.bytes_written) / 1e6 / secs : 0;
    const double frac = c.chunks_total ? static_cast<double>(c.chunks_done) / static_cast<double>(c.chunks_total) : 1;
    const std::string eta = frac > 0 && frac < 1 ? " ETA " + Duration(secs / frac - secs) : "";
    char line[256];
    if (tty) {
      char bar[31];
      const int w = static_cast<int>(frac * 30);
      for (int i = 0; i < 30; ++i) bar[i] = i < w ? '#' : '-';
      bar[30] = 0;
      std::snprintf(line, sizeof line, "[%s] %llu/%llu chunks %.1f MB/s%s", bar,
                    static_cast<unsigned long long>(c.chunks_done), static_cast<unsigned long long>(c.chunks_total),
                    mbs, eta.c_str());
      // The logger prints its lines above the bar and redraws it; a bar wider than the terminal
      // would wrap, and erasing would leave its first part behind.
      std::string_view text(line);
      if (winsize ws{}; ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && text.size() >= ws.ws_col)
        text = text.substr(0, ws.ws_col - 1);
      oz::ShowStatusLine(text);
      if (final) oz::EndStatusLine();
    } else {
      std::snprintf(line, sizeof line, "progress: %llu/%llu chunks (%.1f%%), %.1f MB/s%s\n",
                    static_cast<unsigned long long>(c.chunks_done), static_cast<unsigned long long>(c.chunks_total),
                    frac * 100, mbs, eta.c_str());
      std::fputs(line, stderr);
    }
  };
  oz::MaterializeProgressFn progress;
  if (!quiet)
    progress = [&](const oz::MaterializeCounts& c) {
      std::lock_guard<std::mutex> l(mu);
      const auto now = std::chrono::steady_clock::now();
      if (now - last < (tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000))) return;
      last = now;
      show(c, false);
    };
  auto report = oz::Materialize(**session, mo, progress);
  if (!report.ok()) {
    oz::EndStatusLine();  // keep the last bar, print below it
    Err(report.status().message());
    return 1;
  }
  const oz::MaterializeCounts& c = report->counts;
  if (!quiet) show(c, true);
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::fprintf(stderr,
               "omezarr-materialize: %llu chunks: %llu written (%llu copied from the cache), %llu kept (already "
               "in DEST), %llu skipped (already done), %llu empty, %zu units failed; %.1f MB written in %.1f s%s\n",
               u(c.chunks_total), u(c.chunks_written), u(c.chunks_from_cache), u(c.chunks_kept), u(c.chunks_skipped),
               u(c.chunks_empty), report->failed.size(), static_cast<double>(c.bytes_written) / 1e6, report->seconds,
               c.files_deleted ? (", " + std::to_string(c.files_deleted) + " extra files deleted").c_str() : "");
  std::string lower;
  if (lo > 0)
    lower = "; chunks of levels below " + std::to_string(lo) + " read from DEST: " + std::to_string(c.lower_from_dest) +
            ", from the cache: " + std::to_string(c.lower_from_cache);
  std::fprintf(stderr, "omezarr-materialize: source bytes read: %llu%s\n", u(c.source_bytes_read), lower.c_str());
  if (!report->failed.empty()) {
    std::fprintf(stderr, "omezarr-materialize: failed (re-run to retry them):\n");
    for (const std::string& f : report->failed) std::fprintf(stderr, "  %s\n", f.c_str());
    return 1;
  }
  return 0;
}
