// TiffStack: slice discovery, parallel header scan, and strip/tile-level reads through a
// shared single-flight LRU cache of decoded strips.
#include "core/source/tiff_stack.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "core/base/fault.h"
#include "core/base/log.h"
#include "core/source/tiff_pages.h"

namespace oz {
namespace {

// Largest accepted slice number. Keeps z (and z+1 as a shape) far from any overflow.
constexpr int64_t kMaxZ = 1000000000;
// Upper bound of one "virtual strip" read from uncompressed data. Small enough that a chunk
// read never pulls a whole 128 MB slice, large enough that one pread amortizes its syscall.
constexpr uint64_t kVirtualStripBytes = 1u << 20;
// Warn at Open when every read must decode units this large (e.g. single-strip LZW slices).
constexpr uint64_t kLargeUnitBytes = 16u << 20;
// At most this many bad slices are listed one by one in warnings/errors.
constexpr size_t kMaxListed = 10;

// ---------------------------------------------------------------------------------------------
// Slice name parsing.

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

enum class NameKind { kNotSlice, kSlice, kTooLarge };

// "00012.TIF" -> z = 12. Digits only before the extension.
NameKind ParseSliceName(std::string_view name, int64_t* z) {
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return NameKind::kNotSlice;
  std::string_view ext = name.substr(dot + 1);
  if (!EqualsIgnoreCase(ext, "tif") && !EqualsIgnoreCase(ext, "tiff")) return NameKind::kNotSlice;
  std::string_view digits = name.substr(0, dot);
  for (char c : digits)
    if (c < '0' || c > '9') return NameKind::kNotSlice;
  size_t first = digits.find_first_not_of('0');
  std::string_view significant = first == std::string_view::npos ? "" : digits.substr(first);
  if (significant.size() > 10) return NameKind::kTooLarge;
  int64_t v = 0;
  for (char c : significant) v = v * 10 + (c - '0');
  if (v > kMaxZ) return NameKind::kTooLarge;
  *z = v;
  return NameKind::kSlice;
}

Result<std::vector<SliceFile>> DiscoverSlicesIn(const std::vector<std::string>& names, const std::string& where) {
  std::vector<SliceFile> slices;
  std::string other_tiff;  // an ignored *.tif name, to hint at the naming rule
  for (const std::string& name : names) {
    int64_t z = 0;
    switch (ParseSliceName(name, &z)) {
      case NameKind::kSlice: slices.push_back(SliceFile{z, name, 0, 0}); break;
      case NameKind::kTooLarge:
        return InvalidArgumentError("slice file " + name + where + ": slice number is larger than " +
                                    std::to_string(kMaxZ) + "; rename or remove it");
      case NameKind::kNotSlice: {
        size_t dot = name.rfind('.');
        if (other_tiff.empty() && dot != std::string::npos &&
            (EqualsIgnoreCase(name.substr(dot + 1), "tif") || EqualsIgnoreCase(name.substr(dot + 1), "tiff")))
          other_tiff = name;
        break;
      }
    }
  }
  if (slices.empty()) {
    std::string m = "no slice files (NNNN.tif) in " + (where.empty() ? std::string("the directory") : where.substr(4));
    if (!other_tiff.empty())
      m += "; TIFF files such as " + other_tiff +
           " are ignored because slice names must be digits only (e.g. 00042.tif); rename or symlink them";
    return InvalidArgumentError(m);
  }
  std::sort(slices.begin(), slices.end(),
            [](const SliceFile& a, const SliceFile& b) { return a.z != b.z ? a.z < b.z : a.name < b.name; });
  for (size_t i = 1; i < slices.size(); ++i) {
    if (slices[i].z == slices[i - 1].z)
      return InvalidArgumentError("slice files " + slices[i - 1].name + " and " + slices[i].name + where +
                                  " both give z=" + std::to_string(slices[i].z) + "; remove one of them");
  }
  return slices;
}

// "4, 7-8, 10" from sorted numbers, at most `max_ranges` ranges then ", ...".
std::string CompactRanges(const std::vector<int64_t>& v, size_t max_ranges = 20) {
  std::string s;
  size_t ranges = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (ranges == max_ranges) {
      s += ", ...";
      break;
    }
    if (ranges) s += ", ";
    s += std::to_string(v[i]);
    if (j > i) s += "-" + std::to_string(v[j]);
    ++ranges;
    i = j + 1;
  }
  return s;
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

const char* FileTypeName(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// ---------------------------------------------------------------------------------------------
// libtiff plumbing: an fd-backed client (pread, never mmap: a file truncated under a mapping
// would SIGBUS) and per-handle error capture so libtiff never prints and its words reach Status.

struct FdClient {
  int fd = -1;
  uint64_t size = 0;
  uint64_t pos = 0;
  Stats* stats = nullptr;
};

tmsize_t ClientRead(thandle_t h, void* buf, tmsize_t n) {
  auto* c = static_cast<FdClient*>(h);
  if (n <= 0) return 0;
  uint8_t* p = static_cast<uint8_t*>(buf);
  tmsize_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(c->fd, p + done, static_cast<size_t>(n - done), static_cast<off_t>(c->pos));
    if (r < 0) {
      if (errno == EINTR) continue;
      return done ? done : -1;
    }
    if (r == 0) break;
    done += r;
    c->pos += static_cast<uint64_t>(r);
  }
  if (c->stats) c->stats->source_bytes_read += static_cast<uint64_t>(done);
  return done;
}

tmsize_t ClientWrite(thandle_t, void*, tmsize_t) { return -1; }

toff_t ClientSeek(thandle_t h, toff_t off, int whence) {
  auto* c = static_cast<FdClient*>(h);
  uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? c->pos : c->size;
  c->pos = base + off;
  return c->pos;
}

int ClientClose(thandle_t) { return 0; }  // the fd belongs to the caller
toff_t ClientSize(thandle_t h) { return static_cast<FdClient*>(h)->size; }
int ClientMap(thandle_t, void**, toff_t*) { return 0; }
void ClientUnmap(thandle_t, void*, toff_t) {}

struct TiffMessages {
  std::string errors;  // "module: message; ..." from libtiff's error handler
};

int CaptureError(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* m = static_cast<TiffMessages*>(user);
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  if (m->errors.size() < 2048) {
    if (!m->errors.empty()) m->errors += "; ";
    if (module && *module) m->errors += std::string(module) + ": ";
    m->errors += buf;
  }
  return 1;  // handled: do not call the global handler (which prints to stderr)
}

int DropWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// An open fd on one slice plus, on demand, a libtiff handle on it. Not thread-safe; used by
// one thread at a time.
class SliceHandle {
 public:
  SliceHandle() = default;
  SliceHandle(const SliceHandle&) = delete;
  SliceHandle& operator=(const SliceHandle&) = delete;
  ~SliceHandle() { Close(); }

  // Opens `path` without blocking on FIFOs; fills *st. Fails unless it is a regular file.
  Status OpenFd(const std::string& path, const std::string& what, Stats* stats, struct stat* st) {
    Close();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return ErrnoError(errno, "cannot open " + what);
    if (stats) ++stats->source_files_opened;
    client_.fd = fd;
    client_.stats = stats;
    stats_ = stats;
    if (::fstat(fd, st) != 0) return ErrnoError(errno, "cannot stat " + what);
    if (!S_ISREG(st->st_mode))
      return InvalidArgumentError(what + " is " + FileTypeName(st->st_mode) + ", not a TIFF file; remove or rename it");
    client_.size = static_cast<uint64_t>(st->st_size);
    return OkStatus();
  }

  // Whether reads through this handle count in stats->source_bytes_read.
  void CountBytes(bool on) { client_.stats = on ? stats_ : nullptr; }

  // Opens the libtiff handle on the fd (headers only; pixel data is read on demand), on the
  // first directory, or with ifd_offset != 0 on the directory at that offset (read alone: the
  // directories before it are not walked). `what` names the file in messages.
  Status OpenTiff(const std::string& file_name, const std::string& what, uint64_t ifd_offset = 0) {
    if (tif_) return OkStatus();
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    if (!opts) return ResourceExhaustedError("out of memory opening " + what);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, CaptureError, &messages_);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, DropWarning, nullptr);
    client_.pos = 0;
    // "h": the header only, so a page deep in a multi-page file costs one IFD read.
    tif_ = TIFFClientOpenExt(file_name.c_str(), ifd_offset ? "rmh" : "rm", &client_, ClientRead, ClientWrite,
                             ClientSeek, ClientClose, ClientSize, ClientMap, ClientUnmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif_)
      return InvalidArgumentError(what + " is not a readable TIFF file (" + TakeErrors() + "); fix or remove it");
    if (ifd_offset && !TIFFSetSubDirectory(tif_, ifd_offset))
      return InvalidArgumentError(what + ": cannot read its image directory at offset " + std::to_string(ifd_offset) +
                                  " (" + TakeErrors() + "); the file may be corrupt");
    return OkStatus();
  }

  TIFF* tif() const { return tif_; }
  int fd() const { return client_.fd; }
  uint64_t size() const { return client_.size; }
  std::string TakeErrors() {
    std::string e = messages_.errors.empty() ? std::string("no details from libtiff") : messages_.errors;
    messages_.errors.clear();
    return e;
  }

  void Close() {
    if (tif_) TIFFClose(tif_);
    tif_ = nullptr;
    if (client_.fd >= 0) ::close(client_.fd);
    client_.fd = -1;
  }

