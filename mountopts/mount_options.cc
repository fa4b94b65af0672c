// Parses omezarrfs command lines and -o option strings into Options and MountFlags.
//
// One table (kOptionTable) drives both the parser and the --help text, so the documented option
// set and the accepted option set cannot drift apart. Parsing works on copies and commits only
// on success, so a caller never sees half-applied options.
#include "mountopts/mount_options.h"

#include "core/format/format.h"
#include "core/format/zarr3/zarr3_format.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <new>
#include <optional>
#include <string_view>
#include <utility>

namespace oz {
namespace {

constexpr std::string_view kSeeHelp = "(see omezarrfs --help)";

// ---------------------------------------------------------------------------------------------
// Small text helpers.

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return r;
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Strict integer: optional sign, digits, nothing else (surrounding blanks allowed).
std::optional<int64_t> ParseInt64(std::string_view s) {
  s = Trim(s);
  if (s.size() > 1 && s[0] == '+' && IsDigit(s[1])) s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Strict decimal floating point (from_chars: locale-independent, unlike strtod).
std::optional<double> ParseDouble(std::string_view s) {
  s = Trim(s);
  if (s.size() > 1 && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Items of a list value: separated by ',' (after unescaping or continuation) or '/'.
std::vector<std::string_view> SplitItems(std::string_view s) {
  std::vector<std::string_view> items;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ',' || s[i] == '/') {
      items.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return items;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "option NAME=VALUE: why": every value error names the option and the text given.
Status Bad(std::string_view name, std::string_view value, std::string_view why) {
  std::string m = "option ";
  m += name;
  m += '=';
  m += value;
  m += ": ";
  m += why;
  return InvalidArgumentError(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Value parsers shared by several options.

template <typename T>
Status ParseIntInto(std::string_view name, std::string_view value, int64_t lo, int64_t hi, std::string_view what,
                    T* out) {
  std::string expected = "expected " + std::string(what) + " from " + std::to_string(lo) + " to " + std::to_string(hi);
  std::optional<int64_t> v = ParseInt64(value);
  if (!v) return Bad(name, value, expected);
  if (*v < lo || *v > hi) return Bad(name, value, std::to_string(*v) + " is out of range; " + expected);
  *out = static_cast<T>(*v);
  return OkStatus();
}

template <typename T>
Status ParseChoiceInto(std::string_view name, std::string_view value,
                       std::initializer_list<std::pair<std::string_view, T>> choices, T* out) {
  std::string v = Lower(Trim(value));
  std::string list;
  for (const auto& [text, choice] : choices) {
    if (v == text) {
      *out = choice;
      return OkStatus();
    }
    if (!list.empty()) list += ", ";
    list += text;
  }
  return Bad(name, value, "expected one of " + list);
}

Status ParseSizeInto(std::string_view name, std::string_view value, uint64_t min, std::string_view min_text,
                     std::string_view why_min, uint64_t* out) {
  Result<uint64_t> r = ParseByteSize(std::string(value));
  if (!r.ok()) return r.status().WithContext("option " + std::string(name));
  if (*r < min) {
    return Bad(name, value, "at least " + std::string(min_text) + " is needed (" + std::string(why_min) + ")");
  }
  *out = *r;
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The three list-valued options.

constexpr std::array<std::string_view, 3> kAxisXyz = {"x", "y", "z"};

// One axis of window=: "", "a:b", "a:", ":b", ":", "a:b:" and "a:b:1" (step 1 only).
Status ParseSlice(std::string_view name, std::string_view value, std::string_view axis, std::string_view part,
                  SliceRange* out) {
  part = Trim(part);
  *out = SliceRange{};
  if (part.empty()) return OkStatus();
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (size_t i = 0; i <= part.size(); ++i) {
    if (i == part.size() || part[i] == ':') {
      fields.push_back(Trim(part.substr(start, i - start)));
      start = i + 1;
    }
  }
  const std::string where = std::string(axis) + " part '" + std::string(part) + "'";
  if (fields.size() == 1) {
    return Bad(name, value,
               where +
                   ": expected start:stop (Python slice syntax: a:b, a:, :b or :); for the single "
                   "plane a write a:a+1");
  }
  if (fields.size() > 3) return Bad(name, value, where + ": expected start:stop");
  if (fields.size() == 3 && !fields[2].empty() && ParseInt64(fields[2]) != std::optional<int64_t>(1)) {
    return Bad(name, value, where + ": step 1 only (write start:stop)");
  }
  for (int k = 0; k < 2; ++k) {
    if (fields[k].empty()) continue;
    std::optional<int64_t> v = ParseInt64(fields[k]);
    if (!v) {
      return Bad(name, value,
                 where + ": '" + std::string(fields[k]) + "' is not an integer (negative counts from the end)");
    }
    (k == 0 ? out->start : out->stop) = v;
  }
  // Python allows empty slices, but an empty view serves nothing: catch the cases that are empty
  // whatever the source size (both bounds counted from the same end).
  if (out->start && out->stop && ((*out->start >= 0) == (*out->stop >= 0)) && *out->start >= *out->stop) {
    return Bad(name, value, where + ": the range is empty (start must be below stop)");
  }
  return OkStatus();
}

Status ApplyWindow(std::string_view name, std::string_view value, Options* o, MountFlags*) {
  std::vector<std::string_view> parts = SplitItems(value);
  if (parts.size() > 3) {
    return Bad(name, value, "expected at most three parts x0:x1,y0:y1,z0:z1 (or x0:x1/y0:y1/z0:z1)");
  }
  std::array<SliceRange, 3> window{};  // z, y, x
  for (size_t i = 0; i < parts.size(); ++i) {
    OZ_RETURN_IF_ERROR(ParseSlice(name, value, kAxisXyz[i], parts[i], &window[2 - i]));
  }
  o->window = window;
  return OkStatus();
}

// Far beyond any real volume, small enough that shape + shift never overflows int64.
constexpr int64_t kMaxShift = 1'000'000'000'000;

Status ApplyShift(std::string_view name, std::string_view value, Options* o, MountFlags*) {
  std::vector<std::string_view> parts = SplitItems(value);
  const std::string form = "expected three integers dx,dy,dz (or dx/dy/dz), e.g. 5,-3,0";
  if (parts.size() != 3) return Bad(name, value, form);
  std::array<int64_t, 3> shift{};
  for (size_t i = 0; i < 3; ++i) {
    std::optional<int64_t> v = ParseInt64(parts[i]);
    if (!v) return Bad(name, value, std::string(kAxisXyz[i]) + " value '" + std::string(Trim(parts[i])) + "': " + form);
    if (*v > kMaxShift || *v < -kMaxShift) {
      return Bad(
          name, value,
          std::string(kAxisXyz[i]) + " value is out of range (at most " + std::to_string(kMaxShift) + " in magnitude)");
    }
    shift[2 - i] = *v;
  }
  o->shift = shift;
  return OkStatus();
}

Status ApplyVoxelSize(std::string_view name, std::string_view value, Options* o, MountFlags*) {
  std::vector<std::string_view> parts = SplitItems(value);
  const std::string form = "expected one positive number (isotropic) or three x,y,z (or x/y/z), e.g. 7.91 or 0.5,0.5,2";
  if (parts.size() != 1 && parts.size() != 3) return Bad(name, value, form);
  std::array<double, 3> xyz{};
  for (size_t i = 0; i < parts.size(); ++i) {
    std::optional<double> v = ParseDouble(parts[i]);
    if (!v || !std::isfinite(*v) || *v <= 0) {
      std::string which = parts.size() == 1 ? std::string() : std::string(kAxisXyz[i]) + " ";
      return Bad(name, value,
                 which + "value '" + std::string(Trim(parts[i])) + "' is not a positive finite number; " + form);
    }
    xyz[i] = *v;
  }
  if (parts.size() == 1) xyz[1] = xyz[2] = xyz[0];
  o->voxel_size = {xyz[2], xyz[1], xyz[0]};
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Units: OME-NGFF 0.4 space units (UDUNITS-2 names).

constexpr std::array<std::string_view, 26> kSpaceUnits = {
    "angstrom",  "attometer",  "centimeter", "decimeter",  "exameter",  "femtometer", "foot",
    "gigameter", "hectometer", "inch",       "kilometer",  "megameter", "meter",      "micrometer",
    "mile",      "millimeter", "nanometer",  "parsec",     "petameter", "picometer",  "terameter",
    "yard",      "yoctometer", "yottameter", "zeptometer", "zettameter"};

bool IsSpaceUnit(std::string_view u) {
  return std::find(kSpaceUnits.begin(), kSpaceUnits.end(), u) != kSpaceUnits.end();
}

// The valid unit a user most likely meant by `u` (lower case), or "" if no good guess.
std::string GuessUnit(std::string u) {
  static constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
      {"um", "micrometer"},
      {"\xc2\xb5m", "micrometer"},
      {"\xce\xbcm", "micrometer"},
      {"micron", "micrometer"},
      {"nm", "nanometer"},
      {"mm", "millimeter"},
      {"cm", "centimeter"},
      {"m", "meter"},
      {"pm", "picometer"},
      {"a", "angstrom"},
      {"\xc3\xa5", "angstrom"},
      {"km", "kilometer"},
      {"in", "inch"},
      {"ft", "foot"},
      {"feet", "foot"},
      {"inches", "inch"},
  };
  if (u.size() > 5 && u.compare(u.size() - 5, 5, "metre") == 0) u.replace(u.size() - 5, 5, "meter");
  if (u.size() > 6 && u.compare(u.size() - 6, 6, "metres") == 0) u.replace(u.size() - 6, 6, "meters");
  if (IsSpaceUnit(u)) return u;
  if (!u.empty() && u.back() == 's' && IsSpaceUnit(std::string_view(u).substr(0, u.size() - 1))) {
    return u.substr(0, u.size() - 1);
  }
  std::string_view singular = u;
  if (!singular.empty() && singular.back() == 's') singular.remove_suffix(1);
  for (const auto& [alias, unit] : kAliases)
    if (u == alias || singular == alias) return std::string(unit);
  for (std::string_view unit : kSpaceUnits)
    if (EditDistance(u, unit) <= 2) return std::string(unit);
  return "";
}

Status ApplyUnit(std::string_view name, std::string_view value, Options* o, MountFlags*) {
  std::string u = Lower(Trim(value));
  if (u.empty() || IsSpaceUnit(u)) {
    o->unit = u;
    return OkStatus();
  }
  std::string why = "not an OME-NGFF space unit";
  std::string guess = GuessUnit(u);
  why += guess.empty() ? std::string(".") : "; did you mean '" + guess + "'?";
  why += " Valid units include micrometer, nanometer, millimeter, angstrom and meter " + std::string(kSeeHelp);
  return Bad(name, value, why);
}

// ---------------------------------------------------------------------------------------------
// Scalar options.

Status ApplyChunk(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.chunk = true;
  return ParseIntInto(n, v, 1, 4096, "a positive integer", &o->chunk);
}
Status ApplyLevels(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 1, 32, "an integer", &o->levels);
}
Status ParseAlgorithm(std::string_view n, std::string_view v, Algorithm* out) {
  return ParseChoiceInto<Algorithm>(n, v,
                                    {{"mean", Algorithm::kMean},
                                     {"nearest", Algorithm::kNearest},
                                     {"max", Algorithm::kMax},
                                     {"min", Algorithm::kMin},
                                     {"mode", Algorithm::kMode},
                                     {"gaussian", Algorithm::kGaussian}},
                                    out);
}
Status ApplyAlgorithm(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseAlgorithm(n, v, &o->algorithm);
}
// Accepted only as "mode": it exists so that a label-specific algorithm is refused by name
// instead of silently applied (averaging ids makes ids that label nothing).
Status ApplyLabelAlgorithm(std::string_view n, std::string_view v, Options*, MountFlags*) {
  Algorithm a = Algorithm::kMode;
  OZ_RETURN_IF_ERROR(ParseAlgorithm(n, v, &a));
  if (a != Algorithm::kMode)
    return Bad(n, v,
               "label images (labels=) are always downsampled with mode: " + std::string(AlgorithmName(a)) +
                   " of label ids makes ids that label nothing; drop label_algorithm= (algorithm= sets the image's)");
  return OkStatus();
}
Status ApplyBytes(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseChoiceInto<bool>(n, v, {{"1", true}, {"2", false}}, &o->bytes1);
}
Status ApplyDType(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  DType d = DType::kUint8;
  OZ_RETURN_IF_ERROR(ParseChoiceInto<DType>(n, v, {{"uint8", DType::kUint8}, {"uint16", DType::kUint16}}, &d));
  o->out_dtype = d;
  return OkStatus();
}
Status ApplyRange(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  const std::string t = Lower(Trim(v));
  o->range_given = true;
  if (t == "auto") {
    o->range_auto = true;
    return OkStatus();
  }
  const size_t colon = t.find(':');
  std::optional<double> lo, hi;
  if (colon != std::string::npos) {
    lo = ParseDouble(std::string_view(t).substr(0, colon));
    hi = ParseDouble(std::string_view(t).substr(colon + 1));
  }
  if (!lo || !hi || !std::isfinite(*lo) || !std::isfinite(*hi) || !(*lo < *hi))
    return Bad(n, v, "expected LO:HI with finite numbers LO < HI (e.g. 0:4095 or -1000:3000.5), or auto");
  o->range_auto = false;
  o->range_lo = *lo;
  o->range_hi = *hi;
  return OkStatus();
}
Status ApplyBadSlices(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseChoiceInto<BadSlicePolicy>(n, v, {{"error", BadSlicePolicy::kError}, {"zero", BadSlicePolicy::kZero}},
                                         &o->bad_slices);
}
Status ApplyCompression(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.compression = true;
  return ParseChoiceInto<Compression>(n, v,
                                      {{"none", Compression::kNone},
                                       {"blosc", Compression::kBlosc},
                                       {"zlib", Compression::kZlib},
                                       {"gzip", Compression::kGzip},
                                       {"zstd", Compression::kZstd},
                                       {"jpeg", Compression::kJpeg}},
                                      &o->compression);
}
Status ApplyBloscCname(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.blosc_cname = true;
  return ParseChoiceInto<std::string>(
      n, v, {{"blosclz", "blosclz"}, {"lz4", "lz4"}, {"lz4hc", "lz4hc"}, {"zlib", "zlib"}, {"zstd", "zstd"}},
      &o->blosc_cname);
}
Status ApplyBloscClevel(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.blosc_clevel = true;
  return ParseIntInto(n, v, 0, 9, "an integer", &o->blosc_clevel);
}
Status ApplyZlibLevel(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.zlib_level = true;
  return ParseIntInto(n, v, 0, 9, "an integer", &o->zlib_level);
}
Status ApplyZstdLevel(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 1, 22, "an integer", &o->zstd_level);
}
Status ApplyJpegQuality(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 1, 100, "an integer", &o->jpeg_quality);
}
Status ApplySourceLevel(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 1000, "an integer", &o->source_level);
}
Status ApplyTiffPage(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 1000000, "a page number (0 = the first page)", &o->tiff_page);
}
Status ApplyChannel(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 1000000, "a channel number (0 = the first channel)", &o->channel);
}
Status ApplyTimePoint(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 1000000, "a time point (0 = the first)", &o->time_point);
}
Status ApplyBloscShuffle(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.blosc_shuffle = true;
  return ParseChoiceInto<int>(n, v, {{"0", 0}, {"1", 1}, {"2", 2}, {"noshuffle", 0}, {"shuffle", 1}, {"bitshuffle", 2}},
                              &o->blosc_shuffle);
}
Status ApplyEmpty(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  o->given.empty = true;
  return ParseChoiceInto<EmptyPolicy>(n, v, {{"omit", EmptyPolicy::kOmit}, {"keep", EmptyPolicy::kKeep}}, &o->empty);
}
Status ApplyFormat(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  if (!FindFormat(v)) return Bad(n, v, "expected one of " + FormatNames(", "));
  o->format = std::string(v);
  return OkStatus();
}
Status ApplyShard(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  int shard = 0;
  OZ_RETURN_IF_ERROR(ParseIntInto(n, v, 1, kMaxZarr3Shard, "an integer", &shard));
  if (shard & (shard - 1))
    return Bad(n, v, "expected a power of two (1, 2, 4 .. 64), so that shards align with the pyramid's 2x steps");
  o->shard = shard;
  return OkStatus();
}
Status ApplyLayers(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  if (v.empty()) return Bad(n, v, "expected the path of a .ppm file (volume-cartographer surface)");
  o->layers = std::string(v);
  return OkStatus();
}
Status ApplyLayersCount(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 999, "an integer", &o->layers_count);
}
Status ApplyStackCount(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 999, "an integer", &o->stack_count);
}
// NAME:SOURCE, NAME a single safe path component (it becomes labels/NAME).
Status ApplyLabels(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  const size_t colon = v.find(':');
  if (colon == std::string_view::npos)
    return Bad(n, v, "expected NAME:SOURCE (e.g. labels=cells:/data/cells_tiffs), the ':' is missing");
  const std::string name(v.substr(0, colon));
  const std::string source(v.substr(colon + 1));
  if (name.empty()) return Bad(n, v, "the NAME before ':' is empty; expected NAME:SOURCE");
  if (name.size() > 255 || name == "." || name == ".." ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != std::string::npos)
    return Bad(n, v,
               "NAME '" + name +
                   "' must be one path component of letters, digits, '_', '-' and '.' (not '.' or '..'), at most 255 "
                   "bytes; it becomes the directory labels/" +
                   name);
  if (source.empty()) return Bad(n, v, "the SOURCE after ':' is empty; expected NAME:SOURCE");
  for (const LabelSpec& l : o->labels)
    if (l.name == name)
      return Bad(n, v,
                 "label NAME '" + name + "' is given twice (labels=" + l.name + ":" + l.source +
                     "); give each label image its own name");
  o->labels.push_back({name, source});
  return OkStatus();
}
Status ApplyCache(std::string_view, std::string_view v, Options* o, MountFlags*) {
  o->cache_dir = std::string(v);
  return OkStatus();
}
Status ApplyBase(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  if (v.empty()) return Bad(n, v, "expected the directory an earlier omezarr-materialize wrote");
  o->base_dir = std::string(v);
  return OkStatus();
}
Status ApplyPrebuild(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 31, "a level number K (levels K..top are built in the background)", &o->prebuild);
}
Status ApplyCacheSize(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseSizeInto(n, v, 0, "0", "", &o->cache_size);
}
Status ApplyMemory(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseSizeInto(n, v, 16ull << 20, "16M", "decoded source strips are held in this budget", &o->memory);
}
Status ApplyThreads(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 1024, "an integer (0 = one per CPU)", &o->threads);
}

