// Logging: one process-wide sink with a level, rate limiting per message site.
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
