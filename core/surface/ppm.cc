// .ppm reader. The header rules follow volume-cartographer's writer (and scroll2zarr's reader,
// which ignores lines that are not "name: value"): unknown fields are ignored, the known ones
// must have the values every .ppm in use has, and the data size must match exactly.
#include "core/surface/ppm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>

namespace oz {
namespace {

static_assert(std::endian::native == std::endian::little, "the .ppm reader assumes a little-endian host");

constexpr size_t kHeaderLimit = 4096;
constexpr int kDim = 6;
constexpr uint64_t kPixelBytes = kDim * sizeof(double);
constexpr int64_t kMaxEdge = 1 << 20;
constexpr const char* kComponent[kDim] = {"x", "y", "z", "nx", "ny", "nz"};

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool ParsePositive(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return v > 0;
}

}  // namespace

Result<PpmHeader> ParsePpmHeader(std::string_view bytes, const std::string& name) {
  const std::string where = ".ppm file " + name + ": ";
  const std::string_view head = bytes.substr(0, kHeaderLimit);
  const size_t end = head.find("<>\n");
  if (end == std::string_view::npos)
    return InvalidArgumentError(where + "no header end \"<>\" line in the first " + std::to_string(kHeaderLimit) +
                                " bytes; is it a volume-cartographer .ppm (text header, then <>, then doubles)?");
  std::map<std::string, std::string, std::less<>> fields;
  std::string_view text = head.substr(0, end);
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = TrimSpace(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view key = TrimSpace(line.substr(0, colon));
    std::string_view value = TrimSpace(line.substr(colon + 1));
    if (key.find_first_of(" \t") != std::string_view::npos) continue;
    fields.emplace(std::string(key), std::string(value));
  }
  PpmHeader h;
  for (auto [field, out] : {std::pair<const char*, int64_t*>{"width", &h.width}, {"height", &h.height}}) {
    auto it = fields.find(field);
    if (it == fields.end()) return InvalidArgumentError(where + "header has no \"" + field + ":\" line");
    if (!ParsePositive(it->second, out) || *out > kMaxEdge)
      return InvalidArgumentError(where + "header field " + field + " is \"" + it->second +
                                  "\"; expected a positive integer up to " + std::to_string(kMaxEdge));
  }
  const std::pair<const char*, const char*> expected[] = {
      {"dim", "6"}, {"ordered", "true"}, {"type", "double"}, {"version", "1"}};
  for (auto [field, value] : expected) {
    auto it = fields.find(field);
    if (it == fields.end()) return InvalidArgumentError(where + "header has no \"" + field + ":\" line");
    if (it->second != value)
      return InvalidArgumentError(where + "header field " + field + " is \"" + it->second + "\"; only " + field + ": " +
                                  value + " is supported");
  }
  h.data_offset = end + 3;
  return h;
}

Status CheckPpmData(const PpmHeader& h, std::string_view data, int64_t first_row, const std::string& name) {
  const uint64_t n = data.size() / sizeof(double);
  for (uint64_t i = 0; i < n; ++i) {
    double v;
    std::memcpy(&v, data.data() + i * sizeof(double), sizeof v);
    // NaN fails both comparisons; beyond FLT_MAX the float32 copy would be infinite.
    if (!(v >= -static_cast<double>(FLT_MAX) && v <= static_cast<double>(FLT_MAX))) {
      const uint64_t pixel = i / kDim;
      const int64_t row = first_row + static_cast<int64_t>(pixel / static_cast<uint64_t>(h.width));
      const int64_t col = static_cast<int64_t>(pixel % static_cast<uint64_t>(h.width));
      return InvalidArgumentError(".ppm file " + name + ": " + kComponent[i % kDim] + " of pixel (row " +
                                  std::to_string(row) + ", column " + std::to_string(col) + ") is " +
                                  (std::isnan(v) ? std::string("NaN") : std::to_string(v)) +
                                  "; points and normals must be finite (a pixel without a point has all six "
                                  "values 0)");
    }
  }
  return OkStatus();
}

Result<std::unique_ptr<PpmFile>> PpmFile::Open(const std::string& path) {
  std::unique_ptr<PpmFile> f(new PpmFile());
  f->path_ = path;
  f->fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) return ErrnoError(errno, ".ppm file " + path);
  struct stat st;
  if (fstat(f->fd_, &st) != 0) return ErrnoError(errno, ".ppm file " + path);
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(".ppm file " + path + " is not a regular file");
  std::string head(kHeaderLimit, '\0');
  const ssize_t got = pread(f->fd_, head.data(), head.size(), 0);
  if (got < 0) return ErrnoError(errno, ".ppm file " + path);
  head.resize(static_cast<size_t>(got));
  OZ_ASSIGN_OR_RETURN(f->header_, ParsePpmHeader(head, path));
  const PpmHeader& h = f->header_;
  const uint64_t expected = static_cast<uint64_t>(h.width) * static_cast<uint64_t>(h.height) * kPixelBytes;
  const uint64_t have = static_cast<uint64_t>(st.st_size) - h.data_offset;
  if (have != expected)
    return InvalidArgumentError(
        ".ppm file " + path + ": " + std::to_string(have) + " bytes of data after the header; " + "width " +
        std::to_string(h.width) + " x height " + std::to_string(h.height) + " x 6 doubles need " +
        std::to_string(expected) + (have < expected ? " (the file is truncated)" : " (the header's size is wrong)"));
  // Check every value once, a batch of rows at a time (about 8 MB).
  const int64_t batch = std::max<int64_t>(1, (8 << 20) / static_cast<int64_t>(h.width * kPixelBytes));
  std::string buf;
  for (int64_t r = 0; r < h.height; r += batch) {
    const int64_t r1 = std::min(h.height, r + batch);
    buf.resize(static_cast<size_t>(r1 - r) * static_cast<size_t>(h.width) * kPixelBytes);
    const uint64_t off = h.data_offset + static_cast<uint64_t>(r) * static_cast<uint64_t>(h.width) * kPixelBytes;
    const ssize_t n = pread(f->fd_, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n < 0) return ErrnoError(errno, ".ppm file " + path);
    if (static_cast<size_t>(n) != buf.size())
      return IoError(".ppm file " + path + ": short read (changed while read?)");
    OZ_RETURN_IF_ERROR(CheckPpmData(h, buf, r, path));
  }
  return f;
}

