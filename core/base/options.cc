// Names of option enums (used in metadata and messages).
#include "core/base/options.h"

namespace oz {

std::string_view AlgorithmName(Algorithm a) {
  switch (a) {
    case Algorithm::kMean: return "mean";
    case Algorithm::kNearest: return "nearest";
    case Algorithm::kMax: return "max";
    case Algorithm::kMin: return "min";
    case Algorithm::kMode: return "mode";
    case Algorithm::kGaussian: return "gaussian";
  }
  return "?";
}

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kBlosc: return "blosc";
    case Compression::kZlib: return "zlib";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    case Compression::kJpeg: return "jpeg";
  }
  return "?";
}

}  // namespace oz