 private:
  FdClient client_;
  Stats* stats_ = nullptr;
  TiffMessages messages_;  // must outlive tif_ (its error handler writes here)
  TIFF* tif_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Decoded-strip cache: LRU under a byte budget, single-flight per key.

struct Block {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
};
using BlockPtr = std::shared_ptr<const Block>;

Result<std::shared_ptr<Block>> NewBlock(size_t size) {
  auto b = std::make_shared<Block>();
  b->data.reset(new (std::nothrow) uint8_t[size ? size : 1]);
  if (!b->data)
    return ResourceExhaustedError("out of memory allocating " + std::to_string(size) + " bytes for a strip");
  b->size = size;
  return b;
}

struct UnitKey {
  int64_t z;
  int64_t unit;
  bool operator==(const UnitKey&) const = default;
};
struct UnitKeyHash {
  size_t operator()(const UnitKey& k) const {
    uint64_t h = static_cast<uint64_t>(k.z) * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(k.unit);
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

class StripCache {
 public:
  explicit StripCache(uint64_t budget) : budget_(budget) {}

  // Whether `key` is cached now (no hit counted, no LRU touch).
  bool Cached(const UnitKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    return map_.count(key) != 0;
  }

  // Returns the cached block for `key`, or runs `load` once for all concurrent callers.
  // A failed load is shared with the callers waiting on it but not cached. `bytes` is the size
  // the load will allocate: blocks being decoded count against the budget with the cached ones
  // (which are evicted to make room), so a burst of parallel decodes of big strips waits its turn
  // instead of growing past the budget. A block larger than the budget is decoded alone.
  template <typename Load>
  Result<BlockPtr> Get(const UnitKey& key, uint64_t bytes, Stats* stats, Load&& load) {
    std::shared_ptr<Flight> flight;
    {
      std::unique_lock<std::mutex> l(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        if (stats) ++stats->strip_cache_hits;
        return it->second.block;
      }
      auto f = flights_.find(key);
      if (f != flights_.end()) {
        std::shared_ptr<Flight> other = f->second;
        cv_.wait(l, [&] { return other->done; });
        if (!other->status.ok()) return other->status;
        if (stats) ++stats->strip_cache_hits;
        return other->block;
      }
      flight = std::make_shared<Flight>();
      flights_.emplace(key, flight);
    }
    const uint64_t reserved = std::min(bytes, budget_);
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] {
        while (inflight_bytes_ + bytes_ + reserved > budget_ && !lru_.empty()) EvictOldest();
        return inflight_bytes_ + reserved <= budget_;
      });
      inflight_bytes_ += reserved;
    }
    Result<BlockPtr> r = InternalError("strip load did not run");
    try {
      r = load();
    } catch (const std::bad_alloc&) {
      r = ResourceExhaustedError("out of memory decoding a strip of slice z=" + std::to_string(key.z));
    } catch (...) {
      r = InternalError("unexpected exception decoding a strip of slice z=" + std::to_string(key.z));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      inflight_bytes_ -= reserved;
      flight->done = true;
      if (r.ok()) {
        flight->block = *r;
        Insert(key, *r);
      } else {
        flight->status = r.status();
      }
      flights_.erase(key);
    }
    cv_.notify_all();
    return r;
  }

 private:
  struct Flight {
    bool done = false;  // guarded by StripCache::mu_
    Status status;
    BlockPtr block;
  };
  struct Entry {
    BlockPtr block;
    std::list<UnitKey>::iterator lru;
  };

  // Requires mu_.
  void EvictOldest() {
    auto victim = map_.find(lru_.back());
    bytes_ -= victim->second.block->size;
    map_.erase(victim);
    lru_.pop_back();
  }

  // Requires mu_. Blocks that do not fit beside the decodes in flight are served but not kept.
  void Insert(const UnitKey& key, const BlockPtr& block) {
    if (block->size + inflight_bytes_ > budget_) return;
    while (bytes_ + inflight_bytes_ + block->size > budget_ && !lru_.empty()) EvictOldest();
    lru_.push_front(key);
    map_.emplace(key, Entry{block, lru_.begin()});
    bytes_ += block->size;
  }

  const uint64_t budget_;
  std::mutex mu_;
  std::condition_variable cv_;  // signalled when any flight completes (and its bytes are free)
  // All guarded by mu_.
  std::unordered_map<UnitKey, Entry, UnitKeyHash> map_;
  std::list<UnitKey> lru_;  // front = most recently used
  std::unordered_map<UnitKey, std::shared_ptr<Flight>, UnitKeyHash> flights_;
  uint64_t bytes_ = 0;           // cached blocks
  uint64_t inflight_bytes_ = 0;  // reserved by loads in progress
};

// ---------------------------------------------------------------------------------------------
// Per-slice header facts.

// How a slice's pixels are cut into cacheable units.
enum class Layout {
  kRawContiguous,  // uncompressed strips back to back: virtual strips of unit_rows, one pread each
  kRawStrips,      // uncompressed strips scattered: each strip cut into pieces of unit_rows
  kStrips,         // compressed strips, decoded whole by libtiff
  kTiles,          // tiles (any compression), decoded by libtiff
};

struct SliceInfo {
  SliceFile file;
  std::string label;  // names it in messages: "slice 0001.tif" or "page 7 of stack.tif"
  int64_t page = -1;  // a page of one multi-page file: its index among the full-resolution pages
  // Offset of the page's image directory; 0 = the file's first directory (a plain slice).
  uint64_t ifd_offset = 0;
  Status status;      // not OK: bad slice (error at Open, or zeros under bad_slices=zero)
  bool zero = false;  // read as zeros (bad slice under bad_slices=zero)
  // Header, valid when status is OK.
  int64_t width = 0, height = 0;
  int bits = 0;
  DType dtype = DType::kUint8;  // from BitsPerSample and SampleFormat
  uint16_t compression = COMPRESSION_NONE;
  Layout layout = Layout::kStrips;
  int64_t rows_per_strip = 0;  // strips
  int64_t tile_w = 0, tile_h = 0;
  int64_t unit_rows = 0;     // rows per unit for kRawContiguous / kRawStrips
  uint64_t base_offset = 0;  // kRawContiguous: file offset of row 0
  bool swap = false;         // raw layouts: file byte order differs from ours
  // Some strips/tiles are sparse (offset and byte count 0): they read as zeros. Raw strips are
  // then read as kRawStrips, whose offsets are looked up per strip.
  bool sparse = false;
};

// The part of a slice covered by one cache unit, in image coordinates.
struct UnitRect {
  int64_t index = 0;
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
  int64_t stride_px = 0;  // pixels per row in the unit's buffer
  int64_t strip = 0;      // kRawStrips: real strip holding the unit; its first row:
  int64_t strip_y0 = 0;
};

std::string ShapeText(const SliceInfo& s) {
  return std::to_string(s.width) + "x" + std::to_string(s.height) + " " + std::string(DTypeName(s.dtype));
}

std::string CodecName(uint16_t c) {
  const TIFFCodec* codec = TIFFFindCODEC(c);
  std::string s = std::to_string(c);
  if (codec && codec->name) s += " (" + std::string(codec->name) + ")";
  return s;
}

// The full-resolution page `page` (0-based; -1 = the only one) of a slice file: leaves the handle
// on it and its IFD offset in *ifd_offset (0 when it is the first directory). A second page that
// is not a reduced-resolution copy (NewSubfileType bit 0 clear) is a z-stack, channels or time
// points in one file, and serving only the first page would silently drop the rest. Walks the IFD
// chain once, at Open, and stops at the page asked for; a chain that ends in an error (an IFD
// loop, a bad offset) ends the walk there, as every reader does.
Status SelectSlicePage(SliceHandle& h, const std::string& name, int page, uint64_t* ifd_offset) {
  constexpr int kMaxDirs = 1 << 16;  // bound on the walk (libtiff itself refuses IFD loops)
  TIFF* tif = h.tif();
  const uint64_t first = TIFFCurrentDirOffset(tif);
  std::vector<uint64_t> full;  // IFD offsets of the full-resolution pages seen
  int dirs = 0;
  while (true) {
    ++dirs;
    uint32_t subfile = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &subfile);
    if (!(subfile & FILETYPE_REDUCEDIMAGE)) full.push_back(TIFFCurrentDirOffset(tif));
    if (page >= 0 && full.size() > static_cast<size_t>(page)) break;
    if (dirs >= kMaxDirs || TIFFLastDirectory(tif) || !TIFFReadDirectory(tif)) break;
  }
  h.TakeErrors();  // a chain ending in an error is not this page's error
  const std::string count = (dirs >= kMaxDirs ? "at least " : "") + std::to_string(full.size());
  if (full.empty())
    return InvalidArgumentError("slice " + name +
                                " has only reduced-resolution pages (NewSubfileType=1, thumbnails or overviews) "
                                "and no full-resolution image; fix or remove it");
  if (page < 0 && full.size() > 1)
    return UnsupportedError(
        "slice " + name + " is a multi-page TIFF with " + count +
        " full-resolution pages (a z-stack, channels or time points in one file); omezarrfs reads one page per "
        "slice file and will not serve only the first page. Mount with -o page=N to serve page N (0-based) of "
        "every slice file; or give that file alone as SOURCE to serve its pages as z; or split it into one file "
        "per page (tiffsplit FILE, or tifffile: for i, p in enumerate(imread(FILE)): imwrite(f'{i:05d}.tif', p)) "
        "and mount the directory of those files");
  if (page >= 0 && full.size() <= static_cast<size_t>(page))
    return InvalidArgumentError("slice " + name + " has " + count + " full-resolution page" +
                                (full.size() == 1 ? "" : "s") + ", so it has no page " + std::to_string(page) +
                                " (-o page= counts from 0); fix or remove it, or choose another page=");
  const uint64_t chosen = full[page < 0 ? 0 : static_cast<size_t>(page)];
  if (TIFFCurrentDirOffset(tif) != chosen && !TIFFSetSubDirectory(tif, chosen))
    return InvalidArgumentError("slice " + name + ": cannot return to its page " + std::to_string(std::max(page, 0)) +
                                " (" + h.TakeErrors() + "); fix or remove it");
  *ifd_offset = chosen == first ? 0 : chosen;
  return OkStatus();
}

