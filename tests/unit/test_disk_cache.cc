// DiskCache: round trips, on-disk format, persistence, LRU, corruption, locking, failures, threads.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/base/log.h"
#include "core/store/disk_cache.h"
#include "core/store/mountinfo.h"
#include "testing/temp_dir.h"

namespace oz {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kHeader = 32;  // entry header size (format v1)

using testing::TempDir;

// Captures warnings while alive (the log sink is process-wide).
struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  LogCapture() {
    SetLogSink([this](LogLevel, std::string_view m) {
      std::lock_guard<std::mutex> l(mu);
      lines.emplace_back(m);
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }
  std::string All() {
    std::lock_guard<std::mutex> l(mu);
    std::string s;
    for (const auto& line : lines) s += line + "\n";
    return s;
  }
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
}

void SetMtimeAgo(const std::string& path, int seconds) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = ::time(nullptr) - seconds;
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

// All regular files in DIR/v1/<fan-out>/, including temps.
std::vector<fs::path> FilesUnder(const std::string& dir) {
  std::vector<fs::path> out;
  if (!fs::exists(dir + "/v1")) return out;
  for (const auto& fan : fs::directory_iterator(dir + "/v1")) {
    if (!fan.is_directory()) continue;
    for (const auto& e : fs::directory_iterator(fan.path())) {
      if (e.is_regular_file()) out.push_back(e.path());
    }
  }
  return out;
}

// Maps stored key -> entry file, by reading the key out of each header (test-side format parser).
std::map<std::string, std::string> EntryFilesByKey(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& p : FilesUnder(dir)) {
    std::string bytes = Slurp(p.string());
    if (bytes.size() < kHeader) continue;
    uint32_t key_len;
    std::memcpy(&key_len, bytes.data() + 20, 4);
    if (kHeader + key_len > bytes.size()) continue;
    out[bytes.substr(kHeader, key_len)] = p.string();
  }
  return out;
}

uint64_t SizeOnDisk(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& p : FilesUnder(dir)) total += fs::file_size(p);
  return total;
}

