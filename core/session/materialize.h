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
//
// Existing chunks are reused rather than recomputed (ChunkEngine::ComputeTree with a provider):
// - DEST: chunk files listed in the unit manifests of earlier runs of the same tree (any
//   --levels range, any part) and still matching their entry (size, XXH64) and decoding to a full
//   chunk. So `--levels A-B` with levels below A in DEST computes levels A..B from DEST's highest
//   complete level below A instead of the source; a unit whose lower-level files are not all
//   there (never written, deleted, changed) is computed from the source. Files of this run's
//   levels that are already right are kept in place.
// - The cache of a mount (`cache_dir`, opened read-only: no lock is taken, nothing in it changes,
//   so a mount may be running on it): chunks computed there are copied. Its keys hold the source
//   fingerprint and every option that shapes bytes, so a cache of other options or of a changed
//   source is simply never hit.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/session/session.h"

namespace oz {

struct MaterializeOptions {
  std::string dest;
  bool overwrite = false;     // accept a non-empty DEST not written by this tool (or with other options)
  bool delete_extra = false;  // remove files in DEST that are not in the tree (when every unit is done)
  bool verify = false;        // re-hash files of done units; redo units whose files differ
  // --part i/N (0-based here): disjoint shares of the units (z-slabs x y-bands) of a level K chosen
  // from N (the highest of [A, B] with at least 4N units, else N); the levels above K are computed
  // from DEST's level K by the part that completes the set, or by a run with `finish`.
  int part = 0, parts = 1;
  bool finish = false;    // --finish: compute the levels above the parts' level from DEST
  int min_level = 0;      // --levels A-B
  int max_level = -1;     // -1 = the last level
  bool fsync = true;      // syncfs(DEST) before each unit manifest
  std::string cache_dir;  // a mount's -o cache=DIR to copy chunks from (read-only); empty: none
};

struct MaterializeCounts {
  uint64_t chunks_total = 0;       // chunks of this run (part, levels)
  uint64_t chunks_done = 0;        // written + kept + skipped + empty
  uint64_t chunks_written = 0;     // chunk files written
  uint64_t chunks_from_cache = 0;  // of chunks_written: bytes copied from the cache, not computed
  uint64_t chunks_kept = 0;        // already in DEST (earlier runs, checked), kept in place
  uint64_t chunks_skipped = 0;     // in units already done
  uint64_t chunks_empty = 0;       // empty chunks (no file with empty=omit)
  uint64_t units_failed = 0;
  uint64_t bytes_written = 0;
  uint64_t files_deleted = 0;
  // Chunks of levels below --levels A read (to build level A) instead of computed from the source.
  uint64_t lower_from_dest = 0;
  uint64_t lower_from_cache = 0;
  uint64_t source_bytes_read = 0;  // pixel bytes read from the source by this run
};

struct MaterializeReport {
  MaterializeCounts counts;
  std::vector<std::string> failed;  // "L/z/y/* (levels A-B below): reason" per failed unit
  double seconds = 0;
};

// Called from worker threads (serialized by the caller's implementation if it needs to be).
using MaterializeProgressFn = std::function<void(const MaterializeCounts&)>;

// Errors (before anything is written): bad --part/--levels, DEST unusable or not ours, or DEST's
// .zarray of a level differs from this tree's (its files are not this tree's).
// A cache_dir that holds no cache or cannot be read is a warning: everything is computed.
// Unit failures do not stop the run: they are listed in the report (exit non-zero).
Result<MaterializeReport> Materialize(Session& session, const MaterializeOptions& options,
                                      const MaterializeProgressFn& progress);

// -o base=DEST (session.options.base_dir): the engine serves the chunks of an earlier materialize
// DEST of the same source and options (its unit manifests: size and XXH64 checked per read)
// instead of computing them. A DEST of another source state or other options, a sharded or
// derived format, or an unreadable DEST is not used: one warning naming why (in
// session.warnings too), and everything is computed. Called by OpenSession.
void AttachBase(Session& session);

// --dry-run: per level shape, chunk count and bytes, and the disk estimate for the whole tree.
std::string DryRunReport(const Session& session, const MaterializeOptions& options);

}  // namespace oz
