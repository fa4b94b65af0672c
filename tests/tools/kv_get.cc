// kv_get: reads keys from an HTTP(S) KvStore (optionally behind the disk-cached store) and prints
// one line per key, for the HTTP integration tests and for benchmarks.
//
//   kv_get URL [-o OPTS]... [--threads N] [--max-bytes SIZE] [--cache DIR] [--cache-all]
//          [--no-cache-absent] [--generation S] KEY...
//
// -o takes the omezarrfs option syntax (max_connections=, timeout=, retries=, netrc=, log_level=,
// ...). Output, in argument order, then the counters:
//   KEY ok size=N xxh64=HEX validator=V attempts=A
//   KEY absent attempts=A
//   KEY error CODE attempts=A: MESSAGE
//   stat NAME VALUE
// attempts = HTTP requests made for that key (redirect hops included); "-" with --threads > 1.
// Exit status: 0 if every key was read or absent, 1 if any failed, 2 for usage or open errors.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/store/cached_kv_store.h"
#include "core/store/disk_cache.h"
#include "core/store/http_store.h"
#include "mountopts/mount_options.h"

namespace {

int Usage(const std::string& why) {
  std::fprintf(stderr,
               "kv_get: %s\nusage: kv_get URL [-o OPTS]... [--threads N] [--max-bytes SIZE] [--cache DIR] "
               "[--cache-all] [--no-cache-absent] [--generation S] KEY...\n",
               why.c_str());
  return 2;
}

struct Line {
  std::string text;
  bool failed = false;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace oz;
  if (argc < 2) return Usage("missing URL");
  std::string url;
  Options options;
  MountFlags flags;
  int threads = 1;
  uint64_t max_bytes = 256ull << 20;
  std::string cache_dir;
  CachedKvStoreOptions cache_options;
  std::vector<std::string> keys;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* what) -> std::string {
      if (i + 1 >= argc) {
        std::exit(Usage(std::string(what) + " needs a value"));
      }
      return argv[++i];
    };
    if (a == "-o") {
      Status st = ParseOptionString(next("-o"), &options, &flags);
      if (!st.ok()) return Usage(st.message());
    } else if (a == "--threads") {
      threads = std::atoi(next("--threads").c_str());
      if (threads < 1 || threads > 1024) return Usage("--threads must be 1..1024");
    } else if (a == "--max-bytes") {
      Result<uint64_t> r = ParseByteSize(next("--max-bytes"));
      if (!r.ok()) return Usage(r.status().message());
      max_bytes = *r;
    } else if (a == "--cache") {
      cache_dir = next("--cache");
    } else if (a == "--cache-all") {
      cache_options.cacheable = [](std::string_view) { return true; };
    } else if (a == "--no-cache-absent") {
      cache_options.cache_absent = false;
    } else if (a == "--generation") {
      cache_options.generation = next("--generation");
    } else if (url.empty()) {
      url = a;
    } else {
      keys.push_back(a);
    }
  }
  if (url.empty()) return Usage("missing URL");
  const std::string& lvl = flags.log_level;
  SetLogLevel(lvl == "debug"     ? LogLevel::kDebug
              : lvl == "warning" ? LogLevel::kWarning
              : lvl == "error"   ? LogLevel::kError
                                 : LogLevel::kInfo);
  if (!flags.log_file.empty()) SetLogFile(flags.log_file);

  Stats stats;
  Result<std::unique_ptr<KvStore>> opened = OpenHttpStore(url, options.http, &stats);
  if (!opened.ok()) {
    std::fprintf(stderr, "kv_get: %s\n", opened.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<KvStore> store = std::move(opened).value();
  std::unique_ptr<DiskCache> cache;
  if (!cache_dir.empty()) {
    DiskCacheOptions co;
    co.dir = cache_dir;
    co.max_bytes = 1ull << 30;
    co.stats = &stats;
    Result<std::unique_ptr<DiskCache>> c = DiskCache::Open(co);
    if (!c.ok()) {
      std::fprintf(stderr, "kv_get: %s\n", c.status().ToString().c_str());
      return 2;
    }
    cache = std::move(c).value();
    store = std::make_unique<CachedKvStore>(std::move(store), cache.get(), &stats, cache_options);
  }

  std::vector<Line> lines(keys.size());
  std::atomic<size_t> next_key{0};
  auto worker = [&] {
    for (size_t k; (k = next_key.fetch_add(1)) < keys.size();) {
      const uint64_t before = stats.http_requests.load();
      Result<std::optional<KvValue>> r = store->Read(keys[k], max_bytes);
      const std::string attempts = threads == 1 ? std::to_string(stats.http_requests.load() - before) : "-";
      Line& line = lines[k];
      line.text = keys[k] + " ";
      if (!r.ok()) {
        line.failed = true;
        line.text += "error " + std::string(ErrorCodeName(r.status().code())) + " attempts=" + attempts + ": " +
                     r.status().message();
      } else if (!r->has_value()) {
        line.text += "absent attempts=" + attempts;
      } else {
        const KvValue& v = **r;
        char hash[17];
        std::snprintf(hash, sizeof hash, "%016" PRIx64, Xxh64(v.data));
        line.text += "ok size=" + std::to_string(v.data.size()) + " xxh64=" + hash + " validator=" + v.validator +
                     " attempts=" + attempts;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();

  bool failed = false;
  for (const Line& line : lines) {
    std::printf("%s\n", line.text.c_str());
    failed |= line.failed;
  }
  std::string text = stats.ToText();
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::printf("stat %s\n", text.substr(start, end - start).c_str());
    start = end + 1;
  }
  return failed ? 1 : 0;
}