// Remote sources (HttpOptions).
Status ParseSecondsInto(std::string_view name, std::string_view value, double lo, bool lo_inclusive, double hi,
                        double* out) {
  std::optional<double> v = ParseDouble(value);
  auto range = [&] {
    std::string r = "expected seconds (a fraction is allowed, e.g. 0.5) ";
    r += lo_inclusive ? "from " : "above ";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g to %g", lo, hi);
    return r + buf;
  };
  if (!v || !std::isfinite(*v)) return Bad(name, value, range());
  if (*v > hi || *v < lo || (!lo_inclusive && *v == lo)) return Bad(name, value, "out of range; " + range());
  *out = *v;
  return OkStatus();
}
Status ApplyMaxConnections(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 1, 256, "an integer", &o->http.max_connections);
}
Status ApplyConnectTimeout(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseSecondsInto(n, v, 0, false, 3600, &o->http.connect_timeout);
}
Status ApplyTimeout(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseSecondsInto(n, v, 0, false, 86400, &o->http.timeout);
}
Status ApplyLowSpeedLimit(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  OZ_RETURN_IF_ERROR(ParseSizeInto(n, v, 0, "0", "", &o->http.low_speed_limit));
  if (o->http.low_speed_limit > (uint64_t{1} << 31) - 1) return Bad(n, v, "at most 2G (bytes per second)");
  return OkStatus();
}
Status ApplyLowSpeedTime(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 3600, "whole seconds", &o->http.low_speed_time);
}
Status ApplyRetries(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseIntInto(n, v, 0, 100, "an integer", &o->http.retries);
}
Status ApplyRetryDelay(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseSecondsInto(n, v, 0, true, 30, &o->http.retry_delay);
}
Status ApplyRetryAfterMax(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ParseSecondsInto(n, v, 0, true, 3600, &o->http.retry_after_max);
}
Status ApplyPathInto(std::string_view n, std::string_view v, std::string* out) {
  if (v.empty()) return Bad(n, v, "expected a file name");
  *out = std::string(v);
  return OkStatus();
}
Status ApplyNetrc(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ApplyPathInto(n, v, &o->http.netrc);
}
Status ApplyCredentials(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ApplyPathInto(n, v, &o->http.credentials);
}
Status ApplyCacert(std::string_view n, std::string_view v, Options* o, MountFlags*) {
  return ApplyPathInto(n, v, &o->http.cacert);
}

