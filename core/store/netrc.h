// Credentials for remote sources: netrc lookup and credentials= files (user:password).
//
// Secrets never appear in any Status message: errors name the file and a line number, never a
// token. Files that hold a password must not be readable or writable by group or others (mode
// 0600 or stricter); otherwise they are refused with a message saying `chmod 600 FILE`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace oz {

struct HttpCredentials {
  std::string user;
  std::string password;
  std::string source;  // the file they came from (for messages); never the secret itself
};

// A netrc entry: the first `machine` whose name equals host (case-insensitive), else `default`.
struct NetrcEntry {
  std::string login;
  std::string password;
  bool has_password = false;
};

// Parses netrc text (tokens `machine NAME`, `default`, `login X`, `password X`, `account X`,
// `macdef NAME` + body up to a blank line; whitespace-separated; "double quoted" tokens with
// \" \\ \n \r \t escapes; a token starting with '#' starts a comment to the end of the line;
// unknown tokens are ignored, as curl does) and returns the entry for `host`, or nullopt.
// Errors: kInvalidArgument naming `what` (the file) and the line: a keyword without its value,
// an unterminated quote.
Result<std::optional<NetrcEntry>> NetrcLookup(std::string_view text, std::string_view host, std::string_view what);

// Reads the netrc file at `path` and looks `host` up. A missing file is nullopt when
// !must_exist (the implicit ~/.netrc) and kNotFound naming the file otherwise. A matching entry
// with a password in a file that group or others may read is kPermission ("chmod 600 FILE").
// An entry without a password yields an empty password.
Result<std::optional<HttpCredentials>> ReadNetrcCredentials(const std::string& path, bool must_exist,
                                                            std::string_view host);

// Reads a credentials file: its first line is `user:password` (split at the first ':'; a
// trailing CR/LF is dropped; the user must not be empty). Refused with kPermission unless it is
// a regular file with mode 0600 or stricter (no group/other bits). Missing: kNotFound.
Result<HttpCredentials> ReadCredentialsFile(const std::string& path);

// The implicit netrc path: $HOME/.netrc, or "" when HOME is unset.
std::string DefaultNetrcPath();

}  // namespace oz
