// Atomic file writes shared by the disk cache and materialize: a file at its final name is
// always complete.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace oz {

struct AtomicWriteOptions {
  bool fsync_file = true;  // fsync the temp file before rename
  bool fsync_dir = true;   // fsync the directory after rename
  unsigned mode = 0644;
};

// Writes `data` to `path` atomically: a temp file in the same directory (name starts with
// ".tmp." so sweepers can find it), write all, optional fsync, rename over `path`, optional
// fsync of the directory. The temp file is removed on any failure.
// Errors: from errno (kNoSpace, kPermission, kIoError, ...) naming the path.
Status WriteFileAtomic(const std::string& path, std::string_view data, const AtomicWriteOptions& options = {});

// Reads a whole file. Errors: kNotFound if absent, otherwise from errno, naming the path.
Result<std::string> ReadFile(const std::string& path);

// Creates `path` and its parents (like mkdir -p). OK if it exists as a directory.
Status MakeDirs(const std::string& path, unsigned mode = 0755);

// Removes ".tmp.*" files older than `min_age_seconds` directly inside `dir` (non-recursive).
// Returns the number removed.
int SweepTempFiles(const std::string& dir, int min_age_seconds);

}  // namespace oz
