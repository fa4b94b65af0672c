// TiffStack: a directory of z-slice TIFFs as a Volume (uint8/uint16, one sample per pixel).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/stats.h"
#include "core/thread_pool.h"
#include "core/volume.h"

namespace oz {

struct TiffStackOptions {
  BadSlicePolicy bad_slices = BadSlicePolicy::kError;
  // Byte budget of the decoded strip/tile cache shared by all reads (the `memory=` option).
  uint64_t memory_bytes = 1ull << 30;
  // Pool for parallel header scanning and per-slice decoding (not owned, must outlive the
  // stack). nullptr = work on the calling thread only.
  ThreadPool* pool = nullptr;
  Stats* stats = nullptr;  // not owned; may be nullptr
};

// One discovered slice file.
struct SliceFile {
  int64_t z = 0;
  std::string name;   // file name inside the directory
  uint64_t size = 0;  // bytes, at discovery
  int64_t mtime_ns = 0;
};

// Discovery, pure on a list of names (testable without files): a name that is an integer
// (decimal digits only) plus ".tif"/".tiff" in any case is slice z = that integer; others are
// ignored. Returns the slices sorted by z. Errors: kInvalidArgument naming both files when two
// names give one z (e.g. "01.tif" and "1.tif"); kInvalidArgument when no name matches.
Result<std::vector<SliceFile>> DiscoverSlices(const std::vector<std::string>& names);

class TiffStack : public Volume {
 public:
  // Scans `dir`, reads every slice header (in parallel on options.pool), checks that all share
  // width, height, bits per sample and sample format.
  // Errors (all name the file/field and the fix):
  //  - dir missing / not a directory / unreadable: kNotFound / kInvalidArgument / kPermission
  //  - no slice files: kInvalidArgument
  //  - duplicate z: kInvalidArgument naming both files
  //  - a slice that cannot be opened or whose header is bad, or whose shape/type differs from
  //    the one most slices share (the first such slice on a tie; the message names the offender
  //    and both shapes): kInvalidArgument, unless bad_slices=zero, where it is logged and read
  //    as zeros
  //  - unsupported pixel type (not uint8/uint16, samples per pixel != 1, planar, float, ...):
  //    kUnsupported naming the file and the field value.
  //  - a slice whose strip/tile data lies past the end of the file (truncated copy): as a bad
  //    slice above, the message names the offset and the file size.
  // Gaps in z numbering are zero slices; one warning lists them (in warnings()).
  // Files are only stat'ed and opened non-blocking, so a FIFO named like a slice cannot hang.
  static Result<std::unique_ptr<TiffStack>> Open(const std::string& dir, const TiffStackOptions& options);
  ~TiffStack() override;

  Vec3 shape() const override;  // (max z + 1, height, width)
  DType dtype() const override;
  // Reads only the strips/tiles (or, for uncompressed data, the row ranges) intersecting `box`,
  // through the shared decoded-strip cache; slices are processed in parallel on the pool.
  // A missing (gap) or bad (bad_slices=zero) slice reads as zeros. Errors name the slice file.
  // Errors: kIoError for a read/decode failure (names the strip/tile and libtiff's message) and
  // for a slice whose size or mtime changed since Open ("changed since mount"; never mixed data).
  // Memory: decoded strips/tiles (or ~1 MiB row ranges of uncompressed data) are cached up to
  // options.memory_bytes; concurrent readers of one strip decode it once.
  Status ReadBox(const Box& box, void* out) override;
  // Reads only the kept slices (box.lo[0], + step, ...), and in them only the strips or tiles
  // that hold kept pixels (through the strip cache), or for uncompressed data only the kept rows
  // (from the first to the last kept column, one pread each, not cached). Errors as ReadBox.
  Status ReadBoxStrided(const Box& box, int64_t step, void* out) override;
  std::string Fingerprint() const override;  // every slice's name, size and mtime, plus dims
  std::string Describe() const override;

  const std::vector<SliceFile>& slices() const;
  // Human-readable warnings from Open (gaps, zeroed bad slices), already logged.
  const std::vector<std::string>& warnings() const;

  struct Impl;

 private:
  explicit TiffStack(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace oz