Status ApplyLog(std::string_view, std::string_view v, Options*, MountFlags* f) {
  f->log_file = std::string(v);
  return OkStatus();
}
Status ApplyLogLevel(std::string_view n, std::string_view v, Options*, MountFlags* f) {
  return ParseChoiceInto<std::string>(
      n, v, {{"debug", "debug"}, {"info", "info"}, {"warning", "warning"}, {"error", "error"}}, &f->log_level);
}

// Pass-through FUSE options: stored as written (one entry per name, the last one wins).
void SetFuseOption(MountFlags* f, std::string_view name, std::string entry) {
  auto& v = f->fuse_options;
  v.erase(std::remove_if(v.begin(), v.end(),
                         [&](const std::string& e) { return e == name || StartsWith(e, std::string(name) + "="); }),
          v.end());
  v.push_back(std::move(entry));
}
Status ApplyFuseFlag(std::string_view n, std::string_view, Options*, MountFlags* f) {
  SetFuseOption(f, n, std::string(n));
  return OkStatus();
}
Status ApplyFuseCount(std::string_view n, std::string_view v, Options*, MountFlags* f) {
  int64_t count = 0;
  const int64_t hi = n == "max_threads" ? 1024 : (int64_t{1} << 31) - 1;
  OZ_RETURN_IF_ERROR(ParseIntInto(n, v, 1, hi, "a positive integer", &count));
  SetFuseOption(f, n, std::string(n) + "=" + std::to_string(count));
  return OkStatus();
}
Status ApplyFuseString(std::string_view n, std::string_view v, Options*, MountFlags* f) {
  if (v.empty()) return Bad(n, v, "expected a non-empty name");
  SetFuseOption(f, n, std::string(n) + "=" + std::string(v));
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The option table: parser and help text in one place.

enum class Section { kPyramid, kView, kLayers, kLabels, kEncoding, kMetadata, kResources, kRemote, kLogging, kFuse };

struct OptionSpec {
  std::string_view name;
  bool takes_value;
  Section section;
  std::string_view syntax;        // as shown in --help
  std::string_view default_text;  // "" = no default shown
  std::string_view meaning;       // one line
  Status (*apply)(std::string_view name, std::string_view value, Options*, MountFlags*);
};

constexpr OptionSpec kOptionTable[] = {
    {"chunk", true, Section::kPyramid, "chunk=N", "128",
     "chunk edge in voxels (cubic chunks), 1..4096; zarr SOURCE: below", ApplyChunk},
    {"levels", true, Section::kPyramid, "levels=N", "6", "pyramid levels, 1..32; 1 = full resolution only",
     ApplyLevels},
    {"algorithm", true, Section::kPyramid, "algorithm=mean|nearest|max|min|mode|gaussian", "mean",
     "reduces each 2x2x2 block for the next level (rules below)", ApplyAlgorithm},
    {"window", true, Section::kView, "window=x0:x1,y0:y1,z0:z1", "whole volume", "serve only this box; syntax below",
     ApplyWindow},
    {"shift", true, Section::kView, "shift=dx,dy,dz", "0,0,0",
     "move the windowed data by whole voxels (x, y, z); see below", ApplyShift},
    {"bytes", true, Section::kView, "bytes=1|2", "2", "2 = uint16 as stored, 1 = uint8 (value / 256)", ApplyBytes},
    {"dtype", true, Section::kView, "dtype=uint8|uint16", "the source's",
     "serve this type: range= (or the source type's range) maps onto it", ApplyDType},
    {"range", true, Section::kView, "range=LO:HI|auto", "none",
     "source values LO..HI: omero.window; with dtype=, mapped to 0..max", ApplyRange},
    {"bad_slices", true, Section::kView, "bad_slices=error|zero", "error",
     "mismatched or unreadable slice: refuse to mount, or read as 0", ApplyBadSlices},
    {"source_level", true, Section::kView, "source_level=N", "0",
     "OME-Zarr group SOURCE: read multiscales[0].datasets[N]", ApplySourceLevel},
    {"page", true, Section::kView, "page=N", "refuse multi-page slice files",
     "TIFF slice files: serve page N (0-based) of every file", ApplyTiffPage},
    {"channel", true, Section::kView, "channel=C", "refuse several channels",
     "one multi-page TIFF (ImageJ, OME-TIFF): serve channel C (0-based)", ApplyChannel},
    {"t", true, Section::kView, "t=T", "refuse several time points",
     "one multi-page TIFF (ImageJ, OME-TIFF): serve time point T (0-based)", ApplyTimePoint},
    {"layers", true, Section::kLayers, "layers=SEGMENT.ppm", "none",
     "serve layers/00.tif .. NN.tif, stack.tif along its normals", ApplyLayers},
    {"layers_count", true, Section::kLayers, "layers_count=N", "65", "0..999: 2*(N/2)+1 layers centred on the surface",
     ApplyLayersCount},
    {"stack_count", true, Section::kLayers, "stack_count=N", "25",
     "stack.tif: max of 2*(N/2)+1 inner layers; <= layers_count", ApplyStackCount},
    {"labels", true, Section::kLabels, "labels=NAME:SOURCE", "none",
     "serve SOURCE as the label image labels/NAME (repeatable; mode)", ApplyLabels},
    {"label_algorithm", true, Section::kLabels, "label_algorithm=mode", "mode",
     "label images are always downsampled with mode (others refused)", ApplyLabelAlgorithm},
    {"compression", true, Section::kEncoding, "compression=none|blosc|zlib|gzip|zstd|jpeg", "none",
     "served chunks' compressor (jpeg: precomputed); zarr SOURCE: below", ApplyCompression},
    {"blosc_cname", true, Section::kEncoding, "blosc_cname=blosclz|lz4|lz4hc|zlib|zstd", "lz4",
     "blosc codec (with compression=blosc)", ApplyBloscCname},
    {"blosc_clevel", true, Section::kEncoding, "blosc_clevel=0..9", "5", "blosc compression level", ApplyBloscClevel},
    {"blosc_shuffle", true, Section::kEncoding, "blosc_shuffle=0|1|2", "1",
     "0 or noshuffle, 1 or shuffle (bytes), 2 or bitshuffle", ApplyBloscShuffle},
    {"zlib_level", true, Section::kEncoding, "zlib_level=0..9", "1", "compression level of zlib and gzip",
     ApplyZlibLevel},
    {"zstd_level", true, Section::kEncoding, "zstd_level=1..22", "3", "compression level of zstd", ApplyZstdLevel},
    {"jpeg_quality", true, Section::kEncoding, "jpeg_quality=1..100", "95",
     "JPEG quality of compression=jpeg (lossy; uint8 only)", ApplyJpegQuality},
    {"empty", true, Section::kEncoding, "empty=omit|keep", "omit",
     "all-zero chunks: absent (fill_value 0) or files; precomputed: keep", ApplyEmpty},
    {"format", true, Section::kEncoding, "format=ome-zarr-0.4|ome-zarr-0.5|precomputed", "ome-zarr-0.4",
     "OME-Zarr 0.4 (zarr v2), 0.5 (zarr v3) or Neuroglancer precomputed", ApplyFormat},
    {"shard", true, Section::kEncoding, "shard=N", "4 with ome-zarr-0.5",
     "0.5: inner chunks per shard edge (1, 2, 4 .. 64); 1 = no sharding", ApplyShard},
    {"voxel_size", true, Section::kMetadata, "voxel_size=v|x,y,z", "1",
     "voxel size at level 0, positive; one value = isotropic", ApplyVoxelSize},
    {"unit", true, Section::kMetadata, "unit=NAME", "none", "space unit of voxel_size (list below)", ApplyUnit},
    {"cache", true, Section::kResources, "cache=DIR", "$XDG_CACHE_HOME/omezarrfs, else ~/.cache/omezarrfs",
     "directory of the persistent chunk cache", ApplyCache},
    {"base", true, Section::kResources, "base=DEST", "none",
     "serve the chunks of a materialize DEST of these options (read only)", ApplyBase},
    {"prebuild", true, Section::kResources, "prebuild=K", "off", "build levels K..top into the cache in the background",
     ApplyPrebuild},
    {"cache_size", true, Section::kResources, "cache_size=SIZE", "10G",
     "disk cache budget, LRU eviction; 0 = store nothing", ApplyCacheSize},
    {"memory", true, Section::kResources, "memory=SIZE", "1G", "budget for decoded source data, at least 16M",
     ApplyMemory},
    {"threads", true, Section::kResources, "threads=N", "0", "worker threads, 0..1024; 0 = one per CPU", ApplyThreads},
    {"max_connections", true, Section::kRemote, "max_connections=N", "10", "HTTP requests in flight at once, 1..256",
     ApplyMaxConnections},
    {"connect_timeout", true, Section::kRemote, "connect_timeout=SECONDS", "10",
     "per attempt: name lookup, TCP and TLS handshake", ApplyConnectTimeout},
    {"timeout", true, Section::kRemote, "timeout=SECONDS", "120", "per attempt: the whole request, redirects included",
     ApplyTimeout},
    {"low_speed_limit", true, Section::kRemote, "low_speed_limit=SIZE", "1K",
     "an attempt slower than SIZE bytes/s for low_speed_time ...", ApplyLowSpeedLimit},
    {"low_speed_time", true, Section::kRemote, "low_speed_time=SECONDS", "30", "... is aborted and retried; 0 = never",
     ApplyLowSpeedTime},
    {"retries", true, Section::kRemote, "retries=N", "6", "retries of a failed request, 0..100 (worst case below)",
     ApplyRetries},
    {"retry_delay", true, Section::kRemote, "retry_delay=SECONDS", "0.5",
     "first retry wait; doubles per retry up to 30 s, jittered 50-100%", ApplyRetryDelay},
    {"retry_after_max", true, Section::kRemote, "retry_after_max=SECONDS", "60",
     "longest Retry-After wait honoured (longer ones are cut)", ApplyRetryAfterMax},
    {"netrc", true, Section::kRemote, "netrc=FILE", "~/.netrc", "login and password by host (mode 0600)", ApplyNetrc},
    {"credentials", true, Section::kRemote, "credentials=FILE", "none",
     "file holding user:password for the source's host (mode 0600)", ApplyCredentials},
    {"cacert", true, Section::kRemote, "cacert=FILE", "system CAs", "CA certificates that verify the server (PEM)",
     ApplyCacert},
    {"log", true, Section::kLogging, "log=FILE", "none", "also append log lines to FILE", ApplyLog},
    {"log_level", true, Section::kLogging, "log_level=debug|info|warning|error", "info", "least severe level logged",
     ApplyLogLevel},
    {"allow_other", false, Section::kFuse, "allow_other", "",
     "let other users in (needs user_allow_other in fuse.conf)", ApplyFuseFlag},
    {"allow_root", false, Section::kFuse, "allow_root", "", "let root in too (not with allow_other)", ApplyFuseFlag},
    {"default_permissions", false, Section::kFuse, "default_permissions", "", "the kernel checks file modes",
     ApplyFuseFlag},
    {"auto_unmount", false, Section::kFuse, "auto_unmount", "", "unmount when the process ends, even on a crash",
     ApplyFuseFlag},
    {"max_read", true, Section::kFuse, "max_read=N", "", "largest read request in bytes", ApplyFuseCount},
    {"max_threads", true, Section::kFuse, "max_threads=N", "", "most FUSE request threads, 1..1024", ApplyFuseCount},
    {"fsname", true, Section::kFuse, "fsname=S", "", "file system name shown by mount(8) and df", ApplyFuseString},
    {"subtype", true, Section::kFuse, "subtype=S", "", "file system type shown as fuse.S", ApplyFuseString},
};

const OptionSpec* FindOption(std::string_view name) {
  for (const OptionSpec& s : kOptionTable)
    if (s.name == name) return &s;
  return nullptr;
}

// Names mount(8), systemd or mount.fuse3 may put in the option list that mean nothing to a
// read-only FUSE file system. mount.fuse3 itself always adds "dev" and "suid".
constexpr std::string_view kIgnoredFlags[] = {
    "auto",        "noauto",        "nofail",   "_netdev",    "user",       "users",    "nouser",
    "owner",       "defaults",      "exec",     "noexec",     "suid",       "nosuid",   "dev",
    "nodev",       "atime",         "noatime",  "diratime",   "nodiratime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "lazytime", "nolazytime",
};

bool IsIgnored(std::string_view name, bool has_value) {
  if (StartsWith(name, "x-") || name == "comment") return true;
  if (has_value) return name == "user";  // mount(8) records user mounts as user=NAME
  return std::find(std::begin(kIgnoredFlags), std::end(kIgnoredFlags), name) != std::end(kIgnoredFlags);
}

// True if `piece` (an -o element) is a flag this parser knows, so it ends a list value.
bool IsKnownFlag(std::string_view piece) {
  if (piece == "ro" || piece == "rw" || IsIgnored(piece, false)) return true;
  const OptionSpec* s = FindOption(piece);
  return s != nullptr && !s->takes_value;
}

bool TakesList(std::string_view name) { return name == "window" || name == "shift" || name == "voxel_size"; }

// True if `piece` looks like an option name (a word such as allow_other), not a list item.
bool IsWord(std::string_view piece) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (piece.empty() || !letter(piece[0])) return false;
  for (char c : piece)
    if (!letter(c) && !IsDigit(c) && c != '-' && c != '.') return false;
  return true;
}

