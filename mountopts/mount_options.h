// Command line and -o option parsing for omezarrfs and omezarr-materialize. No FUSE dependency.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"
#include "core/status.h"

namespace oz {

// Options for the FUSE mount that are not part of the tree view.
struct MountFlags {
  bool foreground = false;   // -f
  bool debug = false;        // -d (implies foreground, libfuse debug output)
  bool single_thread = false;  // -s
  // libfuse/kernel mount options passed through to fuse (allow_other, allow_root,
  // default_permissions, auto_unmount, max_read=N, fsname=..., subtype=..., ...).
  std::vector<std::string> fuse_options;
  std::string log_file;       // -o log=FILE
  std::string log_level;      // -o log_level=debug|info|warning|error (default info)
};

struct CommandLine {
  std::string source;
  std::string mountpoint;  // empty for tools with one positional (materialize uses dest)
  bool help = false;
  bool version = false;
  Options options;
  MountFlags flags;
};

// Parses a single -o value (comma-separated list; "\," is a literal comma) into `options` and
// `flags`. Later options override earlier ones. fstab-only options (auto, noauto, nofail,
// _netdev, user, users, nouser, owner, defaults, rw? no: ro accepted, rw rejected, x-*, comment=*)
// are ignored. Unknown or malformed options → kInvalidArgument whose message names the option
// and says what is accepted.
Status ParseOptionString(const std::string& value, Options* options, MountFlags* flags);

// Parses argv of `omezarrfs SOURCE MOUNTPOINT [-o opts] [-f] [-d] [-s] [-h|--help] [-V|--version]`.
// -o may repeat and may be glued ("-oallow_other"). Errors name the offending argument.
Result<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// The option reference printed by --help (every option with its default), shared with the README.
std::string OptionsHelpText();

// Parses sizes like "512", "64K", "10M", "1.5G", "2T" (binary multiples; optional trailing
// "B"/"iB"). Errors name the text.
Result<uint64_t> ParseByteSize(const std::string& text);

}  // namespace oz
