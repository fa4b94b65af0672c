#include "core/source/volume_grid.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "core/base/log.h"
#include "core/sync/lru_cache.h"
#include "core/sync/single_flight.h"

namespace oz {
namespace {

constexpr std::string_view kPrefix = "cell_yxz_";
constexpr int64_t kMaxIndex = 1000000000;

bool EqualsIgnoreCaseAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Parses decimal digits of `s` starting at *pos up to `stop` (or the end); advances *pos.
std::optional<int64_t> ParseIndex(std::string_view s, size_t* pos, char stop) {
  size_t i = *pos;
  int64_t v = 0;
  while (i < s.size() && s[i] != stop) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
    if (v > kMaxIndex) return std::nullopt;
    ++i;
  }
  if (i == *pos) return std::nullopt;
  *pos = i;
  return v;
}

std::string CellText(const Vec3& shape) {
  return std::to_string(shape[0]) + " pages of " + std::to_string(shape[2]) + "x" + std::to_string(shape[1]);
}

struct Cell {
  GridCellName index;
  std::string name;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  Status status;  // not OK: bad cell (refused at Open, or zeros under bad_slices=zero)
};

}  // namespace

std::optional<GridCellName> ParseGridCellName(const std::string& name) {
  std::string_view s(name);
  if (s.size() <= kPrefix.size() || !EqualsIgnoreCaseAscii(s.substr(0, kPrefix.size()), kPrefix)) return std::nullopt;
  const size_t dot = s.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view ext = s.substr(dot + 1);
  if (!EqualsIgnoreCaseAscii(ext, "tif") && !EqualsIgnoreCaseAscii(ext, "tiff")) return std::nullopt;
  const std::string_view stem = s.substr(0, dot);
  size_t pos = kPrefix.size();
  GridCellName c;
  int64_t* parts[3] = {&c.y, &c.x, &c.z};
  for (int k = 0; k < 3; ++k) {
    auto v = ParseIndex(stem, &pos, '_');
    if (!v || *v == 0) return std::nullopt;
    *parts[k] = *v;
    if (k < 2) {
      if (pos >= stem.size() || stem[pos] != '_') return std::nullopt;
      ++pos;
    }
  }
  if (pos != stem.size()) return std::nullopt;
  return c;
}

namespace {

Result<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return ErrnoError(errno, "cannot list volume grid directory " + dir);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* ent = ::readdir(d)) names.emplace_back(ent->d_name);
  const int e = errno;
  ::closedir(d);
  if (e) return ErrnoError(e, "cannot list volume grid directory " + dir);
  return names;
}

}  // namespace

bool LooksLikeVolumeGrid(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  auto names = ListDirectory(dir);
  if (!names.ok()) return false;
  return std::any_of(names->begin(), names->end(),
                     [](const std::string& n) { return ParseGridCellName(n).has_value(); });
}

struct VolumeGrid::Impl {
  std::string dir;
  TiffStackOptions options;  // for each cell's TiffStack (memory split between open cells)
  Vec3 edge{0, 0, 0};        // z, y, x
  Vec3 counts{0, 0, 0};      // z, y, x
  DType dtype = DType::kUint16;
  std::vector<Cell> cells;    // sorted by (z, y, x) index
  std::vector<int32_t> slot;  // dense z-y-x cell grid -> index into cells, or -1 (missing)
  std::vector<std::string> warnings;
  LruCache<int64_t, TiffStack> open_cells{VolumeGrid::kMaxOpenCells};
  SingleFlight<int64_t, std::shared_ptr<TiffStack>> opening;

  int64_t Linear(int64_t z, int64_t y, int64_t x) const { return (z * counts[1] + y) * counts[2] + x; }

