// The FUSE edge: each callback decodes its arguments, makes one core call, maps the Status to an
// errno (only in ErrnoFromStatus) and replies. No exception reaches libfuse.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse.h>
#include <sys/stat.h>

#include "core/base/stats.h"
#include "core/base/status.h"
#include "core/tree/tree.h"

namespace oz {

// Reaches callbacks through fuse_get_context()->private_data.
struct FsContext {
  Tree* tree = nullptr;
  Stats* stats = nullptr;
  time_t mount_time = 0;
};

// The one errno table: kNotFound -> ENOENT, kReadOnly -> EROFS, ..., anything that means "could
// not produce correct bytes" -> EIO.
int ErrnoFromStatus(const Status& status);

// The name of the extended attribute on the root holding the counters (not part of the tree).
inline constexpr const char* kStatsXattr = "user.omezarrfs.stats";

const fuse_operations& GetFuseOperations();

// The operations with an explicit context, so tests drive them without a kernel. Return 0 or
// -errno (read: bytes read or -errno).
namespace fsops {
int Getattr(FsContext& ctx, const char* path, struct stat* st);
int Readdir(FsContext& ctx, const char* path, void* buf, fuse_fill_dir_t filler);
int Open(FsContext& ctx, const char* path, fuse_file_info* fi);
int Read(FsContext& ctx, const char* path, char* buf, size_t size, off_t offset, fuse_file_info* fi);
int Release(FsContext& ctx, const char* path, fuse_file_info* fi);
int Getxattr(FsContext& ctx, const char* path, const char* name, char* value, size_t size);
int Access(FsContext& ctx, const char* path, int mask);
}  // namespace fsops

}  // namespace oz
