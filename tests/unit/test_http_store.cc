// HttpStore without a network: URL rules, key encoding, Retry-After, backoff, the worst-case
// bound, open-time errors (credentials in the URL, file modes), the -o rows, and ValidateKey.
// Requests against a real (fault-injecting) server are in tests/integration/test_http_store.py.
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/store/http_store.h"
#include "core/store/kv_store.h"
#include "mountopts/mount_options.h"

namespace oz {
namespace {

using namespace http_internal;
namespace fs = std::filesystem;

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_CASE("http: base URL normalization") {
  auto b = ParseBaseUrl("HTTPS://Data.Example.ORG/a/b.zarr/");
  REQUIRE(b.ok());
  CHECK(b->base == "https://data.example.org/a/b.zarr");
  CHECK(b->origin == "https://data.example.org:443");
  CHECK(b->host == "data.example.org");
  CHECK(b->https);
  b = ParseBaseUrl("http://127.0.0.1:8080//x///");
  REQUIRE(b.ok());
  CHECK(b->base == "http://127.0.0.1:8080//x");
  CHECK(b->origin == "http://127.0.0.1:8080");
  b = ParseBaseUrl("http://h:80/");
  REQUIRE(b.ok());
  CHECK(b->base == "http://h");
  CHECK(b->origin == "http://h:80");
  b = ParseBaseUrl("http://[::1]:9/z");
  REQUIRE(b.ok());
  CHECK(b->base == "http://[::1]:9/z");
}

TEST_CASE("http: URLs refused at open, without echoing secrets") {
  for (const char* url : {"http://alice:Sentinel-pw@host/x", "https://alice@host/x", "http://:Sentinel-pw@host/"}) {
    auto b = ParseBaseUrl(url);
    INFO(url);
    REQUIRE_FALSE(b.ok());
    CHECK(b.status().code() == ErrorCode::kInvalidArgument);
    CHECK(Contains(b.status().message(), "credentials="));
    CHECK_FALSE(Contains(b.status().message(), "Sentinel"));
    CHECK_FALSE(Contains(b.status().message(), "alice"));
  }
  auto q = ParseBaseUrl("http://h/x?sig=1");
  REQUIRE_FALSE(q.ok());
  CHECK(Contains(q.status().message(), "query"));
  CHECK_FALSE(ParseBaseUrl("http://h/x#frag").ok());
  CHECK_FALSE(ParseBaseUrl("ftp://h/x").ok());
  CHECK_FALSE(ParseBaseUrl("/local/path").ok());
  auto junk = ParseBaseUrl("http://user:Sentinel-pw@ho st/");
  REQUIRE_FALSE(junk.ok());
  CHECK_FALSE(Contains(junk.status().message(), "Sentinel"));
}

TEST_CASE("http: RedactUrl") {
  CHECK(RedactUrl("http://u:p@h/x") == "http://***@h/x");
  CHECK(RedactUrl("http://u:p@h") == "http://***@h");
  CHECK(RedactUrl("http://h/x@y") == "http://h/x@y");
  CHECK(RedactUrl("http://a@b@h/x") == "http://***@h/x");
  CHECK(RedactUrl("no scheme u:p@h") == "no scheme u:p@h");
}

TEST_CASE("http: IsHttpUrl") {
  CHECK(IsHttpUrl("http://x"));
  CHECK(IsHttpUrl("HTTPS://x"));
  CHECK_FALSE(IsHttpUrl("/data/http://x"));
  CHECK_FALSE(IsHttpUrl("s3://bucket"));
}

TEST_CASE("http: keys are percent-encoded only where needed") {
  CHECK(EncodeKeyForUrl("0/.zarray") == "0/.zarray");
  CHECK(EncodeKeyForUrl("0/1.2.3") == "0/1.2.3");
  CHECK(EncodeKeyForUrl("a-b_c~d/E9") == "a-b_c~d/E9");
  CHECK(EncodeKeyForUrl("a b%?#") == "a%20b%25%3F%23");
  CHECK(EncodeKeyForUrl("\xc3\xa9") == "%C3%A9");
}

TEST_CASE("http: Retry-After seconds and HTTP-dates") {
  const std::time_t now = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(ParseRetryAfter("120", now) == std::optional<double>(120));
  CHECK(ParseRetryAfter(" 0 ", now) == std::optional<double>(0));
  CHECK(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now) == std::optional<double>(10));   // IMF-fixdate
  CHECK(ParseRetryAfter("Sunday, 06-Nov-94 08:50:37 GMT", now) == std::optional<double>(60));  // RFC 850
  CHECK(ParseRetryAfter("Sun Nov  6 08:49:57 1994", now) == std::optional<double>(20));        // asctime
  CHECK(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now) == std::optional<double>(0));    // past
  CHECK_FALSE(ParseRetryAfter("", now));
  CHECK_FALSE(ParseRetryAfter("-5", now));
  CHECK_FALSE(ParseRetryAfter("soon", now));
  CHECK(*ParseRetryAfter("99999999999999999999", now) > 1e18);  // huge: the caller caps it
}

