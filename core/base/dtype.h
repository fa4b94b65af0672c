// Voxel data types served by omezarrfs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace oz {

enum class DType : uint8_t { kUint8, kUint16 };

constexpr size_t DTypeSize(DType t) { return t == DType::kUint8 ? 1 : 2; }
// Zarr v2 dtype string as served (little-endian for multi-byte types).
constexpr std::string_view ZarrDTypeString(DType t) { return t == DType::kUint8 ? "|u1" : "<u2"; }
constexpr std::string_view DTypeName(DType t) { return t == DType::kUint8 ? "uint8" : "uint16"; }

}  // namespace oz
