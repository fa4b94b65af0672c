// Command line and -o option parsing for omezarrfs and omezarr-materialize. No FUSE dependency.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/options.h"
#include "core/base/status.h"

namespace oz {

// Options for the FUSE mount that are not part of the tree view.
struct MountFlags {
  bool foreground = false;     // -f
  bool debug = false;          // -d (implies foreground, libfuse debug output)
  bool single_thread = false;  // -s
  // libfuse/kernel mount options passed through to fuse, one option per element, unescaped, in
  // the order given, each name at most once (a later value replaces an earlier one):
  // allow_other, allow_root, default_permissions, auto_unmount, max_read=N, fsname=S, subtype=S,
  // max_threads=N. Join them with JoinFuseOptions() before handing them to libfuse.
  std::vector<std::string> fuse_options;
  std::string log_file;            // -o log=FILE (empty = no log file)
  std::string log_level = "info";  // -o log_level=debug|info|warning|error
};

// Paths (source, mountpoint, cache, log) are returned as given. A relative path must be made
// absolute before the process daemonizes (libfuse changes the directory to /).
struct CommandLine {
  std::string source;
  std::string mountpoint;  // empty for tools with one positional (materialize uses dest)
  bool help = false;
  bool version = false;
  Options options;
  MountFlags flags;
};

// Parses a single -o value into `options` and `flags`; the reference is OptionsHelpText().
// - Options are separated by commas. Inside a value "\," is a literal comma and "\\" a literal
//   backslash (a backslash before any other character is kept as is).
// - window, shift and voxel_size also accept "/" between their items, and comma-separated pieces
//   that follow them and are neither name=value, a known flag nor a bare word (allow_othr)
//   continue their value ("window=0:10,0:20,chunk=64" sets window to 0:10,0:20).
// - Later options override earlier ones (also across calls).
// - fstab-only options (auto, noauto, nofail, _netdev, user, users, nouser, owner, defaults,
//   exec, noexec, suid, nosuid, dev, nodev, the atime family, x-*, comment=*) and `ro` are
//   ignored; `rw` is refused.
// Errors: kInvalidArgument whose message names the option (and its text) and says what is
// accepted; unknown options: "unknown option 'foo' (see omezarrfs --help)". On error neither
// `options` nor `flags` is modified.
Status ParseOptionString(const std::string& value, Options* options, MountFlags* flags);

// Parses argv of `omezarrfs SOURCE MOUNTPOINT [-o opts] [-f] [-d] [-s] [-h|--help] [-V|--version]`.
// Flags may come before, between or after the positionals and may be clustered ("-fs"); -o may
// repeat and may be glued ("-oallow_other"); "--" ends the flags. With -h/--help or
// -V/--version the positionals are not required and other errors are not reported (the caller
// prints help/version and exits). Errors (kInvalidArgument) name the offending argument.
Result<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// The option reference printed by --help (every option with its default), shared with the README.
std::string OptionsHelpText();

// Parses sizes like "512", "64K", "10M", "1.5G", "2T" (binary multiples K M G T P E,
// case-insensitive; optional trailing "B"/"iB"; a fraction is rounded down to whole bytes).
// Errors (kInvalidArgument) name the text: junk, negative, or more than 2^64-1 bytes.
Result<uint64_t> ParseByteSize(const std::string& text);

// Joins fuse options into one libfuse -o string, escaping ',' and '\' inside each element.
std::string JoinFuseOptions(const std::vector<std::string>& fuse_options);

}  // namespace oz