// True if `piece`, following window=, shift= or voxel_size=, continues that value: it is neither
// name=value nor a known flag. Words are also left alone (no valid list item is a word), so a
// misspelled flag after a list is reported as an unknown option rather than as a bad list item.
bool ContinuesList(std::string_view piece) {
  return piece.find('=') == std::string_view::npos && !IsKnownFlag(piece) && !IsWord(piece);
}

// Splits an -o value on unescaped commas; "\," and "\\" are unescaped.
std::vector<std::string> SplitOptionList(std::string_view s) {
  std::vector<std::string> pieces(1);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == ',' || s[i + 1] == '\\')) {
      pieces.back() += s[++i];
    } else if (s[i] == ',') {
      pieces.emplace_back();
    } else {
      pieces.back() += s[i];
    }
  }
  return pieces;
}

Status UnknownOption(std::string_view name) {
  std::string m = "unknown option '" + std::string(name) + "'";
  std::string_view best;
  size_t best_distance = name.size() <= 4 ? 2 : 3;  // suggest only close matches
  for (const OptionSpec& s : kOptionTable) {
    size_t d = EditDistance(name, s.name);
    if (d < best_distance) {
      best_distance = d;
      best = s.name;
    }
  }
  if (!best.empty()) m += "; did you mean '" + std::string(best) + "'?";
  m += " ";
  m += kSeeHelp;
  return InvalidArgumentError(std::move(m));
}

