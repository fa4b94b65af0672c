// HttpStore: libcurl behind KvStore. The contract is in http_store.h; this file explains why.
//
// Connection model: a pool of easy handles driven by the calling threads (curl_easy_perform),
// not a multi handle driven by one thread. Readers are already worker threads that block on the
// result (the chunk engine's pool), so a multi loop would only add a hand-off per request; with
// easy handles the concurrency bound is just the pool size, a slow transfer occupies only its own
// thread, and there is no event loop to keep alive or shut down. Each handle caches its own
// connection (plus one for a redirect target), so a handle reused LIFO keeps its warm
// connection; DNS results and TLS session IDs are shared through a CURLSH, the documented
// thread-safe part of curl's sharing (locks below).
//
// Redirects are followed here, not by CURLOPT_FOLLOWLOCATION, so that one place decides per hop
// whether the credentials go with the request (same origin only), which schemes are allowed and
// how many hops an attempt may take.
#include "core/store/http_store.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/base/log.h"
#include "core/store/netrc.h"
#include "core/version.h"

namespace oz {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxErrorBody = 1 << 20;  // bytes of a non-2xx body read before hanging up

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (Lower(s[i]) != Lower(prefix[i])) return false;
  return true;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string_view ReasonPhrase(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

std::string StatusText(long status) {
  std::string s = "HTTP " + std::to_string(status);
  std::string_view r = ReasonPhrase(status);
  if (!r.empty()) {
    s += ' ';
    s += r;
  }
  return s;
}

// curl_global_init is not thread-safe before curl 7.84 and must run once per process; it is
// never undone (the process may have other curl users, and exit frees everything).
Status GlobalInit() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) return InternalError(std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
  return OkStatus();
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

std::optional<std::string> GetPart(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* p = nullptr;
  if (curl_url_get(u, part, &p, flags) != CURLUE_OK || p == nullptr) return std::nullopt;
  std::string s(p);
  curl_free(p);
  return s;
}

struct SplitUrl {
  std::string scheme, host, port, default_port, path, query;
  bool userinfo = false;
  bool fragment = false;
  std::string Display() const {  // scheme://host[:port]/path, no userinfo, no query
    return scheme + "://" + host + (port.empty() ? "" : ":" + port) + path;
  }
  std::string Origin() const { return scheme + "://" + host + ":" + (port.empty() ? default_port : port); }
};

Result<SplitUrl> Split(std::string_view text) {
  UrlHandle u(curl_url());
  if (!u) return ResourceExhaustedError("out of memory parsing a URL");
  std::string s(text);
  CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0);
  if (rc != CURLUE_OK) {
    return InvalidArgumentError("'" + http_internal::RedactUrl(text) + "' is not a valid URL (" +
                                curl_url_strerror(rc) + ")");
  }
  SplitUrl r;
  r.scheme = GetPart(u.get(), CURLUPART_SCHEME).value_or("");
  for (char& c : r.scheme) c = Lower(c);
  r.host = GetPart(u.get(), CURLUPART_HOST).value_or("");
  for (char& c : r.host) c = Lower(c);
  r.port = GetPart(u.get(), CURLUPART_PORT).value_or("");
  r.default_port = r.scheme == "https" ? "443" : "80";
  if (r.port == r.default_port) r.port.clear();
  r.path = GetPart(u.get(), CURLUPART_PATH).value_or("/");
  r.query = GetPart(u.get(), CURLUPART_QUERY).value_or("");
  r.userinfo = GetPart(u.get(), CURLUPART_USER).has_value() || GetPart(u.get(), CURLUPART_PASSWORD).has_value();
  r.fragment = GetPart(u.get(), CURLUPART_FRAGMENT).has_value();
  return r;
}

// ---------------------------------------------------------------------------------------------
// One HTTP exchange's state, filled by curl's callbacks.

struct Transfer {
  uint64_t max_bytes = 0;
  long status = 0;  // of the response being received (the last one after 1xx)
  std::string body;
  uint64_t discarded = 0;       // bytes of a non-2xx body
  bool too_big = false;         // a 2xx body (or its Content-Length) exceeded max_bytes
  bool error_body_cut = false;  // a non-2xx body exceeded kMaxErrorBody; we hung up
  uint64_t declared_length = 0;
  std::string etag, last_modified, retry_after, content_range;