std::unique_ptr<DiskCache> OpenCache(const std::string& dir, uint64_t max_bytes = 1 << 30, Stats* stats = nullptr) {
  DiskCacheOptions o;
  o.dir = dir;
  o.max_bytes = max_bytes;
  o.stats = stats;
  auto r = DiskCache::Open(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

CacheEntry Entry(std::string data, uint32_t flags = 0) {
  CacheEntry e;
  e.flags = flags;
  e.data = std::move(data);
  return e;
}

TEST_CASE("DiskCache::Get reads into the caller's buffer, whatever its size and contents") {
  TempDir t;
  Stats stats;
  auto cache = OpenCache(t.path + "/cache", 1 << 30, &stats);
  std::string data(100000, '\0');
  std::mt19937 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  REQUIRE(cache->Put("k", Entry(data, 5)).ok());
  for (size_t have : {size_t{0}, size_t{10}, data.size(), 3 * data.size()}) {
    std::vector<size_t> asked;
    const char* storage = nullptr;
    auto e = cache->Get("k", [&](size_t n) {
      asked.push_back(n);
      std::string s(have, 'g');  // stale bytes, of another size
      s.reserve(std::max(have, n));
      storage = s.data();
      return s;
    });
    REQUIRE(e.has_value());
    CHECK(asked == std::vector<size_t>{data.size()});
    CHECK(e->data == data);
    CHECK(e->flags == 5);
    if (have >= data.size()) CHECK(e->data.data() == storage);  // that buffer, not a copy
  }
  bool called = false;
  CHECK_FALSE(cache
                  ->Get("absent",
                        [&](size_t) {
                          called = true;
                          return std::string();
                        })
                  .has_value());
  CHECK_FALSE(called);  // a miss takes no buffer
}

TEST_CASE("DiskCache round-trips entries and reports misses") {
  TempDir t;
  Stats stats;
  auto cache = OpenCache(t.path + "/cache", 1 << 30, &stats);
  std::string big(1 << 20, '\0');
  std::mt19937 rng(42);
  for (auto& c : big) c = static_cast<char>(rng());

  REQUIRE(cache->Put("empty", Entry("", 0)).ok());
  REQUIRE(cache->Put("flags", Entry("abc", 0xdeadbeef)).ok());
  REQUIRE(cache->Put("big", Entry(big, 1)).ok());
  CHECK(cache->entry_count() == 3);
  CHECK(cache->total_bytes() == 3 * kHeader + 5 + 5 + 3 + 3 + big.size());
  CHECK(cache->total_bytes() == SizeOnDisk(cache->dir()));

  auto e = cache->Get("empty");
  REQUIRE(e.has_value());
  CHECK(e->data.empty());
  CHECK(e->flags == 0);
  auto f = cache->Get("flags");
  REQUIRE(f.has_value());
  CHECK(f->data == "abc");
  CHECK(f->flags == 0xdeadbeef);
  auto b = cache->Get("big");
  REQUIRE(b.has_value());
  CHECK(b->data == big);
  CHECK(b->flags == 1);

  CHECK_FALSE(cache->Get("absent").has_value());
  CHECK(cache->Contains("flags"));
  CHECK_FALSE(cache->Contains("absent"));
  CHECK(stats.cache_hits == 3);
  CHECK(stats.cache_misses == 1);
  CHECK(stats.cache_corrupt == 0);

  // Overwrite: same name, new content and size.
  REQUIRE(cache->Put("flags", Entry("longer data", 2)).ok());
  CHECK(cache->Get("flags")->data == "longer data");
  CHECK(cache->entry_count() == 3);
  CHECK(cache->total_bytes() == SizeOnDisk(cache->dir()));
}

TEST_CASE("DiskCache on-disk format v1 is stable") {
  // If this fails you changed the entry format or the naming hash: keep v1 readable or move the
  // layout to DIR/v2 (old caches are then ignored, never misread).
  TempDir t;
  auto cache = OpenCache(t.path);
  REQUIRE(cache->Put("golden-key", Entry("hello, cache", 7)).ok());
  // Name: first 128 bits of SHA-256("golden-key"); checksum: XXH64 (cross-checked with libxxhash).
  const std::string path = t.path + "/v1/62/518b7ee254c5426695f549d536d62c";
  const std::string golden_hex =
      "4f5a433101000000a38e37e8d741833f070000000a0000000c00000000000000"
      "676f6c64656e2d6b657968656c6c6f2c206361636865";
  std::string golden;
  for (size_t i = 0; i < golden_hex.size(); i += 2) {
    golden.push_back(static_cast<char>(std::stoi(golden_hex.substr(i, 2), nullptr, 16)));
  }
  REQUIRE(fs::exists(path));
  CHECK(Slurp(path) == golden);
  CHECK(FilesUnder(t.path).size() == 1);
}

TEST_CASE("DiskCache entries persist across close and reopen") {
  TempDir t;
  {
    auto cache = OpenCache(t.path);
    for (int i = 0; i < 5; ++i)
      REQUIRE(cache->Put("k" + std::to_string(i), Entry(std::string(100 * i, 'a' + i), i)).ok());
  }
  auto cache = OpenCache(t.path);
  CHECK(cache->entry_count() == 5);
  CHECK(cache->total_bytes() == SizeOnDisk(t.path));
  for (int i = 0; i < 5; ++i) {
    auto e = cache->Get("k" + std::to_string(i));
    REQUIRE(e.has_value());
    CHECK(e->data == std::string(100 * i, 'a' + i));
    CHECK(e->flags == static_cast<uint32_t>(i));
  }
}

TEST_CASE("DiskCache evicts least recently used entries under its budget") {
  TempDir t;
  Stats stats;
  const std::string data(1000, 'd');
  const uint64_t entry_size = kHeader + 2 + data.size();  // keys are 2 bytes
  auto cache = OpenCache(t.path, 3 * entry_size, &stats);
  REQUIRE(cache->Put("k0", Entry(data)).ok());
  REQUIRE(cache->Put("k1", Entry(data)).ok());
  REQUIRE(cache->Put("k2", Entry(data)).ok());
  REQUIRE(cache->Get("k0").has_value());  // k1 is now the least recently used
  REQUIRE(cache->Put("k3", Entry(data)).ok());
  CHECK(cache->Contains("k0"));
  CHECK_FALSE(cache->Contains("k1"));
  CHECK(cache->Contains("k2"));
  CHECK(cache->Contains("k3"));
  CHECK(stats.cache_evictions == 1);
  CHECK(cache->total_bytes() == 3 * entry_size);
  CHECK(SizeOnDisk(t.path) == 3 * entry_size);
  CHECK_FALSE(cache->Get("k1").has_value());

  SECTION("an entry larger than the budget is not stored") {
    REQUIRE(cache->Put("huge", Entry(std::string(3 * entry_size, 'h'))).ok());
    CHECK_FALSE(cache->Contains("huge"));
    CHECK(cache->entry_count() == 3);
    CHECK(stats.cache_evictions == 1);
  }
  SECTION("an entry exactly the budget evicts everything else") {
    REQUIRE(cache->Put("full", Entry(std::string(3 * entry_size - kHeader - 4, 'f'))).ok());
    CHECK(cache->entry_count() == 1);
    CHECK(cache->Get("full").has_value());
    CHECK(cache->total_bytes() == 3 * entry_size);
  }
}

TEST_CASE("DiskCache recency survives a restart through file mtimes") {
  TempDir t;
  const std::string data(1000, 'd');
  const uint64_t entry_size = kHeader + 2 + data.size();
  {
    auto cache = OpenCache(t.path);
    for (const char* k : {"k0", "k1", "k2"}) REQUIRE(cache->Put(k, Entry(data)).ok());
  }
  auto files = EntryFilesByKey(t.path);
  REQUIRE(files.size() == 3);
  // k0 is the oldest on disk; all are older than the touch interval.
  SetMtimeAgo(files["k0"], 7200);
  SetMtimeAgo(files["k1"], 3600);
  SetMtimeAgo(files["k2"], 1800);
  {
    auto cache = OpenCache(t.path, 3 * entry_size);
    REQUIRE(cache->Get("k0").has_value());  // a hit refreshes the file's mtime
  }
  struct stat st;
  REQUIRE(::stat(files["k0"].c_str(), &st) == 0);
  CHECK(st.st_mtime > ::time(nullptr) - 600);
  auto cache = OpenCache(t.path, 3 * entry_size);
  REQUIRE(cache->Put("k3", Entry(data)).ok());
  CHECK(cache->Contains("k0"));
  CHECK_FALSE(cache->Contains("k1"));  // now the oldest
  CHECK(cache->Contains("k2"));
}

TEST_CASE("DiskCache evicts at Open when the budget shrank") {
  TempDir t;
  const std::string data(1000, 'd');
  const uint64_t entry_size = kHeader + 2 + data.size();
  {
    auto cache = OpenCache(t.path);
    for (const char* k : {"k0", "k1", "k2", "k3"}) REQUIRE(cache->Put(k, Entry(data)).ok());
  }
  auto cache = OpenCache(t.path, 2 * entry_size);
  CHECK(cache->entry_count() == 2);
  CHECK(SizeOnDisk(t.path) == 2 * entry_size);
}

// Opens a cache with entries "a" and "b", damages a's file with `damage`, and checks that Get("a")
// is a counted miss that removes the file, and that "b" and a re-Put of "a" still work.
void CheckCorruptionDetected(const std::function<void(const std::string& file)>& damage, const char* reason) {
  TempDir t;
  Stats stats;
  LogCapture log;
  auto cache = OpenCache(t.path, 1 << 20, &stats);
  REQUIRE(cache->Put("a", Entry(std::string(5000, 'a'), 3)).ok());
  REQUIRE(cache->Put("b", Entry(std::string(5000, 'b'), 4)).ok());
  const std::string file = EntryFilesByKey(t.path).at("a");
  damage(file);

  CHECK_FALSE(cache->Get("a").has_value());
  CHECK(stats.cache_corrupt == 1);
  CHECK(stats.cache_misses == 1);
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(cache->Contains("a"));
  CHECK_THAT(log.All(), Catch::Contains(file) && Catch::Contains(reason));
  CHECK(cache->Get("b").has_value());
  CHECK(cache->total_bytes() == SizeOnDisk(t.path));

  REQUIRE(cache->Put("a", Entry(std::string(5000, 'a'), 3)).ok());
  auto again = cache->Get("a");
  REQUIRE(again.has_value());
  CHECK(again->data == std::string(5000, 'a'));
}

void FlipBit(const std::string& file, uint64_t offset) {
  std::string bytes = Slurp(file);
  REQUIRE(offset < bytes.size());
  bytes[offset] ^= 0x10;
  Spit(file, bytes);
}

TEST_CASE("DiskCache detects corrupt entries: a counted miss that removes the file") {
  SECTION("bit flip in data") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, fs::file_size(f) - 1); }, "checksum mismatch");
  }
  SECTION("bit flip in the middle of data") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, kHeader + 1 + 2500); }, "checksum mismatch");
  }
  SECTION("bit flip in magic") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, 1); }, "bad magic");
  }
  SECTION("bit flip in header version") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, 4); }, "header version");
  }
  SECTION("bit flip in stored checksum") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, 9); }, "checksum mismatch");
  }
  SECTION("bit flip in flags") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, 16); }, "checksum mismatch");
  }
  SECTION("bit flip in key length") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, 20); }, "header says");
  }
  SECTION("bit flip in data length") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, 25); }, "header says");
  }
  SECTION("bit flip in key") {
    CheckCorruptionDetected([](const std::string& f) { FlipBit(f, kHeader); }, "stored key differs");
  }
  SECTION("truncated by one byte") {
    CheckCorruptionDetected([](const std::string& f) { fs::resize_file(f, fs::file_size(f) - 1); }, "header says");
  }
  SECTION("truncated inside the header") {
    CheckCorruptionDetected([](const std::string& f) { fs::resize_file(f, 10); }, "truncated");
  }
  SECTION("empty file") {
    CheckCorruptionDetected([](const std::string& f) { fs::resize_file(f, 0); }, "truncated");
  }
  SECTION("extended by a byte") {
    CheckCorruptionDetected([](const std::string& f) { Spit(f, Slurp(f) + "x"); }, "header says");
  }
  SECTION("garbage content at an entry's name") {
    CheckCorruptionDetected(
        [](const std::string& f) {
          std::string junk(300, '\0');
          std::mt19937 rng(7);
          for (auto& c : junk) c = static_cast<char>(rng());
          Spit(f, junk);
        },
        "bad magic");
  }
}

