// MemVolume: an in-memory Volume with a deterministic pattern, for engine tests.
#pragma once

#include <atomic>
#include <cstring>
#include <vector>

#include <cmath>

#include "core/base/options.h"
#include "core/source/volume.h"

namespace oz::testing {

class MemVolume : public Volume {
 public:
  MemVolume(Vec3 shape, DType dtype, uint32_t seed, double zero_fraction = 0.0) : shape_(shape), dtype_(dtype) {
    const int64_t n = shape[0] * shape[1] * shape[2];
    data_.resize(static_cast<size_t>(n));
    uint32_t s = seed * 2654435761u + 1;
    for (int64_t z = 0; z < shape[0]; ++z)
      for (int64_t y = 0; y < shape[1]; ++y)
        for (int64_t x = 0; x < shape[2]; ++x) {
          s = s * 1664525u + 1013904223u;
          uint32_t v = static_cast<uint32_t>(z * 131 + y * 17 + x * 3) + (s >> 20);
          // A zero region (x < zero_fraction * width) to exercise empty chunks.
          if (x < static_cast<int64_t>(zero_fraction * static_cast<double>(shape[2]))) v = 0;
          data_[static_cast<size_t>((z * shape[1] + y) * shape[2] + x)] =
              dtype == DType::kUint8 ? (v & 0xff) : (v & 0xffff);
        }
  }
  Vec3 shape() const override { return shape_; }
  DType dtype() const override { return dtype_; }
  Status ReadBox(const Box& box, void* out) override {
    reads++;
    voxels_read += box.volume();
    if (fail) return IoError("injected failure reading " + box.ToString());
    if (!BoxFromShape(shape_).Contains(box) || box.empty()) return InternalError("box out of range " + box.ToString());
    size_t i = 0;
    for (int64_t z = box.lo[0]; z < box.hi[0]; ++z)
      for (int64_t y = box.lo[1]; y < box.hi[1]; ++y)
        for (int64_t x = box.lo[2]; x < box.hi[2]; ++x, ++i) {
          uint16_t v = data_[static_cast<size_t>((z * shape_[1] + y) * shape_[2] + x)];
          switch (dtype_) {  // wider types hold the same 16-bit pattern values
            case DType::kUint8: static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(v); break;
            case DType::kUint16: static_cast<uint16_t*>(out)[i] = v; break;
            case DType::kUint32: static_cast<uint32_t*>(out)[i] = uint32_t{v} * 65537u; break;
            case DType::kUint64: static_cast<uint64_t*>(out)[i] = uint64_t{v} * 0x0001000100010001ull; break;
            case DType::kInt16: static_cast<int16_t*>(out)[i] = static_cast<int16_t>(v); break;
            case DType::kFloat32:
              static_cast<float*>(out)[i] = static_cast<float>(v) * 0.25f;
              break;  // 0 stays +0.0 (empty)
          }
        }
    return OkStatus();
  }
  std::string Fingerprint() const override { return "mem:" + ToString(shape_); }
  std::string Describe() const override { return "memory volume"; }
  uint16_t at(int64_t z, int64_t y, int64_t x) const {
    return data_[static_cast<size_t>((z * shape_[1] + y) * shape_[2] + x)];
  }

  std::atomic<int> reads{0};
  std::atomic<int64_t> voxels_read{0};  // sum of the volumes of all boxes read
  std::atomic<bool> fail{false};

 private:
  Vec3 shape_;
  DType dtype_;
  std::vector<uint16_t> data_;
};

// Brute-force reference: dense level arrays (as uint32 for simplicity), computed with double
// arithmetic and nearbyint (round half to even in the default FP environment).
inline std::vector<uint32_t> RefDownsample(const std::vector<uint32_t>& in, const Vec3& s, Algorithm a,
                                           Vec3* out_shape) {
  Vec3 o{(s[0] + 1) / 2, (s[1] + 1) / 2, (s[2] + 1) / 2};
  std::vector<uint32_t> out(static_cast<size_t>(o[0] * o[1] * o[2]));
  for (int64_t z = 0; z < o[0]; ++z)
    for (int64_t y = 0; y < o[1]; ++y)
      for (int64_t x = 0; x < o[2]; ++x) {
        double sum = 0;
        int n = 0;
        uint32_t mx = 0;
        for (int64_t dz = 0; dz < 2; ++dz)
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx) {
              int64_t iz = 2 * z + dz, iy = 2 * y + dy, ix = 2 * x + dx;
              if (iz >= s[0] || iy >= s[1] || ix >= s[2]) continue;
              uint32_t v = in[static_cast<size_t>((iz * s[1] + iy) * s[2] + ix)];
              sum += v;
              ++n;
              mx = std::max(mx, v);
            }
        uint32_t r;
        if (a == Algorithm::kMean)
          r = static_cast<uint32_t>(std::nearbyint(sum / n));
        else if (a == Algorithm::kMax)
          r = mx;
        else
          r = in[static_cast<size_t>((2 * z * s[1] + 2 * y) * s[2] + 2 * x)];
        out[static_cast<size_t>((z * o[1] + y) * o[2] + x)] = r;
      }
  *out_shape = o;
  return out;
}

}  // namespace oz::testing
