// The files of a mount's extra directories (MountTree::ExtraFiles, e.g. layers/*.tif) written into
// a materialized tree, through the same FileContent reads the mount serves.
#pragma once

#include <cstdint>
#include <string>

#include "core/tree/mount_tree.h"

namespace oz {

// Writes every extra file of `mount` under dest (atomically, each file complete or absent) and
// adds the bytes written to *bytes_written. Files are read round-robin in 1 MiB pieces (so files
// computed together are read together) and held whole until written: memory is their total size
// (66 layer TIFFs of a 2000x2000 surface: 530 MB). Files under labels/ are read and written one
// at a time per thread (up to 8 threads; memory: one file each). Errors:
// the first read or write failure, naming the file.
Status WriteExtraFiles(MountTree& mount, const std::string& dest, uint64_t* bytes_written);

}  // namespace oz
