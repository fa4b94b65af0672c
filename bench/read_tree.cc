// Reads every chunk file of a zarr array directory (DIR/z/y/x) with N threads and prints one
// JSON line: files read, bytes, absent chunks (ENOENT) and wall seconds. The same code reads a
// mount and a plain directory, so their times compare directly.
//
//   oz_bench_read_tree DIR [--threads N] [--grid NZ,NY,NX] [--buf BYTES]
//
// Default (walk) mode: list DIR and each DIR/z (timed), then the workers take the (z,y) rows in
// z/y order from a shared counter; each lists its row and reads the row's files in x order.
// On an omezarrfs mount with empty=omit, listing a row computes that row's chunks.
// --grid mode: no listing; the workers take the chunk indices z/y/x in order and open each
// path as a zarr client does, counting ENOENT as an absent (empty) chunk.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_failed{false};

void Fail(const std::string& what) {
  std::fprintf(stderr, "read_tree: %s: %s\n", what.c_str(), std::strerror(errno));
  g_failed = true;
}

// Numeric entries of a directory, sorted by value ("." and ".zarray" etc. skipped).
std::vector<long> ListNumeric(const std::string& dir) {
  std::vector<long> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    Fail("opendir " + dir);
    return out;
  }
  while (dirent* e = readdir(d)) {
    const char* n = e->d_name;
    if (*n < '0' || *n > '9') continue;
    char* end = nullptr;
    long v = std::strtol(n, &end, 10);
    if (*end == '\0') out.push_back(v);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

struct Totals {
  std::atomic<uint64_t> files{0}, bytes{0}, absent{0};
};

// Reads a whole file; returns false on ENOENT (absent), aborts the run on other errors.
bool ReadFile(const std::string& path, char* buf, size_t bufsize, Totals& t) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      t.absent++;
      return false;
    }
    Fail("open " + path);
    return false;
  }
  uint64_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf, bufsize);
    if (r < 0) {
      if (errno == EINTR) continue;
      Fail("read " + path);
      break;
    }
    if (r == 0) break;
    n += static_cast<uint64_t>(r);
  }
  close(fd);
  t.files++;
  t.bytes += n;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--threads N] [--grid NZ,NY,NX] [--buf BYTES]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int threads = 2;
  size_t bufsize = 1 << 20;
  long gz = 0, gy = 0, gx = 0;
  bool grid = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--buf" && i + 1 < argc) {
      bufsize = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--grid" && i + 1 < argc) {
      grid = std::sscanf(argv[++i], "%ld,%ld,%ld", &gz, &gy, &gx) == 3;
      if (!grid) {
        std::fprintf(stderr, "bad --grid\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }

  Totals t;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::pair<long, long>> rows;  // (z, y) in z/y order (walk mode)
  if (!grid) {
    for (long z : ListNumeric(dir))
      for (long y : ListNumeric(dir + "/" + std::to_string(z))) rows.emplace_back(z, y);
  }
  std::atomic<uint64_t> next{0};
  auto worker = [&] {
    std::unique_ptr<char[]> buf(new char[bufsize]);
    if (grid) {
      const uint64_t total = static_cast<uint64_t>(gz * gy * gx);
      for (uint64_t i; (i = next++) < total && !g_failed;) {
        long x = static_cast<long>(i % gx), y = static_cast<long>(i / gx % gy), z = static_cast<long>(i / gx / gy);
        ReadFile(dir + "/" + std::to_string(z) + "/" + std::to_string(y) + "/" + std::to_string(x), buf.get(), bufsize,
                 t);
      }
    } else {
      for (uint64_t i; (i = next++) < rows.size() && !g_failed;) {
        std::string row = dir + "/" + std::to_string(rows[i].first) + "/" + std::to_string(rows[i].second);
        for (long x : ListNumeric(row)) ReadFile(row + "/" + std::to_string(x), buf.get(), bufsize, t);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"files\": %llu, \"bytes\": %llu, \"absent\": %llu, \"seconds\": %.6f, \"threads\": %d, "
      "\"mode\": \"%s\"}\n",
      static_cast<unsigned long long>(t.files.load()), static_cast<unsigned long long>(t.bytes.load()),
      static_cast<unsigned long long>(t.absent.load()), s, threads, grid ? "grid" : "walk");
  return g_failed ? 1 : 0;
}
