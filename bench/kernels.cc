// oz_bench_kernels: the 2x kernels on one in-memory volume, one thread. For each algorithm and
// dtype it builds the full pyramid (level 1 to 1 voxel per axis, each level from the previous,
// as the engine does) and prints the median time over --reps runs and the ratios the kernel issue
// asks for: mode / mean on uint16 labels (target <= 2) and every dtype's mean byte rate against
// uint16's (uint64 target: >= 1 / 1.1), and gaussian / mean for the kernel alone.
//
//   oz_bench_kernels [--edge 256] [--reps 5] [--labels 64]
// The volume: labels in 4^3-voxel patches (a segmentation-like field: most 2x2x2 blocks hold one
// or two values), the same integers in every dtype.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/pyramid/downsample.h"

namespace {

template <typename F>
double MedianMs(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <typename T>
std::vector<T> Convert(const std::vector<uint32_t>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(v[i]);
  return out;
}

// Full pyramid of `in` (shape s); returns the checksum of the coarsest level so nothing is
// optimised away.
double Pyramid(oz::Algorithm a, oz::DType d, const void* in, oz::Vec3 s, std::vector<uint8_t>* bufa,
               std::vector<uint8_t>* bufb) {
  const size_t bpv = oz::DTypeSize(d);
  const void* src = in;
  std::vector<uint8_t>* out = bufa;
  while (s[0] > 1 || s[1] > 1 || s[2] > 1) {
    const oz::Vec3 o = oz::DownsampledShape(s);
    out->resize(static_cast<size_t>(o[0] * o[1] * o[2]) * bpv);
    oz::Downsample2x(a, d, src, s, out->data());
    src = out->data();
    s = o;
    out = out == bufa ? bufb : bufa;
  }
  return static_cast<const uint8_t*>(src)[0];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t edge = 256;
  int reps = 5;
  uint32_t labels = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--edge") edge = std::atoll(argv[i + 1]);
    if (k == "--reps") reps = std::atoi(argv[i + 1]);
    if (k == "--labels") labels = static_cast<uint32_t>(std::atoi(argv[i + 1]));
  }
  const oz::Vec3 s{edge, edge, edge};
  std::vector<uint32_t> base(static_cast<size_t>(edge * edge * edge));
  std::mt19937 rng(1);
  const int64_t p = 4, np = (edge + p - 1) / p;
  std::vector<uint32_t> patch(static_cast<size_t>(np * np * np));
  for (auto& v : patch) v = rng() % labels;
  for (int64_t z = 0; z < edge; ++z)
    for (int64_t y = 0; y < edge; ++y)
      for (int64_t x = 0; x < edge; ++x)
        base[static_cast<size_t>((z * edge + y) * edge + x)] =
            patch[static_cast<size_t>(((z / p) * np + y / p) * np + x / p)];

  auto u8 = Convert<uint8_t>(base);
  auto u16 = Convert<uint16_t>(base);
  auto u32 = Convert<uint32_t>(base);
  auto u64 = Convert<uint64_t>(base);
  auto i16 = Convert<int16_t>(base);
  auto f32 = Convert<float>(base);
  struct In {
    oz::DType d;
    const void* p;
  };
  const In ins[] = {{oz::DType::kUint8, u8.data()},   {oz::DType::kUint16, u16.data()},
                    {oz::DType::kUint32, u32.data()}, {oz::DType::kUint64, u64.data()},
                    {oz::DType::kInt16, i16.data()},  {oz::DType::kFloat32, f32.data()}};
  const oz::Algorithm algs[] = {oz::Algorithm::kMean, oz::Algorithm::kNearest, oz::Algorithm::kMax,
                                oz::Algorithm::kMin,  oz::Algorithm::kMode,    oz::Algorithm::kGaussian};
  std::vector<uint8_t> a, b;
  double sink = 0, ms[6][6] = {};
  std::printf("edge %lld, %u labels in 4^3 patches, full pyramid, median of %d, one thread\n",
              static_cast<long long>(edge), labels, reps);
  std::printf("%-8s %10s %10s %10s %10s %10s %10s   (ms)\n", "dtype", "mean", "nearest", "max", "min", "mode",
              "gaussian");
  for (int di = 0; di < 6; ++di) {
    std::printf("%-8s", std::string(oz::DTypeName(ins[di].d)).c_str());
    for (int ai = 0; ai < 6; ++ai) {
      ms[di][ai] = MedianMs(reps, [&] { sink += Pyramid(algs[ai], ins[di].d, ins[di].p, s, &a, &b); });
      std::printf(" %10.1f", ms[di][ai]);
    }
    std::printf("\n");
  }
  const double bytes16 = static_cast<double>(base.size()) * 2;
  std::printf("mode / mean, uint16: %.2f (target <= 2)\n", ms[1][4] / ms[1][0]);
  std::printf("gaussian / mean, uint16 (kernel alone): %.2f\n", ms[1][5] / ms[1][0]);
  for (int di = 0; di < 6; ++di) {
    const double bytes = static_cast<double>(base.size()) * static_cast<double>(oz::DTypeSize(ins[di].d));
    std::printf("%-8s mean byte rate / uint16's: %.2f   mode byte rate / uint16 mode's: %.2f\n",
                std::string(oz::DTypeName(ins[di].d)).c_str(), (bytes / ms[di][0]) / (bytes16 / ms[1][0]),
                (bytes / ms[di][4]) / (bytes16 / ms[1][4]));
  }
  std::fprintf(stderr, "(checksum %g)\n", sink);
  return 0;
}
