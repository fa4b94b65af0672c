// Counters that tests and operators read (exposed outside the zarr tree by fs/ and the CLI).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace oz {

struct Stats {
  std::atomic<uint64_t> chunks_computed{0};   // chunks produced by the engine (any level)
  std::atomic<uint64_t> chunks_from_base{0};  // chunks served from -o base=DEST instead of computed
  std::atomic<uint64_t> chunk_requests{0};    // GetChunk calls
  std::atomic<uint64_t> cache_hits{0};        // served from the disk cache
  std::atomic<uint64_t> cache_misses{0};
  std::atomic<uint64_t> cache_corrupt{0};  // entries found bad and dropped
  std::atomic<uint64_t> cache_put_failures{0};
  std::atomic<uint64_t> cache_evictions{0};
  std::atomic<uint64_t> singleflight_waits{0};  // requests that joined an in-flight computation
  std::atomic<uint64_t> source_bytes_read{0};   // bytes read from source files
  std::atomic<uint64_t> source_files_opened{0};
  std::atomic<uint64_t> strips_decoded{0};  // TIFF strips/tiles decoded
  std::atomic<uint64_t> strip_cache_hits{0};
  std::atomic<uint64_t> errors{0};  // failed chunk computations
  // Zarr sources. source_bytes_read also counts the (compressed) chunk bytes CachedKvStore fetched
  // from the store itself (not from the disk cache).
  std::atomic<uint64_t> source_chunk_reads{0};       // chunk reads ZarrVolume asked of its store
  std::atomic<uint64_t> source_chunks_missing{0};    // absent source chunks, read as the fill value
  std::atomic<uint64_t> source_chunks_decoded{0};    // source chunks decompressed
  std::atomic<uint64_t> source_chunk_cache_hits{0};  // served from the decoded-chunk cache
  // Below ZarrVolume: CachedKvStore (every zarr store) and HttpStore.
  std::atomic<uint64_t> source_fetches{0};     // reads that went to the store itself (file or server)
  std::atomic<uint64_t> source_cache_hits{0};  // fetched chunks (or their absence) served by the disk cache
  std::atomic<uint64_t> http_requests{0};      // HTTP requests sent (retries and redirect hops included)
  std::atomic<uint64_t> http_retries{0};       // attempts after the first, over all reads
  std::atomic<uint64_t> http_errors{0};        // reads that failed (after their retries)
  // -o prebuild=K (core/session/prebuild.h): chunks of levels K..top, those handed to the cache
  // so far (computed or found there), of them found cached already, the builder's pauses for
  // foreground requests, and 1 if the pass stopped on an error.
  std::atomic<uint64_t> prebuild_chunks_total{0};
  std::atomic<uint64_t> prebuild_chunks_done{0};
  std::atomic<uint64_t> prebuild_chunks_reused{0};
  std::atomic<uint64_t> prebuild_yields{0};
  std::atomic<uint64_t> prebuild_failed{0};

  // "name value\n" lines, stable order.
  std::string ToText() const;
};

// Parses ToText()'s format (e.g. the stats xattr of a mount): name -> value. Lines that are not
// "name value" with a decimal value are skipped. Never throws.
std::vector<std::pair<std::string, uint64_t>> ParseStatsText(std::string_view text);

// `omezarrfs status`: prebuild progress (done/total, %) and a few key counters, for a person.
std::string FormatStatusReport(const std::string& mountpoint, std::string_view stats_text);

}  // namespace oz
