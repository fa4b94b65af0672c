// TiffStack: a directory of z-slice TIFFs, or one multi-page TIFF whose pages are the z slices,
// as a Volume (uint8, uint16, uint32, uint64, int16 or float32; one sample per pixel).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/base/options.h"
#include "core/base/stats.h"
#include "core/source/volume.h"
#include "core/sync/thread_pool.h"

namespace oz {

struct TiffStackOptions {
  BadSlicePolicy bad_slices = BadSlicePolicy::kError;
  // Byte budget of the decoded strip/tile cache shared by all reads (the `memory=` option).
  uint64_t memory_bytes = 1ull << 30;
  // Pool for parallel header scanning and per-slice decoding (not owned, must outlive the
  // stack). nullptr = work on the calling thread only.
  ThreadPool* pool = nullptr;
  Stats* stats = nullptr;  // not owned; may be nullptr
  // -o page=N: in a directory of slice files, serve full-resolution page N (0-based) of every file
  // instead of refusing files with several pages. -1 = not given.
  int page = -1;
  // -o channel=C / -o t=T: in one multi-page file with channels or time points (ImageJ
  // hyperstack, OME-TIFF, tifffile shape), the channel and time point served. -1 = not given.
  int channel = -1;
  int time = -1;
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

// The first full-resolution page of one TIFF file, read and checked as TiffStack::Open checks a
// slice (pixel format, layout) but reading only that page's header: a cheap check of many files.
struct TiffFirstPage {
  int64_t width = 0, height = 0;
  uint64_t size = 0;  // file bytes and mtime, at the read
  int64_t mtime_ns = 0;
};
// Errors as a bad slice of Open (naming `label`, e.g. "cell cell_yxz_001_001_001.tif").
Result<TiffFirstPage> ReadTiffFirstPage(const std::string& path, const std::string& label);

class TiffStack : public Volume {
 public:
  // `source` is one of:
  //  - a directory of slice files (NNNN.tif): every slice header is read (in parallel on
  //    options.pool); all must share width, height, bits per sample and sample format. A file
  //    with more than one full-resolution page (NewSubfileType bit 0 clear; reduced-resolution
  //    pages are skipped) is a bad slice naming the file and its page count, unless
  //    options.page picks one page of every file (a file with fewer pages is then bad);
  //  - one TIFF file, or a directory whose only *.tif/*.tiff file has several full-resolution
  //    pages (and options.page is not given): its full-resolution pages are the z slices. The
  //    IFD chain is walked once, here; each page's IFD offset is kept, so reading page k never
  //    walks pages 0..k-1. An ImageJ hyperstack, an OME-TIFF or a tifffile shaped file with
  //    channels or time points serves the pages of options.channel/options.time (see
  //    core/source/tiff_pages.h for the page order); without them such a file is refused naming its
  //    axes, their sizes and the options. Pages are checked like slices ("page K of FILE").
  //    An ImageJ file with one IFD and images=N (ImageJ's layout over 4 GiB) serves the N
  //    uncompressed planes stored back to back after it.
  // Strips and tiles with offset 0 and byte count 0 (GDAL's SPARSE_OK) read as zeros.
  // Palette images (Photometric=3) whose colour map is the grey identity ramp are served as
  // their indices; other palettes are refused.
  // Errors (all name the file/field and the fix):
  //  - options.channel/time given for a directory of slices, options.page for one file, or
  //    either out of range: kInvalidArgument
  //  - source missing / neither a directory nor a file / unreadable: kNotFound /
  //    kInvalidArgument / kPermission
  //  - no slice files: kInvalidArgument
  //  - duplicate z: kInvalidArgument naming both files
  //  - a slice that cannot be opened or whose header is bad, or whose shape/type differs from
  //    the one most slices share (the first such slice on a tie; the message names the offender
  //    and both shapes): kInvalidArgument, unless bad_slices=zero, where it is logged and read
  //    as zeros
  //  - unsupported pixel type (not uint8/16/32/64, int16 or float32; samples per pixel != 1,
  //    a colour palette, MinIsWhite, float64, ...): kUnsupported naming the file, the field value and a conversion.
  //  - a multi-page file whose IFD chain ends in an error, or whose description declares more
  //    or fewer pages than it has: kInvalidArgument / kUnsupported (never only part of it).
  //  - a slice whose strip/tile data lies past the end of the file (truncated copy): as a bad
  //    slice above, the message names the offset and the file size.
  // Gaps in z numbering are zero slices; one warning lists them (in warnings()).
  // Files are only stat'ed and opened non-blocking, so a FIFO named like a slice cannot hang.
  static Result<std::unique_ptr<TiffStack>> Open(const std::string& source, const TiffStackOptions& options);
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
  // Every slice's name, size and mtime, plus dims; the page, channel and time chosen, and each
  // served page's IFD offset.
  std::string Fingerprint() const override;
  std::string Describe() const override;

  // One entry per served slice or page, by z (a multi-page file: the same name for every z).
  const std::vector<SliceFile>& slices() const;
  // Human-readable warnings from Open (gaps, zeroed bad slices), already logged.
  const std::vector<std::string>& warnings() const;

  struct Impl;

 private:
  explicit TiffStack(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace oz
