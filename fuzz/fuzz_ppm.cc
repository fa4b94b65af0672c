// Fuzzes the .ppm reader (core/surface/ppm) with hostile files: the header parser and data checks
// on the bytes, then PpmFile::Open on the same bytes as a file (a memfd), which must agree with
// them, and for a file it accepts, reading every row, whose values must all be finite.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/surface/ppm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto header = oz::ParsePpmHeader(bytes, "fuzz.ppm");
  bool accepted = false;
  if (header.ok()) {
    const uint64_t need = static_cast<uint64_t>(header->width) * static_cast<uint64_t>(header->height) * 48;
    accepted = size - header->data_offset == need &&
               oz::CheckPpmData(*header, bytes.substr(header->data_offset), 0, "fuzz.ppm").ok();
  }
  const int fd = memfd_create("fuzz.ppm", 0);
  if (fd < 0) return 0;
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto ppm = oz::PpmFile::Open(path);
  if (ppm.ok() != accepted) __builtin_trap();  // the file reader and the byte checks disagree
  if (ppm.ok()) {
    std::vector<oz::PpmPixel> px;
    if (!(*ppm)->ReadRows(0, (*ppm)->height(), &px).ok()) __builtin_trap();
    for (const oz::PpmPixel& p : px)
      if (!std::isfinite(p.x) || !std::isfinite(p.nz)) __builtin_trap();
  }
  close(fd);
  return 0;
}