TEST_CASE("http: backoff doubles, is capped and jittered to 50-100%") {
  CHECK(BackoffSeconds(1, 0.5, 30, 1.0) == Approx(0.5));
  CHECK(BackoffSeconds(1, 0.5, 30, 0.0) == Approx(0.25));
  CHECK(BackoffSeconds(2, 0.5, 30, 1.0) == Approx(1.0));
  CHECK(BackoffSeconds(4, 0.5, 30, 1.0) == Approx(4.0));
  CHECK(BackoffSeconds(7, 0.5, 30, 1.0) == Approx(30.0));
  CHECK(BackoffSeconds(1000, 0.5, 30, 0.5) == Approx(22.5));
  CHECK(BackoffSeconds(3, 0, 30, 1.0) == 0);
  for (int n = 1; n < 20; ++n) {
    for (double u : {0.0, 0.3, 0.999}) {
      double b = BackoffSeconds(n, 0.5, 30, u);
      CHECK(b <= 30);
      CHECK(b >= 0.5 * std::min(30.0, 0.5 * (1 << (n - 1))) - 1e-9);
    }
  }
}

TEST_CASE("http: the documented worst case") {
  HttpOptions o;
  CHECK(WorstCaseSeconds(o) == Approx(7 * 120 + 6 * 60));  // 20 min with the defaults
  o.retries = 0;
  o.timeout = 5;
  CHECK(WorstCaseSeconds(o) == Approx(5));
  o.retries = 2;
  o.retry_after_max = 1;  // the 30 s backoff cap dominates
  CHECK(WorstCaseSeconds(o) == Approx(3 * 5 + 2 * 30));
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/oz_http_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string Write(const std::string& name, const std::string& text, mode_t mode) {
    std::string p = path + "/" + name;
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << text;
    }
    REQUIRE(::chmod(p.c_str(), mode) == 0);
    return p;
  }
};

TEST_CASE("http: OpenHttpStore checks credentials files and options, sends nothing") {
  TempDir t;
  HttpOptions o;
  o.netrc = t.Write("empty-netrc", "", 0600);  // keep the test independent of ~/.netrc
  auto s = OpenHttpStore("http://127.0.0.1:9/a.zarr/", o, nullptr);
  REQUIRE(s.ok());
  CHECK((*s)->Describe() == "http://127.0.0.1:9/a.zarr");
  // Invalid keys never reach the network.
  auto r = (*s)->Read("../etc/passwd", 100);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);

  HttpOptions lax = o;
  lax.netrc.clear();
  lax.credentials = t.Write("creds", "u:Sentinel-pw-3\n", 0644);
  auto refused = OpenHttpStore("http://127.0.0.1:9/a", lax, nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == ErrorCode::kPermission);
  CHECK(Contains(refused.status().message(), "chmod 600 " + lax.credentials));
  CHECK_FALSE(Contains(refused.status().message(), "Sentinel"));

  HttpOptions both = o;
  both.credentials = t.Write("creds2", "u:p\n", 0600);
  auto conflict = OpenHttpStore("http://127.0.0.1:9/a", both, nullptr);
  REQUIRE_FALSE(conflict.ok());
  CHECK(Contains(conflict.status().message(), "conflict"));

  HttpOptions missing_ca = o;
  missing_ca.cacert = t.path + "/no-such-ca.pem";
  auto ca = OpenHttpStore("https://127.0.0.1:9/a", missing_ca, nullptr);
  REQUIRE_FALSE(ca.ok());
  CHECK(ca.status().code() == ErrorCode::kNotFound);
  CHECK(Contains(ca.status().message(), "no-such-ca.pem"));

  HttpOptions zero = o;
  zero.max_connections = 0;
  CHECK_FALSE(OpenHttpStore("http://127.0.0.1:9/a", zero, nullptr).ok());
}

