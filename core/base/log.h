// Logging: one process-wide sink with a level, rate limiting per message site, and a status line
// (progress bar) that log lines on a terminal are printed above.
// Credentials must never be passed here (callers strip them).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace oz {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Sets the minimum level printed and the sink (default: stderr with a timestamp prefix).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void SetLogSink(std::function<void(LogLevel, std::string_view)> sink);  // nullptr = stderr
// Also append every line to this file (empty = none). For daemons that lose stderr.
void SetLogFile(const std::string& path);

// A status line (a progress bar) kept on the last line of a terminal on stderr. While one is
// shown, each log line written to stderr goes above it: the status line is erased ("\r" and
// clear-to-end-of-line), the log line written and the status line drawn again, in one write under
// the log's lock, so log text never lands inside it (as tqdm.write does). `text` must fit on one
// terminal line and hold no '\r' or '\n'. Thread-safe; a custom sink is not affected.
void ShowStatusLine(std::string_view text);  // draws it, replacing the one shown
void EndStatusLine();                        // leaves the last one on screen, moves below it

void Log(LogLevel level, std::string_view message);
inline void LogDebug(std::string_view m) { Log(LogLevel::kDebug, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(std::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }

// Per-site rate limiter: at most `burst` messages, then one per `interval`; reports how many
// were suppressed. Usage: static RateLimiter rl; if (rl.Allow()) Log(...);
class RateLimiter {
 public:
  explicit RateLimiter(int burst = 10, std::chrono::seconds interval = std::chrono::seconds(10))
      : burst_(burst), interval_(interval) {}
  // True if this message may be printed; *suppressed gets the count dropped since the last one.
  bool Allow(uint64_t* suppressed = nullptr);

 private:
  const int burst_;
  const std::chrono::seconds interval_;
  std::atomic<int64_t> window_start_ns_{0};
  std::atomic<int> in_window_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace oz