  // The open TiffStack of cells[i] (opened, indexed and checked on first use).
  Result<std::shared_ptr<TiffStack>> CellStack(size_t i) {
    if (auto s = open_cells.Get(static_cast<int64_t>(i))) return s;
    return opening.Do(static_cast<int64_t>(i), [&]() -> Result<std::shared_ptr<TiffStack>> {
      if (auto s = open_cells.Get(static_cast<int64_t>(i))) return s;
      const Cell& c = cells[i];
      TiffStackOptions o = options;
      Result<std::unique_ptr<TiffStack>> st = TiffStack::Open(dir + "/" + c.name, o);
      if (!st.ok()) {
        LogError("volume grid " + dir + ": cell " + c.name + ": " + st.status().message());
        return IoError("cell " + c.name + " of volume grid " + dir + ": " + st.status().message());
      }
      std::shared_ptr<TiffStack> stack = std::move(st).value();
      const SliceFile& f = stack->slices().front();
      std::string bad;
      if (stack->shape() != edge || stack->dtype() != dtype)
        bad = "is " + CellText(stack->shape()) + " " + std::string(DTypeName(stack->dtype())) +
              ", but the grid's cells are " + CellText(edge) + " " + std::string(DTypeName(dtype)) + " (from " +
              cells.front().name + "); every cell must have the same shape and type: fix or remove it";
      else if (f.size != c.size || f.mtime_ns != c.mtime_ns)
        bad = "changed since mount (size or mtime); remount to serve the new data";
      if (!bad.empty()) {
        LogError("volume grid " + dir + ": cell " + c.name + " " + bad);
        return CorruptError("cell " + c.name + " of volume grid " + dir + " " + bad);
      }
      open_cells.Put(static_cast<int64_t>(i), stack, 1);
      return stack;
    });
  }

  // Reads the voxels of `box` kept with `step` (1 = all) into out (StridedShape(box, step)).
  Status Read(const Box& box, int64_t step, uint8_t* out) {
    const size_t bpv = DTypeSize(dtype);
    const Vec3 out_shape = StridedShape(box, step);
    struct Part {
      size_t cell;
      Box sub;       // in cell coordinates
      Vec3 dst_off;  // in out
    };
    std::vector<Part> parts;
    bool any_zero = false;
    Vec3 c0, c1;
    for (int a = 0; a < 3; ++a) {
      c0[a] = box.lo[a] / edge[a];
      c1[a] = (box.hi[a] - 1) / edge[a];
    }
    for (int64_t cz = c0[0]; cz <= c1[0]; ++cz)
      for (int64_t cy = c0[1]; cy <= c1[1]; ++cy)
        for (int64_t cx = c0[2]; cx <= c1[2]; ++cx) {
          const Vec3 ci{cz, cy, cx};
          Part p{};
          bool empty = false;
          for (int a = 0; a < 3; ++a) {
            const int64_t lo = std::max(box.lo[a], ci[a] * edge[a]);
            const int64_t hi = std::min(box.hi[a], (ci[a] + 1) * edge[a]);
            // First kept voxel at or after lo: box.lo + k0 * step.
            const int64_t k0 = CeilDiv(lo - box.lo[a], step);
            const int64_t first = box.lo[a] + k0 * step;
            if (first >= hi) {
              empty = true;
              break;
            }
            p.sub.lo[a] = first - ci[a] * edge[a];
            p.sub.hi[a] = hi - ci[a] * edge[a];
            p.dst_off[a] = k0;
          }
          if (empty) continue;
          const int32_t s = slot[static_cast<size_t>(Linear(cz, cy, cx))];
          if (s < 0 || !cells[static_cast<size_t>(s)].status.ok()) {
            any_zero = true;
            continue;
          }
          p.cell = static_cast<size_t>(s);
          parts.push_back(p);
        }
    const bool whole = parts.size() == 1 && !any_zero && StridedShape(parts[0].sub, step) == out_shape;
    if (!whole && (any_zero || parts.empty()))
      std::memset(out, 0, static_cast<size_t>(out_shape[0] * out_shape[1] * out_shape[2]) * bpv);
    return ParallelForStatus(
        options.pool, parts.size(),
        [&](size_t i) -> Status {
          const Part& p = parts[i];
          Result<std::shared_ptr<TiffStack>> opened = CellStack(p.cell);
          if (!opened.ok() && options.bad_slices == BadSlicePolicy::kZero) {
            // Logged by CellStack; the policy reads a bad cell as zeros.
            const Vec3 ps = StridedShape(p.sub, step);
            const std::vector<uint8_t> zeros(static_cast<size_t>(ps[2]) * bpv, 0);
            for (int64_t z = 0; z < ps[0]; ++z)
              for (int64_t y = 0; y < ps[1]; ++y)
                CopyRegion(zeros.data(), {1, 1, ps[2]}, {0, 0, 0}, out, out_shape,
                           {p.dst_off[0] + z, p.dst_off[1] + y, p.dst_off[2]}, {1, 1, ps[2]}, bpv);
            return OkStatus();
          }
          OZ_RETURN_IF_ERROR(opened.status());
          const std::shared_ptr<TiffStack>& stack = *opened;
          if (whole) return step == 1 ? stack->ReadBox(p.sub, out) : stack->ReadBoxStrided(p.sub, step, out);
          const Vec3 ps = StridedShape(p.sub, step);
          std::vector<uint8_t> tmp(static_cast<size_t>(ps[0] * ps[1] * ps[2]) * bpv);
          OZ_RETURN_IF_ERROR(step == 1 ? stack->ReadBox(p.sub, tmp.data())
                                       : stack->ReadBoxStrided(p.sub, step, tmp.data()));
          CopyRegion(tmp.data(), ps, {0, 0, 0}, out, out_shape, p.dst_off, ps, bpv);
          return OkStatus();
        },
        [&](size_t i) { return "reading cell " + cells[parts[i].cell].name; });
  }
};