TEST_CASE("DiskCache detects entry files swapped with each other") {
  TempDir t;
  Stats stats;
  LogCapture log;
  auto cache = OpenCache(t.path, 1 << 20, &stats);
  REQUIRE(cache->Put("a", Entry("data of a")).ok());
  REQUIRE(cache->Put("b", Entry("data of b")).ok());
  auto files = EntryFilesByKey(t.path);
  const std::string tmp = t.path + "/swap";
  fs::rename(files["a"], tmp);
  fs::rename(files["b"], files["a"]);
  fs::rename(tmp, files["b"]);

  CHECK_FALSE(cache->Get("a").has_value());
  CHECK_FALSE(cache->Get("b").has_value());
  CHECK(stats.cache_corrupt == 2);
  CHECK_THAT(log.All(), Catch::Contains("stored key differs"));
  CHECK(FilesUnder(t.path).empty());
  CHECK(cache->entry_count() == 0);
  CHECK(cache->total_bytes() == 0);
}

TEST_CASE("DiskCache Open sweeps every temp (old or young) and stray files, keeps what is not its own") {
  TempDir t;
  std::string fan;
  {
    auto cache = OpenCache(t.path);
    REQUIRE(cache->Put("a", Entry("data")).ok());
    fan = fs::path(EntryFilesByKey(t.path).at("a")).parent_path().string();
  }
  Spit(fan + "/.tmp.0123456789abcdef", "stale temp");
  SetMtimeAgo(fan + "/.tmp.0123456789abcdef", 3600);
  // A young temp is a leftover too: only the lock holder writes here (e.g. a daemon killed a
  // moment ago), so a remount right after a kill -9 starts clean.
  Spit(fan + "/.tmp.fedcba9876543210", "temp of a process killed a moment ago");
  Spit(fan + "/notes.txt", "stray");
  Spit(fan + "/" + std::string(30, 'A'), "uppercase name: not ours");
  fs::create_directories(fan + "/subdir");
  Spit(t.path + "/v1/README", "not in a fan-out dir");
  fs::create_directories(t.path + "/v2/ab");
  Spit(t.path + "/v2/ab/" + std::string(30, '0'), "a future format");

  LogCapture log;
  auto cache = OpenCache(t.path);
  CHECK(cache->entry_count() == 1);
  CHECK(cache->Get("a").has_value());
  CHECK_FALSE(fs::exists(fan + "/.tmp.0123456789abcdef"));
  CHECK_FALSE(fs::exists(fan + "/.tmp.fedcba9876543210"));
  CHECK_FALSE(fs::exists(fan + "/notes.txt"));
  CHECK_FALSE(fs::exists(fan + "/" + std::string(30, 'A')));
  CHECK(fs::exists(fan + "/subdir"));
  CHECK(fs::exists(t.path + "/v1/README"));
  CHECK(fs::exists(t.path + "/v2/ab/" + std::string(30, '0')));
  CHECK_THAT(log.All(), Catch::Contains("removed 2 file(s)"));
}

