// HttpStore: a read-only KvStore over HTTP(S) with libcurl: pooled connections, timeouts,
// bounded retries, basic authentication, TLS verification.
//
// Contract of Read(key, max_bytes) (beyond kv_store.h):
// - One GET of base + "/" + key. 2xx: the body (decoded if the server used a Content-Encoding);
//   the validator is the ETag, else Last-Modified. 404 and 410: nullopt (absent).
// - 401 and 403: kPermission, telling how to pass credentials (or that they were refused).
// - Retried, up to options.retries times: timeouts (connect, total, low speed), connection
//   failures and resets, truncated bodies (fewer bytes than Content-Length), 408, 429 and 5xx.
//   The wait before retry n is Retry-After when the response had one (seconds or an HTTP-date,
//   capped at retry_after_max), else the backoff min(30 s, retry_delay * 2^(n-1)) jittered to
//   50-100%. After the last attempt: kUnavailable naming the URL, the last cause, the attempt
//   count and a fix. Worst case for one Read (WorstCaseSeconds): (retries + 1) * timeout +
//   retries * max(retry_after_max, 30 s); defaults: 7 * 120 + 6 * 60 = 1200 s. Time spent waiting
//   for a free connection slot (max_connections busy) is not counted.
// - Not retried: a name that does not resolve, TLS verification failures, other 4xx, too many
//   redirects: kIoError. A body (or declared Content-Length) above max_bytes: kCorrupt, and the
//   transfer is aborted at that point.
// - Redirects (301, 302, 303, 307, 308) are followed by this code, at most 5 per attempt, to
//   http(s) URLs only, within the attempt's timeout. Credentials are sent only to the origin
//   (scheme, host, port) of the base URL, never to another origin a redirect leads to.
// - Credentials (-o credentials=FILE, else -o netrc=FILE, else ~/.netrc) are sent as HTTP basic
//   authentication. They never appear in messages, logs (curl's verbose output is never
//   enabled), Describe() or cache keys. A URL with user:password@ is refused at open.
//
// Threading: Read is thread-safe. Each Read borrows one easy handle from a pool of at most
// max_connections handles (so at most that many requests are in flight; further callers wait)
// and runs curl_easy_perform on the calling thread. A handle keeps its connection open between
// requests and the pool hands out the most recently used handle first, so sequential reads reuse
// one connection. The handles share one CURLSH for the DNS cache and TLS session IDs. Backoff
// waits hold no handle.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/options.h"
#include "core/base/stats.h"
#include "core/base/status.h"
#include "core/store/kv_store.h"

namespace oz {

// True if `source` starts with http:// or https:// (scheme in any case).
bool IsHttpUrl(std::string_view source);

// Opens a store whose keys live below `url` (an array or group URL; a trailing '/' is ignored).
// Reads the credentials and checks the options; sends no request (the caller's first Read, of
// the metadata, is the reachability check). `stats` (may be nullptr) must outlive the store; it
// counts http_requests (every request sent, redirect hops included), http_retries, http_errors
// (Reads that failed) and source_bytes_read (body bytes).
// Errors: kInvalidArgument: not an http(s) URL, user:password@ in the URL, a query or fragment,
// both netrc= and credentials=, bad option values; kPermission / kNotFound / kInvalidArgument
// from the credentials, netrc or cacert file (naming the file, never its content).
Result<std::unique_ptr<KvStore>> OpenHttpStore(const std::string& url, const HttpOptions& options, Stats* stats);

// Pure helpers, exposed for unit tests.
namespace http_internal {

// Seconds to wait for a Retry-After value: delta-seconds ("120") or an HTTP-date (any of the
// three RFC 9110 formats) relative to `now` (a past date is 0). nullopt if unparseable.
std::optional<double> ParseRetryAfter(std::string_view value, std::time_t now);

// The backoff before retry n >= 1: d = min(cap, base * 2^(n-1)), jittered to d * (0.5 + 0.5 * u)
// for u in [0, 1).
double BackoffSeconds(int retry, double base, double cap, double u);

// The documented bound on one Read's duration (see the header comment).
double WorstCaseSeconds(const HttpOptions& options);

// The cap on the exponential backoff, in seconds.
inline constexpr double kBackoffCapSeconds = 30;
// Redirects followed per attempt.
inline constexpr int kMaxRedirects = 5;

// A validated key as a URL path: bytes outside [A-Za-z0-9._~/-] are percent-encoded.
std::string EncodeKeyForUrl(std::string_view key);

// `text` with any userinfo ("user:password@") after "scheme://" replaced by "***@"; for
// messages about a URL that may carry credentials.
std::string RedactUrl(std::string_view text);

struct BaseUrl {
  std::string base;    // scheme://host[:port]/path, no trailing '/', no credentials
  std::string origin;  // scheme://host:port (port always present), for same-origin checks
  std::string host;    // for netrc lookup
  bool https = false;
};
// Parses and normalizes a source URL. Errors as OpenHttpStore's for the URL itself.
Result<BaseUrl> ParseBaseUrl(std::string_view url);

}  // namespace http_internal

}  // namespace oz