// The colour map of a palette image is the grey identity ramp: entry i is grey level i, scaled to
// the map's 16 bits as i*257 (libtiff's tools, GraphicsMagick) or i<<8, or unscaled (i, old
// 8-bit maps). Such a file is a greyscale image stored as a palette; its indices are the values.
bool IsGreyRamp(TIFF* tif, int bits, std::string* first_colour) {
  uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
  if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b) || !r || !g || !b) {
    *first_colour = "missing";
    return false;
  }
  const uint32_t n = 1u << bits;
  auto ramp = [&](auto f) {
    for (uint32_t i = 0; i < n; ++i)
      if (r[i] != f(i) || g[i] != f(i) || b[i] != f(i)) return false;
    return true;
  };
  if (bits == 16 ? ramp([](uint32_t i) { return i; })
                 : ramp([](uint32_t i) { return i * 257; }) || ramp([](uint32_t i) { return i << 8; }) ||
                       ramp([](uint32_t i) { return i; }))
    return true;
  // Name the first entry off the i*257 (or 16-bit i) ramp.
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t want = bits == 16 ? i : i * 257;
    if (r[i] != want || g[i] != want || b[i] != want) {
      *first_colour = "entry " + std::to_string(i) + " is R,G,B = " + std::to_string(r[i]) + "," +
                      std::to_string(g[i]) + "," + std::to_string(b[i]);
      break;
    }
  }
  return false;
}

// Opens `path` for a header scan: stat first (opening a FIFO for reading would block until a
// writer appears), then the fd and the libtiff handle; records the file's size and mtime.
// Header reads are not counted: the counters measure pixel traffic (a remount served from the
// cache reads headers only, and shows source_bytes_read 0).
Status OpenForScan(const std::string& path, const std::string& what, Stats* stats, SliceHandle* h, SliceFile* file) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "cannot stat " + what);
  if (!S_ISREG(st.st_mode))
    return InvalidArgumentError(what + " is " + FileTypeName(st.st_mode) + ", not a TIFF file; remove or rename it");
  OZ_RETURN_IF_ERROR(h->OpenFd(path, what, stats, &st));
  h->CountBytes(false);
  file->size = static_cast<uint64_t>(st.st_size);
  file->mtime_ns = MtimeNs(st);
  return h->OpenTiff(file->name, what);
}

// Checks the pixel format of the directory `tif` is on and sets *dtype. Every refusal says how
// to convert.
Status CheckPixelFormat(TIFF* tif, const std::string& what, DType* dtype) {
  uint16_t spp = 1, bits = 1, fmt = SAMPLEFORMAT_UINT, photometric = PHOTOMETRIC_MINISBLACK, compression = 1;
  uint16_t planar = PLANARCONFIG_CONTIG;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric)) photometric = PHOTOMETRIC_MINISBLACK;

  const std::string serves =
      "; omezarrfs serves one value per voxel (uint8, uint16, uint32, uint64, int16 or float32). ";
  // tifffile reads samples last for contiguous data and before y, x for planar (separate) data;
  // these forms pick one sample of one page or of every page.
  auto sample = [&](int i) {
    return planar == PLANARCONFIG_SEPARATE ? "numpy.take(imread(IN), " + std::to_string(i) + ", axis=-3)"
                                           : "imread(IN)[..., " + std::to_string(i) + "]";
  };
  if (spp != 1) {
    uint16_t extra_count = 0;
    uint16_t* extra = nullptr;
    TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &extra_count, &extra);
    const bool with_alpha =
        extra_count > 0 && extra && (extra[0] == EXTRASAMPLE_ASSOCALPHA || extra[0] == EXTRASAMPLE_UNASSALPHA);
    std::string m = what + ": SamplesPerPixel=" + std::to_string(spp);
    if (photometric == PHOTOMETRIC_RGB || photometric == PHOTOMETRIC_YCBCR) {
      m += std::string(photometric == PHOTOMETRIC_RGB ? " (RGB" : " (YCbCr") + (with_alpha ? " + alpha)" : ")") +
           " is not supported" + serves +
           "Keep one channel: `convert IN -channel G -separate OUT` (ImageMagick; or -colorspace Gray for the "
           "luminance), or tifffile: imwrite(OUT, " +
           sample(1) + ")";
    } else if (spp - extra_count == 1) {
      m += std::string(" (grey + ExtraSamples ") + (with_alpha ? "alpha" : "extra channel") + ") is not supported" +
           serves + "Drop the extra sample: `convert IN -alpha off OUT` (ImageMagick), or tifffile: imwrite(OUT, " +
           sample(0) + ")";
    } else {
      m += " is not supported" + serves + "Keep one sample, e.g. tifffile: imwrite(OUT, " + sample(0) + ")";
    }
    return UnsupportedError(m);
  }
  // Served: unsigned 8/16/32/64 bits, signed 16 bits, IEEE float 32 bits.
  const bool uint = fmt == SAMPLEFORMAT_UINT || fmt == SAMPLEFORMAT_VOID;
  if (uint && (bits == 8 || bits == 16 || bits == 32 || bits == 64)) {
    *dtype = bits == 8 ? DType::kUint8 : bits == 16 ? DType::kUint16 : bits == 32 ? DType::kUint32 : DType::kUint64;
  } else if (fmt == SAMPLEFORMAT_INT && bits == 16) {
    *dtype = DType::kInt16;
  } else if (fmt == SAMPLEFORMAT_IEEEFP && bits == 32) {
    *dtype = DType::kFloat32;
  } else {
    const std::string kind = uint                         ? "unsigned integer"
                             : fmt == SAMPLEFORMAT_INT    ? "signed integer"
                             : fmt == SAMPLEFORMAT_IEEEFP ? "floating point"
                                                          : "complex";
    std::string hint;
    if (fmt == SAMPLEFORMAT_IEEEFP)
      hint =
          "Convert it to float32: `gdal_translate -ot Float32 IN OUT` (GDAL), or numpy and tifffile: "
          "imwrite(OUT, imread(IN).astype('float32'))";
    else if (fmt == SAMPLEFORMAT_INT && bits == 8)
      hint =
          "Convert it to int16: numpy and tifffile: imwrite(OUT, imread(IN).astype('int16')), or `gdal_translate "
          "-ot Int16 IN OUT` (GDAL)";
    else if (fmt == SAMPLEFORMAT_INT && bits > 16)
      hint =
          "Convert it to int16 (if its values fit) or float32: `gdal_translate -ot Float32 IN OUT` (GDAL), or "
          "numpy and tifffile: imwrite(OUT, imread(IN).astype('float32'))";
    else if (uint)
      return UnsupportedError(what + ": BitsPerSample=" + std::to_string(bits) + " is not supported" + serves +
                              "Re-save it at 8 or 16 bits per sample: `convert IN -depth " + (bits < 8 ? "8" : "16") +
                              " OUT` (ImageMagick; it rescales the values to the new depth)");
    else
      hint =
          "Keep one real value per voxel, e.g. numpy and tifffile: imwrite(OUT, numpy.abs(imread(IN))"
          ".astype('float32'))";
    return UnsupportedError(what + ": SampleFormat=" + std::to_string(fmt) + " (" + kind + ", " + std::to_string(bits) +
                            " bits) is not supported" + serves + hint);
  }
  std::string colour;
  if (photometric == PHOTOMETRIC_PALETTE && bits != 8 && bits != 16)
    return UnsupportedError(what + ": Photometric=3 (palette) with " + std::to_string(bits) +
                            " bits per sample is not supported; convert it to greyscale: `convert IN -colorspace "
                            "Gray OUT` (ImageMagick)");
  if (photometric == PHOTOMETRIC_PALETTE && !IsGreyRamp(tif, bits, &colour))
    return UnsupportedError(what + ": Photometric=3 (palette) with a colour map that is not the grey identity ramp (" +
                            colour + ") is not supported" + serves +
                            "Convert it to greyscale: `convert IN -colorspace Gray OUT` (ImageMagick) or `gm convert "
                            "IN -type Grayscale -depth 8 OUT` (GraphicsMagick); or, to serve the palette indices as "
                            "values, tifffile: imwrite(OUT, imread(IN)) (tifffile reads the indices)");
  if (photometric == PHOTOMETRIC_MINISWHITE)
    return UnsupportedError(what +
                            ": Photometric=0 (MinIsWhite, 0 is white) is not supported: its values would be served "
                            "inverted. To serve what it shows, invert it to MinIsBlack: `convert IN OUT` "
                            "(ImageMagick rewrites it so), or numpy and tifffile: a = imread(IN); imwrite(OUT, "
                            "numpy.iinfo(a.dtype).max - a). If the tag is wrong and the values are intensities, "
                            "retag the file in place: tiffset -s 262 1 IN");
  if (photometric != PHOTOMETRIC_MINISBLACK && photometric != PHOTOMETRIC_PALETTE)
    return UnsupportedError(what + ": Photometric=" + std::to_string(photometric) +
                            (photometric == PHOTOMETRIC_MASK ? " (a transparency mask)" : "") +
                            " is not supported (only MinIsBlack=1, and palettes that are the grey ramp)" + serves +
                            "Convert it to greyscale: `convert IN -colorspace Gray OUT` (ImageMagick)");
  if (!TIFFIsCODECConfigured(compression))
    return UnsupportedError(what + ": Compression=" + CodecName(compression) +
                            " is not available in this build of libtiff; re-save it with LZW, deflate, zstd or no "
                            "compression using a program that reads it (e.g. Bio-Formats: bfconvert -compression LZW "
                            "IN OUT, or tifffile with imagecodecs: imwrite(OUT, imread(IN), compression='zlib'))");
  return OkStatus();
}