TEST_CASE("DiskCache refuses a directory locked by another cache") {
  TempDir t;
  auto first = OpenCache(t.path);
  DiskCacheOptions o;
  o.dir = t.path;
  auto second = DiskCache::Open(o);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == ErrorCode::kUnavailable);
  CHECK_THAT(second.status().message(), Catch::Contains(t.path) &&
                                            Catch::Contains("pid " + std::to_string(::getpid())) &&
                                            Catch::Contains("-o cache=DIR"));
  first.reset();
  CHECK(DiskCache::Open(o).ok());
}

TEST_CASE("DiskCache refuses at once a holder that serves a mount still in its mount table") {
  TempDir t;
  auto first = OpenCache(t.path);
  // A mount this process certainly has: the root.
  std::optional<MountId> root;
  for (const MountInfoEntry& e : ParseMountInfo(Slurp("/proc/self/mountinfo")))
    if (e.mount_point == "/") root = MountId{e.mount_id, e.dev, e.mount_point};
  REQUIRE(root);
  REQUIRE(first->MarkServing(*root).ok());
  CHECK_THAT(Slurp(t.path + "/lock"), Catch::StartsWith(std::to_string(::getpid()) + " serving "));
  LogCapture log;
  DiskCacheOptions o;
  o.dir = t.path;
  o.exiting_owner_wait = std::chrono::milliseconds(60000);
  auto second = DiskCache::Open(o);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == ErrorCode::kUnavailable);
  CHECK_THAT(second.status().message(), Catch::Contains("is in use by another omezarrfs process (pid " +
                                                        std::to_string(::getpid()) + ", serving /)"));
  CHECK_THAT(log.All(), !Catch::Contains("waiting"));  // refused without waiting
}

