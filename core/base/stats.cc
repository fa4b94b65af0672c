// Stats formatting.
#include "core/base/stats.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>

namespace oz {

std::string Stats::ToText() const {
  std::string s;
  auto add = [&s](const char* n, const std::atomic<uint64_t>& v) {
    s += n;
    s += ' ';
    s += std::to_string(v.load());
    s += '\n';
  };
  add("chunks_computed", chunks_computed);
  add("chunks_from_base", chunks_from_base);
  add("chunk_requests", chunk_requests);
  add("cache_hits", cache_hits);
  add("cache_misses", cache_misses);
  add("cache_corrupt", cache_corrupt);
  add("cache_put_failures", cache_put_failures);
  add("cache_evictions", cache_evictions);
  add("singleflight_waits", singleflight_waits);
  add("source_bytes_read", source_bytes_read);
  add("source_files_opened", source_files_opened);
  add("strips_decoded", strips_decoded);
  add("strip_cache_hits", strip_cache_hits);
  add("source_chunk_reads", source_chunk_reads);
  add("source_chunks_missing", source_chunks_missing);
  add("source_chunks_decoded", source_chunks_decoded);
  add("source_chunk_cache_hits", source_chunk_cache_hits);
  add("errors", errors);
  add("http_requests", http_requests);
  add("http_retries", http_retries);
  add("http_errors", http_errors);
  add("source_fetches", source_fetches);
  add("source_cache_hits", source_cache_hits);
  add("prebuild_chunks_total", prebuild_chunks_total);
  add("prebuild_chunks_done", prebuild_chunks_done);
  add("prebuild_chunks_reused", prebuild_chunks_reused);
  add("prebuild_yields", prebuild_yields);
  add("prebuild_failed", prebuild_failed);
  return s;
}

std::vector<std::pair<std::string, uint64_t>> ParseStatsText(std::string_view text) {
  std::vector<std::pair<std::string, uint64_t>> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp + 1 >= line.size()) continue;
    const std::string_view value = line.substr(sp + 1);
    uint64_t v = 0;
    bool ok = value.size() <= 20;
    for (char c : value) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      const uint64_t d = static_cast<uint64_t>(c - '0');
      if (v > (UINT64_MAX - d) / 10) {
        ok = false;
        break;
      }
      v = v * 10 + d;
    }
    if (ok) out.emplace_back(std::string(line.substr(0, sp)), v);
  }
  return out;
}

namespace {

std::string Bytes(uint64_t b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int i = 0;
  while (v >= 1024 && i < 5) v /= 1024, ++i;
  char s[32];
  std::snprintf(s, sizeof s, i ? "%.1f %s" : "%.0f %s", v, u[i]);
  return s;
}

}  // namespace

std::string FormatStatusReport(const std::string& mountpoint, std::string_view stats_text) {
  const auto values = ParseStatsText(stats_text);
  auto get = [&](std::string_view name) -> std::optional<uint64_t> {
    for (const auto& [n, v] : values)
      if (n == name) return v;
    return std::nullopt;
  };
  auto num = [&](std::string_view name) { return get(name).value_or(0); };
  std::string r = "omezarrfs mount " + mountpoint + "\n";
  const uint64_t total = num("prebuild_chunks_total"), done = num("prebuild_chunks_done");
  char line[256];
  if (total == 0) {
    r += "  prebuild: off (mount with -o prebuild=K to build levels K.. in the background)\n";
  } else {
    const double pct = 100.0 * static_cast<double>(done) / static_cast<double>(total);
    const char* state = num("prebuild_failed") ? "stopped on an error (see the log)"
                        : done >= total        ? "complete"
                                               : "running";
    std::snprintf(line, sizeof line, "  prebuild: %llu / %llu chunks (%.1f %%), %s; %llu were cached already\n",
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                  done >= total ? 100.0 : std::min(pct, 99.9), state,
                  static_cast<unsigned long long>(num("prebuild_chunks_reused")));
    r += line;
  }
  std::snprintf(
      line, sizeof line, "  chunk requests: %llu; computed: %llu; disk cache: %llu hits, %llu misses\n",
      static_cast<unsigned long long>(num("chunk_requests")), static_cast<unsigned long long>(num("chunks_computed")),
      static_cast<unsigned long long>(num("cache_hits")), static_cast<unsigned long long>(num("cache_misses")));
  r += line;
  r += "  source read: " + Bytes(num("source_bytes_read")) + " from " + std::to_string(num("source_files_opened")) +
       " file opens; errors: " + std::to_string(num("errors")) + "\n";
  return r;
}

}  // namespace oz