  bool Ok() const { return status >= 200 && status < 300; }
  void NewResponse(long s) {
    status = s;
    body.clear();
    discarded = 0;
    declared_length = 0;
    etag.clear();
    last_modified.clear();
    retry_after.clear();
    content_range.clear();
  }
};

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t == nullptr) return 0;
  const size_t bytes = size * n;
  std::string_view line = TrimSpace(std::string_view(data, bytes));
  if (StartsWithIgnoreCase(line, "HTTP/")) {
    size_t sp = line.find(' ');
    long status = 0;
    if (sp != std::string_view::npos) {
      for (size_t i = sp + 1; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i)
        status = status * 10 + (line[i] - '0');
    }
    t->NewResponse(status);
    return bytes;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  std::string_view name = TrimSpace(line.substr(0, colon));
  std::string_view value = TrimSpace(line.substr(colon + 1));
  auto is = [&name](std::string_view h) { return name.size() == h.size() && StartsWithIgnoreCase(name, h); };
  if (is("etag")) {
    t->etag = std::string(value);
  } else if (is("last-modified")) {
    t->last_modified = std::string(value);
  } else if (is("retry-after")) {
    t->retry_after = std::string(value);
  } else if (is("content-range")) {
    t->content_range = std::string(value);
  } else if (is("content-length") && t->Ok()) {
    uint64_t len = 0;
    for (char c : value) {
      if (c < '0' || c > '9' || len > (UINT64_MAX - 9) / 10) return bytes;  // leave odd values to curl
      len = len * 10 + static_cast<uint64_t>(c - '0');
    }
    t->declared_length = len;
    if (len > t->max_bytes) {
      t->too_big = true;
      return 0;  // aborts the transfer before the body is read
    }
    t->body.reserve(static_cast<size_t>(len));
  }
  return bytes;
}

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t == nullptr) return 0;
  const size_t bytes = size * n;
  if (t->Ok()) {
    if (t->body.size() + bytes > t->max_bytes) {
      t->too_big = true;
      return 0;
    }
    t->body.append(data, bytes);
  } else {
    t->discarded += bytes;
    if (t->discarded > kMaxErrorBody) {
      t->error_body_cut = true;
      return 0;
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The store.

class HttpStore final : public KvStore {
 public:
  HttpStore(http_internal::BaseUrl base, const HttpOptions& options, Stats* stats,
            std::optional<HttpCredentials> credentials, std::string cacert)
      : base_(std::move(base)),
        options_(options),
        stats_(stats),
        credentials_(std::move(credentials)),
        cacert_(std::move(cacert)) {
    share_ = curl_share_init();
    if (share_ != nullptr) {
      curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &HttpStore::Lock);
      curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &HttpStore::Unlock);
      curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
  }

  ~HttpStore() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
    if (share_ != nullptr) curl_share_cleanup(share_);
    if (credentials_) {
      volatile char* p = credentials_->password.data();
      for (size_t i = 0; i < credentials_->password.size(); ++i) p[i] = 0;
    }
  }

  bool Valid() const { return share_ != nullptr; }

  std::string Describe() const override { return base_.base; }

  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    OZ_RETURN_IF_ERROR(ValidateKey(key).WithContext(base_.base));
    Result<std::optional<KvValue>> r = ReadWithRetries(key, max_bytes, "", nullptr);
    if (!r.ok() && stats_ != nullptr) stats_->http_errors++;
    return r;
  }

  // One GET with a Range header (no Content-Encoding asked for, so the range is of the stored
  // bytes). 206: the part, placed by Content-Range; 200 (a server that ignores Range): the whole
  // value (at most max_object_bytes), cut; 416: the range starts past the end (empty part).
  Result<std::optional<KvRangeValue>> ReadRange(std::string_view key, const ByteRange& range,
                                                uint64_t max_object_bytes) override {
    OZ_RETURN_IF_ERROR(ValidateKey(key).WithContext(base_.base));
    const std::string where = "GET " + base_.base + "/" + std::string(key) + " (" + range.ToString() + ")";
    if (range.length > kMaxRangeBytes || range.length == 0)
      return InvalidArgumentError(where + ": the range is empty or larger than 1 GiB");
    RangeReply reply;
    Result<std::optional<KvValue>> r =
        ReadWithRetries(key, std::max(max_object_bytes, range.length), range.ToString().substr(6), &reply);
    if (!r.ok() && stats_ != nullptr) stats_->http_errors++;
    if (!r.ok()) return r.status();
    if (!r->has_value()) return std::optional<KvRangeValue>();
    KvValue& v = **r;
    if (reply.status == 200) return std::optional<KvRangeValue>(CutRange(v.data, range, std::move(v.validator)));
    // Content-Range: "bytes FIRST-LAST/TOTAL" (206) or "bytes */TOTAL" (416).
    std::string_view cr = reply.content_range;
    auto number = [](std::string_view t, uint64_t* out) {
      if (t.empty() || t.size() > 19) return false;
      uint64_t n = 0;
      for (char c : t) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      *out = n;
      return true;
    };
    const size_t slash = cr.rfind('/');
    uint64_t total = 0, first = 0, last = 0;
    const bool has_total = slash != std::string_view::npos && number(cr.substr(slash + 1), &total);
    KvRangeValue out;
    out.validator = std::move(v.validator);
    if (reply.status == 416) {
      // Nothing of the range exists (it starts at or past the end, or the value is empty).
      if (!has_total)
        return IoError(where + ": 416 Range Not Satisfiable without a usable Content-Range (\"" + std::string(cr) +
                       "\")");
      out.offset = range.suffix ? total : range.offset;
      out.object_size = total;
      return std::optional<KvRangeValue>(std::move(out));
    }
    const size_t dash = cr.find('-');
    if (!StartsWithIgnoreCase(cr, "bytes ") || !has_total || dash == std::string_view::npos || dash > slash ||
        !number(cr.substr(6, dash - 6), &first) || !number(cr.substr(dash + 1, slash - dash - 1), &last) ||
        last < first || last >= total || v.data.size() != last - first + 1)
      return IoError(where + ": " + std::to_string(reply.status) + " with an unusable Content-Range \"" +
                     std::string(cr) + "\" for " + std::to_string(v.data.size()) + " bytes");
    const uint64_t want_first = range.suffix ? total - std::min(total, range.length) : range.offset;
    const uint64_t want_n =
        range.suffix ? std::min(total, range.length) : std::min(range.length, total - std::min(total, range.offset));
    if (first != want_first || v.data.size() != want_n)
      return IoError(where + ": the server sent bytes " + std::to_string(first) + "-" + std::to_string(last) + " of " +
                     std::to_string(total) + ", not the range asked for");
    out.data = std::move(v.data);
    out.offset = first;
    out.object_size = total;
    return std::optional<KvRangeValue>(std::move(out));
  }

 private:
  // What one attempt (with its redirect hops) ended in.
  struct Outcome {
    enum Kind { kValue, kAbsent, kRetry, kFatal } kind = kFatal;
    KvValue value;
    Status status;                      // kFatal: the error; kRetry: the cause, for the final message
    std::optional<double> retry_after;  // seconds, from the response
    long http_status = 0;
    std::string content_range;
  };

  struct RangeReply {
    long status = 0;
    std::string content_range;
  };

  // `range` ("0-99", "-100"; "" = the whole value); `reply` (with a range) gets the final status
  // and Content-Range.
  Result<std::optional<KvValue>> ReadWithRetries(std::string_view key, uint64_t max_bytes, const std::string& range,
                                                 RangeReply* reply) {
    const std::string url = base_.base + "/" + http_internal::EncodeKeyForUrl(key);
    const std::string where = "GET " + base_.base + "/" + std::string(key);
    const Clock::time_point start = Clock::now();
    const int attempts = options_.retries + 1;
    for (int attempt = 1;; ++attempt) {
      Outcome o = Attempt(url, where, max_bytes, range);
      if (reply != nullptr) {
        reply->status = o.http_status;
        reply->content_range = o.content_range;
      }
      switch (o.kind) {
        case Outcome::kValue: return std::optional<KvValue>(std::move(o.value));
        case Outcome::kAbsent: return std::optional<KvValue>();
        case Outcome::kFatal: return o.status;
        case Outcome::kRetry: break;
      }
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      if (attempt >= attempts) {
        return UnavailableError(where + ": " + o.status.message() + " (gave up after " + std::to_string(attempt) +
                                (attempt == 1 ? " attempt" : " attempts") + " in " + Seconds(elapsed) +
                                ", -o retries=" + std::to_string(options_.retries) + "): " + Hint(o));
      }
      double wait =
          http_internal::BackoffSeconds(attempt, options_.retry_delay, http_internal::kBackoffCapSeconds, Uniform01());
      if (o.retry_after) wait = std::max(wait, std::min(*o.retry_after, options_.retry_after_max));
      if (stats_ != nullptr) stats_->http_retries++;
      if (GetLogLevel() <= LogLevel::kDebug) {
        LogDebug("http: " + where + ": " + o.status.message() + "; retry " + std::to_string(attempt) + " of " +
                 std::to_string(options_.retries) + " in " + Seconds(wait));
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
  }

  std::string Hint(const Outcome& o) const {
    if (o.http_status == 429) return "the server is rate-limiting: lower -o max_connections or try again later";
    if (o.http_status >= 500) return "the server is failing or overloaded: try again later";
    if (o.http_status == 408) return "the server timed the request out: try again later";
    return "check the network and that the server is up; slow links may need a larger -o timeout or "
           "low_speed_time";
  }

  Outcome Attempt(const std::string& url, const std::string& where, uint64_t max_bytes, const std::string& range) {
    Outcome o;
    CURL* h = nullptr;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return in_use_ < options_.max_connections; });
      ++in_use_;
      if (!idle_.empty()) {
        h = idle_.back();
        idle_.pop_back();
      }
    }
    if (h == nullptr) h = curl_easy_init();
    if (h == nullptr) {
      Release(nullptr);
      o.status = ResourceExhaustedError(where + ": out of memory creating an HTTP handle");
      return o;
    }
    const Clock::time_point deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.timeout));
    std::string current = url;
    std::string current_display = where;
    bool same_origin = true;
    std::string hop_origin = base_.origin;
    for (int hop = 0;; ++hop) {
      o = Exchange(h, current, current_display, same_origin, hop_origin, deadline, max_bytes, range);
      if (o.kind != Outcome::kFatal || o.http_status < 300 || o.http_status >= 400) break;
      // A redirect; curl resolved the Location header against the request URL.
      char* target = nullptr;
      curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &target);
      if (target == nullptr) break;  // 3xx without Location: o is the error
      if (hop >= http_internal::kMaxRedirects) {
        o.status = IoError(where + ": more than " + std::to_string(http_internal::kMaxRedirects) +
                           " redirects (last to " + RedirectDisplay(target) + "): the server redirects in a loop");
        break;
      }
      Result<SplitUrl> next = Split(target);
      if (!next.ok() || (next->scheme != "http" && next->scheme != "https")) {
        o.status = IoError(where + ": redirected to an unusable location '" + RedirectDisplay(target) +
                           "' (only http and https URLs are followed)");
        break;
      }
      std::string clean = CleanRedirect(target);
      if (clean.empty()) {
        o.status = ResourceExhaustedError(where + ": out of memory following a redirect");
        break;
      }
      hop_origin = next->Origin();
      same_origin = hop_origin == base_.origin;
      current = std::move(clean);
      current_display = "GET " + next->Display() + " (redirected from " + where.substr(4) + ")";
      if (GetLogLevel() <= LogLevel::kDebug) {
        LogDebug("http: " + where + ": " + StatusText(o.http_status) + " to " + next->Display() +
                 (same_origin ? "" : " (another origin: no credentials)"));
      }
    }
    Release(h);
    return o;
  }

  // One request on `h`. For 3xx returns kFatal with http_status set and a message for the case
  // the caller cannot follow it.
  Outcome Exchange(CURL* h, const std::string& url, const std::string& where, bool same_origin,
                   const std::string& origin, Clock::time_point deadline, uint64_t max_bytes,
                   const std::string& range) {
    Outcome o;
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) {
      o.kind = Outcome::kRetry;
      o.status = UnavailableError("the attempt ran out of time while following redirects (-o timeout)");
      return o;
    }
    Transfer t;
    t.max_bytes = max_bytes;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    // The handle must not keep pointers to this frame once it returns: curl may report an error
    // while closing an idle connection later (cleanup), and would write into a dead buffer.
    struct Unhook {
      CURL* h;
      ~Unhook() {
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, nullptr);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, nullptr);
      }
    } unhook{h};
    // Reset keeps the handle's live connections, DNS cache and TLS session cache; it drops every
    // option, so nothing (credentials above all) carries over from the previous request.
    curl_easy_reset(h);
    const long connect_ms =
        std::min<long>(static_cast<long>(remaining), static_cast<long>(options_.connect_timeout * 1000));
    bool set_ok =
        curl_easy_setopt(h, CURLOPT_URL, url.c_str()) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SHARE, share_) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED)) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_VERBOSE, 0L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, connect_ms)) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining)) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(options_.low_speed_limit)) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time)) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 2L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, range.empty() ? "" : nullptr) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_USERAGENT, "omezarrfs/" OMEZARRFS_VERSION) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &HeaderCallback) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &t) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &WriteCallback) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &t) == CURLE_OK;
    if (set_ok && !range.empty()) set_ok = curl_easy_setopt(h, CURLOPT_RANGE, range.c_str()) == CURLE_OK;
    if (set_ok && !cacert_.empty()) set_ok = curl_easy_setopt(h, CURLOPT_CAINFO, cacert_.c_str()) == CURLE_OK;
    if (set_ok && same_origin && credentials_) {
      // Basic only: sent with the first request instead of after a 401 round trip.
      set_ok = curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)) == CURLE_OK &&
               curl_easy_setopt(h, CURLOPT_USERNAME, credentials_->user.c_str()) == CURLE_OK &&
               curl_easy_setopt(h, CURLOPT_PASSWORD, credentials_->password.c_str()) == CURLE_OK;
    }
    if (!set_ok) {
      o.status = InternalError(where + ": libcurl refused an option (is libcurl older than 7.85?)");
      return o;
    }
    const Clock::time_point t0 = Clock::now();
    const CURLcode rc = curl_easy_perform(h);
    if (stats_ != nullptr) stats_->http_requests++;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status == 0) status = t.status;
    o.http_status = status;
    if (GetLogLevel() <= LogLevel::kDebug) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
      LogDebug("http: " + where + " -> " + (rc == CURLE_OK || status != 0 ? StatusText(status) : "no response") +
               (rc == CURLE_OK ? "" : std::string(" (") + curl_easy_strerror(rc) + ")") + ", " +
               std::to_string(t.body.size()) + " bytes, " + std::to_string(ms) + " ms" +
               (same_origin && credentials_ ? ", with credentials" : ""));
    }
    if (t.too_big) {
      o.status =
          CorruptError(where + ": the value is larger than the limit of " + std::to_string(max_bytes) + " bytes" +
                       (t.declared_length > max_bytes ? " (Content-Length " + std::to_string(t.declared_length) + ")"
                                                      : std::string()) +
                       "; is this the right URL?");
      return o;
    }
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.error_body_cut)) return CurlFailure(rc, errbuf, where, origin);
    o.content_range = t.content_range;
    if ((status >= 200 && status < 300) || (status == 416 && !range.empty())) {
      o.kind = Outcome::kValue;
      o.value.data = std::move(t.body);
      o.value.validator = !t.etag.empty() ? t.etag : t.last_modified;
      return o;
    }
    if (status == 404 || status == 410) {
      o.kind = Outcome::kAbsent;
      return o;
    }
    if (status == 408 || status == 429 || status >= 500) {
      o.kind = Outcome::kRetry;
      o.status = UnavailableError(StatusText(status));
      if (!t.retry_after.empty()) o.retry_after = http_internal::ParseRetryAfter(t.retry_after, std::time(nullptr));
      return o;
    }
    if (status == 401 || status == 403) {
      o.status = Status(ErrorCode::kPermission,
                        where + ": " + StatusText(status) + ": " + AuthAdvice(status, same_origin, origin));
      return o;
    }
    if (status >= 300 && status < 400) {
      o.status = IoError(where + ": " + StatusText(status) + " without a usable Location header");
      return o;
    }
    o.status = IoError(where + ": unexpected " + StatusText(status) + " from the server");
    return o;
  }

  std::string AuthAdvice(long status, bool same_origin, const std::string& origin) const {
    if (!same_origin) {
      return "a redirect led to " + origin + ", which asks for authentication, but credentials are only sent to " +
             base_.origin;
    }
    if (!credentials_) {
      return status == 401 ? "authentication required: use -o netrc=FILE or -o credentials=FILE"
                           : "access denied; if the server needs a login, use -o netrc=FILE or -o credentials=FILE";
    }
    return status == 401 ? "the server refused the credentials from " + credentials_->source + ": check them"
                         : "access denied for the credentials from " + credentials_->source;
  }

  Outcome CurlFailure(CURLcode rc, const char* errbuf, const std::string& where, const std::string& origin) const {
    Outcome o;
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_BAD_CONTENT_ENCODING:
        o.kind = Outcome::kRetry;
        o.status = UnavailableError(detail);
        return o;
      case CURLE_COULDNT_RESOLVE_HOST:
        // Not retried: almost always a typo, and the resolver retries on its own.
        o.status = IoError(where + ": " + detail + ": check the host name in the URL");
        return o;
      case CURLE_PEER_FAILED_VERIFICATION:
        o.status = IoError(where + ": the TLS certificate of " + origin + " is not trusted (" + detail +
                           "): if the server uses a private CA, pass its certificate with -o cacert=FILE");
        return o;
      case CURLE_SSL_CACERT_BADFILE:
        o.status = IoError(where + ": cannot use the CA file" + (cacert_.empty() ? "" : " " + cacert_) + " (" + detail +
                           "): check -o cacert=FILE");
        return o;
      case CURLE_OUT_OF_MEMORY: o.status = ResourceExhaustedError(where + ": " + detail); return o;
      default: o.status = IoError(where + ": " + detail); return o;
    }
  }

  // The redirect target without userinfo or fragment (a server must not be able to make us send
  // credentials it chose), or "" on failure.
  static std::string CleanRedirect(const char* target) {
    UrlHandle u(curl_url());
    if (!u || curl_url_set(u.get(), CURLUPART_URL, target, 0) != CURLUE_OK) return "";
    curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_FRAGMENT, nullptr, 0);
    return GetPart(u.get(), CURLUPART_URL).value_or("");
  }

  // A redirect target for messages: no userinfo, no query (it may carry a signature).
  static std::string RedirectDisplay(const char* target) {
    Result<SplitUrl> s = Split(target);
    if (!s.ok()) return "(an invalid URL)";
    return s->Display();
  }

  void Release(CURL* h) {
    std::lock_guard<std::mutex> l(mu_);
    --in_use_;
    if (h != nullptr) idle_.push_back(h);
    cv_.notify_one();
  }

  static double Uniform01() {
    thread_local std::mt19937_64 rng(std::random_device{}());
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<HttpStore*>(user)->share_mu_[static_cast<size_t>(data) % kLocks].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<HttpStore*>(user)->share_mu_[static_cast<size_t>(data) % kLocks].unlock();
  }

  static constexpr size_t kLocks = CURL_LOCK_DATA_LAST;

  const http_internal::BaseUrl base_;
  const HttpOptions options_;
  Stats* const stats_;
  std::optional<HttpCredentials> credentials_;
  const std::string cacert_;  // absolute, or empty

  CURLSH* share_ = nullptr;
  std::array<std::mutex, kLocks> share_mu_;  // one per curl_lock_data, as curl asks

  // Handle pool. Guarded by mu_: idle_, in_use_. Handles in idle_ are not in use by any thread.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CURL*> idle_;  // back = most recently used
  int in_use_ = 0;           // slots taken, <= options_.max_connections
};