Status ApplyOne(std::string_view name, bool has_value, std::string_view value, Options* o, MountFlags* f) {
  if (IsIgnored(name, has_value)) return OkStatus();
  // The mount is read-only whatever is asked; mount(8) passes 'rw' to helpers by default, so
  // refusing it would break ordinary fstab lines.
  if ((name == "ro" || name == "rw") && !has_value) return OkStatus();
  const OptionSpec* spec = FindOption(name);
  if (spec == nullptr) {
    if (name == "ro" || name == "rw") return InvalidArgumentError("option " + std::string(name) + " takes no value");
    return UnknownOption(name);
  }
  if (spec->takes_value && !has_value) {
    return InvalidArgumentError("option " + std::string(name) + " needs a value: " + std::string(spec->syntax));
  }
  if (!spec->takes_value && has_value) {
    return InvalidArgumentError("option " + std::string(name) + "=" + std::string(value) +
                                ": takes no value (write just '" + std::string(name) + "')");
  }
  return spec->apply(name, value, o, f);
}

bool HasFuseOption(const MountFlags& f, std::string_view name) {
  return std::find(f.fuse_options.begin(), f.fuse_options.end(), name) != f.fuse_options.end();
}

// ---------------------------------------------------------------------------------------------
// Help text.

std::string_view SectionTitle(Section s) {
  switch (s) {
    case Section::kPyramid: return "Pyramid options:";
    case Section::kView: return "View options:";
    case Section::kLayers: return "Layer TIFF options (MNT/layers/ sampled along a .ppm surface):";
    case Section::kLabels: return "Label image options (MNT/labels/NAME, OME-NGFF image-label):";
    case Section::kEncoding: return "Chunk encoding options:";
    case Section::kMetadata: return "Metadata options:";
    case Section::kResources: return "Resource options:";
    case Section::kRemote: return "Remote source options (http:// and https:// sources):";
    case Section::kLogging: return "Logging options:";
    case Section::kFuse: return "FUSE options (passed to libfuse unchanged):";
  }
  return "";
}