Result<std::unique_ptr<VolumeGrid>> VolumeGrid::Open(const std::string& dir_in, const TiffStackOptions& options) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (options.page >= 0 || options.channel >= 0 || options.time >= 0)
    return InvalidArgumentError("page=, channel= and t= choose pages of a TIFF, but " + dir +
                                " is a volume grid whose cells' pages are z; drop them");
  OZ_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  std::map<std::array<int64_t, 3>, std::string> by_index;  // (z, y, x) -> name
  for (const std::string& n : names) {
    auto c = ParseGridCellName(n);
    if (!c) continue;
    auto [it, inserted] = by_index.emplace(std::array<int64_t, 3>{c->z, c->y, c->x}, n);
    if (!inserted)
      return InvalidArgumentError("volume grid " + dir + ": " + it->second + " and " + n +
                                  " name the same cell (y, x, z) = (" + std::to_string(c->y) + ", " +
                                  std::to_string(c->x) + ", " + std::to_string(c->z) + "); remove one");
  }
  if (by_index.empty()) return InvalidArgumentError("volume grid " + dir + " has no cell_yxz_YYY_XXX_ZZZ.tif files");
  for (const auto& [k, n] : by_index) {
    Cell c;
    c.index = {k[1], k[2], k[0]};
    c.name = n;
    impl->cells.push_back(std::move(c));
    for (int a = 0; a < 3; ++a) impl->counts[a] = std::max(impl->counts[a], k[a]);
  }
  if (!CheckedVolume(impl->counts) || *CheckedVolume(impl->counts) > (int64_t{1} << 28))
    return InvalidArgumentError("volume grid " + dir + ": cell indices up to " + ToString(impl->counts) +
                                " (z, y, x) are too large; check the names");

  // The reference cell (lowest indices): edge and type.
  {
    TiffStackOptions o = options;
    o.pool = nullptr;
    Result<std::unique_ptr<TiffStack>> ref = TiffStack::Open(dir + "/" + impl->cells.front().name, o);
    if (!ref.ok())
      return Status(ref.status().code(), "volume grid " + dir + ": its first cell " + impl->cells.front().name +
                                             " (which gives the cell shape) cannot be read: " + ref.status().message());
    impl->edge = (*ref)->shape();
    impl->dtype = (*ref)->dtype();
  }
  Vec3 shape;
  for (int a = 0; a < 3; ++a) shape[a] = impl->counts[a] * impl->edge[a];
  if (!CheckedVolume(shape)) return InvalidArgumentError("volume grid " + dir + " is too large: " + ToString(shape));

  // Every cell's first page header, in parallel.
  const Vec3 edge = impl->edge;
  auto check = [&](size_t i) {
    Cell& c = impl->cells[i];
    try {
      Result<TiffFirstPage> h = ReadTiffFirstPage(dir + "/" + c.name, "cell " + c.name);
      if (!h.ok()) {
        c.status = h.status();
      } else {
        c.size = h->size;
        c.mtime_ns = h->mtime_ns;
        if (h->width != edge[2] || h->height != edge[1])
          c.status = InvalidArgumentError("cell " + c.name + " of volume grid " + dir + " has pages of " +
                                          std::to_string(h->width) + "x" + std::to_string(h->height) + ", but cell " +
                                          impl->cells.front().name + " is " + CellText(edge) +
                                          "; every cell must have the same shape: fix or remove it");
      }
    } catch (const std::bad_alloc&) {
      c.status = ResourceExhaustedError("out of memory reading cell " + c.name);
    }
  };
  if (options.pool)
    options.pool->ParallelFor(impl->cells.size(), check);
  else
    for (size_t i = 0; i < impl->cells.size(); ++i) check(i);
  std::vector<std::string> bad;
  for (const Cell& c : impl->cells) {
    if (c.status.ok()) continue;
    if (options.bad_slices != BadSlicePolicy::kZero)
      return Status(c.status.code(), c.status.message() + " (or mount with -o bad_slices=zero to read it as zeros)");
    bad.push_back(c.name);
  }
  if (!bad.empty()) {
    std::string w = "volume grid " + dir + ": " + std::to_string(bad.size()) + " bad cell(s) read as zeros:";
    for (size_t i = 0; i < bad.size() && i < 20; ++i) w += " " + bad[i];
    if (bad.size() > 20) w += " ...";
    LogWarning(w);
    impl->warnings.push_back(w);
  }

  impl->slot.assign(static_cast<size_t>(*CheckedVolume(impl->counts)), -1);
  for (size_t i = 0; i < impl->cells.size(); ++i) {
    const GridCellName& n = impl->cells[i].index;
    impl->slot[static_cast<size_t>(impl->Linear(n.z - 1, n.y - 1, n.x - 1))] = static_cast<int32_t>(i);
  }
  const size_t total = impl->slot.size();
  if (impl->cells.size() < total) {
    std::string w = "volume grid " + dir + ": " + std::to_string(total - impl->cells.size()) + " of " +
                    std::to_string(total) + " cells are missing and read as zeros:";
    int listed = 0;
    for (int64_t z = 0; z < impl->counts[0] && listed < 20; ++z)
      for (int64_t y = 0; y < impl->counts[1] && listed < 20; ++y)
        for (int64_t x = 0; x < impl->counts[2] && listed < 20; ++x)
          if (impl->slot[static_cast<size_t>(impl->Linear(z, y, x))] < 0) {
            char buf[64];
            snprintf(buf, sizeof buf, " cell_yxz_%03lld_%03lld_%03lld.tif", static_cast<long long>(y + 1),
                     static_cast<long long>(x + 1), static_cast<long long>(z + 1));
            w += buf;
            ++listed;
          }
    if (total - impl->cells.size() > 20) w += " ...";
    LogWarning(w);
    impl->warnings.push_back(w);
  }
  impl->options = options;
  impl->options.memory_bytes = std::max<uint64_t>(options.memory_bytes / kMaxOpenCells, 4ull << 20);
  return std::unique_ptr<VolumeGrid>(new VolumeGrid(std::move(impl)));
}

