// Logging sink. Lines are written whole with one write() so concurrent threads never interleave;
// with a status line shown, erase + line + status line are that one write.
#include "core/base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <mutex>

namespace oz {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mu;
std::function<void(LogLevel, std::string_view)> g_sink;  // guarded by g_mu
int g_file_fd = -1;                                      // guarded by g_mu
bool g_status_shown = false;                             // guarded by g_mu
std::string g_status;                                    // guarded by g_mu: the status line text

constexpr char kEraseLine[] = "\r\033[K";  // to column 0, clear to the end of the line

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "?";
}

std::string FormatLine(LogLevel level, std::string_view message) {
  char ts[32];
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
  std::string line = std::string(ts) + " omezarrfs " + LevelName(level) + ": ";
  line.append(message);
  line += '\n';
  return line;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

void SetLogSink(std::function<void(LogLevel, std::string_view)> sink) {
  std::lock_guard<std::mutex> l(g_mu);
  g_sink = std::move(sink);
}

void SetLogFile(const std::string& path) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_file_fd >= 0) ::close(g_file_fd);
  g_file_fd = path.empty() ? -1 : ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void Log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::lock_guard<std::mutex> l(g_mu);
  if (g_sink) {
    g_sink(level, message);
    return;
  }
  std::string line = FormatLine(level, message);
  WriteAll(2, g_status_shown ? kEraseLine + line + g_status : line);
  if (g_file_fd >= 0) WriteAll(g_file_fd, line);
}

void ShowStatusLine(std::string_view text) {
  std::lock_guard<std::mutex> l(g_mu);
  g_status.assign(text);
  g_status_shown = true;
  WriteAll(2, kEraseLine + g_status);
}

void EndStatusLine() {
  std::lock_guard<std::mutex> l(g_mu);
  if (!g_status_shown) return;
  g_status_shown = false;
  g_status.clear();
  WriteAll(2, "\n");
}

bool RateLimiter::Allow(uint64_t* suppressed) {
  int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t start = window_start_ns_.load();
  if (now - start > std::chrono::duration_cast<std::chrono::nanoseconds>(interval_).count()) {
    if (window_start_ns_.compare_exchange_strong(start, now)) in_window_ = 0;
  }
  if (in_window_.fetch_add(1) < burst_) {
    if (suppressed) *suppressed = suppressed_.exchange(0);
    return true;
  }
  suppressed_.fetch_add(1);
  return false;
}

}  // namespace oz
