// The files of a mount's extra directories (MountTree::ExtraFiles, e.g. layers/*.tif, labels/...)
// written into a materialized tree, through the same FileContent reads the mount serves.
#pragma once

#include <cstdint>
#include <string>

#include "core/tree/mount_tree.h"

namespace oz {

// Writes every extra file of `mount` under dest (atomically, each file complete or absent), and
// every extra directory (also empty ones, as the mount shows them), and adds the bytes written to
// *bytes_written. Files under labels/ are read and written one at a time per thread (up to 8
// threads; memory: one file each). The other files (layer TIFFs) are streamed to their temp files
// in 64 KiB pieces, read round-robin within groups of 128 files (so files computed together are
// read together): memory is one piece plus what the files' contents hold. Errors: the first read
// or write failure, naming the file.
Status WriteExtraFiles(MountTree& mount, const std::string& dest, uint64_t* bytes_written);

}  // namespace oz