Status CheckOptions(const HttpOptions& o) {
  auto bad = [](std::string_view what) { return InvalidArgumentError("invalid HTTP option: " + std::string(what)); };
  if (o.max_connections < 1) return bad("max_connections must be at least 1");
  if (!(o.connect_timeout > 0) || !(o.timeout > 0)) return bad("connect_timeout and timeout must be positive");
  if (o.low_speed_time < 0) return bad("low_speed_time must not be negative");
  if (o.retries < 0) return bad("retries must not be negative");
  if (!(o.retry_delay >= 0) || !(o.retry_after_max >= 0))
    return bad("retry_delay and retry_after_max must not be negative");
  return OkStatus();
}

}  // namespace

namespace http_internal {

std::optional<double> ParseRetryAfter(std::string_view value, std::time_t now) {
  std::string_view v = TrimSpace(value);
  if (v.empty()) return std::nullopt;
  bool digits = std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    double s = 0;
    for (char c : v) s = s * 10 + (c - '0');  // a double cannot overflow on a header's digits
    return s;
  }
  std::string text(v);
  std::time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return when <= now ? 0.0 : static_cast<double>(when - now);
}

double BackoffSeconds(int retry, double base, double cap, double u) {
  double d = base * std::ldexp(1.0, std::clamp(retry, 1, 64) - 1);
  d = std::min(d, cap);
  return d * (0.5 + 0.5 * std::clamp(u, 0.0, 1.0));
}

