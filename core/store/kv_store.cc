// ValidateKey: the one gate every store key passes, so no store needs its own path checks to stay
// inside its root.
#include "core/store/kv_store.h"

#include <algorithm>

namespace oz {
namespace {

// Longest key and segment accepted: far above any zarr key ("0/12345/67890/12345" or a dataset
// path), at the limits of POSIX file names so a file store never hits ENAMETOOLONG first.
constexpr size_t kMaxKeyBytes = 4096;
constexpr size_t kMaxSegmentBytes = 255;

std::string Quoted(std::string_view key) {
  // Shows control characters as \xNN so a hostile key cannot forge log lines.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string q = "\"";
  for (size_t i = 0; i < key.size() && i < 200; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      q += "\\x";
      q += kHex[c >> 4];
      q += kHex[c & 15];
    } else {
      q += static_cast<char>(c);
    }
  }
  if (key.size() > 200) q += "...";
  return q + "\"";
}

Status Refuse(std::string_view key, std::string_view why) {
  return InvalidArgumentError("refusing store key " + Quoted(key) + ": " + std::string(why) +
                              " (keys must be relative paths inside the store)");
}

}  // namespace

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Refuse(key, "the key is empty");
  if (key.size() > kMaxKeyBytes) return Refuse(key, "longer than " + std::to_string(kMaxKeyBytes) + " bytes");
  if (key.front() == '/') return Refuse(key, "absolute path");
  for (char ch : key) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return Refuse(key, "contains a control character");
    if (c == '\\') return Refuse(key, "contains a backslash");
    // '?', '#' and '%' would change what an HTTP URL built from the key names.
    if (c == '?' || c == '#' || c == '%') return Refuse(key, std::string("contains '") + ch + "'");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    if (seg.empty()) return Refuse(key, end == key.size() ? "ends with '/'" : "contains an empty segment ('//')");
    if (seg == ".") return Refuse(key, "contains a '.' segment");
    if (seg == "..") return Refuse(key, "contains a '..' segment");
    if (seg.size() > kMaxSegmentBytes)
      return Refuse(key, "has a segment longer than " + std::to_string(kMaxSegmentBytes) + " bytes");
    start = end + 1;
  }
  return OkStatus();
}

std::string ByteRange::ToString() const {
  if (suffix) return "bytes=-" + std::to_string(length);
  return "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + (length ? length - 1 : 0));
}

KvRangeValue CutRange(std::string_view data, const ByteRange& range, std::string validator) {
  KvRangeValue v;
  v.object_size = data.size();
  v.validator = std::move(validator);
  if (range.suffix) {
    const uint64_t n = std::min<uint64_t>(range.length, data.size());
    v.offset = data.size() - n;
    v.data.assign(data.substr(static_cast<size_t>(v.offset)));
  } else {
    v.offset = range.offset;
    if (range.offset < data.size())
      v.data.assign(data.substr(static_cast<size_t>(range.offset),
                                static_cast<size_t>(std::min<uint64_t>(range.length, data.size() - range.offset))));
  }
  return v;
}

Result<std::optional<KvRangeValue>> KvStore::ReadRange(std::string_view key, const ByteRange& range,
                                                       uint64_t max_object_bytes) {
  OZ_RETURN_IF_ERROR(ValidateKey(key).WithContext(Describe()));
  if (range.length > kMaxRangeBytes || range.length == 0)
    return InvalidArgumentError(Describe() + "/" + std::string(key) + ": range " + range.ToString() +
                                " is empty or larger than 1 GiB");
  OZ_ASSIGN_OR_RETURN(std::optional<KvValue> v, Read(key, max_object_bytes));
  if (!v) return std::optional<KvRangeValue>();
  return std::optional<KvRangeValue>(CutRange(v->data, range, std::move(v->validator)));
}

std::optional<std::optional<KvRangeValue>> KvStore::CachedRange(std::string_view, const ByteRange&) {
  return std::nullopt;
}

void KvStore::KeepRange(std::string_view, const ByteRange&, const std::optional<KvRangeValue>&) {}

}  // namespace oz