// Reads and checks the directory `h` is on; fills info. Errors name info->label and the field.
// max_unit: the decoded-strip budget; a strip or tile that decodes to more is refused, so a
// hostile header (a 1 MB file whose one deflate strip inflates to gigabytes) cannot take memory
// beyond -o memory=.
Status ScanDirectory(SliceHandle& h, SliceInfo* info, uint64_t unit_bytes, uint64_t max_unit) {
  const std::string& what = info->label;
  TIFF* tif = h.tif();
  uint32_t w = 0, hgt = 0;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &hgt) || w == 0 || hgt == 0)
    return InvalidArgumentError(what + " has no valid ImageWidth/ImageLength; fix or remove it");
  OZ_RETURN_IF_ERROR(CheckPixelFormat(tif, what, &info->dtype));
  uint16_t bits = 8, compression = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);

  info->width = w;
  info->height = hgt;
  info->bits = bits;
  info->compression = compression;
  const uint64_t bps = bits / 8;
  const uint64_t row_bytes = static_cast<uint64_t>(w) * bps;
  const uint64_t file_size = info->file.size;

  auto too_big = [&](const char* unit, uint64_t bytes) {
    char m[160];
    std::snprintf(m, sizeof m, "one %s decodes to %.1f MiB, more than the %.1f MiB of decoded-strip memory", unit,
                  static_cast<double>(bytes) / (1 << 20), static_cast<double>(max_unit) / (1 << 20));
    return ResourceExhaustedError(what + ": " + m +
                                  " (3/8 of -o memory=); mount with a larger memory= or re-save the slices with "
                                  "smaller strips or tiles");
  };
  auto past_end = [&](const char* unit, uint64_t index, uint64_t off, uint64_t len) {
    return InvalidArgumentError(what + " is truncated or corrupt: " + unit + " " + std::to_string(index) +
                                " needs bytes " + std::to_string(off) + "-" + std::to_string(off + len) +
                                " but the file has " + std::to_string(file_size) + " bytes; fix or remove it");
  };

  if (TIFFIsTiled(tif)) {
    uint32_t tw = 0, th = 0;
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) || tw == 0 || th == 0)
      return InvalidArgumentError(what + " has no valid TileWidth/TileLength; fix or remove it");
    info->layout = Layout::kTiles;
    info->tile_w = tw;
    info->tile_h = th;
    if (uint64_t tile_bytes = uint64_t{tw} * th * bps; tile_bytes > max_unit) return too_big("tile", tile_bytes);
    uint32_t n = TIFFNumberOfTiles(tif);
    uint64_t expected = static_cast<uint64_t>(CeilDiv(w, tw)) * static_cast<uint64_t>(CeilDiv(hgt, th));
    if (n < expected)
      return InvalidArgumentError(what + " has " + std::to_string(n) + " tiles but needs " + std::to_string(expected) +
                                  "; fix or remove it");
    for (uint32_t t = 0; t < expected; ++t) {
      int err = 0;
      uint64_t off = TIFFGetStrileOffsetWithErr(tif, t, &err);
      uint64_t len = TIFFGetStrileByteCountWithErr(tif, t, &err);
      if (!err && off == 0 && len == 0) {  // sparse: reads as zeros
        info->sparse = true;
        continue;
      }
      if (err || len == 0)
        return InvalidArgumentError(what + ": tile " + std::to_string(t) + " has no data (" + h.TakeErrors() +
                                    "); fix or remove it");
      if (off > file_size || len > file_size - off) return past_end("tile", t, off, len);
    }
    return OkStatus();
  }

  uint32_t rps = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
  if (rps == 0 || rps > hgt) rps = hgt;
  info->rows_per_strip = rps;
  uint32_t n = TIFFNumberOfStrips(tif);
  uint32_t expected = static_cast<uint32_t>(CeilDiv(hgt, rps));
  if (n < expected)
    return InvalidArgumentError(what + " has " + std::to_string(n) + " strips but needs " + std::to_string(expected) +
                                "; fix or remove it");
  const bool raw = compression == COMPRESSION_NONE;
  bool contiguous = raw;
  uint64_t next = 0;
  for (uint32_t s = 0; s < expected; ++s) {
    int err = 0;
    uint64_t off = TIFFGetStrileOffsetWithErr(tif, s, &err);
    uint64_t len = TIFFGetStrileByteCountWithErr(tif, s, &err);
    if (!err && off == 0 && len == 0) {  // sparse: reads as zeros
      info->sparse = true;
      contiguous = false;
      continue;
    }
    if (err || len == 0)
      return InvalidArgumentError(what + ": strip " + std::to_string(s) + " has no data (" + h.TakeErrors() +
                                  "); fix or remove it");
    if (raw) {
      uint64_t rows = std::min<uint64_t>(rps, hgt - static_cast<uint64_t>(s) * rps);
      uint64_t need = rows * row_bytes;
      if (len < need)
        return InvalidArgumentError(what + ": uncompressed strip " + std::to_string(s) + " has " + std::to_string(len) +
                                    " bytes but its " + std::to_string(rows) + " rows need " + std::to_string(need) +
                                    "; fix or remove it");
      len = need;
      if (s == 0)
        info->base_offset = off;
      else if (off != next)
        contiguous = false;
      next = off + len;
    }
    if (off > file_size || len > file_size - off) return past_end("strip", s, off, len);
  }
  if (raw) {
    // A raw strip with data is bounded by the file's size; a sparse one only by the header.
    if (info->sparse && row_bytes > max_unit) return too_big("row", row_bytes);
    info->swap = TIFFIsByteSwapped(tif) && bits > 8;
    uint64_t rows = std::max<uint64_t>(1, unit_bytes / row_bytes);
    if (contiguous) {
      info->layout = Layout::kRawContiguous;
      info->unit_rows = static_cast<int64_t>(std::min<uint64_t>(rows, hgt));
    } else {
      info->layout = Layout::kRawStrips;
      info->unit_rows = static_cast<int64_t>(std::min<uint64_t>(rows, rps));
    }
  } else {
    info->layout = Layout::kStrips;
    if (uint64_t strip_bytes = uint64_t{rps} * row_bytes; strip_bytes > max_unit) return too_big("strip", strip_bytes);
  }
  return OkStatus();
}

// Reads and checks one slice file's header; fills info. `page` is -o page= (-1: not given).
Status ScanSlice(const std::string& dir, SliceInfo* info, int page, uint64_t unit_bytes, uint64_t max_unit,
                 Stats* stats) {
  SliceHandle h;
  OZ_RETURN_IF_ERROR(OpenForScan(dir + "/" + info->file.name, info->label, stats, &h, &info->file));
  OZ_RETURN_IF_ERROR(SelectSlicePage(h, info->file.name, page, &info->ifd_offset));
  return ScanDirectory(h, info, unit_bytes, max_unit);
}

// Which unit holds pixel row y (and column x for tiles).
UnitRect UnitAt(const SliceInfo& s, int64_t y, int64_t x) {
  UnitRect u;
  u.x0 = 0;
  u.x1 = s.width;
  u.stride_px = s.width;
  switch (s.layout) {
    case Layout::kRawContiguous:
      u.index = y / s.unit_rows;
      u.y0 = u.index * s.unit_rows;
      u.y1 = std::min(s.height, u.y0 + s.unit_rows);
      break;
    case Layout::kRawStrips: {
      int64_t per_strip = CeilDiv(s.rows_per_strip, s.unit_rows);
      u.strip = y / s.rows_per_strip;
      u.strip_y0 = u.strip * s.rows_per_strip;
      int64_t piece = (y - u.strip_y0) / s.unit_rows;
      u.index = u.strip * per_strip + piece;
      u.y0 = u.strip_y0 + piece * s.unit_rows;
      u.y1 = std::min({s.height, u.y0 + s.unit_rows, u.strip_y0 + s.rows_per_strip});
      break;
    }
    case Layout::kStrips:
      u.index = y / s.rows_per_strip;
      u.y0 = u.index * s.rows_per_strip;
      u.y1 = std::min(s.height, u.y0 + s.rows_per_strip);
      break;
    case Layout::kTiles: {
      int64_t ty = y / s.tile_h, tx = x / s.tile_w;
      u.index = ty * CeilDiv(s.width, s.tile_w) + tx;
      u.y0 = ty * s.tile_h;
      u.y1 = std::min(s.height, u.y0 + s.tile_h);
      u.x0 = tx * s.tile_w;
      u.x1 = std::min(s.width, u.x0 + s.tile_w);
      u.stride_px = s.tile_w;
      break;
    }
  }
  return u;
}

Status PreadFully(int fd, uint8_t* buf, uint64_t len, uint64_t off, const std::string& what, Stats* stats) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t r = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot read " + what + " at offset " + std::to_string(off + done))
          .WithContext("I/O error");
    }
    if (r == 0)
      return IoError(what + " ends at offset " + std::to_string(off + done) + " but " + std::to_string(len) +
                     " bytes were expected from offset " + std::to_string(off) + "; the file is truncated");
    done += static_cast<uint64_t>(r);
  }
  if (stats) stats->source_bytes_read += len;
  return OkStatus();
}

}  // namespace

Result<std::vector<SliceFile>> DiscoverSlices(const std::vector<std::string>& names) {
  return DiscoverSlicesIn(names, "");
}

// ---------------------------------------------------------------------------------------------

struct TiffStack::Impl {
  std::string dir;  // the directory holding the slice files, or the multi-page file
  TiffStackOptions options;
  std::string multipage_file;    // non-empty: the one multi-page file (in dir) whose pages are z
  PageLayout layout;             // its page layout (multipage_file only)
  std::vector<SliceInfo> infos;  // sorted by z; immutable after Open
  std::vector<SliceFile> files;  // same order, for slices()
  std::vector<std::string> warnings;
  int64_t depth = 0, height = 0, width = 0;
  DType dtype = DType::kUint16;
  std::unique_ptr<StripCache> cache;

  const SliceInfo* Find(int64_t z) const {
    auto it =
        std::lower_bound(infos.begin(), infos.end(), z, [](const SliceInfo& s, int64_t v) { return s.file.z < v; });
    return it != infos.end() && it->file.z == z ? &*it : nullptr;
  }

