// ViewVolume: the level-0 volume of the tree = a source seen through window, shift and a value
// map (bytes=1, dtype=/range=: core/source/value_map.h).
//
// Semantics (per axis, z/y/x): the window [w0, w1) is a Python slice of range(source extent)
// (negative values count from the end; clipped to the source). The shift t is applied after the
// window: the view has extent w1 + t, and view voxel o shows source voxel o - t when
// w0 <= o - t < w1; every other voxel is 0. The value map applies to the source voxels only (the
// padding stays 0).
#pragma once

#include <memory>

#include "core/base/options.h"
#include "core/source/value_map.h"
#include "core/source/volume.h"

namespace oz {

struct ViewGeometry {
  Vec3 shape{0, 0, 0};  // view (level-0) shape
  Box source_window;    // window in source coordinates, clipped
  Vec3 shift{0, 0, 0};  // z, y, x
  // The part of the view that shows source voxels (source_window shifted, clipped to shape);
  // everything outside it is known to be 0.
  Box data_region;
};

// Errors: kInvalidArgument naming the axis when the window is empty or the view would have no
// voxels (e.g. a negative shift larger than the window end).
Result<ViewGeometry> ComputeViewGeometry(const Vec3& source_shape, const Options& options);

class ViewVolume : public Volume {
 public:
  // source must outlive nothing: it is shared. map.in must be source->dtype() (a map from
  // MakeValueMap).
  ViewVolume(std::shared_ptr<Volume> source, const ViewGeometry& geometry, const ValueMap& map);
  // bytes1: uint16 -> uint8 by v >> 8 (ignored for other types); otherwise values unchanged.
  ViewVolume(std::shared_ptr<Volume> source, const ViewGeometry& geometry, bool bytes1);

  Vec3 shape() const override { return geometry_.shape; }
  DType dtype() const override { return dtype_; }
  Status ReadBox(const Box& box, void* out) override;
  // The kept voxels that show source voxels are read with the source's strided read (same step,
  // moved by the shift); the others are 0.
  Status ReadBoxStrided(const Box& box, int64_t step, void* out) override;
  std::string Fingerprint() const override { return source_->Fingerprint(); }
  std::string Describe() const override { return source_->Describe(); }

  const ViewGeometry& geometry() const { return geometry_; }
  Volume& source() { return *source_; }
  const ValueMap& value_map() const { return map_; }

 private:
  std::shared_ptr<Volume> source_;
  ViewGeometry geometry_;
  ValueMap map_;
  bool convert_;  // map_ is not kNone
  DType dtype_;
  bool identity_;  // no window, no shift, no conversion: pass through
};

}  // namespace oz
