// Mount tables (/proc/PID/mountinfo): which mounts a process sees, to tell whether the FUSE
// mount a cache owner serves still exists.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace oz {

// One line of mountinfo (proc(5)): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
struct MountInfoEntry {
  int64_t mount_id = 0;
  std::string dev;          // "major:minor" of the filesystem (for FUSE: the connection)
  std::string mount_point;  // octal escapes (\040 ...) decoded
  std::string fstype;       // e.g. "fuse.omezarrfs"
};

// Identifies one mount while it exists. Mount ids and device numbers are reused soon after an
// unmount (the next FUSE mount often gets both), so the mount point is compared too.
struct MountId {
  int64_t mount_id = 0;
  std::string dev;
  std::string mount_point;  // a newline in it reads as '?' (records are one line)
};

// Parses a whole mountinfo text; malformed lines are skipped. Pure.
std::vector<MountInfoEntry> ParseMountInfo(std::string_view text);

// The topmost mount at `mount_point` (an absolute path without symlinks) whose fstype is
// `fstype`, in this process's table: the last such line (later mounts are listed after the ones
// they cover). nullopt when there is none or the table cannot be read.
std::optional<MountId> FindOwnMount(const std::string& mount_point, const std::string& fstype);

// Whether process `pid` has mount `id` (same mount id, device and mount point) in its mount table.
// Errors: kNotFound when there is no such process; from errno when the table cannot be read.
Result<bool> ProcessHasMount(int64_t pid, const MountId& id);

}  // namespace oz