TEST_CASE("DiskCache waits for a holder whose mount is gone, then takes the lock") {
  TempDir t;
  auto first = OpenCache(t.path);
  REQUIRE(first->MarkServing(MountId{999999999, "0:0", "/no/such mount"}).ok());
  LogCapture log;
  std::thread exiting([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    first.reset();  // releases the lock, as the process exit would
  });
  DiskCacheOptions o;
  o.dir = t.path;
  auto second = DiskCache::Open(o);
  exiting.join();
  INFO(second.status().ToString());
  REQUIRE(second.ok());
  CHECK_THAT(log.All(), Catch::Contains("is held by omezarrfs process pid " + std::to_string(::getpid()) +
                                        ", which is shutting down (its mount /no/such mount is gone); "
                                        "waiting up to 30 s for it to exit"));
  CHECK(std::count(log.lines.begin(), log.lines.end(), log.lines.front()) == 1);  // one line, not one per poll
  CHECK_THAT(Slurp(t.path + "/lock"), Catch::Equals(std::to_string(::getpid()) + " open\n"));
}

TEST_CASE("DiskCache gives up on an exiting holder after exiting_owner_wait, naming it") {
  TempDir t;
  auto first = OpenCache(t.path);
  REQUIRE(first->MarkExiting().ok());
  DiskCacheOptions o;
  o.dir = t.path;
  o.exiting_owner_wait = std::chrono::milliseconds(100);
  auto second = DiskCache::Open(o);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == ErrorCode::kUnavailable);
  CHECK_THAT(second.status().message(),
             Catch::Contains("still held by omezarrfs process pid " + std::to_string(::getpid())) &&
                 Catch::Contains("after waiting 100 ms") && Catch::Contains("its FUSE session has ended"));
  first.reset();
  CHECK(DiskCache::Open(o).ok());
}

TEST_CASE("DiskCache owner marks need the lock") {
  TempDir t;
  OpenCache(t.path).reset();
  DiskCacheOptions o;
  o.dir = t.path;
  auto ro = DiskCache::OpenReadOnly(o);
  REQUIRE(ro.ok());
  CHECK((*ro)->MarkExiting().code() == ErrorCode::kReadOnly);
  CHECK((*ro)->MarkServing(MountId{1, "0:1", "/x"}).code() == ErrorCode::kReadOnly);
}

TEST_CASE("ParseMountInfo reads ids, devices, decoded mount points and fstypes") {
  const std::string text =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "57 22 0:48 / /tmp/a\\040b\\134c rw,nosuid,nodev - fuse.omezarrfs /src rw,user_id=0\n"
      "58 22 0:49 / /mnt/x rw master:3 shared:9 - fuse.omezarrfs /src2 rw\n"
      "garbage line\n"
      "x 22 0:50 / /bad rw - tmpfs tmpfs rw\n"
      "59 22 0:51 / /no-separator rw tmpfs tmpfs rw\n"
      "60 22 0:52 / /last rw - tmpfs tmpfs rw";  // no final newline
  auto v = ParseMountInfo(text);
  REQUIRE(v.size() == 4);
  CHECK(v[0].mount_id == 22);
  CHECK(v[0].dev == "8:1");
  CHECK(v[0].mount_point == "/");
  CHECK(v[0].fstype == "ext4");
  CHECK(v[1].mount_id == 57);
  CHECK(v[1].dev == "0:48");
  CHECK(v[1].mount_point == "/tmp/a b\\c");
  CHECK(v[1].fstype == "fuse.omezarrfs");
  CHECK(v[2].mount_point == "/mnt/x");  // optional fields before the "-"
  CHECK(v[2].fstype == "fuse.omezarrfs");
  CHECK(v[3].mount_point == "/last");
}