VolumeGrid::VolumeGrid(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VolumeGrid::~VolumeGrid() = default;

Vec3 VolumeGrid::shape() const {
  const Impl& i = *impl_;
  return {i.counts[0] * i.edge[0], i.counts[1] * i.edge[1], i.counts[2] * i.edge[2]};
}
DType VolumeGrid::dtype() const { return impl_->dtype; }
Vec3 VolumeGrid::cell_edge() const { return impl_->edge; }
Vec3 VolumeGrid::cell_counts() const { return impl_->counts; }
const std::vector<std::string>& VolumeGrid::warnings() const { return impl_->warnings; }

Status VolumeGrid::ReadBox(const Box& box, void* out) { return impl_->Read(box, 1, static_cast<uint8_t*>(out)); }
Status VolumeGrid::ReadBoxStrided(const Box& box, int64_t step, void* out) {
  return impl_->Read(box, step, static_cast<uint8_t*>(out));
}

std::string VolumeGrid::Fingerprint() const {
  const Impl& i = *impl_;
  std::string f = "grid/1|dir=" + i.dir + "|edge=" + ToString(i.edge) + "|dtype=" + std::string(DTypeName(i.dtype));
  for (const Cell& c : i.cells)
    f += ";" + c.name + ":" + std::to_string(c.size) + ":" + std::to_string(c.mtime_ns) + (c.status.ok() ? "" : ":bad");
  return f;
}

std::string VolumeGrid::Describe() const {
  const Impl& i = *impl_;
  return "volume grid " + i.dir + " (" + std::to_string(i.cells.size()) + " cells of " + CellText(i.edge) + " " +
         std::string(DTypeName(i.dtype)) + ", " + std::to_string(i.counts[2]) + "x" + std::to_string(i.counts[1]) +
         "x" + std::to_string(i.counts[0]) + " cells (x, y, z))";
}

}  // namespace oz
