// Stats formatting.
#include "core/base/stats.h"

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
  return s;
}

}  // namespace oz
