// Writes a list of files (sizes and relative paths, as a materialized tree has them) under DEST
// with N threads and prints one JSON line: files, bytes, seconds. This is the write bound
// omezarr-materialize is compared against: the same names and sizes, no computing, no encoding,
// plain writes (no temp + rename, no fsync; the caller times a `sync` after it). All files are
// written from one buffer, which stays in the CPU's cache: so are materialize's, which writes each
// chunk right after cutting it into a pooled buffer, so a source buffer larger than the CPU's
// caches would measure memory reads materialize does not do. (The 3.7-4.2 s once blamed on such a
// buffer were the VM's cold memory: see warm_memory() in materialize_bench.py.)
//
//   oz_bench_write_tree LIST DEST [--threads N]
//   LIST: one file per line, "SIZE RELATIVE/PATH" (decimal bytes, one space, the path to the end
//   of the line). Parent directories are created. Threads take files in list order.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Item {
  uint64_t size;
  std::string rel;
};

// mkdir -p of every missing component; true on success (EEXIST is success).
bool MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    const std::string part = path.substr(0, i);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s LIST DEST [--threads N]\n", argv[0]);
    return 2;
  }
  const std::string list = argv[1], dest = argv[2];
  int threads = 2;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  std::vector<Item> items;
  {
    std::ifstream in(list);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", list.c_str());
      return 1;
    }
    std::string line;
    while (std::getline(in, line)) {
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || sp + 1 >= line.size()) continue;
      items.push_back({std::strtoull(line.c_str(), nullptr, 10), line.substr(sp + 1)});
    }
  }
  uint64_t largest = 0;
  for (const Item& it : items) largest = std::max(largest, it.size);
  // One buffer of the largest file, pseudo-random (a file system that compresses sees no zeros).
  std::vector<char> buf(std::max<uint64_t>(largest, 1));
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (char& c : buf) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    c = static_cast<char>(s);
  }

  std::mutex dirs_mu;
  std::set<std::string> dirs;  // guarded by dirs_mu: directories known to exist
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> failed{false};
  const auto t0 = std::chrono::steady_clock::now();
  auto worker = [&] {
    for (size_t i; (i = next++) < items.size() && !failed;) {
      const std::string path = dest + "/" + items[i].rel;
      const std::string dir = path.substr(0, path.rfind('/'));
      bool known;
      {
        std::lock_guard<std::mutex> l(dirs_mu);
        known = dirs.count(dir) != 0;
      }
      if (!known) {
        if (!MakeDirs(dir)) {
          std::fprintf(stderr, "mkdir %s: %s\n", dir.c_str(), std::strerror(errno));
          failed = true;
          return;
        }
        std::lock_guard<std::mutex> l(dirs_mu);
        dirs.insert(dir);
      }
      const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        std::fprintf(stderr, "open %s: %s\n", path.c_str(), std::strerror(errno));
        failed = true;
        return;
      }
      uint64_t done = 0;
      while (done < items[i].size) {
        const ssize_t n = write(fd, buf.data() + done, items[i].size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          std::fprintf(stderr, "write %s: %s\n", path.c_str(), std::strerror(errno));
          failed = true;
          break;
        }
        done += static_cast<uint64_t>(n);
      }
      close(fd);
      bytes += done;
    }
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) ts.emplace_back(worker);
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (failed) return 1;
  std::printf("{\"files\": %zu, \"bytes\": %llu, \"threads\": %d, \"seconds\": %.4f}\n", items.size(),
              static_cast<unsigned long long>(bytes.load()), threads, secs);
  return 0;
}
