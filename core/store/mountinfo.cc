// mountinfo parsing. The format is one mount per line; only the fields we match on are kept.
#include "core/store/mountinfo.h"

#include <algorithm>

#include "core/store/atomic_file.h"

namespace oz {
namespace {

// mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal).
std::string Unescape(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        r += static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0'));
        i += 3;
        continue;
      }
    }
    r += s[i];
  }
  return r;
}

std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', '?');
  return s;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> f;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j;
  }
  return f;
}

}  // namespace

std::vector<MountInfoEntry> ParseMountInfo(std::string_view text) {
  std::vector<MountInfoEntry> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    // id parent dev root mount_point options [optional fields...] - fstype source super_options
    const std::vector<std::string_view> f = Fields(line);
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") ++sep;
    if (f.size() < 6 || sep + 1 >= f.size()) continue;
    MountInfoEntry e;
    int64_t id = 0;
    bool digits = !f[0].empty();
    for (char c : f[0]) {
      if (c < '0' || c > '9') digits = false;
      id = id * 10 + (c - '0');
      if (id > (int64_t{1} << 40)) digits = false;
    }
    if (!digits || f[2].find(':') == std::string_view::npos) continue;
    e.mount_id = id;
    e.dev = std::string(f[2]);
    e.mount_point = Unescape(f[4]);
    e.fstype = std::string(f[sep + 1]);
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<MountId> FindOwnMount(const std::string& mount_point, const std::string& fstype) {
  auto text = ReadFile("/proc/self/mountinfo");
  if (!text.ok()) return std::nullopt;
  std::optional<MountId> found;
  for (const MountInfoEntry& e : ParseMountInfo(*text))
    if (e.mount_point == mount_point && e.fstype == fstype) found = MountId{e.mount_id, e.dev, e.mount_point};
  return found;
}

Result<bool> ProcessHasMount(int64_t pid, const MountId& id) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/mountinfo");
  if (!text.ok()) return text.status();
  for (const MountInfoEntry& e : ParseMountInfo(*text))
    if (e.mount_id == id.mount_id && e.dev == id.dev && OneLine(e.mount_point) == OneLine(id.mount_point)) return true;
  return false;
}

}  // namespace oz