TEST_CASE("ProcessHasMount sees this process's root mount and not a made-up one") {
  std::optional<MountId> root;
  for (const MountInfoEntry& e : ParseMountInfo(Slurp("/proc/self/mountinfo")))
    if (e.mount_point == "/") root = MountId{e.mount_id, e.dev, e.mount_point};
  REQUIRE(root);
  auto has = ProcessHasMount(::getpid(), *root);
  REQUIRE(has.ok());
  CHECK(*has);
  MountId other = *root;
  other.mount_point = "/elsewhere";
  CHECK_FALSE(*ProcessHasMount(::getpid(), other));
  CHECK(ProcessHasMount(0x7ffffff0, *root).status().code() == ErrorCode::kNotFound);
}

TEST_CASE("DiskCache lock held by another process is released when it dies") {
  TempDir t;
  REQUIRE(fs::create_directories(t.path + "/cache"));
  const std::string lock_path = t.path + "/cache/lock";
  int ready[2], go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Only async-signal-safe calls here: hold the lock the way an omezarrfs process does.
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
    char buf[24];
    int n = 0;
    for (pid_t p = ::getpid(); p > 0; p /= 10) buf[n++] = static_cast<char>('0' + p % 10);
    for (int i = 0; i < n / 2; ++i) std::swap(buf[i], buf[n - 1 - i]);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0 || ::write(fd, buf, n) != n) ::_exit(1);
    char c = 'r';
    if (::write(ready[1], &c, 1) != 1) ::_exit(1);
    while (::read(go[0], &c, 1) < 0) {
    }
    ::_exit(0);
  }
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);

  DiskCacheOptions o;
  o.dir = t.path + "/cache";
  auto held = DiskCache::Open(o);
  REQUIRE_FALSE(held.ok());
  CHECK(held.status().code() == ErrorCode::kUnavailable);
  CHECK_THAT(held.status().message(), Catch::Contains("pid " + std::to_string(child)));

  ::kill(child, SIGKILL);  // no cleanup: the kernel releases the flock
  int wstatus = 0;
  REQUIRE(::waitpid(child, &wstatus, 0) == child);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
  auto after = DiskCache::Open(o);
  INFO(after.status().ToString());
  CHECK(after.ok());
}

TEST_CASE("DiskCache Open fails clearly when the cache path is a file") {
  TempDir t;
  Spit(t.path + "/file", "x");
  DiskCacheOptions o;
  o.dir = t.path + "/file";
  auto r = DiskCache::Open(o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kNotDirectory);
  CHECK_THAT(r.status().message(), Catch::Contains(o.dir) && Catch::Contains("-o cache=DIR"));
  o.dir = "";
  CHECK(DiskCache::Open(o).status().code() == ErrorCode::kInvalidArgument);
}

// Returns a key whose entry lands in a different fan-out directory than `other`'s.
std::string KeyInOtherFanout(DiskCache& cache, const std::string& dir, const std::string& other) {
  const fs::path other_fan = fs::path(EntryFilesByKey(dir).at(other)).parent_path();
  for (int i = 0;; ++i) {
    std::string key = "probe" + std::to_string(i);
    REQUIRE(cache.Put(key, Entry("probe")).ok());
    if (fs::path(EntryFilesByKey(dir).at(key)).parent_path() != other_fan) return key;
  }
}