PpmFile::~PpmFile() {
  if (fd_ >= 0) close(fd_);
}

Status PpmFile::ReadRows(int64_t r0, int64_t r1, std::vector<PpmPixel>* out) const {
  const PpmHeader& h = header_;
  const size_t pixels = static_cast<size_t>(r1 - r0) * static_cast<size_t>(h.width);
  std::string buf(pixels * kPixelBytes, '\0');
  const uint64_t off = h.data_offset + static_cast<uint64_t>(r0) * static_cast<uint64_t>(h.width) * kPixelBytes;
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = pread(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, ".ppm file " + path_);
    if (n == 0)
      return IoError(".ppm file " + path_ + ": rows " + std::to_string(r0) + ".." + std::to_string(r1 - 1) +
                     " are past the end of the file (it shrank since it was opened)");
    done += static_cast<size_t>(n);
  }
  OZ_RETURN_IF_ERROR(CheckPpmData(h, buf, r0, path_));
  out->resize(pixels);
  for (size_t i = 0; i < pixels; ++i) {
    double v[kDim];
    std::memcpy(v, buf.data() + i * kPixelBytes, sizeof v);
    (*out)[i] = PpmPixel{static_cast<float>(v[0]), static_cast<float>(v[1]), static_cast<float>(v[2]),
                         static_cast<float>(v[3]), static_cast<float>(v[4]), static_cast<float>(v[5])};
  }
  return OkStatus();
}

}  // namespace oz