void AppendPadded(std::string* out, std::string_view left, size_t width) {
  *out += left;
  if (left.size() + 1 < width) {
    out->append(width - left.size(), ' ');
  } else {
    *out += "\n";
    out->append(width, ' ');
  }
}

Status ParseOptionStringImpl(const std::string& value, Options* options, MountFlags* flags) {
  Options o = *options;
  MountFlags f = *flags;
  std::vector<std::string> pieces = SplitOptionList(value);
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string_view piece = Trim(pieces[i]);
    if (piece.empty()) continue;  // "a,,b" and a trailing comma are harmless
    size_t eq = piece.find('=');
    bool has_value = eq != std::string_view::npos;
    std::string_view name = Trim(piece.substr(0, eq));
    std::string val(has_value ? piece.substr(eq + 1) : std::string_view());
    if (has_value && TakesList(name)) {
      // Unescaped commas from a shell command line: "window=0:10,0:20,0:30,chunk=64".
      while (i + 1 < pieces.size()) {
        std::string_view next = Trim(pieces[i + 1]);
        if (!ContinuesList(next)) break;
        val += ',';
        val += next;
        ++i;
      }
    }
    OZ_RETURN_IF_ERROR(ApplyOne(name, has_value, val, &o, &f));
  }
  if (HasFuseOption(f, "allow_other") && HasFuseOption(f, "allow_root")) {
    return InvalidArgumentError("options allow_other and allow_root conflict: use only one");
  }
  *options = std::move(o);
  *flags = std::move(f);
  return OkStatus();
}

