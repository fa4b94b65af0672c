// Test fixtures: writes small TIFF slices with libtiff in any layout the TIFF stack supports.
#pragma once

#include <tiffio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace oz::testing {

struct TiffSpec {
  int64_t width = 67;
  int64_t height = 130;
  int bits = 16;  // 8, 16, or 32 (with sample_format 3 for float)
  int sample_format = SAMPLEFORMAT_UINT;
  int samples = 1;                  // 3 = RGB
  bool write_sample_format = true;  // false: leave the tag absent
  uint16_t compression = COMPRESSION_NONE;
  int predictor = 0;           // 2 = horizontal
  int64_t rows_per_strip = 0;  // 0 = whole image in one strip
  int64_t tile = 0;            // > 0: tiled with square tiles of this edge (multiple of 16)
  bool bigtiff = false;
  bool big_endian = false;
  int photometric = -1;  // -1: MinIsBlack (RGB when samples == 3)
  // Photometric=3: the colour map, 3 * 2^bits entries (all red, then green, then blue).
  std::vector<uint16_t> colormap;
  uint32_t subfile_type = 0;            // NewSubfileType (1 = reduced-resolution page)
  std::string description;              // ImageDescription; empty = none
  std::vector<uint16_t> extra_samples;  // ExtraSamples values (e.g. EXTRASAMPLE_UNASSALPHA)
  // Strips/tiles (by index) not written: libtiff leaves their offset and byte count 0 (sparse).
  std::function<bool(uint32_t)> skip_unit;
};

// value(y, x) for sample 0; returned as uint64 and truncated to the sample size.
using PixelFn = std::function<uint64_t(int64_t y, int64_t x)>;