double WorstCaseSeconds(const HttpOptions& o) {
  return (o.retries + 1) * o.timeout + o.retries * std::max(o.retry_after_max, kBackoffCapSeconds);
}

std::string EncodeKeyForUrl(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                       c == '_' || c == '~' || c == '-' || c == '/';
    if (plain) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

std::string RedactUrl(std::string_view text) {
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return std::string(text);
  size_t auth_start = scheme_end + 3;
  size_t auth_end = text.find_first_of("/?#", auth_start);
  if (auth_end == std::string_view::npos) auth_end = text.size();
  size_t at = text.substr(0, auth_end).rfind('@');
  if (at == std::string_view::npos || at < auth_start) return std::string(text);
  return std::string(text.substr(0, auth_start)) + "***" + std::string(text.substr(at));
}

Result<BaseUrl> ParseBaseUrl(std::string_view url) {
  OZ_RETURN_IF_ERROR(GlobalInit());
  const std::string shown = RedactUrl(url);
  if (!IsHttpUrl(url)) {
    return InvalidArgumentError("'" + shown + "' is not an http:// or https:// URL");
  }
  OZ_ASSIGN_OR_RETURN(SplitUrl s, Split(url));
  if (s.userinfo) {
    return InvalidArgumentError("the URL '" + shown +
                                "' contains credentials (user:password@), which would show in ps and the "
                                "mount table: remove them, put user:password in a file with mode 0600 and pass "
                                "-o credentials=FILE (or use -o netrc=FILE)");
  }
  if (!s.query.empty()) {
    return InvalidArgumentError("the URL '" + shown + "' has a query string (?...): source URLs cannot have one");
  }
  if (s.fragment) return InvalidArgumentError("the URL '" + shown + "' has a fragment (#...): remove it");
  if (s.host.empty()) return InvalidArgumentError("the URL '" + shown + "' has no host");
  while (!s.path.empty() && s.path.back() == '/') s.path.pop_back();
  BaseUrl b;
  b.base = s.Display();
  b.origin = s.Origin();
  b.host = s.host;
  b.https = s.scheme == "https";
  return b;
}

}  // namespace http_internal