Result<CommandLine> ParseCommandLineImpl(int argc, const char* const* argv) {
  CommandLine cl;
  std::vector<std::string> positionals;
  Status first_error;
  auto fail = [&first_error](Status s) {
    if (first_error.ok()) first_error = std::move(s);
  };
  bool flags_ended = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i] != nullptr ? argv[i] : "";
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      positionals.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (StartsWith(arg, "--")) {
      if (arg == "--help") {
        cl.help = true;
      } else if (arg == "--version") {
        cl.version = true;
      } else {
        fail(InvalidArgumentError("unknown flag '" + std::string(arg) + "' " + std::string(kSeeHelp)));
      }
      continue;
    }
    // A cluster of short flags, getopt style: "-fs", "-ochunk=64", "-fo chunk=64".
    for (size_t j = 1; j < arg.size(); ++j) {
      char c = arg[j];
      if (c == 'f') {
        cl.flags.foreground = true;
      } else if (c == 'd') {
        cl.flags.debug = true;
        cl.flags.foreground = true;
      } else if (c == 's') {
        cl.flags.single_thread = true;
      } else if (c == 'h') {
        cl.help = true;
      } else if (c == 'V') {
        cl.version = true;
      } else if (c == 'o') {
        std::string opts;
        if (j + 1 < arg.size()) {
          opts = std::string(arg.substr(j + 1));
        } else if (i + 1 < argc && argv[i + 1] != nullptr) {
          opts = argv[++i];
        } else {
          fail(InvalidArgumentError("flag -o needs a value: -o opt[,opt...] " + std::string(kSeeHelp)));
          break;
        }
        Status s = ParseOptionString(opts, &cl.options, &cl.flags);
        if (!s.ok()) fail(std::move(s));
        break;
      } else {
        std::string m = "unknown flag '-" + std::string(1, c) + "'";
        if (arg.size() > 2) m += " in '" + std::string(arg) + "'";
        fail(InvalidArgumentError(m + " " + std::string(kSeeHelp)));
        break;
      }
    }
  }
  if (cl.help || cl.version) return cl;
  if (!first_error.ok()) return first_error;
  const std::string usage = " (usage: omezarrfs SOURCE MOUNTPOINT [-o opt,...]; see omezarrfs --help)";
  if (positionals.empty()) return InvalidArgumentError("missing SOURCE and MOUNTPOINT" + usage);
  if (positionals.size() == 1) {
    return InvalidArgumentError("missing MOUNTPOINT after SOURCE '" + positionals[0] + "'" + usage);
  }
  if (positionals.size() > 2) {
    return InvalidArgumentError("unexpected argument '" + positionals[2] +
                                "': omezarrfs takes exactly SOURCE and MOUNTPOINT" + usage);
  }
  if (positionals[0].empty()) return InvalidArgumentError("SOURCE is an empty string" + usage);
  if (positionals[1].empty()) return InvalidArgumentError("MOUNTPOINT is an empty string" + usage);
  cl.source = positionals[0];
  cl.mountpoint = positionals[1];
  return cl;
}

}  // namespace

