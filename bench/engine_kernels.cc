// oz_bench_engine_kernels: the engine's cost per kernel, side by side in one run, on one
// in-memory uint16 volume (so the kernels, not TIFF decoding, set the pace: a conservative ratio).
//  - "coarsest": a cold engine with a disk cache (the mount's path) reads the coarsest level's
//    chunks; every level below is computed once on the way.
//  - "materialize": ComputeTree over all top units, all levels (materialize's path, no cache).
// For gaussian vs mean (target <= 1.5) on a smooth image and mode vs mean on labels (target
// <= 2), median of --reps runs.
//
//   oz_bench_engine_kernels [--edge 256] [--chunk 64] [--levels 4] [--reps 3] [--threads 2]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/engine/chunk_engine.h"
#include "core/source/view.h"

namespace {

class MemVolume : public oz::Volume {
 public:
  MemVolume(oz::Vec3 s, std::vector<uint16_t> v) : s_(s), v_(std::move(v)) {}
  oz::Vec3 shape() const override { return s_; }
  oz::DType dtype() const override { return oz::DType::kUint16; }
  oz::Status ReadBox(const oz::Box& b, void* out) override {
    oz::CopyRegion(reinterpret_cast<const uint8_t*>(v_.data()), s_, b.lo, static_cast<uint8_t*>(out), b.shape(),
                   {0, 0, 0}, b.shape(), 2);
    return oz::OkStatus();
  }
  std::string Fingerprint() const override { return "bench"; }
  std::string Describe() const override { return "bench volume"; }

 private:
  oz::Vec3 s_;
  std::vector<uint16_t> v_;
};

struct Setup {
  int64_t chunk = 64;
  int levels = 4;
  int threads = 2;
};

double Ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::unique_ptr<oz::ChunkEngine> Make(std::shared_ptr<oz::ViewVolume> view, oz::Algorithm a, const Setup& st,
                                      oz::DiskCache* cache, oz::ThreadPool* pool, oz::Stats* stats) {
  oz::Options o;
  o.chunk = st.chunk;
  o.levels = st.levels;
  o.algorithm = a;
  oz::ChunkEngineConfig cfg;
  cfg.options = o;
  cfg.pool = pool;
  cfg.stats = stats;
  cfg.cache = cache;
  auto e = oz::ChunkEngine::Make(view, cfg);
  if (!e.ok()) {
    std::fprintf(stderr, "%s\n", e.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(e).value();
}

// Cold coarsest level through a fresh disk cache.
double Coarsest(std::shared_ptr<oz::ViewVolume> view, oz::Algorithm a, const Setup& st) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("oz-bench-ek-" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(dir);
  oz::ThreadPool pool(st.threads);
  oz::Stats stats;
  double ms;
  {
    auto cache = oz::DiskCache::Open(oz::DiskCacheOptions{dir, 8ull << 30, &stats});
    if (!cache.ok()) std::exit(1);
    auto e = Make(view, a, st, cache->get(), &pool, &stats);
    const int top = st.levels - 1;
    const oz::Vec3 g = e->pyramid().grid(top);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t z = 0; z < g[0]; ++z)
      for (int64_t y = 0; y < g[1]; ++y)
        for (int64_t x = 0; x < g[2]; ++x)
          if (auto r = e->GetChunk(top, {z, y, x}); !r.ok() && r.status().code() != oz::ErrorCode::kNotFound) {
            std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
            std::exit(1);
          }
    ms = Ms(t0);
  }  // the engine drains its cache writes before the cache closes
  std::filesystem::remove_all(dir);
  return ms;
}

double Materialize(std::shared_ptr<oz::ViewVolume> view, oz::Algorithm a, const Setup& st) {
  oz::ThreadPool pool(st.threads);
  oz::Stats stats;
  auto e = Make(view, a, st, nullptr, &pool, &stats);
  const int top = st.levels - 1;
  const oz::Vec3 g = e->pyramid().grid(top);
  size_t bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t z = 0; z < g[0]; ++z)
    for (int64_t y = 0; y < g[1]; ++y) {
      auto s = e->ComputeTree(top, z, y, 0, [&](int, const oz::Vec3&, const oz::Result<oz::ChunkBytes>& r, int) {
        if (r.ok()) bytes += (*r)->size();
        return oz::OkStatus();
      });
      if (!s.ok()) std::exit(1);
    }
  const double ms = Ms(t0);
  if (bytes == 0) std::fprintf(stderr, "(no bytes)\n");
  return ms;
}

template <typename F>
double Median(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) t.push_back(f());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t edge = 256;
  int reps = 3;
  Setup st;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--edge") edge = std::atoll(argv[i + 1]);
    if (k == "--chunk") st.chunk = std::atoll(argv[i + 1]);
    if (k == "--levels") st.levels = std::atoi(argv[i + 1]);
    if (k == "--reps") reps = std::atoi(argv[i + 1]);
    if (k == "--threads") st.threads = std::atoi(argv[i + 1]);
  }
  const oz::Vec3 s{edge, edge + 3, edge + 5};  // odd: edge chunks and halos at the borders
  const size_t n = static_cast<size_t>(s[0] * s[1] * s[2]);
  std::vector<uint16_t> image(n), labels(n);
  std::mt19937 rng(1);
  const int64_t p = 4, np = (s[2] + p - 1) / p;
  std::vector<uint16_t> patch(static_cast<size_t>(np * np * np));
  for (auto& v : patch) v = static_cast<uint16_t>(rng() % 64);
  for (int64_t z = 0; z < s[0]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[2]; ++x) {
        const size_t i = static_cast<size_t>((z * s[1] + y) * s[2] + x);
        image[i] = static_cast<uint16_t>(20000 + 100 * (z % 50) + 30 * (y % 70) + 7 * x + (rng() >> 28));
        labels[i] = patch[static_cast<size_t>(((z / p) * np + y / p) * np + x / p)];
      }
  auto view_of = [&](std::vector<uint16_t> v) {
    oz::Options o;
    auto src = std::make_shared<MemVolume>(s, std::move(v));
    auto g = oz::ComputeViewGeometry(s, o);
    return std::make_shared<oz::ViewVolume>(src, *g, false);
  };
  auto img = view_of(image), lab = view_of(labels);
  std::printf("shape %s uint16, chunk %lld, %d levels, %d threads, median of %d\n", oz::ToString(s).c_str(),
              static_cast<long long>(st.chunk), st.levels, st.threads, reps);
  const double cm = Median(reps, [&] { return Coarsest(img, oz::Algorithm::kMean, st); });
  const double cg = Median(reps, [&] { return Coarsest(img, oz::Algorithm::kGaussian, st); });
  const double mm = Median(reps, [&] { return Materialize(img, oz::Algorithm::kMean, st); });
  const double mg = Median(reps, [&] { return Materialize(img, oz::Algorithm::kGaussian, st); });
  const double lm = Median(reps, [&] { return Materialize(lab, oz::Algorithm::kMean, st); });
  const double lo = Median(reps, [&] { return Materialize(lab, oz::Algorithm::kMode, st); });
  std::printf("cold coarsest level (cache): mean %8.1f ms  gaussian %8.1f ms  ratio %.2f (target <= 1.5)\n", cm, cg,
              cg / cm);
  std::printf("ComputeTree all levels:      mean %8.1f ms  gaussian %8.1f ms  ratio %.2f (target <= 1.5)\n", mm, mg,
              mg / mm);
  std::printf("labels, ComputeTree all:     mean %8.1f ms  mode     %8.1f ms  ratio %.2f (target <= 2)\n", lm, lo,
              lo / lm);
  return 0;
}
