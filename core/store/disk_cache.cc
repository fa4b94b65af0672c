// DiskCache: hash-named entry files with a checksummed header, an in-memory LRU index over them,
// and an flock that makes one process the owner of the directory.
#include "core/store/disk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/base/hash.h"
#include "core/base/log.h"
#include "core/store/atomic_file.h"

namespace oz {
namespace {

// ---------------------------------------------------------------------------------------------
// Entry file format, version 1 (lives under DIR/v1; a change of layout or hash means DIR/v2).
//   offset  0  char[4]  magic "OZC1"
//   offset  4  u32      header version (1)
//   offset  8  u64      checksum: XXH64(data, seed = XXH64(bytes [16, 32 + key_len), seed 0))
//   offset 16  u32      flags (caller-defined)
//   offset 20  u32      key length
//   offset 24  u64      data length
//   offset 32  key bytes, then data bytes. Integers are little-endian.
// The checksum covers flags, both lengths, the key and the data; magic and version are compared.
// File name: DIR/v1/<h[0:2]>/<h[2:32]>, h = hex of the first 128 bits of SHA-256(key).
// ---------------------------------------------------------------------------------------------
constexpr char kMagic[4] = {'O', 'Z', 'C', '1'};
constexpr uint32_t kHeaderVersion = 1;
constexpr size_t kHeaderSize = 32;
constexpr size_t kChecksumStart = 16;
constexpr const char* kFormatDir = "v1";
// A hit rewrites the file's mtime (the recency that survives restarts) at most this often.
constexpr int64_t kTouchIntervalSeconds = 60;

void Store64(char* p, uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}
void Store32(char* p, uint32_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}

uint64_t EntryChecksum(std::string_view meta_and_key, std::string_view data) {
  return Xxh64(data, Xxh64(meta_and_key, 0));
}

// SHA-256 (FIPS 180-4), only to name files: any key maps to a uniformly spread, fixed-size name.
std::array<uint8_t, 32> Sha256(std::string_view msg) {
  static constexpr uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  // Padded message: msg, 0x80, zeros, 64-bit big-endian bit length; a multiple of 64 bytes.
  std::string m(msg);
  const uint64_t bits = static_cast<uint64_t>(msg.size()) * 8;
  m.push_back(static_cast<char>(0x80));
  while (m.size() % 64 != 56) m.push_back(0);
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<char>(bits >> (8 * i)));
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(m.data() + off + 4 * i);
      w[i] = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = std::rotr(w[i - 15], 7) ^ std::rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = std::rotr(w[i - 2], 17) ^ std::rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = hh + (std::rotr(e, 6) ^ std::rotr(e, 11) ^ std::rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (std::rotr(a, 2) ^ std::rotr(a, 13) ^ std::rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  std::array<uint8_t, 32> out;
  for (int i = 0; i < 32; ++i) out[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  return out;
}

// The 128-bit entry name. Truncated SHA-256: a collision among 2^40 entries has odds ~2^-48, and
// even then the stored key makes it a miss, never wrong data.
struct Hash128 {
  uint64_t hi = 0, lo = 0;
  bool operator==(const Hash128&) const = default;
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo); }  // already uniform
};

Hash128 HashKey(std::string_view key) {
  std::array<uint8_t, 32> d = Sha256(key);
  Hash128 h;
  for (int i = 0; i < 8; ++i) {
    h.hi = h.hi << 8 | d[i];
    h.lo = h.lo << 8 | d[8 + i];
  }
  return h;
}

std::string ToHex(const Hash128& h) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[i] = kDigits[(h.hi >> (60 - 4 * i)) & 0xf];
    s[16 + i] = kDigits[(h.lo >> (60 - 4 * i)) & 0xf];
  }
  return s;
}