std::string OptionsHelpText() {
  constexpr size_t kColumn = 32;  // where meanings start
  constexpr size_t kWidth = 100;  // longest line
  std::string out =
      "Usage: omezarrfs SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d] [-s]\n"
      "       omezarrfs status MOUNTPOINT   (prebuild progress and key counters of a mount)\n"
      "       omezarrfs -h|--help\n"
      "       omezarrfs -V|--version\n"
      "\n"
      "Serves SOURCE, a directory of z-slice TIFFs or a zarr v2 array or OME-Zarr group, at\n"
      "MOUNTPOINT as a read-only multiscale tree: OME-Zarr 0.4 (zarr v2), with\n"
      "format=ome-zarr-0.5 OME-Zarr 0.5 (zarr v3, sharded), or with format=precomputed a Neuroglancer\n"
      "precomputed volume. Chunks are computed on read and kept in a disk cache.\n"
      "\n"
      "Flags (before, between or after SOURCE and MOUNTPOINT):\n"
      "  -o opt[,opt...]   mount options, below; may repeat, later ones win; may be glued (-oallow_other)\n"
      "  -f                stay in the foreground\n"
      "  -d                libfuse debug output (implies -f)\n"
      "  -s                single-threaded FUSE loop\n"
      "  -h, --help        print this help and exit\n"
      "  -V, --version     print the version and exit\n";
  std::optional<Section> current;
  for (const OptionSpec& s : kOptionTable) {
    if (s.section != current) {
      current = s.section;
      out += "\n";
      out += SectionTitle(s.section);
      out += "\n";
    }
    AppendPadded(&out, "  " + std::string(s.syntax), kColumn);
    out += s.meaning;
    if (!s.default_text.empty()) {
      std::string def = " (default: " + std::string(s.default_text) + ")";
      if (kColumn + s.meaning.size() + def.size() > kWidth) {
        out += "\n";
        out.append(kColumn - 1, ' ');
      }
      out += def;
    }
    out += "\n";
  }
  out +=
      "\n"
      "Accepted and ignored:\n"
      "  ro and rw (the mount is always read-only) and the fstab/mount(8) options\n"
      "  auto noauto nofail _netdev user user=NAME users nouser owner defaults exec noexec suid\n"
      "  nosuid dev nodev atime noatime diratime nodiratime relatime norelatime strictatime\n"
      "  nostrictatime lazytime nolazytime x-* comment=*.\n"
      "\n"
      "window: one Python slice per axis in x, y, z order: a:b, a:, :b, : or empty (whole axis).\n"
      "  Negative numbers count from the end (-100: = the last 100). Step 1 only. Missing axes are\n"
      "  whole: window=100:200 limits x only. Example: window=1000:5000,:,-2000:\n"
      "  Bounds beyond the source are clipped to it.\n"
      "shift: applied after the window. On each axis the view runs from 0 to window end + shift;\n"
      "  view voxel v shows source voxel v - shift when that lies in the window, else 0.\n"
      "  Negative values allowed (as zarr_to_ome --shift).\n"
      "algorithm: per 2x2x2 block (the voxels that exist at odd edges): mean (integers: rounded half\n"
      "  to even; float32: float mean), nearest (voxel at 2z,2y,2x), max, min, mode (most frequent\n"
      "  value, ties to the smallest; for labels); gaussian: sigma 1, 6x6x6 taps centred on the block,\n"
      "  mirrored edges (halo of 2 voxels). README \"Downsampling kernels\" has every rule.\n"
      "dtype/range: dtype=uint8,range=LO:HI serves round((v - LO) * 255 / (HI - LO)), clamped to\n"
      "  0..255 (uint16: 65535); range=auto takes LO/HI as the 0.5th/99.5th percentiles of a sample.\n"
      "  range= alone keeps the values and only sets omero.window. bytes=1 is for uint16 sources.\n"
      "\n"
      "TIFF SOURCE: a directory of NNNN.tif slice files (one full-resolution page each, or page=N\n"
      "  of each), or one TIFF file, or a directory holding only one, whose full-resolution pages\n"
      "  are the z slices. An ImageJ hyperstack, OME-TIFF or tifffile file with several channels or\n"
      "  time points serves one z-stack: channel= and t= choose it (refused without them).\n"
      "\n"
      "zarr SOURCE (a directory with .zarray, or an OME-Zarr group whose .zattrs multiscales list\n"
      "  the arrays): unless given, chunk is the source's chunk edge when its chunks are cubic\n"
      "  (clamped to 16..512), else 128; compression and blosc_*/zlib_level are the source's\n"
      "  compressor and its settings (null -> none). A group serves datasets[source_level].\n"
      "\n"
      "Values with commas (window, shift, voxel_size) can be written in three ways:\n"
      "  window=0:10/0:20/5:         '/' between the items; works everywhere, best for /etc/fstab\n"
      "  window=0:10\\,0:20\\,5:       '\\,' is a literal comma, '\\\\' a literal backslash\n"
      "                              (quote it in a shell: -o 'window=0:10\\,0:20\\,5:')\n"
      "  window=0:10,0:20,5:         plain commas: pieces after window=, shift= or voxel_size= that\n"
      "                              are neither name=value nor a flag continue the value\n"
      "  so shift=5/-3/0, shift=5\\,-3\\,0 and shift=5,-3,0 are the same, as are\n"
      "  voxel_size=7.91/7.91/7.91, voxel_size=7.91 and voxel_size=7.91,7.91,7.91.\n"
      "\n"
      "Remote sources: a request that times out, is cut short or gets 408, 429 or 5xx is retried up\n"
      "  to retries times; it waits the server's Retry-After (at most retry_after_max) or else\n"
      "  retry_delay*2^n (at most 30 s). The worst case for one read is\n"
      "  (retries+1)*timeout + retries*max(retry_after_max,30s): 20 min with the defaults. 404 and\n"
      "  410 mean absent (fill_value); 401 and 403 are permission errors. Credentials go only to\n"
      "  the URL's own scheme, host and port, never to another host a redirect leads to; a URL\n"
      "  with user:password@ is refused (it would show in ps and the mount table).\n"
      "\n"
      "SIZE: a byte count with an optional binary suffix K, M, G, T, P or E (1K = 1024), optionally\n"
      "  followed by B or iB, any case; fractions allowed: 512, 64K, 10M, 1.5G, 2TiB.\n"
      "\n"
      "Units (unit=NAME), the OME-NGFF 0.4 space units:\n ";
  size_t line = 1;
  for (std::string_view u : kSpaceUnits) {
    if (line + 1 + u.size() > kWidth) {
      out += "\n ";
      line = 1;
    }
    out += ' ';
    out += u;
    line += 1 + u.size();
  }
  out += "\n";
  return out;
}

namespace {

Result<uint64_t> ParseByteSizeImpl(const std::string& text) {
  std::string_view s = Trim(text);
  auto bad = [&text](std::string_view why) {
    return InvalidArgumentError("invalid size '" + text + "': " + std::string(why));
  };
  constexpr std::string_view kForm =
      "expected a number with an optional K, M, G, T, P or E suffix (binary multiples), e.g. 512, 64K, 10M, "
      "1.5G";
  if (!s.empty() && s[0] == '-') return bad("a size cannot be negative");
  size_t i = 0;
  uint64_t whole = 0;
  bool overflow = false;
  size_t digits = 0;
  for (; i < s.size() && IsDigit(s[i]); ++i, ++digits) {
    uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (whole > (std::numeric_limits<uint64_t>::max() - d) / 10) overflow = true;
    whole = whole * 10 + d;
  }
  uint64_t frac = 0, frac_scale = 1;
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && IsDigit(s[i]); ++i, ++digits) {
      if (frac_scale < 1'000'000'000'000'000'000ull) {  // 19 digits is far below one byte
        frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
        frac_scale *= 10;
      }
    }
  }
  if (digits == 0) return bad(kForm);
  std::string suffix = Lower(Trim(s.substr(i)));
  int shift = 0;
  if (!suffix.empty() && suffix != "b") {
    constexpr std::string_view kPrefixes = "kmgtpe";
    size_t p = kPrefixes.find(suffix[0]);
    std::string_view rest = std::string_view(suffix).substr(1);
    if (p == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib")) return bad(kForm);
    shift = 10 * static_cast<int>(p + 1);
  }
  if (overflow || (shift > 0 && whole > (std::numeric_limits<uint64_t>::max() >> shift))) {
    return bad("too large (the maximum is 2^64-1 bytes)");
  }
  __extension__ using U128 = unsigned __int128;
  U128 total = (static_cast<U128>(whole) << shift) + ((static_cast<U128>(frac) << shift) / frac_scale);
  if (total > std::numeric_limits<uint64_t>::max()) return bad("too large (the maximum is 2^64-1 bytes)");
  return static_cast<uint64_t>(total);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API. The parsers build strings; bad_alloc becomes a Status instead of escaping.

Status ParseOptionString(const std::string& value, Options* options, MountFlags* flags) {
  try {
    return ParseOptionStringImpl(value, options, flags);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing -o options");
  }
}

Result<CommandLine> ParseCommandLine(int argc, const char* const* argv) {
  try {
    return ParseCommandLineImpl(argc, argv);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing the command line");
  }
}

Result<uint64_t> ParseByteSize(const std::string& text) {
  try {
    return ParseByteSizeImpl(text);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing a size");
  }
}

std::string JoinFuseOptions(const std::vector<std::string>& fuse_options) {
  std::string out;
  for (const std::string& opt : fuse_options) {
    if (!out.empty()) out += ',';
    for (char c : opt) {
      if (c == ',' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out;
}

}  // namespace oz
