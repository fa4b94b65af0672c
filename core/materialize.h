// Materialize: writes the tree a mount would show into a real directory, byte for byte, with
// bounded memory, resumably and splittable across machines. Core only (no FUSE).
//
// Work is done in top-level units (a z-slab x y-band of the top level with all its levels below,
// computed by ChunkEngine::ComputeTree: every source slice is read once per unit). Every file is
// written to a temp name and renamed, so files at final names are complete. When a unit's files
// are all written and synced, a manifest listing each chunk (path, size, XXH64, or "empty") is
// written atomically under DEST/.omezarr-materialize/units/. A unit with a manifest is done:
// re-runs skip it ("already right" = its manifest exists and, with --verify, every listed file
// still hashes to its entry); a unit without one (a crash, a full disk) is recomputed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/session.h"

namespace oz {

struct MaterializeOptions {
  std::string dest;
  bool overwrite = false;     // accept a non-empty DEST not written by this tool (or with other options)
  bool delete_extra = false;  // remove files in DEST that are not in the tree (when every unit is done)
  bool verify = false;        // re-hash files of done units; redo units whose files differ
  int part = 0, parts = 1;    // --part i/N (0-based here): disjoint z-slabs of the top level
  int min_level = 0;          // --levels A-B
  int max_level = -1;         // -1 = the last level
  bool fsync = true;          // syncfs(DEST) before each unit manifest
};

struct MaterializeCounts {
  uint64_t chunks_total = 0;    // chunks of this run (part, levels)
  uint64_t chunks_done = 0;     // written + skipped + empty
  uint64_t chunks_written = 0;  // chunk files written
  uint64_t chunks_skipped = 0;  // in units already done
  uint64_t chunks_empty = 0;    // empty chunks (no file with empty=omit)
  uint64_t units_failed = 0;
  uint64_t bytes_written = 0;
  uint64_t files_deleted = 0;
};

struct MaterializeReport {
  MaterializeCounts counts;
  std::vector<std::string> failed;  // "L/z/y/* (levels A-B below): reason" per failed unit
  double seconds = 0;
};

// Called from worker threads (serialized by the caller's implementation if it needs to be).
using MaterializeProgressFn = std::function<void(const MaterializeCounts&)>;

// Errors (before anything is written): bad --part/--levels, DEST unusable or not ours.
// Unit failures do not stop the run: they are listed in the report (exit non-zero).
Result<MaterializeReport> Materialize(Session& session, const MaterializeOptions& options,
                                      const MaterializeProgressFn& progress);

// --dry-run: per level shape, chunk count and bytes, and the disk estimate for the whole tree.
std::string DryRunReport(const Session& session, const MaterializeOptions& options);

}  // namespace oz
