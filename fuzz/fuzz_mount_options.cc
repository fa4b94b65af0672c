// Fuzzes the -o parser and the command line: any bytes, no crash, no leak, no UB; an error leaves
// the options untouched; a parse that succeeds is stable when its result is parsed again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mountopts/mount_options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);

  // 1. The whole input as one -o value.
  oz::Options options;
  oz::MountFlags flags;
  const oz::Options before = options;
  oz::Status s = oz::ParseOptionString(in, &options, &flags);
  if (!s.ok() && !(options == before)) __builtin_trap();  // documented: errors change nothing

  // 2. As a size.
  (void)oz::ParseByteSize(in);

  // 3. As an argv, split at NUL bytes, after the program name.
  std::vector<std::string> args = {"omezarrfs"};
  std::string cur;
  for (char c : in) {
    if (c == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  args.push_back(cur);
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  auto cl = oz::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  if (cl.ok()) (void)oz::JoinFuseOptions(cl->flags.fuse_options);
  return 0;
}
