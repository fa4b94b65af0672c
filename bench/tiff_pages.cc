// Times TiffStack::Open (the header scan a mount does) and a full read of the volume (ReadBox of
// every C^3 box in z/y/x order, slices decoded in parallel on N threads) for one TIFF source: a
// directory of slices or one multi-page file. A fresh TiffStack (and strip cache) per repetition;
// prints one JSON line with the median seconds. bench/run_multipage_bench.sh compares the two
// layouts of the same data with it.
//
//   oz_bench_tiff_pages SOURCE [--threads N] [--chunk C] [--reps R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/source/tiff_stack.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOURCE [--threads N] [--chunk C] [--reps R]\n", argv[0]);
    return 2;
  }
  const std::string source = argv[1];
  int threads = 2, reps = 3;
  int64_t chunk = 128;
  for (int i = 2; i < argc; ++i) {
    auto next = [&]() { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::max(1, next());
    } else if (std::strcmp(argv[i], "--chunk") == 0) {
      chunk = std::max(1, next());
    } else if (std::strcmp(argv[i], "--reps") == 0) {
      reps = std::max(1, next());
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  oz::ThreadPool pool(threads);
  std::vector<double> open_s, read_s;
  oz::Vec3 shape{};
  uint64_t bytes = 0;
  std::string describe;
  for (int r = 0; r < reps; ++r) {
    oz::TiffStackOptions o;
    o.pool = &pool;
    o.memory_bytes = 384ull << 20;  // 3/8 of the default memory=1G, as a mount
    auto t0 = std::chrono::steady_clock::now();
    auto stack = oz::TiffStack::Open(source, o);
    open_s.push_back(Since(t0));
    if (!stack.ok()) {
      std::fprintf(stderr, "%s\n", stack.status().ToString().c_str());
      return 1;
    }
    shape = (*stack)->shape();
    describe = (*stack)->Describe();
    const size_t voxel = oz::DTypeSize((*stack)->dtype());
    std::vector<uint8_t> buf(static_cast<size_t>(chunk * chunk * chunk) * voxel);
    bytes = 0;
    t0 = std::chrono::steady_clock::now();
    for (int64_t z = 0; z < shape[0]; z += chunk)
      for (int64_t y = 0; y < shape[1]; y += chunk)
        for (int64_t x = 0; x < shape[2]; x += chunk) {
          oz::Box b{{z, y, x},
                    {std::min(z + chunk, shape[0]), std::min(y + chunk, shape[1]), std::min(x + chunk, shape[2])}};
          oz::Status st = (*stack)->ReadBox(b, buf.data());
          if (!st.ok()) {
            std::fprintf(stderr, "%s\n", st.ToString().c_str());
            return 1;
          }
          bytes += static_cast<uint64_t>(b.volume()) * voxel;
        }
    read_s.push_back(Since(t0));
  }
  std::printf(
      "{\"source\": \"%s\", \"describe\": \"%s\", \"shape\": [%lld, %lld, %lld], \"threads\": %d, \"chunk\": %lld, "
      "\"reps\": %d, \"open_s\": %.4f, \"read_s\": %.4f, \"read_mib_s\": %.1f}\n",
      source.c_str(), describe.c_str(), static_cast<long long>(shape[0]), static_cast<long long>(shape[1]),
      static_cast<long long>(shape[2]), threads, static_cast<long long>(chunk), reps, Median(open_s), Median(read_s),
      static_cast<double>(bytes) / (1 << 20) / Median(read_s));
  return 0;
}
