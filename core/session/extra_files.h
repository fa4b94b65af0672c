// The files of a mount's extra directories (MountTree::ExtraFiles, e.g. layers/*.tif) written into
// a materialized tree, through the same FileContent reads the mount serves.
#pragma once

#include <cstdint>
#include <string>

#include "core/tree/mount_tree.h"

namespace oz {

// Writes every extra file of `mount` under dest (atomically, each file complete or absent) and
// adds the bytes written to *bytes_written. Memory: one whole file at a time (a 2000x2000 layer
// is 8 MB). Errors:
// the first read or write failure, naming the file.
Status WriteExtraFiles(MountTree& mount, const std::string& dest, uint64_t* bytes_written);

}  // namespace oz