TEST_CASE("http: a refused connection is retried, then kUnavailable naming the URL and the count") {
  TempDir t;
  HttpOptions o;
  o.netrc = t.Write("empty-netrc", "", 0600);
  o.retries = 2;
  o.retry_delay = 0;
  o.connect_timeout = 2;
  o.timeout = 5;
  Stats stats;
  // A port that is bound but not listening refuses connections for as long as it stays bound.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/a";
  auto s = OpenHttpStore(base, o, &stats);
  REQUIRE(s.ok());
  auto r = (*s)->Read("0/0", 100);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kUnavailable);
  CHECK(Contains(r.status().message(), "GET " + base + "/0/0"));
  CHECK(Contains(r.status().message(), "after 3 attempts"));
  CHECK(stats.http_requests == 3);
  CHECK(stats.http_retries == 2);
  CHECK(stats.http_errors == 1);
  ::close(fd);
}

TEST_CASE("http: -o rows for remote sources") {
  Options o;
  MountFlags f;
  REQUIRE(ParseOptionString("max_connections=3,connect_timeout=2.5,timeout=30,low_speed_limit=4K,"
                            "low_speed_time=5,retries=0,retry_delay=0.01,retry_after_max=2,netrc=/n,"
                            "credentials=/c,cacert=/ca.pem",
                            &o, &f)
              .ok());
  CHECK(o.http.max_connections == 3);
  CHECK(o.http.connect_timeout == 2.5);
  CHECK(o.http.timeout == 30);
  CHECK(o.http.low_speed_limit == 4096);
  CHECK(o.http.low_speed_time == 5);
  CHECK(o.http.retries == 0);
  CHECK(o.http.retry_delay == 0.01);
  CHECK(o.http.retry_after_max == 2);
  CHECK(o.http.netrc == "/n");
  CHECK(o.http.credentials == "/c");
  CHECK(o.http.cacert == "/ca.pem");
  CHECK(Options().http == HttpOptions());

  for (const char* bad : {"max_connections=0", "max_connections=257", "timeout=0", "timeout=-1", "timeout=abc",
                          "connect_timeout=inf", "retries=101", "retries=-1", "retry_delay=31", "retry_after_max=-1",
                          "low_speed_time=1.5", "credentials=", "netrc="}) {
    Options before;
    INFO(bad);
    Status st = ParseOptionString(bad, &before, &f);
    REQUIRE_FALSE(st.ok());
    CHECK(Contains(st.message(), std::string(bad).substr(0, std::string(bad).find('='))));
    CHECK(before == Options());
  }
  const std::string help = OptionsHelpText();
  for (const char* name : {"max_connections=N", "connect_timeout=SECONDS", "timeout=SECONDS", "low_speed_limit=SIZE",
                           "low_speed_time=SECONDS", "retries=N", "retry_delay=SECONDS", "retry_after_max=SECONDS",
                           "netrc=FILE", "credentials=FILE", "cacert=FILE", "Remote source options",
                           "(retries+1)*timeout + retries*max(retry_after_max,30s)", "20 min"}) {
    INFO(name);
    CHECK(Contains(help, name));
  }
}

TEST_CASE("ValidateKey") {
  for (const char* good : {"a", "0/.zarray", "0/1/2", "0/1.2.3", ".zattrs", "a..b/c", "x/.y"}) {
    INFO(good);
    CHECK(ValidateKey(good).ok());
  }
  for (const char* bad : {"", "/a", "a//b", "a/", "./a", "a/./b", "a/..", "../x", "a\\b", "a\nb", "a\x7f"}) {
    INFO(bad);
    Status st = ValidateKey(bad);
    CHECK(st.code() == ErrorCode::kInvalidArgument);
    CHECK(Contains(st.message(), "store key"));
  }
}

}  // namespace
}  // namespace oz