// Writes the current directory of `tif` (one page); returns false if a write failed.
inline bool WriteTiffPage(TIFF* tif, const TiffSpec& spec, const PixelFn& value) {
  const int bps = spec.bits / 8;
  const int px = bps * spec.samples;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(spec.width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(spec.height));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(spec.bits));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(spec.samples));
  if (spec.write_sample_format) TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, static_cast<uint16_t>(spec.sample_format));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
               spec.photometric >= 0 ? spec.photometric
               : spec.samples == 3   ? PHOTOMETRIC_RGB
                                     : PHOTOMETRIC_MINISBLACK);
  if (!spec.colormap.empty()) {
    const size_t n = spec.colormap.size() / 3;
    TIFFSetField(tif, TIFFTAG_COLORMAP, spec.colormap.data(), spec.colormap.data() + n, spec.colormap.data() + 2 * n);
  }
  if (spec.subfile_type) TIFFSetField(tif, TIFFTAG_SUBFILETYPE, spec.subfile_type);
  if (!spec.description.empty()) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, spec.description.c_str());
  if (!spec.extra_samples.empty())
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, static_cast<uint16_t>(spec.extra_samples.size()),
                 spec.extra_samples.data());
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, spec.compression);
  if (spec.predictor) TIFFSetField(tif, TIFFTAG_PREDICTOR, static_cast<uint16_t>(spec.predictor));

  auto fill = [&](uint8_t* dst, int64_t y, int64_t x) {
    uint64_t v = value(y, x);
    for (int s = 0; s < spec.samples; ++s) {
      uint8_t* p = dst + s * bps;
      if (bps == 1)
        *p = static_cast<uint8_t>(v + s);
      else if (bps == 2) {
        uint16_t t = static_cast<uint16_t>(v + s);
        std::memcpy(p, &t, 2);
      } else if (bps == 4 && spec.sample_format == SAMPLEFORMAT_IEEEFP) {
        float f = static_cast<float>(v);
        std::memcpy(p, &f, 4);
      } else if (bps == 8 && spec.sample_format == SAMPLEFORMAT_IEEEFP) {
        double d = static_cast<double>(v);
        std::memcpy(p, &d, 8);
      } else {
        // Any other width (24, 32, 64 bits, ...): the low bytes of the value (little-endian host).
        const uint64_t t = v + static_cast<uint64_t>(s);
        std::memcpy(p, &t, std::min<size_t>(static_cast<size_t>(bps), sizeof t));
      }
    }
  };
  bool ok = true;
  if (spec.tile > 0) {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(spec.tile));
    TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(spec.tile));
    // Sets up the offset/byte count arrays even if no tile is written (as GDAL does).
    if (spec.skip_unit) ok = TIFFWriteCheck(tif, 1, "WriteTiffPage") == 1;
    std::vector<uint8_t> buf(static_cast<size_t>(spec.tile * spec.tile * px));
    for (int64_t ty = 0; ty < spec.height; ty += spec.tile)
      for (int64_t tx = 0; tx < spec.width; tx += spec.tile) {
        std::fill(buf.begin(), buf.end(), 0xAB);  // padding outside the image: junk on purpose
        for (int64_t y = ty; y < std::min(spec.height, ty + spec.tile); ++y)
          for (int64_t x = tx; x < std::min(spec.width, tx + spec.tile); ++x)
            fill(&buf[static_cast<size_t>(((y - ty) * spec.tile + (x - tx)) * px)], y, x);
        uint32_t t = TIFFComputeTile(tif, static_cast<uint32_t>(tx), static_cast<uint32_t>(ty), 0, 0);
        if (spec.skip_unit && spec.skip_unit(t)) continue;
        ok = ok && TIFFWriteEncodedTile(tif, t, buf.data(), static_cast<tmsize_t>(buf.size())) >= 0;
      }
  } else {
    int64_t rps = spec.rows_per_strip > 0 ? spec.rows_per_strip : spec.height;
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, static_cast<uint32_t>(rps));
    if (spec.skip_unit) ok = TIFFWriteCheck(tif, 0, "WriteTiffPage") == 1;
    for (int64_t y0 = 0, s = 0; y0 < spec.height; y0 += rps, ++s) {
      if (spec.skip_unit && spec.skip_unit(static_cast<uint32_t>(s))) continue;
      int64_t rows = std::min(rps, spec.height - y0);
      std::vector<uint8_t> buf(static_cast<size_t>(rows * spec.width * px));
      for (int64_t y = y0; y < y0 + rows; ++y)
        for (int64_t x = 0; x < spec.width; ++x)
          fill(&buf[static_cast<size_t>(((y - y0) * spec.width + x) * px)], y, x);
      ok = ok &&
           TIFFWriteEncodedStrip(tif, static_cast<uint32_t>(s), buf.data(), static_cast<tmsize_t>(buf.size())) >= 0;
    }
  }
  return ok;
}

inline TIFF* OpenForWriting(const std::string& path, const TiffSpec& spec) {
  std::string mode = "w";
  if (spec.bigtiff) mode += "8";
  mode += spec.big_endian ? "b" : "l";
  TIFF* tif = TIFFOpen(path.c_str(), mode.c_str());
  if (!tif) throw std::runtime_error("TIFFOpen failed: " + path);
  return tif;
}

// Writes one single-page TIFF; throws std::runtime_error on failure (tests only).
inline void WriteTiff(const std::string& path, const TiffSpec& spec, const PixelFn& value) {
  TIFF* tif = OpenForWriting(path, spec);
  bool ok = WriteTiffPage(tif, spec, value);
  TIFFClose(tif);  // writes the directory
  if (!ok) throw std::runtime_error("writing TIFF failed: " + path);
}

// Writes a multi-page TIFF, one page per (spec, pixels) in order; the file's byte order and
// BigTIFF-ness come from the first spec. Throws std::runtime_error on failure.
inline void WriteTiffPages(const std::string& path, const std::vector<std::pair<TiffSpec, PixelFn>>& pages) {
  if (pages.empty()) throw std::runtime_error("no pages for " + path);
  TIFF* tif = OpenForWriting(path, pages.front().first);
  bool ok = true;
  for (const auto& [spec, value] : pages) ok = ok && WriteTiffPage(tif, spec, value) && TIFFWriteDirectory(tif);
  TIFFClose(tif);
  if (!ok) throw std::runtime_error("writing TIFF failed: " + path);
}

}  // namespace oz::testing
