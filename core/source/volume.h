// Volume: the one interface for "where voxels come from" (sources and views of them).
#pragma once

#include <string>

#include "core/base/dtype.h"
#include "core/base/geometry.h"
#include "core/base/status.h"

namespace oz {

// Voxels per axis of a strided read of `box` (see Volume::ReadBoxStrided): ceil(extent / step).
inline Vec3 StridedShape(const Box& box, int64_t step) {
  const Vec3 s = box.shape();
  return {CeilDiv(s[0], step), CeilDiv(s[1], step), CeilDiv(s[2], step)};
}

class Volume {
 public:
  virtual ~Volume() = default;

  // Shape in voxels, z, y, x. Constant for the life of the object.
  virtual Vec3 shape() const = 0;
  virtual DType dtype() const = 0;

  // Fills `out` with the voxels of `box` in C order (z slowest), dense, native endianness,
  // box.volume() * DTypeSize(dtype()) bytes.
  // Precondition: box is non-empty and inside BoxFromShape(shape()).
  // Errors: kIoError / kCorrupt / kUnsupported naming the source file and the reason; on error
  // the contents of `out` are unspecified.
  // Thread-safe: may be called concurrently from many threads.
  virtual Status ReadBox(const Box& box, void* out) = 0;

  // Every step-th voxel of `box` on each axis: out[k] = voxel box.lo + k * step for every k with
  // k * step < box.shape() (per axis), dense in C order, StridedShape(box, step) voxels. This is
  // what nearest-neighbour downsampling keeps, so a coarse chunk reads what it samples, not the
  // box it covers. Same preconditions, errors and threading as ReadBox; step >= 1.
  // The default reads one row of the box at a time with ReadBox (only the kept slices and rows;
  // memory: one row); sources override it to read less (only the strips, tiles or chunks that
  // hold kept voxels).
  virtual Status ReadBoxStrided(const Box& box, int64_t step, void* out);

  // A string that changes whenever the voxel content may have changed (e.g. each source file's
  // name, size and mtime). Used in cache keys; may be long (callers hash it).
  virtual std::string Fingerprint() const = 0;

  // One line for logs, e.g. "TIFF stack /data/scroll (14000 slices, 8096x7888 uint16)".
  virtual std::string Describe() const = 0;
};

}  // namespace oz
