// Fault injection for the robustness tests (docs/ROBUSTNESS.md): named points in the write paths
// of the disk cache and materialize and in the source read path. Compiled in always, inert unless
// the environment variable OMEZARRFS_FAULT is set when the process starts.
//
//   OMEZARRFS_FAULT=SPEC[;SPEC...]   SPEC = POINT:kill[@N] | POINT:delay=MS
//     kill[@N]   SIGKILL this process at the N-th hit of POINT (default: the first hit)
//     delay=MS   sleep MS milliseconds at every hit of POINT
//
// Points (SITE is "cache" or "materialize", see AtomicWriteOptions::fault_site):
//   SITE.created       temp file created, nothing written yet
//   SITE.half_written  half of the bytes written to the temp file
//   SITE.written       all bytes written, before fsync (if any) and close
//   SITE.renamed       renamed to the final name, before the directory fsync (if any)
//   source.read        before each strip/tile (or row range) read from a TIFF slice
//   prebuild.unit      before each unit the background prebuild (-o prebuild=K) computes
//
// Threading: thread-safe. Cost when OMEZARRFS_FAULT is unset: one load of a flag per point.
#pragma once

#include <string_view>

namespace oz {

// True if OMEZARRFS_FAULT was set (read once, at the first call).
bool FaultsEnabled();

// Slow path of FaultPoint: acts on every SPEC naming "site.step" (or "site" when step is empty).
void HitFault(std::string_view site, std::string_view step);

inline void FaultPoint(std::string_view site, std::string_view step = {}) {
  if (FaultsEnabled()) HitFault(site, step);
}

}  // namespace oz
