// ViewVolume: maps view boxes to source boxes; reads straight into the output when it can.
#include "core/source/view.h"

#include <cstring>
#include <vector>

namespace oz {
namespace {

const char* kAxisName[3] = {"z", "y", "x"};

int64_t ResolveIndex(std::optional<int64_t> v, int64_t extent, int64_t dflt) {
  if (!v) return dflt;
  int64_t i = *v < 0 ? *v + extent : *v;
  return std::clamp<int64_t>(i, 0, extent);
}

}  // namespace

Result<ViewGeometry> ComputeViewGeometry(const Vec3& source_shape, const Options& options) {
  ViewGeometry g;
  for (int a = 0; a < 3; ++a) {
    const int64_t n = source_shape[a];
    int64_t w0 = ResolveIndex(options.window[a].start, n, 0);
    int64_t w1 = ResolveIndex(options.window[a].stop, n, n);
    if (w1 <= w0)
      return InvalidArgumentError(std::string("window is empty on the ") + kAxisName[a] +
                                  " axis: " + std::to_string(w0) + ":" + std::to_string(w1) + " of a source with " +
                                  std::to_string(n) + " voxels");
    const int64_t t = options.shift[a];
    if (w1 + t <= 0)
      return InvalidArgumentError(std::string("shift on the ") + kAxisName[a] + " axis (" + std::to_string(t) +
                                  ") moves the whole window (ending at " + std::to_string(w1) +
                                  ") below 0; the view would be empty");
    g.source_window.lo[a] = w0;
    g.source_window.hi[a] = w1;
    g.shift[a] = t;
    g.shape[a] = w1 + t;
    g.data_region.lo[a] = std::max<int64_t>(0, w0 + t);
    g.data_region.hi[a] = w1 + t;
  }
  return g;
}

ViewVolume::ViewVolume(std::shared_ptr<Volume> source, const ViewGeometry& geometry, const ValueMap& map)
    : source_(std::move(source)), geometry_(geometry), map_(map) {
  convert_ = map_.kind != ValueMap::Kind::kNone;
  dtype_ = convert_ ? map_.out : source_->dtype();
  identity_ =
      !convert_ && geometry_.shift == Vec3{0, 0, 0} && geometry_.source_window == BoxFromShape(source_->shape());
}

namespace {
ValueMap Bytes1Map(DType source, bool bytes1) {
  ValueMap m;
  m.in = m.out = source;
  if (bytes1 && source == DType::kUint16) {
    m.kind = ValueMap::Kind::kShift8;
    m.out = DType::kUint8;
  }
  return m;
}
}  // namespace

ViewVolume::ViewVolume(std::shared_ptr<Volume> source, const ViewGeometry& geometry, bool bytes1)
    : ViewVolume(source, geometry, Bytes1Map(source->dtype(), bytes1)) {}

Status ViewVolume::ReadBox(const Box& box, void* out) {
  if (identity_) return source_->ReadBox(box, out);
  const size_t out_bpv = DTypeSize(dtype_);
  const Box data = box.Intersect(geometry_.data_region);
  const Vec3 bs = box.shape();
  if (data.empty()) {
    std::memset(out, 0, static_cast<size_t>(box.volume()) * out_bpv);
    return OkStatus();
  }
  Box src;
  for (int a = 0; a < 3; ++a) {
    src.lo[a] = data.lo[a] - geometry_.shift[a];
    src.hi[a] = data.hi[a] - geometry_.shift[a];
  }
  const size_t src_bpv = DTypeSize(source_->dtype());
  const bool whole = data == box;
  std::vector<uint8_t> tmp;
  void* dst = out;
  if (!whole || convert_) {
    tmp.resize(static_cast<size_t>(src.volume()) * src_bpv);
    dst = tmp.data();
  }
  OZ_RETURN_IF_ERROR(source_->ReadBox(src, dst));
  if (dst == out) return OkStatus();
  if (!whole) std::memset(out, 0, static_cast<size_t>(box.volume()) * out_bpv);
  const Vec3 ds = data.shape();
  const Vec3 off{data.lo[0] - box.lo[0], data.lo[1] - box.lo[1], data.lo[2] - box.lo[2]};
  auto* o8 = static_cast<uint8_t*>(out);
  for (int64_t z = 0; z < ds[0]; ++z) {
    for (int64_t y = 0; y < ds[1]; ++y) {
      const int64_t in_row = (z * ds[1] + y) * ds[2];
      const int64_t out_row = ((z + off[0]) * bs[1] + (y + off[1])) * bs[2] + off[2];
      if (convert_) {
        MapValues(map_, tmp.data() + in_row * src_bpv, o8 + out_row * out_bpv, static_cast<size_t>(ds[2]));
      } else {
        std::memcpy(o8 + out_row * out_bpv, tmp.data() + in_row * src_bpv, static_cast<size_t>(ds[2]) * src_bpv);
      }
    }
  }
  return OkStatus();
}

Status ViewVolume::ReadBoxStrided(const Box& box, int64_t step, void* out) {
  if (identity_) return source_->ReadBoxStrided(box, step, out);
  if (step < 1) return InvalidArgumentError("ReadBoxStrided: step " + std::to_string(step) + " < 1");
  const size_t out_bpv = DTypeSize(dtype_), src_bpv = DTypeSize(source_->dtype());
  const Vec3 os = StridedShape(box, step);
  // Kept indices k whose view voxel box.lo + k * step lies in the data region: [k0, k1) per axis.
  Vec3 k0, k1;
  Box src;
  bool any = true;
  for (int a = 0; a < 3; ++a) {
    const Box& d = geometry_.data_region;
    k0[a] = std::clamp<int64_t>(CeilDiv(std::max<int64_t>(d.lo[a] - box.lo[a], 0), step), 0, os[a]);
    k1[a] = std::clamp<int64_t>(d.hi[a] > box.lo[a] ? CeilDiv(d.hi[a] - box.lo[a], step) : 0, 0, os[a]);
    if (k1[a] <= k0[a]) any = false;
    src.lo[a] = box.lo[a] + k0[a] * step - geometry_.shift[a];
    src.hi[a] = box.lo[a] + (k1[a] - 1) * step - geometry_.shift[a] + 1;
  }
  if (!any) {
    std::memset(out, 0, static_cast<size_t>(os[0] * os[1] * os[2]) * out_bpv);
    return OkStatus();
  }
  const Vec3 ks{k1[0] - k0[0], k1[1] - k0[1], k1[2] - k0[2]};
  const bool whole = ks == os;
  std::vector<uint8_t> tmp;
  void* dst = out;
  if (!whole || convert_) {
    tmp.resize(static_cast<size_t>(ks[0] * ks[1] * ks[2]) * src_bpv);
    dst = tmp.data();
  }
  OZ_RETURN_IF_ERROR(source_->ReadBoxStrided(src, step, dst));
  if (dst == out) return OkStatus();
  if (!whole) std::memset(out, 0, static_cast<size_t>(os[0] * os[1] * os[2]) * out_bpv);
  auto* o8 = static_cast<uint8_t*>(out);
  for (int64_t z = 0; z < ks[0]; ++z)
    for (int64_t y = 0; y < ks[1]; ++y) {
      const int64_t in_row = (z * ks[1] + y) * ks[2];
      const int64_t out_row = ((z + k0[0]) * os[1] + (y + k0[1])) * os[2] + k0[2];
      if (convert_) {
        MapValues(map_, tmp.data() + in_row * src_bpv, o8 + out_row * out_bpv, static_cast<size_t>(ks[2]));
      } else {
        std::memcpy(o8 + out_row * out_bpv, tmp.data() + in_row * src_bpv, static_cast<size_t>(ks[2]) * src_bpv);
      }
    }
  return OkStatus();
}

}  // namespace oz