bool IsHttpUrl(std::string_view source) {
  return StartsWithIgnoreCase(source, "http://") || StartsWithIgnoreCase(source, "https://");
}

Result<std::unique_ptr<KvStore>> OpenHttpStore(const std::string& url, const HttpOptions& options, Stats* stats) {
  OZ_RETURN_IF_ERROR(CheckOptions(options));
  OZ_ASSIGN_OR_RETURN(http_internal::BaseUrl base, http_internal::ParseBaseUrl(url));
  std::optional<HttpCredentials> credentials;
  if (!options.credentials.empty() && !options.netrc.empty()) {
    return InvalidArgumentError("options credentials= and netrc= conflict: use only one");
  }
  if (!options.credentials.empty()) {
    OZ_ASSIGN_OR_RETURN(credentials, ReadCredentialsFile(options.credentials));
  } else {
    const bool explicit_netrc = !options.netrc.empty();
    const std::string path = explicit_netrc ? options.netrc : DefaultNetrcPath();
    if (!path.empty()) {
      OZ_ASSIGN_OR_RETURN(credentials, ReadNetrcCredentials(path, explicit_netrc, base.host));
    }
  }
  std::string cacert;
  if (!options.cacert.empty()) {
    // Resolved now: curl opens it on every new connection, and the daemon changes directory.
    char* real = ::realpath(options.cacert.c_str(), nullptr);
    if (real == nullptr) return ErrnoError(errno, "CA file (-o cacert=) " + options.cacert);
    cacert = real;
    std::free(real);
    if (::access(cacert.c_str(), R_OK) != 0) return ErrnoError(errno, "CA file (-o cacert=) " + options.cacert);
  }
  if (credentials && !base.https) {
    LogWarning("credentials from " + credentials->source + " will be sent to " + base.origin +
               " unencrypted (plain http); use https:// if the server supports it");
  }
  auto store = std::make_unique<HttpStore>(std::move(base), options, stats, std::move(credentials), std::move(cacert));
  if (!store->Valid()) return ResourceExhaustedError("out of memory creating the HTTP client");
  return std::unique_ptr<KvStore>(std::move(store));
}

}  // namespace oz