  Status ReadSlice(const SliceInfo& s, const Box& box, uint8_t* plane);
  Status ReadSliceStrided(const SliceInfo& s, const Box& box, int64_t step, uint8_t* plane);
};

namespace {

// Reader state for one slice within one ReadBox: opens the file at most once, and only when a
// unit is not already cached.
class SliceReader {
 public:
  SliceReader(const std::string& dir, const SliceInfo& s, Stats* stats) : dir_(dir), s_(s), stats_(stats) {}

  // The unit's pixels, checked against a change of the file while it was read (a writer
  // rewriting the slice in place): such bytes are dropped, never cached or served.
  Result<BlockPtr> Load(const UnitRect& u) {
    OZ_RETURN_IF_ERROR(EnsureOpen());
    FaultPoint("source", "read");
    Result<BlockPtr> r = LoadUnit(u);
    if (r.ok()) OZ_RETURN_IF_ERROR(CheckUnchanged("while it was read"));
    return r;
  }

  // Uncompressed layouts: reads pixels [x0, x0 + n) of rows [y, y + rows) into dst (n pixels per
  // row, packed), not through the cache. More than one row only as whole rows (x0 = 0, n = width)
  // that lie back to back in the file: within one strip (kRawStrips) or anywhere (kRawContiguous).
  // The caller checks Unchanged() once after its last read of the slice (or Load does).
  Status ReadRawRows(int64_t y, int64_t rows, int64_t x0, int64_t n, uint8_t* dst) {
    OZ_RETURN_IF_ERROR(EnsureOpen());
    const uint64_t bps = static_cast<uint64_t>(s_.bits / 8);
    const uint64_t row_bytes = static_cast<uint64_t>(s_.width) * bps;
    uint64_t base = s_.base_offset + static_cast<uint64_t>(y) * row_bytes;
    if (s_.layout == Layout::kRawStrips) {
      OZ_RETURN_IF_ERROR(EnsureTiff());
      const int64_t strip = y / s_.rows_per_strip;
      int err = 0;
      base = TIFFGetStrileOffsetWithErr(h_.tif(), static_cast<uint32_t>(strip), &err);
      if (err)
        return IoError(s_.label + ": cannot read the offset of strip " + std::to_string(strip) + " (" +
                       h_.TakeErrors() + ")");
      if (s_.sparse && base == 0 && TIFFGetStrileByteCountWithErr(h_.tif(), static_cast<uint32_t>(strip), &err) == 0 &&
          !err) {  // sparse strip (GDAL SPARSE_OK): not written, reads as zeros
        std::memset(dst, 0, static_cast<size_t>(rows * n) * bps);
        return OkStatus();
      }
      base += static_cast<uint64_t>(y - strip * s_.rows_per_strip) * row_bytes;
    }
    const uint64_t off = base + static_cast<uint64_t>(x0) * bps;
    const uint64_t len = static_cast<uint64_t>(rows * n) * bps;  // rows > 1 only with n = width
    FaultPoint("source", "read");
    if (off > h_.size() || len > h_.size() - off)
      return IoError(s_.label + " is truncated: rows " + std::to_string(y) + "-" + std::to_string(y + rows - 1) +
                     " need bytes up to offset " + std::to_string(off + len) + " but the file has " +
                     std::to_string(h_.size()) + " bytes");
    OZ_RETURN_IF_ERROR(PreadFully(h_.fd(), dst, len, off, s_.label, stats_));
    if (s_.swap) SwapBytes(dst, len, static_cast<size_t>(s_.bits / 8));
    return OkStatus();
  }

  // After ReadRawRows: fails if the file changed while it was read (never a mix of old and new).
  Status CheckUnchangedIfOpen() {
    return opened_ && open_status_.ok() ? CheckUnchanged("while it was read") : OkStatus();
  }

 private:
  Result<BlockPtr> LoadUnit(const UnitRect& u) {
    const int64_t rows = s_.layout == Layout::kTiles ? s_.tile_h : u.y1 - u.y0;
    OZ_ASSIGN_OR_RETURN(std::shared_ptr<Block> b,
                        NewBlock(static_cast<size_t>(rows * u.stride_px) * static_cast<size_t>(s_.bits / 8)));
    OZ_RETURN_IF_ERROR(DecodeInto(u, b->data.get()));
    return BlockPtr(std::move(b));
  }

 public:
  // Decodes unit u into dst (its rows x stride pixels, packed), not through the cache. dst may be
  // the plane of a box whose rows are a strip's (full width). The caller checks
  // CheckUnchangedIfOpen() after its last read of the slice (Load does itself).
  Status DecodeInto(const UnitRect& u, uint8_t* dst) {
    OZ_RETURN_IF_ERROR(EnsureOpen());
    const int64_t bps = s_.bits / 8;
    const std::string& name = s_.label;
    if (stats_) ++stats_->strips_decoded;
    if (s_.sparse && s_.layout != Layout::kRawContiguous && s_.layout != Layout::kRawStrips) {
      OZ_RETURN_IF_ERROR(EnsureTiff());
      const uint32_t strile = static_cast<uint32_t>(u.index);
      int err = 0;
      const uint64_t off = TIFFGetStrileOffsetWithErr(h_.tif(), strile, &err);
      const uint64_t len = TIFFGetStrileByteCountWithErr(h_.tif(), strile, &err);
      if (!err && off == 0 && len == 0) {  // sparse (GDAL SPARSE_OK): not written, reads as zeros
        const int64_t rows = s_.layout == Layout::kTiles ? s_.tile_h : u.y1 - u.y0;
        std::memset(dst, 0, static_cast<size_t>(rows * u.stride_px * bps));
        return OkStatus();
      }
    }
    switch (s_.layout) {
      case Layout::kRawContiguous:
      case Layout::kRawStrips: return ReadRawRows(u.y0, u.y1 - u.y0, 0, s_.width, dst);
      case Layout::kStrips: {
        OZ_RETURN_IF_ERROR(EnsureTiff());
        const uint64_t len = static_cast<uint64_t>((u.y1 - u.y0) * s_.width * bps);
        tmsize_t got = TIFFReadEncodedStrip(h_.tif(), static_cast<uint32_t>(u.index), dst, static_cast<tmsize_t>(len));
        if (got != static_cast<tmsize_t>(len))
          return IoError(name + ": cannot decode strip " + std::to_string(u.index) + " (rows " + std::to_string(u.y0) +
                         "-" + std::to_string(u.y1 - 1) + ", compression " + CodecName(s_.compression) +
                         "): " + h_.TakeErrors() + "; the file may be corrupt");
        return OkStatus();
      }
      case Layout::kTiles: {
        OZ_RETURN_IF_ERROR(EnsureTiff());
        const uint64_t len = static_cast<uint64_t>(s_.tile_w * s_.tile_h * bps);
        tmsize_t got = TIFFReadEncodedTile(h_.tif(), static_cast<uint32_t>(u.index), dst, static_cast<tmsize_t>(len));
        if (got != static_cast<tmsize_t>(len))
          return IoError(name + ": cannot decode tile " + std::to_string(u.index) + " (x " + std::to_string(u.x0) +
                         ", y " + std::to_string(u.y0) + ", compression " + CodecName(s_.compression) +
                         "): " + h_.TakeErrors() + "; the file may be corrupt");
        return OkStatus();
      }
    }
    return InternalError("unknown slice layout");
  }

 private:
  Status EnsureOpen() {
    if (opened_) return open_status_;
    opened_ = true;
    struct stat st;
    open_status_ = h_.OpenFd(dir_ + "/" + s_.file.name, s_.label, stats_, &st);
    if (!open_status_.ok()) {
      open_status_ = IoError(open_status_.message());
    } else {
      open_status_ = Unchanged(st, "since mount");
    }
    return open_status_;
  }

  // Size and mtime as at mount (any write moves the mtime past the mount's scan).
  Status Unchanged(const struct stat& st, const char* when) const {
    if (static_cast<uint64_t>(st.st_size) == s_.file.size && MtimeNs(st) == s_.file.mtime_ns) return OkStatus();
    return IoError(s_.label + " changed " + when + " (size " + std::to_string(s_.file.size) + " -> " +
                   std::to_string(st.st_size) + " bytes or modification time differs); remount to serve the new data");
  }

  Status CheckUnchanged(const char* when) {
    struct stat st;
    if (::fstat(h_.fd(), &st) != 0) return ErrnoError(errno, "cannot stat " + s_.label);
    Status u = Unchanged(st, when);
    if (!u.ok()) open_status_ = u;  // later units of this slice fail too: never a mix
    return u;
  }

  Status EnsureTiff() {
    if (h_.tif()) return OkStatus();
    Status st = h_.OpenTiff(s_.file.name, s_.label, s_.ifd_offset);
    if (!st.ok()) return IoError(st.message());
    return OkStatus();
  }

  const std::string& dir_;
  const SliceInfo& s_;
  Stats* stats_;
  SliceHandle h_;
  bool opened_ = false;
  Status open_status_;
};

}  // namespace

