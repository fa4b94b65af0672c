// netrc parsing and credentials files. The parser follows curl's reading of the format (which is
// what users test their netrc with), and the permission rule follows ssh and Python's netrc: a
// file holding a password that others can read is refused instead of silently used.
#include "core/store/netrc.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace oz {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;  // far above any real netrc; bounds memory

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string ModeText(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads a whole small file through one descriptor, so the mode checked is the mode of the file
// read (no race between stat and open). *mode gets st_mode.
Status ReadSmallFile(const std::string& path, std::string_view what, std::string* out, mode_t* mode) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return ErrnoError(err, std::string(what) + " " + path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, std::string(what) + " " + path);
  }
  *mode = st.st_mode;
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(std::string(what) + " " + path + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) {
    ::close(fd);
    return InvalidArgumentError(std::string(what) + " " + path + " is larger than 1 MiB; is it the right file?");
  }
  out->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError(err, "reading " + std::string(what) + " " + path);
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxFileBytes) {
      ::close(fd);
      return InvalidArgumentError(std::string(what) + " " + path + " is larger than 1 MiB; is it the right file?");
    }
  }
  ::close(fd);
  return OkStatus();
}

Status CheckPrivate(const std::string& path, std::string_view what, mode_t mode) {
  if ((mode & (S_IRWXG | S_IRWXO)) == 0) return OkStatus();
  return Status(ErrorCode::kPermission, std::string(what) + " " + path +
                                            " holds a password but other users can access it (mode " + ModeText(mode) +
                                            "): run chmod 600 " + path);
}

// Overwrites a string's bytes before it is freed (best effort: copies made by the allocator
// while growing are out of reach).
void Wipe(std::string* s) {
  volatile char* p = s->data();
  for (size_t i = 0; i < s->size(); ++i) p[i] = 0;
  s->clear();
}

struct Token {
  std::string text;
  int line = 0;
};

// Splits netrc text into tokens; macdef bodies are dropped here because they end at a blank
// line, which only the tokenizer sees.
Status Tokenize(std::string_view text, std::string_view what, std::vector<Token>* tokens) {
  size_t i = 0;
  int line = 1;
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(std::string(what) + " line " + std::to_string(line) + ": " + std::string(why));
  };
  bool after_macdef = false;  // the previous two tokens were "macdef NAME"
  while (i < text.size()) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      ++i;
      if (after_macdef) {
        // The macro body runs from the next line to the first empty line.
        after_macdef = false;
        while (i < text.size()) {
          size_t eol = text.find('\n', i);
          std::string_view l = text.substr(i, eol == std::string_view::npos ? std::string_view::npos : eol - i);
          if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
          i = eol == std::string_view::npos ? text.size() : eol + 1;
          ++line;
          if (l.empty()) break;
        }
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    Token t;
    t.line = line;
    if (c == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        char d = text[i++];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\\' && i < text.size()) {
          char e = text[i++];
          t.text += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
          continue;
        }
        if (d == '\n') ++line;
        t.text += d;
      }
      if (!closed) return bad("unterminated quoted string");
    } else {
      while (i < text.size()) {
        char d = text[i];
        if (d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == '\f' || d == '\v') break;
        t.text += d;
        ++i;
      }
    }
    bool was_macdef = !tokens->empty() && tokens->back().text == "macdef";
    tokens->push_back(std::move(t));
    if (was_macdef) after_macdef = true;
  }
  return OkStatus();
}

}  // namespace

Result<std::optional<NetrcEntry>> NetrcLookup(std::string_view text, std::string_view host, std::string_view what) {
  std::vector<Token> tokens;
  Status st = Tokenize(text, what, &tokens);
  if (!st.ok()) return st;
  std::optional<NetrcEntry> match, fallback;
  // The entry being read: 0 none yet, 1 a machine that matches, 2 a machine that does not,
  // 3 default.
  int state = 0;
  NetrcEntry cur;
  auto finish = [&]() {
    if (state == 1 && !match) match = cur;
    if (state == 3 && !fallback) fallback = cur;
    cur = NetrcEntry{};
  };
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i].text;
    auto value = [&](std::string* out) -> Status {
      if (i + 1 >= tokens.size()) {
        return InvalidArgumentError(std::string(what) + " line " + std::to_string(tokens[i].line) + ": '" + t +
                                    "' has no value");
      }
      *out = tokens[++i].text;
      return OkStatus();
    };
    if (t == "machine") {
      finish();
      std::string name;
      OZ_RETURN_IF_ERROR(value(&name));
      state = EqualsIgnoreCase(name, host) ? 1 : 2;
    } else if (t == "default") {
      finish();
      state = 3;
    } else if (t == "login") {
      OZ_RETURN_IF_ERROR(value(&cur.login));
    } else if (t == "password") {
      OZ_RETURN_IF_ERROR(value(&cur.password));
      cur.has_password = true;
    } else if (t == "account" || t == "macdef") {
      std::string ignored;
      OZ_RETURN_IF_ERROR(value(&ignored));
    }
    // Anything else is ignored, as curl does.
  }
  finish();
  for (Token& t : tokens) Wipe(&t.text);
  if (match) return match;
  return fallback;
}

std::string DefaultNetrcPath() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return "";
  return std::string(home) + "/.netrc";
}

Result<std::optional<HttpCredentials>> ReadNetrcCredentials(const std::string& path, bool must_exist,
                                                            std::string_view host) {
  std::string text;
  mode_t mode = 0;
  Status st = ReadSmallFile(path, "netrc file", &text, &mode);
  if (!st.ok()) {
    if (!must_exist && st.code() == ErrorCode::kNotFound) return std::optional<HttpCredentials>();
    return st;
  }
  Result<std::optional<NetrcEntry>> entry = NetrcLookup(text, host, "netrc file " + path);
  Wipe(&text);
  if (!entry.ok()) return entry.status();
  if (!entry->has_value()) return std::optional<HttpCredentials>();
  NetrcEntry& e = **entry;
  if (e.has_password) OZ_RETURN_IF_ERROR(CheckPrivate(path, "netrc file", mode));
  HttpCredentials c;
  c.user = std::move(e.login);
  c.password = std::move(e.password);
  c.source = path;
  Wipe(&e.password);
  return std::optional<HttpCredentials>(std::move(c));
}

Result<HttpCredentials> ReadCredentialsFile(const std::string& path) {
  std::string text;
  mode_t mode = 0;
  OZ_RETURN_IF_ERROR(ReadSmallFile(path, "credentials file", &text, &mode));
  // Refuse before looking at the content: a readable password is already exposed, and the user
  // has to fix the file either way.
  Status priv = CheckPrivate(path, "credentials file", mode);
  if (!priv.ok()) {
    Wipe(&text);
    return priv;
  }
  std::string_view first(text);
  first = first.substr(0, first.find('\n'));
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  size_t colon = first.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    Wipe(&text);
    return InvalidArgumentError("credentials file " + path + ": expected user:password on the first line");
  }
  HttpCredentials c;
  c.user = std::string(first.substr(0, colon));
  c.password = std::string(first.substr(colon + 1));
  c.source = path;
  Wipe(&text);
  return c;
}

}  // namespace oz
