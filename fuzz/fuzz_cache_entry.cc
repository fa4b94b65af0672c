// Fuzzes the disk cache's reading of entry files (a damaged or hostile cache directory): the
// input replaces the file of a stored entry, then Get must return a miss or exactly bytes whose
// checksum matched; never crash, hang, or read out of bounds. The cache stays usable after.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "core/base/log.h"
#include "core/store/disk_cache.h"

namespace {

struct Fixture {
  std::string dir;
  std::string entry_path;
  std::unique_ptr<oz::DiskCache> cache;
};

Fixture& Get() {
  static Fixture* fx = [] {
    auto* f = new Fixture;                  // never freed (still reachable): the exit handler uses it
    oz::SetLogLevel(oz::LogLevel::kError);  // corrupt entries are the normal case here
    char tmpl[] = "/tmp/oz_fuzz_cache_XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    f->dir = tmpl;
    std::atexit([] { std::filesystem::remove_all(Get().dir); });
    return f;
  }();
  return *fx;
}

const char kKey[] = "ozchunk1|fuzz|0/0/0/0";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& fx = Get();
  if (!fx.cache) {
    auto c = oz::DiskCache::Open(oz::DiskCacheOptions{fx.dir, 1 << 20, nullptr});
    if (!c.ok()) std::abort();
    fx.cache = std::move(c).value();
  }
  // (Re)create the entry so the index knows it, then put the input in its place.
  if (!fx.cache->Put(kKey, oz::CacheEntry{0, "seed"}).ok()) std::abort();
  if (fx.entry_path.empty()) {
    for (auto& e : std::filesystem::recursive_directory_iterator(fx.dir + "/v1"))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') fx.entry_path = e.path().string();
  }
  FILE* f = std::fopen(fx.entry_path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto got = fx.cache->Get(kKey);
  if (got && got->data.size() > size) __builtin_trap();  // bytes can only come from the file
  // Still usable: a fresh Put and Get round-trip.
  if (!fx.cache->Put(kKey, oz::CacheEntry{1, "after"}).ok()) std::abort();
  auto again = fx.cache->Get(kKey);
  if (!again || again->data != "after" || again->flags != 1) __builtin_trap();
  return 0;
}