Status TiffStack::Impl::ReadSlice(const SliceInfo& s, const Box& box, uint8_t* plane) {
  const int64_t bps = static_cast<int64_t>(DTypeSize(dtype));
  const int64_t bw = box.hi[2] - box.lo[2];
  SliceReader reader(dir, s, options.stats);
  // Uncompressed full-width rows (a unit walk of materialize, a row listing) are read straight
  // into the plane, where they lie back to back: no strip-cache block and no copy out of it, and
  // never more I/O than the box's own rows. Contiguous pixel data: the rows of the units not in
  // the cache with one pread; separate strips: the same within each strip. A cached unit is
  // copied from the cache.
  const bool raw = s.layout == Layout::kRawContiguous || s.layout == Layout::kRawStrips;
  auto cached = [&](const UnitRect& u) { return cache->Cached(UnitKey{s.file.z, u.index}); };
  bool read_direct = false;
  for (int64_t y = box.lo[1]; y < box.hi[1];) {
    int64_t band_end = box.hi[1];
    for (int64_t x = box.lo[2]; x < box.hi[2];) {
      UnitRect u = UnitAt(s, y, x);
      if (raw && u.x0 == box.lo[2] && u.x1 == box.hi[2] && !cached(u)) {
        const int64_t first = s.layout == Layout::kRawContiguous ? 0 : u.strip_y0;  // of the run
        const int64_t end = s.layout == Layout::kRawContiguous
                                ? box.hi[1]
                                : std::min({box.hi[1], u.strip_y0 + s.rows_per_strip, s.height});
        int64_t y1 = std::min(end, u.y1);
        for (UnitRect n; y1 < end && !cached(n = UnitAt(s, y1, x));) y1 = std::min(end, n.y1);
        OZ_RETURN_IF_ERROR(reader.ReadRawRows(y, y1 - y, 0, s.width, plane + (y - box.lo[1]) * bw * bps));
        // Counted as the (virtual) units the rows touch.
        const int64_t units = (y1 - 1 - first) / s.unit_rows - (y - first) / s.unit_rows + 1;
        if (options.stats) options.stats->strips_decoded += static_cast<uint64_t>(units);
        read_direct = true;
        band_end = y1;
        break;
      }
      // A compressed strip the box covers whole (all its rows, the full width): decoded straight
      // into the plane, with no strip-cache block and no copy out of it.
      if (s.layout == Layout::kStrips && u.x0 == box.lo[2] && u.x1 == box.hi[2] && u.y0 >= box.lo[1] &&
          u.y1 <= box.hi[1] && !cached(u)) {
        FaultPoint("source", "read");
        OZ_RETURN_IF_ERROR(reader.DecodeInto(u, plane + (u.y0 - box.lo[1]) * bw * bps));
        read_direct = true;
        band_end = u.y1;
        break;
      }
      const int64_t unit_rows = s.layout == Layout::kTiles ? s.tile_h : u.y1 - u.y0;
      const uint64_t unit_bytes = static_cast<uint64_t>(unit_rows * u.stride_px * bps);
      OZ_ASSIGN_OR_RETURN(BlockPtr block, cache->Get(UnitKey{s.file.z, u.index}, unit_bytes, options.stats,
                                                     [&]() { return reader.Load(u); }));
      const int64_t y1 = std::min(box.hi[1], u.y1), x1 = std::min(box.hi[2], u.x1);
      const size_t row_len = static_cast<size_t>((x1 - x) * bps);
      for (int64_t yy = y; yy < y1; ++yy) {
        const uint8_t* src = block->data.get() + ((yy - u.y0) * u.stride_px + (x - u.x0)) * bps;
        uint8_t* dst = plane + ((yy - box.lo[1]) * bw + (x - box.lo[2])) * bps;
        std::memcpy(dst, src, row_len);
      }
      band_end = y1;
      x = x1;
    }
    y = band_end;
  }
  return read_direct ? reader.CheckUnchangedIfOpen() : OkStatus();
}

// Row by row: an uncompressed row is read directly from the first to the last kept column; a
// compressed strip or tile is decoded (through the cache) only if it holds a kept pixel, and the
// last one is kept at hand, since consecutive kept rows or columns often share it.
Status TiffStack::Impl::ReadSliceStrided(const SliceInfo& s, const Box& box, int64_t step, uint8_t* plane) {
  const size_t bps = DTypeSize(dtype);
  const Vec3 os = StridedShape(box, step);
  const int64_t x0 = box.lo[2];
  SliceReader reader(dir, s, options.stats);
  const bool raw = s.layout == Layout::kRawContiguous || s.layout == Layout::kRawStrips;
  std::vector<uint8_t> row;
  if (raw) row.resize(static_cast<size_t>((os[2] - 1) * step + 1) * bps);
  int64_t held_index = -1;
  BlockPtr held;
  for (int64_t ky = 0; ky < os[1]; ++ky) {
    const int64_t y = box.lo[1] + ky * step;
    uint8_t* dst = plane + static_cast<size_t>(ky * os[2]) * bps;
    if (raw) {
      OZ_RETURN_IF_ERROR(reader.ReadRawRows(y, 1, x0, static_cast<int64_t>(row.size() / bps), row.data()));
      for (int64_t kx = 0; kx < os[2]; ++kx)
        std::memcpy(dst + static_cast<size_t>(kx) * bps, row.data() + static_cast<size_t>(kx * step) * bps, bps);
      continue;
    }
    for (int64_t kx = 0; kx < os[2];) {
      const UnitRect u = UnitAt(s, y, x0 + kx * step);
      if (u.index != held_index) {
        const int64_t unit_rows = s.layout == Layout::kTiles ? s.tile_h : u.y1 - u.y0;
        const uint64_t unit_bytes = static_cast<uint64_t>(unit_rows * u.stride_px) * bps;
        OZ_ASSIGN_OR_RETURN(
            held, cache->Get(UnitKey{s.file.z, u.index}, unit_bytes, options.stats, [&]() { return reader.Load(u); }));
        held_index = u.index;
      }
      const uint8_t* src = held->data.get() + static_cast<size_t>((y - u.y0) * u.stride_px) * bps;
      for (; kx < os[2] && x0 + kx * step < u.x1; ++kx)
        std::memcpy(dst + static_cast<size_t>(kx) * bps, src + static_cast<size_t>(x0 + kx * step - u.x0) * bps, bps);
    }
  }
  return raw ? reader.CheckUnchangedIfOpen() : OkStatus();
}