// Parses lowercase hex only, so every entry has exactly one valid name.
bool ParseHex(std::string_view s, Hash128* out) {
  if (s.size() != 32) return false;
  Hash128 h;
  for (size_t i = 0; i < 32; ++i) {
    char c = s[i];
    uint64_t v;
    if (c >= '0' && c <= '9') {
      v = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    uint64_t& word = i < 16 ? h.hi : h.lo;
    word = word << 4 | v;
  }
  *out = h;
  return true;
}

bool IsFanoutName(std::string_view s) {
  return s.size() == 2 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The entry file's bytes before its payload (data follows them in the file).
std::string EncodeEntryHead(std::string_view key, uint32_t flags, std::string_view data) {
  std::string buf(kHeaderSize + key.size(), '\0');
  std::memcpy(buf.data(), kMagic, 4);
  Store32(buf.data() + 4, kHeaderVersion);
  Store32(buf.data() + 16, flags);
  Store32(buf.data() + 20, static_cast<uint32_t>(key.size()));
  Store64(buf.data() + 24, data.size());
  std::memcpy(buf.data() + kHeaderSize, key.data(), key.size());
  Store64(buf.data() + 8, EntryChecksum(std::string_view(buf).substr(kChecksumStart), data));
  return buf;
}

// pread exactly n bytes at off; returns bytes read (< n only at EOF) or -1 with errno set.
ssize_t PreadFull(int fd, char* buf, size_t n, off_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, off + static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

enum class ReadOutcome { kOk, kAbsent, kIoError, kCorrupt };

// Reads and validates the entry file at `path` for `key`. On kIoError/kCorrupt, *why says what.
ReadOutcome ReadEntry(const std::string& path, std::string_view key, const DiskCache::BufferFn& make_buffer,
                      CacheEntry* out, std::string* why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return ReadOutcome::kAbsent;
    *why = std::strerror(err);
    return ReadOutcome::kIoError;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto io_error = [&](const char* what) {
    *why = std::string(what) + ": " + std::strerror(errno);
    return ReadOutcome::kIoError;
  };
  auto corrupt = [&](std::string reason) {
    *why = std::move(reason);
    return ReadOutcome::kCorrupt;
  };

  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error("fstat");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderSize) {
    return corrupt("file has " + std::to_string(size) + " bytes, less than the " + std::to_string(kHeaderSize) +
                   "-byte header (truncated)");
  }
  // Header and key in one read: the expected key length is known.
  std::string head(static_cast<size_t>(std::min<uint64_t>(size, kHeaderSize + key.size())), '\0');
  ssize_t n = PreadFull(fd, head.data(), head.size(), 0);
  if (n < 0) return io_error("read");
  if (static_cast<size_t>(n) != head.size()) return corrupt("file shrank while being read");
  const auto* h = reinterpret_cast<const unsigned char*>(head.data());
  if (std::memcmp(h, kMagic, 4) != 0) return corrupt("bad magic (not an omezarrfs cache entry)");
  if (uint32_t v = LoadLe32(h + 4); v != kHeaderVersion) return corrupt("unknown header version " + std::to_string(v));
  const uint64_t stored_checksum = LoadLe64(h + 8);
  const uint32_t flags = LoadLe32(h + 16);
  const uint64_t key_len = LoadLe32(h + 20);
  const uint64_t data_len = LoadLe64(h + 24);
  if (data_len > size || kHeaderSize + key_len + data_len != size) {
    return corrupt("header says " + std::to_string(key_len) + " key + " + std::to_string(data_len) +
                   " data bytes but the file has " + std::to_string(size) + " bytes (truncated or damaged)");
  }
  if (key_len != key.size() || std::memcmp(head.data() + kHeaderSize, key.data(), key.size()) != 0) {
    return corrupt("stored key differs from the requested key (file swapped, renamed or damaged)");
  }
  out->flags = flags;
  if (make_buffer)
    out->data = make_buffer(static_cast<size_t>(data_len));
  else
    out->data.resize(static_cast<size_t>(data_len));
  if (out->data.size() != data_len) out->data.resize(static_cast<size_t>(data_len));
  n = PreadFull(fd, out->data.data(), out->data.size(), static_cast<off_t>(kHeaderSize + key_len));
  if (n < 0) return io_error("read");
  if (static_cast<size_t>(n) != out->data.size()) return corrupt("file shrank while being read");
  const uint64_t actual = EntryChecksum(std::string_view(head).substr(kChecksumStart), out->data);
  if (actual != stored_checksum) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "checksum mismatch (stored %016llx, computed %016llx)",
                  static_cast<unsigned long long>(stored_checksum), static_cast<unsigned long long>(actual));
    return corrupt(msg);
  }
  return ReadOutcome::kOk;
}

