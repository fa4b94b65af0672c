// ValidateKey: the one gate every key passes before it reaches a store (see kv_store.h).
#include "core/kv_store.h"

namespace oz {
namespace {

// The key as it may be shown in a message: control characters become '?'.
std::string Printable(std::string_view key) {
  std::string s(key.substr(0, 200));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (key.size() > 200) s += "...";
  return s;
}

}  // namespace

Status ValidateKey(std::string_view key) {
  auto bad = [key](std::string_view why) {
    return InvalidArgumentError("invalid key '" + Printable(key) + "': " + std::string(why));
  };
  if (key.empty()) return bad("empty");
  if (key.front() == '/') return bad("absolute (keys are relative to the store)");
  for (char c : key) {
    if (c == '\\') return bad("contains a backslash");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("contains a control character");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    if (seg.empty()) return bad("has an empty path segment");
    if (seg == "." || seg == "..") return bad("has a '.' or '..' segment");
    start = end + 1;
  }
  return OkStatus();
}

}  // namespace oz
