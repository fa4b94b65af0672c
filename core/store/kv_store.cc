// ValidateKey: the one gate every store key passes, so no store needs its own path checks to stay
// inside its root.
#include "core/store/kv_store.h"

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

}  // namespace oz