TEST_CASE("DiskCache Put fails cleanly when its directory is unwritable; Get still works") {
  // Tests run as root, where chmod does not stop writes. Instead the fan-out directory of one key
  // is replaced by a regular file, so creating the temp there fails (ENOTDIR) as a read-only or
  // broken directory would. As non-root, a chmod 0555 variant runs too.
  TempDir t;
  Stats stats;
  auto cache = OpenCache(t.path, 1 << 20, &stats);
  REQUIRE(cache->Put("keep", Entry("kept data")).ok());
  const std::string victim = KeyInOtherFanout(*cache, t.path, "keep");
  const std::string fan = fs::path(EntryFilesByKey(t.path).at(victim)).parent_path().string();

  SECTION("fan-out directory replaced by a file") {
    fs::remove_all(fan);
    Spit(fan, "in the way");
    Status s = cache->Put(victim, Entry("new data"));
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains(fan) && Catch::Contains(t.path));
    CHECK(stats.cache_put_failures == 1);
    CHECK_FALSE(cache->Contains(victim));
    CHECK_FALSE(cache->Get(victim).has_value());
    REQUIRE(cache->Get("keep").has_value());
    CHECK(cache->Get("keep")->data == "kept data");
    CHECK(cache->total_bytes() == SizeOnDisk(t.path));
  }
  SECTION("fan-out directory mode 0555 (non-root only)") {
    if (::geteuid() == 0) {
      WARN("running as root: chmod does not stop writes, skipping the chmod variant");
      return;
    }
    REQUIRE(::chmod(fan.c_str(), 0555) == 0);
    Status s = cache->Put(victim, Entry("new data"));
    ::chmod(fan.c_str(), 0755);
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == ErrorCode::kPermission);
    CHECK(cache->Get(victim).has_value());  // the old entry is still there and valid
    CHECK(cache->Get("keep").has_value());
    CHECK(cache->total_bytes() == SizeOnDisk(t.path));
  }
}

TEST_CASE("DiskCache survives its directory being deleted while open") {
  TempDir t;
  Stats stats;
  const std::string dir = t.path + "/cache";
  auto cache = OpenCache(dir, 1 << 20, &stats);
  REQUIRE(cache->Put("a", Entry("aaa")).ok());
  REQUIRE(cache->Put("b", Entry("bbb")).ok());
  fs::remove_all(dir);

  CHECK_FALSE(cache->Get("a").has_value());
  CHECK_FALSE(cache->Get("b").has_value());
  CHECK(stats.cache_corrupt == 0);  // gone is not corrupt
  CHECK(cache->entry_count() == 0);
  CHECK(cache->total_bytes() == 0);

  REQUIRE(cache->Put("c", Entry("ccc")).ok());  // recreates DIR/v1/xx
  auto c = cache->Get("c");
  REQUIRE(c.has_value());
  CHECK(c->data == "ccc");
  CHECK(cache->total_bytes() == SizeOnDisk(dir));
}