TiffStack::TiffStack(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TiffStack::~TiffStack() = default;

namespace {

// Units get at most 1/64 of the cache so a chunk's worth of them fits, and at most 1 MiB.
uint64_t UnitBytes(const TiffStackOptions& options) {
  return std::clamp<uint64_t>(options.memory_bytes / 64, 1, kVirtualStripBytes);
}

bool HasTiffExtension(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot != std::string::npos && dot > 0 &&
         (EqualsIgnoreCase(name.substr(dot + 1), "tif") || EqualsIgnoreCase(name.substr(dot + 1), "tiff"));
}

// A directory of slice files: discovery, then every header in parallel.
Status ScanSliceDirectory(TiffStack::Impl* impl, const std::vector<std::string>& names) {
  const TiffStackOptions& options = impl->options;
  OZ_ASSIGN_OR_RETURN(std::vector<SliceFile> files, DiscoverSlicesIn(names, " in " + impl->dir));
  impl->infos.resize(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    impl->infos[i].file = files[i];
    impl->infos[i].label = "slice " + files[i].name;
  }
  const uint64_t unit_bytes = UnitBytes(options);
  auto scan = [&](size_t i) {
    SliceInfo& info = impl->infos[i];
    try {
      info.status = ScanSlice(impl->dir, &info, options.page, unit_bytes, options.memory_bytes, options.stats);
    } catch (const std::bad_alloc&) {
      info.status = ResourceExhaustedError("out of memory reading the header of " + info.label);
    } catch (...) {
      info.status = InternalError("unexpected exception reading the header of " + info.label);
    }
  };
  if (options.pool)
    options.pool->ParallelFor(impl->infos.size(), scan);
  else
    for (size_t i = 0; i < impl->infos.size(); ++i) scan(i);
  return OkStatus();
}

// One multi-page file `name` in impl->dir: walks its IFD chain once, scanning the pages that hold
// the chosen channel and time point. With `single_page` non-null (the file was found alone in
// a directory) a file with one full-resolution page is left to the slice reader: *single_page is
// set and nothing else is done.
Status ScanMultiPage(TiffStack::Impl* impl, const std::string& name, bool* single_page) {
  constexpr int64_t kMaxPages = 1 << 22;  // bound on the walk, far beyond any real stack
  const TiffStackOptions& options = impl->options;
  const uint64_t unit_bytes = UnitBytes(options);
  SliceHandle h;
  SliceFile file{0, name, 0, 0};
  {
    Status opened = OpenForScan(impl->dir + "/" + name, name, options.stats, &h, &file);
    if (!opened.ok() && single_page) {  // not a TIFF at all: the slice reader says why
      *single_page = true;
      return OkStatus();
    }
    OZ_RETURN_IF_ERROR(opened);
  }
  TIFF* tif = h.tif();

  const bool one_directory = TIFFLastDirectory(tif);
  uint16_t spp = 1;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  Result<PageLayout> parsed = PageLayout{};
  {
    char* desc = nullptr;
    std::string description;
    if (TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc) && desc) description = desc;
    if (spp == 1) parsed = ParsePageLayout(description, name);
  }
  // One IFD holds one plane, whatever the description says (an RGB image's SizeC=3 are its
  // samples), except ImageJ's layout of big stacks: one IFD, images=N planes back to back.
  const bool imagej_contiguous =
      parsed.ok() && parsed->kind == "ImageJ hyperstack" && parsed->imagej_images > 1 && one_directory;
  if (one_directory && !imagej_contiguous) {
    if (single_page) {
      *single_page = true;
      return OkStatus();
    }
    parsed = PageLayout{};
  }
  if (single_page && !one_directory) {
    // Alone in a directory: a multi-page file only if it has a second full-resolution page.
    int64_t full = 0;
    uint64_t first = TIFFCurrentDirOffset(tif);
    for (int64_t d = 0; d < kMaxPages; ++d) {
      uint32_t subfile = 0;
      TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &subfile);
      if (!(subfile & FILETYPE_REDUCEDIMAGE) && ++full > 1) break;
      if (TIFFLastDirectory(tif) || !TIFFReadDirectory(tif)) break;
    }
    h.TakeErrors();
    if (full < 2 && !imagej_contiguous) {
      *single_page = true;
      return OkStatus();
    }
    if (!TIFFSetSubDirectory(tif, first))
      return InvalidArgumentError(name + ": cannot return to its first page (" + h.TakeErrors() + "); fix it");
  }
  OZ_ASSIGN_OR_RETURN(PageLayout layout, std::move(parsed));
  OZ_RETURN_IF_ERROR(CheckPlaneChoice(layout, options.channel, options.time, name));
  if (layout.slices < 0 && layout.frames > 1)
    return UnsupportedError(name + " is an " + layout.kind + " with " + layout.declared +
                            " but no slices= or images= count, so its pages cannot be told apart; fix its "
                            "description or re-save it");
  const int64_t want_c = std::max(options.channel, 0), want_t = std::max(options.time, 0);
  PageLayout mapping = layout;
  if (mapping.slices < 0) mapping.slices = kMaxPages;  // every page a slice, counted below

  impl->multipage_file = name;
  impl->layout = layout;
  std::map<int64_t, SliceInfo> by_z;
  std::optional<SliceInfo> first_page;  // ordinal 0, for ImageJ's one-IFD layout
  int64_t dirs = 0, full = 0;
  while (true) {
    const uint64_t offset = TIFFCurrentDirOffset(tif);
    uint32_t subfile = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &subfile);
    if (!(subfile & FILETYPE_REDUCEDIMAGE)) {
      const int64_t ordinal = full++;
      const int64_t key = layout.keyed_by_directory ? dirs : ordinal;
      std::optional<PagePlane> plane = PlaneOfPage(mapping, key);
      const bool wanted = plane && plane->c == want_c && plane->t == want_t;
      if (wanted || (ordinal == 0 && imagej_contiguous)) {
        SliceInfo info;
        info.file = file;
        info.page = ordinal;
        info.label = "page " + std::to_string(ordinal) + " of " + name;
        info.ifd_offset = dirs == 0 ? 0 : offset;
        try {
          info.status = ScanDirectory(h, &info, unit_bytes, options.memory_bytes);
        } catch (const std::bad_alloc&) {
          info.status = ResourceExhaustedError("out of memory reading the header of " + info.label);
        }
        if (ordinal == 0) first_page = info;
        if (wanted) {
          info.file.z = plane->z;
          auto [it, fresh] = by_z.emplace(plane->z, std::move(info));
          if (!fresh)
            return UnsupportedError(name + ": pages " + std::to_string(it->second.page) + " and " +
                                    std::to_string(ordinal) + " both hold z=" + std::to_string(plane->z) + " by its " +
                                    (layout.kind.empty() ? "page order" : layout.kind + " metadata") +
                                    "; fix the metadata or re-save the file");
        }
      }
    }
    ++dirs;
    if (TIFFLastDirectory(tif)) break;
    if (dirs >= kMaxPages)
      return UnsupportedError(name + " has more than " + std::to_string(kMaxPages) +
                              " pages; split it into several files (tiffsplit FILE) and mount their directory");
    if (!TIFFReadDirectory(tif))
      return InvalidArgumentError(name + ": cannot read the image directory after page " + std::to_string(dirs - 1) +
                                  " (" + h.TakeErrors() +
                                  "); the file is truncated or corrupt, and omezarrfs will not serve only part of "
                                  "it; fix it or split it with tiffsplit");
  }

  if (imagej_contiguous && full == 1) {
    // ImageJ's layout over 4 GiB: one IFD, then images=N uncompressed planes back to back.
    const SliceInfo& p0 = *first_page;
    const uint64_t plane_bytes = static_cast<uint64_t>(p0.width * p0.height) * (p0.bits / 8);
    const int64_t n = layout.imagej_images;
    if (!p0.status.ok()) return p0.status;
    if (p0.layout != Layout::kRawContiguous)
      return UnsupportedError(name + " is an ImageJ stack of images=" + std::to_string(n) +
                              " with one image directory whose data is not uncompressed and contiguous, so the "
                              "other planes cannot be found; re-save it (ImageJ: File > Save As > Tiff)");
    if (p0.base_offset + plane_bytes * static_cast<uint64_t>(n) > file.size)
      return InvalidArgumentError(name + " is an ImageJ stack of images=" + std::to_string(n) + " planes of " +
                                  std::to_string(plane_bytes) + " bytes from offset " + std::to_string(p0.base_offset) +
                                  ", but the file has only " + std::to_string(file.size) + " bytes; it is truncated");
    by_z.clear();
    for (int64_t i = 0; i < n; ++i) {
      std::optional<PagePlane> plane = PlaneOfPage(layout, i);
      if (!plane || plane->c != want_c || plane->t != want_t) continue;
      SliceInfo info = p0;
      info.file.z = plane->z;
      info.page = i;
      info.label = "plane " + std::to_string(i) + " of " + name;
      info.base_offset = p0.base_offset + plane_bytes * static_cast<uint64_t>(i);
      by_z.emplace(plane->z, std::move(info));
    }
    full = n;
  }
  // Every page the layout declares must be there, and (but for OME-TIFF, which may hold other
  // pages) no more: serving part of a file would look like all of it.
  if (layout.slices < 0) layout.slices = full / (layout.channels * layout.frames);
  impl->layout.slices = layout.slices;
  const int64_t planes = layout.planes();
  if (layout.keyed_by_directory ? full < planes : full != planes)
    return UnsupportedError(name + (layout.kind.empty() ? "" : " is an " + layout.kind + " with " + layout.declared) +
                            ", which is " + std::to_string(planes) + " pages, but the file has " +
                            std::to_string(full) +
                            " full-resolution pages; fix its description or re-save it (omezarrfs will not guess "
                            "which pages are which)");
  for (int64_t z = 0; z < layout.slices; ++z)
    if (!by_z.count(z))
      return UnsupportedError(name + ": no page holds z=" + std::to_string(z) + ", channel " + std::to_string(want_c) +
                              ", time " + std::to_string(want_t) + " of " + layout.declared +
                              "; fix its metadata or re-save the file");
  if (by_z.empty()) return InvalidArgumentError(name + " has no full-resolution page; fix or remove it");
  for (auto& [z, info] : by_z) impl->infos.push_back(std::move(info));
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<TiffStack>> TiffStack::Open(const std::string& source_in, const TiffStackOptions& options) {
  try {
    std::string source = source_in;
    while (source.size() > 1 && source.back() == '/') source.pop_back();
    if (source.empty())
      return InvalidArgumentError("TIFF source is empty; give the directory of NNNN.tif slices or a TIFF file");

    auto impl = std::make_unique<Impl>();
    impl->options = options;
    std::string context;
    struct stat source_st;
    if (::stat(source.c_str(), &source_st) != 0) {
      int e = errno;
      if (e == ENOENT) return NotFoundError("TIFF source " + source + " does not exist; check the path");
      return ErrnoError(e, "cannot stat TIFF source " + source);
    }
    if (S_ISREG(source_st.st_mode)) {
      // One file: its full-resolution pages are the z slices.
      if (options.page >= 0)
        return InvalidArgumentError("-o page=" + std::to_string(options.page) +
                                    " picks one page of every slice file in a directory, but SOURCE " + source +
                                    " is one TIFF file whose pages are the z slices; drop page= (window=:,:," +
                                    std::to_string(options.page) + ":" + std::to_string(options.page + 1) +
                                    " serves that page alone)");
      size_t slash = source.rfind('/');
      impl->dir = slash == std::string::npos ? "." : slash == 0 ? "/" : source.substr(0, slash);
      const std::string name = slash == std::string::npos ? source : source.substr(slash + 1);
      context = "multi-page TIFF " + source;
      Status s = ScanMultiPage(impl.get(), name, nullptr);
      if (!s.ok()) return s.WithContext(context);
    } else if (!S_ISDIR(source_st.st_mode)) {
      return InvalidArgumentError(source + " is " + FileTypeName(source_st.st_mode) +
                                  ", neither a directory of NNNN.tif slices nor a TIFF file; check the path");
    } else {
      impl->dir = source;
      std::vector<std::string> names;
      {
        DIR* d = ::opendir(source.c_str());
        if (!d) return ErrnoError(errno, "cannot list TIFF stack directory " + source);
        errno = 0;
        while (struct dirent* ent = ::readdir(d)) names.emplace_back(ent->d_name);
        int e = errno;
        ::closedir(d);
        if (e) return ErrnoError(e, "cannot list TIFF stack directory " + source);
      }
      bool single_page = true;
      if (options.page < 0) {
        // A directory whose one TIFF file has several full-resolution pages serves those pages.
        std::vector<std::string> tiffs;
        for (const std::string& n : names)
          if (HasTiffExtension(n)) tiffs.push_back(n);
        struct stat fst;
        if (tiffs.size() == 1 && ::stat((source + "/" + tiffs[0]).c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) {
          single_page = false;
          context = "multi-page TIFF " + source + "/" + tiffs[0];
          Status s = ScanMultiPage(impl.get(), tiffs[0], &single_page);
          if (!s.ok()) return s.WithContext(context);
        }
      }
      if (single_page) {
        if (options.channel >= 0 || options.time >= 0)
          return InvalidArgumentError(std::string(options.channel >= 0 ? "-o channel=" : "-o t=") +
                                      std::to_string(options.channel >= 0 ? options.channel : options.time) +
                                      " chooses from one multi-page file (an ImageJ hyperstack or OME-TIFF), but " +
                                      source + " is a directory of slice files; drop channel= and t=");
        impl->infos.clear();
        impl->multipage_file.clear();
        context = "TIFF stack " + source;
        OZ_RETURN_IF_ERROR(ScanSliceDirectory(impl.get(), names));
      }
    }

    // The shape and type most good slices share (the first such slice on a tie) is the stack's;
    // the others must match it. A majority, not simply the first slice, so that one odd or
    // hostile slice (say 0.tif claiming 65535x65535) is the one named and zeroed, never the rest.
    const SliceInfo* ref = nullptr;
    {
      std::map<std::tuple<int64_t, int64_t, DType>, std::pair<size_t, const SliceInfo*>> shapes;
      for (const SliceInfo& s : impl->infos) {
        if (!s.status.ok()) continue;
        auto& [count, first] = shapes[{s.width, s.height, s.dtype}];
        if (count++ == 0) first = &s;
      }
      size_t best = 0;
      for (const auto& [shape, vote] : shapes) {
        const auto& [count, first] = vote;
        if (count > best || (count == best && first->file.z < ref->file.z)) best = count, ref = first;
      }
    }
    if (!ref) {
      const SliceInfo& first = impl->infos.front();
      std::string m = first.status.message();
      if (impl->infos.size() > 1)
        m += "; none of the other " + std::to_string(impl->infos.size() - 1) +
             (impl->multipage_file.empty() ? " slices" : " pages") + " is usable either";
      return Status(first.status.code(), m).WithContext(context);
    }
    for (SliceInfo& s : impl->infos) {
      if (!s.status.ok() || &s == ref) continue;
      if (s.width != ref->width || s.height != ref->height || s.dtype != ref->dtype)
        s.status = InvalidArgumentError(s.label + " is " + ShapeText(s) + " but " +
                                        (ref->page < 0 ? ref->file.name : ref->label) + " is " + ShapeText(*ref) +
                                        "; fix or remove it");
    }
    std::vector<const SliceInfo*> bad;
    for (const SliceInfo& s : impl->infos)
      if (!s.status.ok()) bad.push_back(&s);
    if (!bad.empty()) {
      if (options.bad_slices == BadSlicePolicy::kError) {
        const Status& st = bad.front()->status;
        std::string m = st.message() + ", or mount with -o bad_slices=zero to read bad slices as zeros";
        if (bad.size() > 1) m += " (" + std::to_string(bad.size() - 1) + " more bad slices)";
        return Status(st.code(), m).WithContext(context);
      }
      std::vector<int64_t> zs;
      for (size_t i = 0; i < bad.size(); ++i) {
        zs.push_back(bad[i]->file.z);
        if (i < kMaxListed) impl->warnings.push_back("bad slice read as zeros: " + bad[i]->status.message());
      }
      for (SliceInfo& s : impl->infos) s.zero = !s.status.ok();
      if (bad.size() > kMaxListed)
        impl->warnings.push_back(std::to_string(bad.size()) + " bad slices read as zeros: z=" + CompactRanges(zs));
    }

    impl->depth = impl->infos.back().file.z + 1;
    impl->height = ref->height;
    impl->width = ref->width;
    impl->dtype = ref->dtype;
    if (!CheckedVolume({impl->depth, impl->height, impl->width}))
      return InvalidArgumentError(context + " is too large to address");

    std::vector<int64_t> gaps;
    {
      int64_t expect = 0;
      for (const SliceInfo& s : impl->infos) {
        for (; expect < s.file.z; ++expect) gaps.push_back(expect);
        expect = s.file.z + 1;
      }
    }
    if (!gaps.empty())
      impl->warnings.push_back(std::to_string(gaps.size()) + " missing slice" + (gaps.size() == 1 ? "" : "s") +
                               " read as zeros: z=" + CompactRanges(gaps));
    uint64_t unit = 0;
    if (ref->layout == Layout::kStrips)
      unit = static_cast<uint64_t>(ref->rows_per_strip * ref->width) * (ref->bits / 8);
    else if (ref->layout == Layout::kTiles)
      unit = static_cast<uint64_t>(ref->tile_w * ref->tile_h) * (ref->bits / 8);
    if (unit > kLargeUnitBytes)
      impl->warnings.push_back("slices are stored as compressed strips/tiles of " + std::to_string(unit >> 20) +
                               " MiB each (" + ref->file.name +
                               "), so every read decodes whole strips; reads "
                               "will be slow unless memory= holds many of them, or re-save with smaller strips");
    for (const std::string& w : impl->warnings) LogWarning(context + ": " + w);

    impl->files.reserve(impl->infos.size());
    for (const SliceInfo& s : impl->infos) impl->files.push_back(s.file);
    impl->cache = std::make_unique<StripCache>(options.memory_bytes);
    return std::unique_ptr<TiffStack>(new TiffStack(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory opening TIFF source " + source_in);
  } catch (const std::exception& e) {
    return InternalError("unexpected exception opening TIFF source " + source_in + ": " + e.what());
  }
}

Vec3 TiffStack::shape() const { return {impl_->depth, impl_->height, impl_->width}; }
DType TiffStack::dtype() const { return impl_->dtype; }
const std::vector<SliceFile>& TiffStack::slices() const { return impl_->files; }
const std::vector<std::string>& TiffStack::warnings() const { return impl_->warnings; }

namespace {

// The planes of box (every step-th slice from box.lo[0]; every step-th row and column) into out,
// slices in parallel on the pool; gap and zeroed slices read as zeros.
Status ReadPlanes(TiffStack::Impl& impl, const Box& box, int64_t step, void* out) {
  try {
    const Vec3 os = StridedShape(box, step);
    const size_t plane_bytes = static_cast<size_t>(os[1] * os[2]) * DTypeSize(impl.dtype);
    auto z_of = [&](size_t i) { return box.lo[0] + static_cast<int64_t>(i) * step; };
    return ParallelForStatus(
        impl.options.pool, static_cast<size_t>(os[0]),
        [&](size_t i) -> Status {
          uint8_t* plane = static_cast<uint8_t*>(out) + i * plane_bytes;
          const SliceInfo* s = impl.Find(z_of(i));
          if (!s || s->zero) {
            std::memset(plane, 0, plane_bytes);
            return OkStatus();
          }
          return step == 1 ? impl.ReadSlice(*s, box, plane) : impl.ReadSliceStrided(*s, box, step, plane);
        },
        [&](size_t i) { return "reading slice z=" + std::to_string(z_of(i)); });
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading " + box.ToString() + " from TIFF stack " + impl.dir);
  }
}

}  // namespace

Status TiffStack::ReadBox(const Box& box, void* out) {
  if (box.empty() || !BoxFromShape(shape()).Contains(box) || out == nullptr)
    return InvalidArgumentError("ReadBox " + box.ToString() + " is empty or outside the TIFF stack shape " +
                                ToString(shape()));
  return ReadPlanes(*impl_, box, 1, out);
}

Status TiffStack::ReadBoxStrided(const Box& box, int64_t step, void* out) {
  if (step < 1 || box.empty() || !BoxFromShape(shape()).Contains(box) || out == nullptr)
    return InvalidArgumentError("ReadBoxStrided " + box.ToString() + " step " + std::to_string(step) +
                                " is empty or outside the TIFF stack shape " + ToString(shape()));
  return ReadPlanes(*impl_, box, step, out);
}

std::string TiffStack::Fingerprint() const {
  const Impl& impl = *impl_;
  std::string dims = std::to_string(impl.width) + "x" + std::to_string(impl.height) + " " +
                     std::string(DTypeName(impl.dtype)) + " z=" + std::to_string(impl.depth);
  if (!impl.multipage_file.empty()) {
    const SliceFile& f = impl.infos.front().file;
    std::string fp = "tiffpages/1 " + dims + " " + f.name + ":" + std::to_string(f.size) + ":" +
                     std::to_string(f.mtime_ns) + " c=" + std::to_string(std::max(impl.options.channel, 0)) +
                     " t=" + std::to_string(std::max(impl.options.time, 0)) + " pages";
    for (const SliceInfo& s : impl.infos) fp += " " + std::to_string(s.page);
    return fp;
  }
  std::string f = "tiffstack/1 " + dims;
  if (impl.options.page >= 0) f += " page=" + std::to_string(impl.options.page);
  for (const SliceInfo& s : impl.infos)
    f += ";" + s.file.name + ":" + std::to_string(s.file.size) + ":" + std::to_string(s.file.mtime_ns);
  return f;
}

std::string TiffStack::Describe() const {
  const Impl& impl = *impl_;
  const std::string dims =
      std::to_string(impl.width) + "x" + std::to_string(impl.height) + " " + std::string(DTypeName(impl.dtype));
  int64_t zeroed = std::count_if(impl.infos.begin(), impl.infos.end(), [](const SliceInfo& s) { return s.zero; });
  std::string d;
  if (!impl.multipage_file.empty()) {
    d = "multi-page TIFF " + impl.dir + "/" + impl.multipage_file + " (" + std::to_string(impl.depth) +
        " pages as z, " + dims;
    if (impl.layout.channels > 1)
      d += ", channel " + std::to_string(impl.options.channel) + " of " + std::to_string(impl.layout.channels);
    if (impl.layout.frames > 1)
      d += ", t " + std::to_string(impl.options.time) + " of " + std::to_string(impl.layout.frames);
    if (!impl.layout.kind.empty()) d += ", " + impl.layout.kind;
  } else {
    d = "TIFF stack " + impl.dir + " (" + std::to_string(impl.depth) + " slices, " + dims;
    if (impl.options.page >= 0) d += ", page " + std::to_string(impl.options.page) + " of each file";
    int64_t missing = impl.depth - static_cast<int64_t>(impl.infos.size());
    if (missing) d += ", " + std::to_string(missing) + " missing";
  }
  if (zeroed) d += ", " + std::to_string(zeroed) + " bad read as zeros";
  return d + ")";
}

Result<TiffFirstPage> ReadTiffFirstPage(const std::string& path, const std::string& label) {
  const size_t slash = path.rfind('/');
  SliceInfo info;
  info.file.name = slash == std::string::npos ? path : path.substr(slash + 1);
  info.label = label;
  const TiffStackOptions defaults;
  OZ_RETURN_IF_ERROR(ScanSlice(slash == std::string::npos ? "." : path.substr(0, slash), &info, /*page=*/0,
                               UnitBytes(defaults), defaults.memory_bytes, nullptr));
  return TiffFirstPage{info.width, info.height, info.file.size, info.file.mtime_ns};
}

}  // namespace oz
