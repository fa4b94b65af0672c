// JPEG (baseline, 8-bit, one channel) through libjpeg-turbo: the encoder behind precomputed's
// "jpeg" chunks, and a bounded decoder (tests, benchmarks).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace oz {

// Largest width or height libjpeg accepts (JPEG_MAX_DIMENSION).
inline constexpr uint32_t kJpegMaxDimension = 65500;

// Encodes a width x height grayscale image (rows of `width` bytes, top row first) with the
// standard quantization tables scaled to `quality` (1..100) and optimized Huffman tables.
// Deterministic: the same pixels, size and quality give the same bytes with one libjpeg version
// (JpegLibraryTag names it, for cache keys). Errors: kInvalidArgument for a size of 0 or over
// kJpegMaxDimension or a quality outside 1..100; kInternal for a libjpeg failure (its message).
// Thread-safe (no shared state).
Result<std::string> JpegEncodeGray(const uint8_t* pixels, uint32_t width, uint32_t height, int quality);

// Decodes a JPEG that must be exactly width x height into out (width * height bytes, one byte
// per pixel; a colour JPEG is converted to grayscale). Errors: kCorrupt for malformed data or
// other dimensions (nothing is read past `data`, nothing written past width * height bytes).
Status JpegDecodeGray(std::string_view data, uint32_t width, uint32_t height, uint8_t* out);

// "libjpeg-turbo 2.1.5" (the version the encoder's bytes depend on).
std::string JpegLibraryTag();

}  // namespace oz
