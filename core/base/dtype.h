// Voxel data types served by omezarrfs, and their names in each format.
//
// One table (kDTypeInfo) holds every per-type fact; the functions below read it. A new type is
// one row here plus its kernels (core/pyramid/downsample) and its source readers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace oz {

enum class DType : uint8_t { kUint8, kUint16, kUint32, kUint64, kInt16, kFloat32 };

struct DTypeInfo {
  DType type;
  size_t size;               // bytes per voxel
  std::string_view name;     // numpy / zarr v3 / precomputed name: "uint16"
  std::string_view zarr_v2;  // zarr v2 dtype string as served (little-endian): "<u2"
  bool is_integer;
  bool is_signed;
};

inline constexpr std::array<DTypeInfo, 6> kDTypeInfo{{
    {DType::kUint8, 1, "uint8", "|u1", true, false},
    {DType::kUint16, 2, "uint16", "<u2", true, false},
    {DType::kUint32, 4, "uint32", "<u4", true, false},
    {DType::kUint64, 8, "uint64", "<u8", true, false},
    {DType::kInt16, 2, "int16", "<i2", true, true},
    {DType::kFloat32, 4, "float32", "<f4", false, true},
}};

constexpr const DTypeInfo& Info(DType t) { return kDTypeInfo[static_cast<size_t>(t)]; }
constexpr size_t DTypeSize(DType t) { return Info(t).size; }
// Zarr v2 dtype string as served (little-endian for multi-byte types).
constexpr std::string_view ZarrDTypeString(DType t) { return Info(t).zarr_v2; }
constexpr std::string_view DTypeName(DType t) { return Info(t).name; }
constexpr bool DTypeIsInteger(DType t) { return Info(t).is_integer; }
constexpr bool DTypeIsSigned(DType t) { return Info(t).is_signed; }

// "uint16" -> kUint16 (the names above); nullopt for anything else.
constexpr std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& i : kDTypeInfo)
    if (i.name == name) return i.type;
  return std::nullopt;
}

// Reverses the byte order of each `item`-byte element of p[0, bytes) (item 1: nothing to do).
inline void SwapBytes(void* p, size_t bytes, size_t item) {
  if (item <= 1) return;
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i + item <= bytes; i += item)
    for (size_t lo = i, hi = i + item - 1; lo < hi; ++lo, --hi) {
      const unsigned char t = b[lo];
      b[lo] = b[hi];
      b[hi] = t;
    }
}

// A comma-separated list of every name, for error messages: "uint8, uint16, ...".
constexpr std::string_view kDTypeNames = "uint8, uint16, uint32, uint64, int16, float32";

}  // namespace oz
