// Decodes every strip or tile of every *.tif / *.tiff slice in DIR with N threads (one slice
// per thread at a time, libtiff only) and prints one JSON line: slices, decoded bytes, seconds.
// This is the decode bound the mount's cold read of a compressed stack is compared against.
//
//   oz_bench_tiff_decode DIR [--threads N]
#include <dirent.h>
#include <tiffio.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--threads N]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int threads = 2;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  std::vector<std::string> files;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      auto ends = [&n](const char* s) {
        size_t k = std::strlen(s);
        return n.size() > k && strcasecmp(n.c_str() + n.size() - k, s) == 0;
      };
      if (ends(".tif") || ends(".tiff")) files.push_back(dir + "/" + n);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "no slices in %s\n", dir.c_str());
    return 1;
  }
  TIFFSetWarningHandler(nullptr);

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> decoded{0}, pieces{0};
  std::atomic<bool> failed{false};
  auto t0 = std::chrono::steady_clock::now();
  auto worker = [&] {
    std::vector<unsigned char> buf;
    for (size_t i; (i = next++) < files.size() && !failed;) {
      TIFF* tif = TIFFOpen(files[i].c_str(), "r");
      if (tif == nullptr) {
        failed = true;
        break;
      }
      const bool tiled = TIFFIsTiled(tif);
      const tmsize_t size = tiled ? TIFFTileSize(tif) : TIFFStripSize(tif);
      const uint32_t n = tiled ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
      buf.resize(static_cast<size_t>(size));
      for (uint32_t k = 0; k < n; ++k) {
        tmsize_t r =
            tiled ? TIFFReadEncodedTile(tif, k, buf.data(), size) : TIFFReadEncodedStrip(tif, k, buf.data(), size);
        if (r < 0) {
          std::fprintf(stderr, "decode error in %s piece %u\n", files[i].c_str(), k);
          failed = true;
          break;
        }
        decoded += static_cast<uint64_t>(r);
      }
      pieces += n;
      TIFFClose(tif);
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"slices\": %zu, \"pieces\": %llu, \"decoded_bytes\": %llu, \"seconds\": %.6f, "
      "\"threads\": %d, \"mb_per_s\": %.1f}\n",
      files.size(), static_cast<unsigned long long>(pieces.load()), static_cast<unsigned long long>(decoded.load()), s,
      threads, decoded.load() / s / 1e6);
  return failed ? 1 : 0;
}
