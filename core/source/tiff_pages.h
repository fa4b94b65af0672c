// TIFF page layouts: which (channel, z, time) plane each page of one multi-page TIFF holds, from
// the ImageDescription of its first page (ImageJ hyperstack, OME-XML, tifffile shape JSON).
// Pure functions on strings, testable without files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace oz {

struct PagePlane {
  int64_t c = 0, z = 0, t = 0;
  bool operator==(const PagePlane&) const = default;
};

// A run of consecutive pages holding consecutive planes (planes counted in `order`).
struct PageRun {
  int64_t first_page = 0;   // page key of the run's first page
  int64_t first_plane = 0;  // plane index of that page
  int64_t count = 0;        // pages in the run
};

struct PageLayout {
  // "ImageJ hyperstack", "OME-TIFF", "tifffile shaped" or "" (no description understood: every
  // full-resolution page is one z slice, in order).
  std::string kind;
  int64_t channels = 1;
  int64_t slices = -1;  // -1 = unknown until the pages are counted (every page is a slice)
  int64_t frames = 1;
  // The plane axes, slowest first, each 'C', 'Z' or 'T' (e.g. ImageJ "TZC": channel fastest).
  std::string order = "Z";
  // false: page keys are the ordinals of the full-resolution pages (0, 1, ... skipping
  // reduced-resolution ones); true: they are indices in the file's IFD chain (OME TiffData IFD=).
  bool keyed_by_directory = false;
  // Which pages hold which planes. Empty = page key k holds plane k.
  std::vector<PageRun> runs;
  // ImageJ "images=N" (0 = not given): ImageJ writes files over 4 GiB with one IFD and the N
  // planes back to back after it.
  int64_t imagej_images = 0;
  // How the file declares its axes, for messages: "channels=2, slices=4, frames=3".
  std::string declared;

  int64_t planes() const { return channels * slices * frames; }  // valid once slices >= 0
};

// Parses the first page's ImageDescription (empty or unrecognised: the plain layout).
// `file` names the file in messages. Errors (kUnsupported, naming the file and the fix):
// OME-XML with several images (series), planes in other files (TiffData UUID FileName, or
// BinaryOnly), a DimensionOrder that is not a permutation of XYZCT, non-positive sizes; a
// tifffile shape with more than one unnamed non-spatial axis, or an axis that is neither C, Z, T
// nor the single stack axis.
// Pages with several samples per pixel are refused by the pixel checks, so a caller parses the
// description only for pages of one sample (tifffile's shape then has no sample axis).
Result<PageLayout> ParsePageLayout(std::string_view description, const std::string& file);

// The plane page `key` holds, or nullopt (a page outside every run or beyond the planes).
// Requires layout.slices >= 0.
std::optional<PagePlane> PlaneOfPage(const PageLayout& layout, int64_t key);

// Checks the channel/time choice (-1 = not given) against the layout's sizes. Errors
// (kInvalidArgument, naming the file, the axes with their sizes and the option to use): a file
// with several channels or time points and no choice; a choice out of range.
Status CheckPlaneChoice(const PageLayout& layout, int channel, int time, const std::string& file);

}  // namespace oz
