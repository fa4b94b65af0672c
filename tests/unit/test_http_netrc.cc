// netrc parsing and credentials files: lookup rules, quoting, comments, macdef, file modes, and
// that no error message ever contains a secret.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/store/netrc.h"

namespace oz {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/oz_netrc_test.XXXXXX";
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

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::optional<NetrcEntry> Lookup(const std::string& text, const std::string& host) {
  Result<std::optional<NetrcEntry>> r = NetrcLookup(text, host, "netrc");
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("netrc: machine entries, first match wins, case-insensitive host") {
  const std::string text =
      "machine other.org login o password op\n"
      "machine Data.Example.ORG login alice password s3cret\n"
      "machine data.example.org login bob password second\n";
  auto e = Lookup(text, "data.example.org");
  REQUIRE(e);
  CHECK(e->login == "alice");
  CHECK(e->password == "s3cret");
  CHECK(e->has_password);
  CHECK_FALSE(Lookup(text, "example.org"));
}

TEST_CASE("netrc: default is the fallback, wherever it appears") {
  const std::string text = "default login anon password guest\nmachine a.org login a password pa\n";
  CHECK(Lookup(text, "a.org")->login == "a");
  auto d = Lookup(text, "b.org");
  REQUIRE(d);
  CHECK(d->login == "anon");
  CHECK(d->password == "guest");
}

TEST_CASE("netrc: single-line form, tabs, CRLF, account, unknown tokens") {
  auto e = Lookup("machine h\tlogin u\r\n  account acct  password p x-unknown-token\r\n", "h");
  REQUIRE(e);
  CHECK(e->login == "u");
  CHECK(e->password == "p");
}

TEST_CASE("netrc: quoted tokens with escapes and spaces") {
  auto e = Lookup("machine h login \"my user\" password \"pa ss\\\"wo\\\\rd\"\n", "h");
  REQUIRE(e);
  CHECK(e->login == "my user");
  CHECK(e->password == "pa ss\"wo\\rd");
}

TEST_CASE("netrc: comments and macdef bodies are skipped") {
  const std::string text =
      "# a comment with machine h login evil password evil\n"
      "macdef init\n"
      "machine h login fromMacro password fromMacro\n"
      "\n"
      "machine h login real password pw # trailing comment\n";
  auto e = Lookup(text, "h");
  REQUIRE(e);
  CHECK(e->login == "real");
  CHECK(e->password == "pw");
}

TEST_CASE("netrc: entry without password") {
  auto e = Lookup("machine h login u\n", "h");
  REQUIRE(e);
  CHECK(e->login == "u");
  CHECK_FALSE(e->has_password);
}

TEST_CASE("netrc: malformed text names the line, never a token") {
  Result<std::optional<NetrcEntry>> r = NetrcLookup("machine h login u\nmachine k password", "h", "netrc F");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(r.status().message(), "netrc F line 2"));
  r = NetrcLookup("machine h login u password \"Sentinel-unterminated\n", "h", "netrc F");
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "unterminated"));
  CHECK_FALSE(Contains(r.status().message(), "Sentinel"));
}

TEST_CASE("netrc file: missing implicit file is fine, explicit is not; mode rules") {
  TempDir t;
  auto none = ReadNetrcCredentials(t.path + "/absent", false, "h");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto missing = ReadNetrcCredentials(t.path + "/absent", true, "h");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);
  CHECK(Contains(missing.status().message(), t.path + "/absent"));

  std::string p = t.Write("netrc", "machine h login u password Sentinel-pw-1\n", 0600);
  auto ok = ReadNetrcCredentials(p, true, "h");
  REQUIRE(ok.ok());
  REQUIRE(ok->has_value());
  CHECK((*ok)->user == "u");
  CHECK((*ok)->password == "Sentinel-pw-1");
  CHECK((*ok)->source == p);

  REQUIRE(::chmod(p.c_str(), 0644) == 0);
  auto lax = ReadNetrcCredentials(p, true, "h");
  REQUIRE_FALSE(lax.ok());
  CHECK(lax.status().code() == ErrorCode::kPermission);
  CHECK(Contains(lax.status().message(), "chmod 600 " + p));
  CHECK(Contains(lax.status().message(), "0644"));
  CHECK_FALSE(Contains(lax.status().message(), "Sentinel"));
  // A lax file without an entry for this host is not an error: nothing from it is used.
  auto other = ReadNetrcCredentials(p, true, "elsewhere");
  REQUIRE(other.ok());
  CHECK_FALSE(other->has_value());
}

TEST_CASE("credentials file: user:password, mode 0600 or stricter") {
  TempDir t;
  std::string p = t.Write("creds", "alice:pa:ss:Sentinel-pw-2\r\nignored second line\n", 0600);
  auto c = ReadCredentialsFile(p);
  REQUIRE(c.ok());
  CHECK(c->user == "alice");
  CHECK(c->password == "pa:ss:Sentinel-pw-2");
  CHECK(c->source == p);

  REQUIRE(::chmod(p.c_str(), 0400) == 0);
  CHECK(ReadCredentialsFile(p).ok());

  for (mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
    REQUIRE(::chmod(p.c_str(), mode) == 0);
    auto bad = ReadCredentialsFile(p);
    INFO(mode);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == ErrorCode::kPermission);
    CHECK(Contains(bad.status().message(), "chmod 600 " + p));
    CHECK_FALSE(Contains(bad.status().message(), "Sentinel"));
  }

  std::string nocolon = t.Write("nocolon", "Sentinel-only\n", 0600);
  auto bad = ReadCredentialsFile(nocolon);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == ErrorCode::kInvalidArgument);
  CHECK(Contains(bad.status().message(), "user:password"));
  CHECK_FALSE(Contains(bad.status().message(), "Sentinel"));

  auto missing = ReadCredentialsFile(t.path + "/nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);

  auto dir = ReadCredentialsFile(t.path);
  REQUIRE_FALSE(dir.ok());
  CHECK(Contains(dir.status().message(), "not a regular file"));
}

}  // namespace
}  // namespace oz
