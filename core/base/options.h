// Options: every setting that shapes the served tree or the engine. Parsed by mountopts/.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/base/dtype.h"

namespace oz {

enum class Algorithm { kMean, kNearest, kMax, kMin, kMode, kGaussian };  // kernels: core/pyramid/downsample.h
enum class Compression { kNone, kBlosc, kZlib, kGzip, kZstd, kJpeg };    // kJpeg: format=precomputed only
enum class EmptyPolicy { kOmit, kKeep };
enum class BadSlicePolicy { kError, kZero };

// A Python-style slice start:stop (step 1). Missing parts mean "whole axis"; negative values
// count from the end as in Python.
struct SliceRange {
  std::optional<int64_t> start;
  std::optional<int64_t> stop;
  bool operator==(const SliceRange&) const = default;
};

// Remote (http:// and https://) sources: the HTTP client's connection, timeout, retry and
// authentication settings. Durations are in seconds. Worst case for one key read (documented in
// --help): (retries + 1) * timeout + retries * max(retry_after_max, 30 s), not counting the wait
// for a free connection slot.
struct HttpOptions {
  int max_connections = 10;         // requests in flight at once, 1..256
  double connect_timeout = 10;      // per attempt: DNS + TCP + TLS handshake
  double timeout = 120;             // per attempt, total (all redirect hops included)
  uint64_t low_speed_limit = 1024;  // bytes/s; an attempt slower than this ...
  int low_speed_time = 30;          // ... for this many seconds is aborted (and retried)
  int retries = 6;                  // retries after the first attempt, 0..100
  double retry_delay = 0.5;         // first backoff; doubles per retry up to 30 s; jittered
  double retry_after_max = 60;      // longest Retry-After wait honoured (longer ones are capped)
  std::string netrc;                // netrc file; empty = ~/.netrc when it exists
  std::string credentials;          // file holding user:password (mode 0600); empty = none
  std::string cacert;               // CA bundle for TLS verification; empty = system default

  bool operator==(const HttpOptions&) const = default;
};

// -o labels=NAME:SOURCE: a label volume served as the OME-NGFF label image labels/NAME.
struct LabelSpec {
  std::string name;    // one path component: letters, digits, '_', '-', '.' (not "." or "..")
  std::string source;  // any SOURCE the image accepts (TIFF stack, zarr, URL, volume grid)
  bool operator==(const LabelSpec&) const = default;
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
  // -o dtype= (uint8 or uint16; nullopt = the source's) and -o range=LO:HI|auto: the source values
  // [lo, hi] are mapped linearly onto the served dtype (core/source/value_map.h). range without
  // dtype= serves the data unchanged and only sets the OME omero.window. range=auto: lo/hi are
  // filled in from a sample of the source at open (range_auto stays true for the metadata).
  std::optional<DType> out_dtype;
  bool range_given = false;
  bool range_auto = false;
  double range_lo = 0, range_hi = 0;
  // Chunk encoding.
  Compression compression = Compression::kNone;
  std::string blosc_cname = "lz4";  // blosclz, lz4, lz4hc, zlib, zstd (snappy if built in)
  int blosc_clevel = 5;             // 0..9
  int blosc_shuffle = 1;            // 0 none, 1 byte, 2 bit (numcodecs convention)
  int zlib_level = 1;               // 0..9, compression=zlib or gzip (numcodecs' default)
  int zstd_level = 3;               // 1..22, compression=zstd (zstd's own default)
  int jpeg_quality = 95;            // 1..100, compression=jpeg (core/format/precomputed/)
  EmptyPolicy empty = EmptyPolicy::kOmit;
  // Output format (core/format/registry.cc) and, for sharded formats, inner chunks per shard
  // edge; 0 = the format's default (FormatSpec::prepare fills it in).
  std::string format = "ome-zarr-0.4";
  int shard = 0;
  // Metadata.
  std::array<double, 3> voxel_size{1.0, 1.0, 1.0};  // z, y, x
  std::string unit;                                 // OME-NGFF unit name, empty = none
  // Source handling.
  BadSlicePolicy bad_slices = BadSlicePolicy::kError;
  int source_level = 0;  // zarr OME-Zarr group source: index into multiscales[0].datasets
  // TIFF sources; -1 = not given. page: the full-resolution page of every slice file;
  // channel/time_point: the one served from a multi-page file with channels or time points.
  int tiff_page = -1;
  int channel = -1;
  int time_point = -1;
  // Layer TIFFs sampled along a surface (core/surface/): the .ppm path ("" = none), the number of
  // layers (2 * (layers_count / 2) + 1 files) and of inner layers in stack.tif (likewise odd).
  std::string layers;
  int layers_count = 65;
  int stack_count = 25;
  // Label images (core/format/labels.h), in the order given; names are unique. Always downsampled
  // with mode on the image's pyramid, ids passed through unchanged (no window/dtype/bytes= map).
  std::vector<LabelSpec> labels;
  // Resources.
  std::string cache_dir;              // empty = default ($XDG_CACHE_HOME or ~/.cache)
  std::string base_dir;               // -o base=DEST: an earlier materialize destination to serve from
  uint64_t cache_size = 10ull << 30;  // bytes
  uint64_t memory = 1ull << 30;       // bytes of decoded source data held in memory
  int threads = 0;                    // 0 = number of CPUs
  // -o prebuild=K: mounts build levels K..top into the disk cache in the background (-1 = off).
  int prebuild = -1;
  // Remote sources.
  HttpOptions http;

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
    bool empty = false;  // a format may choose its own default (precomputed: keep)
    bool operator==(const Given&) const = default;
  };
  Given given;

  bool operator==(const Options&) const = default;
};

std::string_view AlgorithmName(Algorithm a);
std::string_view CompressionName(Compression c);

}  // namespace oz