int64_t NowSeconds() { return static_cast<int64_t>(::time(nullptr)); }

// "message; hint": the cause first, then what the user can do about it.
Status WithHint(const Status& s, std::string_view hint) {
  return Status(s.code(), s.message() + "; " + std::string(hint));
}

// The lock file's record, one line written by the holder of the flock:
//   "<pid> open"                                   starting, or a holder that serves no mount
//   "<pid> serving <mount id> <major:minor> <mount point>"   serving that FUSE mount
//   "<pid> exiting"                                shutting down; releases the lock soon
// Older versions wrote "<pid>" alone (no newline), which reads as "open". Anything else
// (empty, torn by a concurrent rewrite, unknown): state empty.
struct OwnerRecord {
  long pid = 0;
  std::string state;
  MountId mount;
};

OwnerRecord ParseOwnerRecord(std::string_view text) {
  OwnerRecord r;
  std::string line(text.substr(0, text.find('\n')));
  char* end = nullptr;
  r.pid = std::strtol(line.c_str(), &end, 10);
  if (end == line.c_str() || r.pid <= 0) return OwnerRecord{};
  std::string_view rest(end);
  if (rest.empty()) {
    r.state = "open";
    return r;
  }
  if (rest[0] != ' ') return OwnerRecord{};
  rest.remove_prefix(1);
  const size_t sp = rest.find(' ');
  r.state = std::string(rest.substr(0, sp));
  if (r.state != "serving") {
    if (r.state != "open" && r.state != "exiting") r.state.clear();
    return r;
  }
  // serving: mount id, device, mount point (the rest of the line, may contain spaces)
  std::string_view m = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  const size_t a = m.find(' ');
  const size_t b = a == std::string_view::npos ? a : m.find(' ', a + 1);
  if (b == std::string_view::npos) return OwnerRecord{r.pid, "", {}};
  r.mount.mount_id = std::strtoll(std::string(m.substr(0, a)).c_str(), nullptr, 10);
  r.mount.dev = std::string(m.substr(a + 1, b - a - 1));
  r.mount.mount_point = std::string(m.substr(b + 1));
  return r;
}

}  // namespace

struct DiskCache::Impl {
  // One index entry per entry file. `gen` changes whenever the file at the name may have been
  // replaced, so an operation that looked the entry up earlier can tell it is still the same.
  struct Node {
    Hash128 hash;
    uint64_t size = 0;  // entry file size, the unit of the budget
    uint64_t gen = 0;
    int64_t mtime_sec = 0;  // file mtime as last set or seen (for the touch-on-hit throttle)
  };
  using List = std::list<Node>;

  DiskCacheOptions options;
  std::string format_dir;  // options.dir + "/v1"
  int lock_fd = -1;
  std::mutex record_mu;                   // serializes writes of the owner record into lock_fd
  bool read_only = false;                 // OpenReadOnly: no lock, and nothing on disk is ever changed
  RateLimiter corrupt_log, io_error_log;  // per cache, so one noisy cache cannot mute another