TEST_CASE("DiskCache stays consistent under concurrent Put/Get with a tight budget") {
  TempDir t;
  Stats stats;
  constexpr int kThreads = 8, kOps = 300, kKeys = 40, kVariants = 3;
  // Each key has a few variants of different sizes, so racing Puts of one key change its size;
  // flags name the variant, so a Get can check it got exactly one of them, whole.
  auto data_for = [](int k, int variant) {
    std::string d(static_cast<size_t>(200 + 97 * k + 13 * variant), '\0');
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<char>(k * 31 + variant * 7 + i);
    return d;
  };
  const uint64_t budget = 20000;  // ~8 of the 40 entries
  auto cache = OpenCache(t.path, budget, &stats);
  std::atomic<int> wrong{0}, put_errors{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      std::mt19937 rng(1000 + th);
      for (int op = 0; op < kOps; ++op) {
        int k = static_cast<int>(rng() % kKeys);
        std::string key = "key-" + std::to_string(k);
        if (rng() % 2) {
          int variant = static_cast<int>(rng() % kVariants);
          if (!cache->Put(key, Entry(data_for(k, variant), static_cast<uint32_t>(variant))).ok()) ++put_errors;
        } else if (auto e = cache->Get(key)) {
          if (e->flags >= kVariants || e->data != data_for(k, static_cast<int>(e->flags))) ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  CHECK(wrong == 0);
  CHECK(put_errors == 0);
  CHECK(stats.cache_corrupt == 0);
  CHECK(stats.cache_evictions > 0);
  CHECK(cache->total_bytes() <= budget);
  CHECK(cache->total_bytes() == SizeOnDisk(t.path));
  auto files = EntryFilesByKey(t.path);
  CHECK(files.size() == FilesUnder(t.path).size());  // no temps, nothing unreadable
  CHECK(cache->entry_count() == files.size());
  for (const auto& [key, path] : files) CHECK(cache->Contains(key));
}

// Every file and directory under dir with its size and mtime (ns): a read-only user changes none.
std::map<std::string, std::pair<uint64_t, int64_t>> Snapshot(const std::string& dir) {
  std::map<std::string, std::pair<uint64_t, int64_t>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st;
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    out[e.path().string()] = {S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0,
                              int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  }
  return out;
}

TEST_CASE("DiskCache OpenReadOnly reads a cache its owner holds locked, and changes nothing on disk") {
  TempDir t;
  auto owner = OpenCache(t.path);
  REQUIRE(owner->Put("a", Entry("data of a")).ok());
  REQUIRE(owner->Put("empty", Entry("", 1)).ok());
  REQUIRE(owner->Put("bad", Entry(std::string(3000, 'b'))).ok());
  REQUIRE(owner->Put("gone", Entry("evicted by the owner later")).ok());
  const auto files = EntryFilesByKey(t.path);
  FlipBit(files.at("bad"), kHeader + 3 + 100);
  const std::string fan = fs::path(files.at("a")).parent_path().string();
  Spit(fan + "/.tmp.0123456789abcdef", "stale temp");
  SetMtimeAgo(fan + "/.tmp.0123456789abcdef", 3600);
  Spit(fan + "/notes.txt", "stray");
  for (const auto& [key, path] : files) SetMtimeAgo(path, 3600);  // a hit would touch these
  const auto before = Snapshot(t.path);

  Stats stats;
  LogCapture log;
  DiskCacheOptions o;
  o.dir = t.path;
  o.stats = &stats;
  o.max_bytes = 1;  // ignored: nothing is evicted
  auto ro = DiskCache::OpenReadOnly(o);
  INFO(ro.status().ToString());
  REQUIRE(ro.ok());
  CHECK((*ro)->entry_count() == 4);
  CHECK((*ro)->Contains("a"));
  auto a = (*ro)->Get("a");
  REQUIRE(a.has_value());
  CHECK(a->data == "data of a");
  auto empty = (*ro)->Get("empty");
  REQUIRE(empty.has_value());
  CHECK(empty->flags == 1);
  CHECK_FALSE((*ro)->Get("bad").has_value());  // corrupt: a miss, left in place
  CHECK(stats.cache_corrupt == 1);
  CHECK_THAT(log.All(), Catch::Contains("left in place"));
  CHECK_FALSE((*ro)->Get("missing").has_value());
  auto put = (*ro)->Put("new", Entry("x"));
  CHECK(put.code() == ErrorCode::kReadOnly);
  CHECK(Snapshot(t.path) == before);  // no touch, sweep, stray removal, eviction or lock write

  // The owner goes on working; the reader sees the entries of its snapshot only.
  REQUIRE(owner->Put("later", Entry("after the reader opened")).ok());
  CHECK_FALSE((*ro)->Get("later").has_value());
  REQUIRE(fs::remove(files.at("gone")));
  CHECK_FALSE((*ro)->Get("gone").has_value());
  CHECK(owner->Get("a").has_value());
}

TEST_CASE("DiskCache OpenReadOnly of a directory without a cache creates nothing") {
  TempDir t;
  DiskCacheOptions o;
  o.dir = t.path + "/nothing-here";
  auto ro = DiskCache::OpenReadOnly(o);
  REQUIRE_FALSE(ro.ok());
  CHECK(ro.status().code() == ErrorCode::kNotFound);
  CHECK_THAT(ro.status().message(), Catch::Contains(o.dir));
  CHECK_FALSE(fs::exists(o.dir));
  Spit(t.path + "/v1", "a file, not a directory");
  o.dir = t.path;
  ro = DiskCache::OpenReadOnly(o);
  REQUIRE_FALSE(ro.ok());
  CHECK(ro.status().code() == ErrorCode::kNotDirectory);
}

TEST_CASE("DefaultCacheRoot follows XDG_CACHE_HOME, then HOME") {
  auto saved = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto restore = [](const char* name, const std::optional<std::string>& v) {
    if (v) {
      ::setenv(name, v->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  };
  const auto xdg = saved("XDG_CACHE_HOME"), home = saved("HOME");

  ::setenv("XDG_CACHE_HOME", "/x/cache", 1);
  ::setenv("HOME", "/home/u", 1);
  auto a = DefaultCacheRoot();
  ::setenv("XDG_CACHE_HOME", "", 1);
  auto b = DefaultCacheRoot();
  ::unsetenv("XDG_CACHE_HOME");
  ::unsetenv("HOME");
  auto c = DefaultCacheRoot();
  restore("XDG_CACHE_HOME", xdg);
  restore("HOME", home);

  REQUIRE(a.ok());
  CHECK(*a == "/x/cache/omezarrfs");
  REQUIRE(b.ok());
  CHECK(*b == "/home/u/.cache/omezarrfs");
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(c.status().message(), Catch::Contains("-o cache=DIR"));
}

}  // namespace
}  // namespace oz
