// Options: every setting that shapes the served tree or the engine. Parsed by mountopts/.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace oz {

enum class Algorithm { kMean, kNearest, kMax };
enum class Compression { kNone, kBlosc, kZlib, kGzip };
enum class EmptyPolicy { kOmit, kKeep };
enum class BadSlicePolicy { kError, kZero };

// A Python-style slice start:stop (step 1). Missing parts mean "whole axis"; negative values
// count from the end as in Python.
struct SliceRange {
  std::optional<int64_t> start;
  std::optional<int64_t> stop;
  bool operator==(const SliceRange&) const = default;
};

struct Options {
  // Tree shape.
  int64_t chunk = 128;  // cubic chunk edge, > 0
  int levels = 6;       // >= 1; 1 = plain array at the root
  Algorithm algorithm = Algorithm::kMean;
  // View of the source. Stored in z, y, x order (the -o syntax is x, y, z).
  std::array<SliceRange, 3> window{};
  std::array<int64_t, 3> shift{0, 0, 0};
  bool bytes1 = false;  // uint16 -> uint8 by integer division by 256
  // Chunk encoding.
  Compression compression = Compression::kNone;
  std::string blosc_cname = "lz4";  // blosclz, lz4, lz4hc, zlib, zstd (snappy if built in)
  int blosc_clevel = 5;             // 0..9
  int blosc_shuffle = 1;            // 0 none, 1 byte, 2 bit (numcodecs convention)
  int zlib_level = 1;               // 0..9, compression=zlib or gzip (numcodecs' default)
  EmptyPolicy empty = EmptyPolicy::kOmit;
  // Metadata.
  std::array<double, 3> voxel_size{1.0, 1.0, 1.0};  // z, y, x
  std::string unit;                                 // OME-NGFF unit name, empty = none
  // Source handling.
  BadSlicePolicy bad_slices = BadSlicePolicy::kError;
  int source_level = 0;  // zarr OME-Zarr group source: index into multiscales[0].datasets
  // Resources.
  std::string cache_dir;              // empty = default ($XDG_CACHE_HOME or ~/.cache)
  uint64_t cache_size = 10ull << 30;  // bytes
  uint64_t memory = 1ull << 30;       // bytes of decoded source data held in memory
  int threads = 0;                    // 0 = number of CPUs

  // Which of the settings above were given explicitly (-o). The values above are the TIFF
  // defaults; a zarr source supplies its own defaults for the settings not given (chunk from its
  // chunk shape, compression and its parameters from its compressor; see ApplyZarrDefaults).
  struct Given {
    bool chunk = false;
    bool compression = false;
    bool blosc_cname = false;
    bool blosc_clevel = false;
    bool blosc_shuffle = false;
    bool zlib_level = false;
    bool operator==(const Given&) const = default;
  };
  Given given;

  bool operator==(const Options&) const = default;
};

std::string_view AlgorithmName(Algorithm a);
std::string_view CompressionName(Compression c);

}  // namespace oz
