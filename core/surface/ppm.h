// PpmFile: a volume-cartographer .ppm surface (per-pixel point and normal), read by rows.
//
// Format: text header lines "name: value" (width, height, dim, ordered, type, version; others are
// ignored), then the line "<>", then height * width * dim little-endian doubles in C order (row,
// column, component); dim 6 components are x, y, z, nx, ny, nz in voxels of the volume.
//
// Open reads the header, checks it and the file size, and scans the data once (in bounded row
// batches) so that bad values fail at open, not at a read: every component must be finite as a
// float32 (the sampler works on float32 copies, as scroll2zarr's ppm_to_layers.py does). The
// doubles are not kept in memory: ReadRows reads the rows a caller needs with one pread, so a
// 2000x2000 surface (192 MB of doubles) costs a few rows at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace oz {

// One surface pixel as the sampler uses it: point and normal rounded to float32.
struct PpmPixel {
  float x, y, z, nx, ny, nz;
  // A pixel without a surface point has an all-zero normal (after rounding to float32).
  bool valid() const { return nx != 0.0f || ny != 0.0f || nz != 0.0f; }
};

// Header fields as parsed. Errors of ParsePpmHeader name the file and the field.
struct PpmHeader {
  int64_t width = 0, height = 0;
  uint64_t data_offset = 0;  // first byte after "<>\n"
};

// Parses and checks the header at the start of `bytes` (at most the first 4096 bytes are looked
// at). `name` is used in messages. Errors: kInvalidArgument naming the file, the field and what
// was expected (missing "<>", missing or unparsable width/height, dim != 6, ordered != true,
// type != double, version != 1).
Result<PpmHeader> ParsePpmHeader(std::string_view bytes, const std::string& name);

// Checks the data part (after the header) of a .ppm of `header` against its size and values:
// exactly width * height * 6 doubles, each finite as a float32. Errors name the file, the pixel
// (row, column) and the component. Used by PpmFile::Open per row batch and by the fuzz target.
Status CheckPpmData(const PpmHeader& header, std::string_view data, int64_t first_row, const std::string& name);

class PpmFile {
 public:
  // Errors: kNotFound / kIoError (cannot open or read, naming the file), kInvalidArgument (header,
  // size or values, as above). Logs nothing.
  static Result<std::unique_ptr<PpmFile>> Open(const std::string& path);
  ~PpmFile();

  int64_t width() const { return header_.width; }
  int64_t height() const { return header_.height; }
  const std::string& path() const { return path_; }

  // Rows [r0, r1) into out (resized to (r1 - r0) * width). Thread-safe. Errors: kIoError naming
  // the file when the read fails or comes up short (the file shrank since Open), kInvalidArgument
  // when a value is no longer finite (the file changed since Open).
  Status ReadRows(int64_t r0, int64_t r1, std::vector<PpmPixel>* out) const;

 private:
  PpmFile() = default;
  std::string path_;
  int fd_ = -1;
  PpmHeader header_;
};

}  // namespace oz