  // Locking: `mu` guards everything below. File I/O happens outside `mu`, except the unlink of a
  // corrupt entry (rare). A hash in `busy` has its file name reserved by one thread (a Put writing
  // it, or an eviction deleting it); nobody else renames over or unlinks that name meanwhile,
  // which is what keeps the index equal to the directory. Waiters sleep on `cv`.
  mutable std::mutex mu;
  std::condition_variable cv;
  List lru;  // front = least recently used
  std::unordered_map<Hash128, List::iterator, Hash128Hasher> index;
  std::unordered_set<Hash128, Hash128Hasher> busy;
  uint64_t total = 0;
  uint64_t next_gen = 1;

  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }

  void Count(std::atomic<uint64_t> Stats::*counter) const {
    if (options.stats != nullptr) (options.stats->*counter)++;
  }
  std::string FanoutDir(const std::string& hex) const { return format_dir + "/" + hex.substr(0, 2); }
  std::string PathOfHex(const std::string& hex) const { return FanoutDir(hex) + "/" + hex.substr(2); }
  std::string PathOf(const Hash128& h) const { return PathOfHex(ToHex(h)); }

  void EraseLocked(List::iterator it) {
    total -= it->size;
    index.erase(it->hash);
    lru.erase(it);
  }
  // Inserts or replaces the entry for h as most recently used. Strong guarantee on bad_alloc.
  void InsertLocked(const Hash128& h, uint64_t size, int64_t mtime_sec) {
    if (auto it = index.find(h); it != index.end()) {
      Node& n = *it->second;
      total = total - n.size + size;
      n.size = size;
      n.gen = next_gen++;
      n.mtime_sec = mtime_sec;
      lru.splice(lru.end(), lru, it->second);
      return;
    }
    lru.push_back(Node{h, size, next_gen++, mtime_sec});
    try {
      index.emplace(h, std::prev(lru.end()));
    } catch (...) {
      lru.pop_back();
      throw;
    }
    total += size;
  }

  // Removes least-recently-used entries from the index until total <= target, reserving their
  // names in `busy`; the caller must pass the result to DeleteVictims. Stops early (over budget
  // until the next Put) rather than leave a half-done state if memory runs out.
  std::vector<Node> PickVictimsLocked(uint64_t target) {
    std::vector<Node> victims;
    for (auto it = lru.begin(); total > target && it != lru.end();) {
      auto next = std::next(it);
      if (!busy.count(it->hash)) {
        try {
          victims.push_back(*it);
        } catch (const std::bad_alloc&) {
          break;
        }
        try {
          busy.insert(it->hash);
        } catch (const std::bad_alloc&) {
          victims.pop_back();
          break;
        }
        EraseLocked(it);
      }
      it = next;
    }
    return victims;
  }

  // Deletes the victims' files and releases their names. A file that cannot be deleted (e.g.
  // read-only directory) goes back into the index as least recently used: it is still on disk.
  void DeleteVictims(std::vector<Node>& victims) {
    if (victims.empty()) return;
    try {
      for (Node& v : victims) {
        if (::unlink(PathOf(v.hash).c_str()) == 0 || errno == ENOENT) {
          Count(&Stats::cache_evictions);
          v.gen = 0;  // deleted; live nodes have gen >= 1
        }
      }
    } catch (const std::bad_alloc&) {
      // The rest are still on disk and get re-inserted below; their names must be released.
    }
    std::lock_guard<std::mutex> l(mu);
    for (const Node& v : victims) busy.erase(v.hash);
    for (const Node& v : victims) {
      if (v.gen == 0) continue;
      try {
        InsertLocked(v.hash, v.size, v.mtime_sec);
        lru.splice(lru.begin(), lru, index.at(v.hash));
      } catch (const std::exception&) {
        break;  // out of memory: under-counted until the next Open rescans
      }
    }
    cv.notify_all();
  }

  void EvictTo(uint64_t target) {
    std::vector<Node> victims;
    {
      std::lock_guard<std::mutex> l(mu);
      victims = PickVictimsLocked(target);
    }
    DeleteVictims(victims);
  }

  // Writes the entry file; the caller holds the name in `busy`. Recovers once from a missing
  // fan-out directory (first use, or the cache directory was deleted under us) and once from
  // ENOSPC (by evicting some entries).
  Status WriteEntryFile(const std::string& path, const std::string& hex, std::string_view head,
                        std::string_view payload) {
    AtomicWriteOptions wo;
    wo.fsync_file = options.fsync;
    wo.fsync_dir = options.fsync;
    wo.fault_site = "cache";
    Status s = WriteFileAtomic(path, {head, payload}, wo);
    if (s.code() == ErrorCode::kNotFound) {
      OZ_RETURN_IF_ERROR(MakeDirs(FanoutDir(hex)));
      s = WriteFileAtomic(path, {head, payload}, wo);
    }
    if (s.code() == ErrorCode::kNoSpace) {
      uint64_t target;
      {
        std::lock_guard<std::mutex> l(mu);
        uint64_t to_free = std::max<uint64_t>(2 * (head.size() + payload.size()), total / 10);
        target = total > to_free ? total - to_free : 0;
      }
      EvictTo(target);
      s = WriteFileAtomic(path, {head, payload}, wo);
    }
    return s;
  }

  Status Put(std::string_view key, uint32_t flags, std::string_view data) {
    if (read_only) return Status(ErrorCode::kReadOnly, "disk cache " + options.dir + " is open read-only");
    if (key.size() > UINT32_MAX) return InvalidArgumentError("disk cache: key longer than 4 GiB");
    const uint64_t file_size = kHeaderSize + key.size() + data.size();
    if (file_size > options.max_bytes) return OkStatus();  // would evict everything and itself
    const Hash128 h = HashKey(key);
    const std::string hex = ToHex(h);
    const std::string path = PathOfHex(hex);
    const std::string head = EncodeEntryHead(key, flags, data);
    // Reserve the name; released on every path, exceptions included, so no Put waits forever.
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return !busy.count(h); });
      busy.insert(h);
    }
    struct Release {
      Impl* self;
      Hash128 h;
      ~Release() {
        std::lock_guard<std::mutex> l(self->mu);
        self->busy.erase(h);
        self->cv.notify_all();
      }
    };
    std::vector<Node> victims;
    Status s;
    {
      Release release{this, h};
      s = WriteEntryFile(path, hex, head, data);
      // Whatever is at `path` now is a complete entry (old or new): atomic writes never leave a
      // partial file at the final name. So the index follows the directory even after a failure.
      struct stat st = {};
      const bool present = s.ok() || (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode));
      std::lock_guard<std::mutex> l(mu);
      if (s.ok()) {
        InsertLocked(h, file_size, NowSeconds());
      } else if (present) {
        InsertLocked(h, static_cast<uint64_t>(st.st_size), st.st_mtime);
      } else if (auto it = index.find(h); it != index.end()) {
        EraseLocked(it->second);
      }
      victims = PickVictimsLocked(options.max_bytes);
    }  // releases h (after mu, which is not held by then)
    DeleteVictims(victims);
    if (!s.ok()) {
      Count(&Stats::cache_put_failures);
      return s.WithContext("disk cache " + options.dir + ": cannot store entry");
    }
    return OkStatus();
  }

  std::optional<CacheEntry> Get(std::string_view key, const BufferFn& make_buffer) {
    const Hash128 h = HashKey(key);
    uint64_t gen;
    {
      std::lock_guard<std::mutex> l(mu);
      auto it = index.find(h);
      if (it == index.end()) {
        Count(&Stats::cache_misses);
        return std::nullopt;
      }
      gen = it->second->gen;
    }
    const std::string path = PathOf(h);
    CacheEntry entry;
    std::string why;
    const ReadOutcome outcome = ReadEntry(path, key, make_buffer, &entry, &why);
    if (outcome == ReadOutcome::kOk) {
      bool touch = false;
      {
        std::lock_guard<std::mutex> l(mu);
        // Not found or a new gen: evicted or replaced meanwhile. The bytes read are still valid.
        if (auto it = index.find(h); it != index.end() && it->second->gen == gen) {
          lru.splice(lru.end(), lru, it->second);
          const int64_t now = NowSeconds();
          if (now - it->second->mtime_sec >= kTouchIntervalSeconds) {
            it->second->mtime_sec = now;
            touch = true;
          }
        }
      }
      if (touch && !read_only) ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // best effort
      Count(&Stats::cache_hits);
      return entry;
    }

    Count(&Stats::cache_misses);
    if (outcome == ReadOutcome::kIoError) {
      uint64_t suppressed = 0;
      if (io_error_log.Allow(&suppressed)) {
        LogWarning("disk cache: cannot read entry " + path + ": " + why + "; treating it as a miss" +
                   (suppressed ? " (" + std::to_string(suppressed) + " similar warnings suppressed)" : ""));
      }
      return std::nullopt;
    }
    if (outcome == ReadOutcome::kCorrupt) {
      Count(&Stats::cache_corrupt);
      uint64_t suppressed = 0;
      if (corrupt_log.Allow(&suppressed)) {
        LogWarning("disk cache: corrupt entry " + path + ": " + why +
                   (read_only ? "; not used (the cache is open read-only: left in place)"
                              : "; dropped, it will be recomputed") +
                   (suppressed ? " (" + std::to_string(suppressed) + " similar warnings suppressed)" : ""));
      }
    }
    // Corrupt or gone: drop it, unless someone replaced or reserved the name since we looked.
    std::lock_guard<std::mutex> l(mu);
    if (auto it = index.find(h); it != index.end() && it->second->gen == gen && !busy.count(h)) {
      if (outcome == ReadOutcome::kCorrupt && !read_only && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return std::nullopt;  // cannot remove it (read-only dir): keep it accounted, still a miss
      }
      EraseLocked(it->second);
    }
    return std::nullopt;
  }

  // Writes the owner record (see ParseOwnerRecord) over the lock file's contents. The record is
  // written first and the file truncated after it, so a reader sees one complete first line.
  Status WriteOwnerRecord(const std::string& state) {
    std::lock_guard<std::mutex> l(record_mu);
    const std::string rec = std::to_string(::getpid()) + " " + state + "\n";
    if (::pwrite(lock_fd, rec.data(), rec.size(), 0) != static_cast<ssize_t>(rec.size()) ||
        ::ftruncate(lock_fd, static_cast<off_t>(rec.size())) != 0) {
      int err = errno;
      return WithHint(ErrnoError(err, "cannot write lock file " + options.dir + "/lock"),
                      "the cache directory must be writable; choose another with -o cache=DIR");
    }
    return OkStatus();
  }

  // Takes the flock, waiting for a holder that is shutting down (bounded), refusing any other.
  // Why a record and a mount table, not the pid alone: the flock is the lock (the kernel drops it
  // on any exit, crashes included, so a dead holder never blocks anyone), and the record is only
  // advice from the live holder. "exiting" is written when the daemon's FUSE loop ends; "serving"
  // names its mount, whose absence from the holder's mount table means it was unmounted even
  // before the daemon noticed (fusermount3 -u returns before the daemon starts its teardown). A
  // reused pid cannot make us wait for a serving holder: the record is written by the holder
  // itself after it took the flock. The one stale read (a new holder between its flock and its
  // record, the previous owner's record still there) is re-judged at the next poll.
  Status TakeLock() {
    const std::string lock_path = options.dir + "/lock";
    lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
      int err = errno;
      return WithHint(ErrnoError(err, "cannot open lock file " + lock_path),
                      "the cache directory must be writable; choose another with -o cache=DIR");
    }
    const auto start = std::chrono::steady_clock::now();
    bool told = false;
    int unreadable = 0;  // consecutive polls that found no valid record
    for (;;) {
      if (::flock(lock_fd, LOCK_EX | LOCK_NB) == 0) break;
      int err = errno;
      if (err == EINTR) continue;
      if (err != EWOULDBLOCK) {
        return WithHint(ErrnoError(err, "cannot lock " + lock_path),
                        "put the cache on a local filesystem with -o cache=DIR");
      }
      char buf[4096] = {0};
      ssize_t n = ::pread(lock_fd, buf, sizeof buf - 1, 0);
      const OwnerRecord owner = ParseOwnerRecord(std::string_view(buf, n > 0 ? static_cast<size_t>(n) : 0));
      // An empty or torn record (a holder writing it right now) is read again before judging.
      if (owner.state.empty() && ++unreadable <= 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      if (!owner.state.empty()) unreadable = 0;
      const std::string who = "pid " + (owner.pid > 0 ? std::to_string(owner.pid) : std::string("unknown"));
      std::string exiting_why;
      if (owner.state == "exiting") {
        exiting_why = "its FUSE session has ended";
      } else if (owner.state == "serving" && owner.pid > 0) {
        auto has = ProcessHasMount(owner.pid, owner.mount);
        if (has.ok() && !*has) exiting_why = "its mount " + owner.mount.mount_point + " is gone";
        if (!has.ok() && has.status().code() == ErrorCode::kNotFound) exiting_why = "the process is ending";
      }
      if (exiting_why.empty()) {
        return UnavailableError("cache directory " + options.dir + " is in use by another omezarrfs process (" + who +
                                (owner.state == "serving" ? ", serving " + owner.mount.mount_point : std::string()) +
                                "); give each mount its own -o cache=DIR");
      }
      const auto waited = std::chrono::steady_clock::now() - start;
      const int64_t ms = options.exiting_owner_wait.count();
      const std::string limit = ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
      if (waited >= options.exiting_owner_wait) {
        return UnavailableError("cache directory " + options.dir + " is still held by omezarrfs process " + who +
                                " after waiting " + limit + " for it to exit (" + exiting_why +
                                "); wait for that process to end, or give this mount its own -o cache=DIR");
      }
      if (!told) {
        LogInfo("cache directory " + options.dir + " is held by omezarrfs process " + who +
                ", which is shutting down (" + exiting_why + "); waiting up to " + limit + " for it to exit");
        told = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return WriteOwnerRecord("open");
  }

  // Rebuilds the index from DIR/v1/xx/*, oldest mtime first, sweeping stale temps and removing
  // files with invalid names from the fan-out directories. Entry contents are checked on Get only.
  Status Scan() {
    DIR* top = ::opendir(format_dir.c_str());
    if (top == nullptr) {
      int err = errno;
      return WithHint(ErrnoError(err, "cannot list cache directory " + format_dir),
                      "choose a readable, writable directory with -o cache=DIR");
    }
    struct Found {
      int64_t mtime_ns;
      Hash128 hash;
      uint64_t size;
      int64_t mtime_sec;
    };
    std::vector<Found> found;
    int strays = 0;
    std::string stray_example;
    while (struct dirent* fe = ::readdir(top)) {
      std::string fan_name = fe->d_name;
      if (!IsFanoutName(fan_name)) continue;  // not ours: leave alone
      std::string fan_dir = format_dir + "/" + fan_name;
      // Every temp is a leftover of a dead process: only the holder of the lock writes here.
      if (!read_only) SweepTempFiles(fan_dir, 0);
      DIR* fan = ::opendir(fan_dir.c_str());
      if (fan == nullptr) continue;
      while (struct dirent* e = ::readdir(fan)) {
        std::string_view name = e->d_name;
        if (name == "." || name == ".." || name.substr(0, 5) == ".tmp.") continue;
        struct stat st;
        if (::fstatat(::dirfd(fan), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        Hash128 h;
        if (S_ISREG(st.st_mode) && ParseHex(fan_name + std::string(name), &h)) {
          found.push_back({int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, h,
                           static_cast<uint64_t>(st.st_size), st.st_mtime});
        } else if (!read_only && !S_ISDIR(st.st_mode) && ::unlinkat(::dirfd(fan), e->d_name, 0) == 0) {
          if (strays++ == 0) stray_example = fan_dir + "/" + std::string(name);
        }
      }
      ::closedir(fan);
    }
    ::closedir(top);
    if (strays > 0) {
      LogWarning("disk cache: removed " + std::to_string(strays) + " file(s) that are not cache entries from " +
                 format_dir + ", e.g. " + stray_example);
    }
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime_ns < b.mtime_ns; });
    std::lock_guard<std::mutex> l(mu);
    for (const Found& f : found) InsertLocked(f.hash, f.size, f.mtime_sec);
    return OkStatus();
  }
};

DiskCache::DiskCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskCache::~DiskCache() = default;

Result<std::unique_ptr<DiskCache>> DiskCache::Open(const DiskCacheOptions& options) {
  try {
    if (options.dir.empty()) return InvalidArgumentError("disk cache: empty directory name; pass -o cache=DIR");
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    impl->format_dir = options.dir + "/" + kFormatDir;
    Status s = MakeDirs(impl->format_dir);
    if (!s.ok()) {
      return WithHint(s.WithContext("cannot create cache directory " + options.dir),
                      "choose a writable directory with -o cache=DIR");
    }
    OZ_RETURN_IF_ERROR(impl->TakeLock());
    OZ_RETURN_IF_ERROR(impl->Scan());
    impl->EvictTo(options.max_bytes);  // the budget may have shrunk since the last run
    return std::unique_ptr<DiskCache>(new DiskCache(std::move(impl)));
  } catch (const std::exception& e) {
    return ResourceExhaustedError("cannot open disk cache " + options.dir + ": " + e.what());
  }
}

Result<std::unique_ptr<DiskCache>> DiskCache::OpenReadOnly(const DiskCacheOptions& options) {
  try {
    if (options.dir.empty()) return InvalidArgumentError("disk cache: empty directory name");
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    impl->read_only = true;
    impl->format_dir = options.dir + "/" + kFormatDir;
    struct stat st;
    if (::stat(impl->format_dir.c_str(), &st) != 0) {
      int err = errno;
      if (err == ENOENT)
        return NotFoundError("no disk cache in " + options.dir + " (no " + kFormatDir + " directory there)");
      return ErrnoError(err, "cannot read cache directory " + impl->format_dir);
    }
    if (!S_ISDIR(st.st_mode))
      return Status(ErrorCode::kNotDirectory, "cache directory " + impl->format_dir + " is not a directory");
    OZ_RETURN_IF_ERROR(impl->Scan());
    return std::unique_ptr<DiskCache>(new DiskCache(std::move(impl)));
  } catch (const std::exception& e) {
    return ResourceExhaustedError("cannot open disk cache " + options.dir + ": " + e.what());
  }
}

std::optional<CacheEntry> DiskCache::Get(std::string_view key, const BufferFn& make_buffer) {
  try {
    return impl_->Get(key, make_buffer);
  } catch (const std::exception&) {  // bad_alloc for a huge entry: a miss, as documented
    return std::nullopt;
  }
}

bool DiskCache::Contains(std::string_view key) {
  const Hash128 h = HashKey(key);
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->index.count(h) != 0;
}

Status DiskCache::Put(std::string_view key, const CacheEntry& entry) { return Put(key, entry.flags, entry.data); }

Status DiskCache::Put(std::string_view key, uint32_t flags, std::string_view data) {
  try {
    return impl_->Put(key, flags, data);
  } catch (const std::exception& e) {
    impl_->Count(&Stats::cache_put_failures);
    return ResourceExhaustedError("disk cache " + impl_->options.dir + ": cannot store entry: " + e.what());
  }
}

Status DiskCache::MarkServing(const MountId& mount) {
  if (impl_->read_only) return Status(ErrorCode::kReadOnly, "disk cache " + impl_->options.dir + " is open read-only");
  std::string point = mount.mount_point;
  std::replace(point.begin(), point.end(), '\n', '?');  // the record is one line
  return impl_->WriteOwnerRecord("serving " + std::to_string(mount.mount_id) + " " + mount.dev + " " + point);
}

Status DiskCache::MarkExiting() {
  if (impl_->read_only) return Status(ErrorCode::kReadOnly, "disk cache " + impl_->options.dir + " is open read-only");
  return impl_->WriteOwnerRecord("exiting");
}

uint64_t DiskCache::total_bytes() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->total;
}

uint64_t DiskCache::entry_count() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->index.size();
}

const std::string& DiskCache::dir() const { return impl_->options.dir; }

Result<std::string> DefaultCacheRoot() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/omezarrfs";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/omezarrfs";
  }
  return InvalidArgumentError("no cache directory: neither XDG_CACHE_HOME nor HOME is set; pass -o cache=DIR");
}

}  // namespace oz
