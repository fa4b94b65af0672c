// Volume's default strided read: row by row through ReadBox.
#include "core/source/volume.h"

#include <cstring>
#include <vector>

namespace oz {

Status Volume::ReadBoxStrided(const Box& box, int64_t step, void* out) {
  if (step < 1) return InvalidArgumentError("ReadBoxStrided: step " + std::to_string(step) + " < 1");
  if (step == 1) return ReadBox(box, out);
  if (box.empty() || !BoxFromShape(shape()).Contains(box) || out == nullptr)
    return InvalidArgumentError("ReadBoxStrided " + box.ToString() + " is empty or outside the volume shape " +
                                ToString(shape()));
  const size_t bpv = DTypeSize(dtype());
  const Vec3 os = StridedShape(box, step);
  // The row from the first to the last kept column.
  const int64_t x_len = (os[2] - 1) * step + 1;
  std::vector<uint8_t> row(static_cast<size_t>(x_len) * bpv);
  auto* o = static_cast<uint8_t*>(out);
  for (int64_t kz = 0; kz < os[0]; ++kz)
    for (int64_t ky = 0; ky < os[1]; ++ky) {
      const int64_t z = box.lo[0] + kz * step, y = box.lo[1] + ky * step;
      OZ_RETURN_IF_ERROR(ReadBox(Box{{z, y, box.lo[2]}, {z + 1, y + 1, box.lo[2] + x_len}}, row.data()));
      uint8_t* dst = o + static_cast<size_t>((kz * os[1] + ky) * os[2]) * bpv;
      for (int64_t kx = 0; kx < os[2]; ++kx)
        std::memcpy(dst + static_cast<size_t>(kx) * bpv, row.data() + static_cast<size_t>(kx * step) * bpv, bpv);
    }
  return OkStatus();
}

}  // namespace oz
