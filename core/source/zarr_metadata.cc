// Strict .zarray / .zattrs parsing. JSON is parsed without exceptions; every member is checked
// for type and range before use, so later code can trust the struct.
#include "core/source/zarr_metadata.h"

#include <blosc.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/store/kv_store.h"

namespace oz {
namespace {

using nlohmann::json;

constexpr size_t kMaxRank = 32;  // numpy's limit

class Checker {
 public:
  Checker(const json& doc, const std::string& where) : doc_(doc), where_(where) {}

  Status Bad(std::string_view field, std::string_view why) const {
    return InvalidArgumentError(where_ + ": field \"" + std::string(field) + "\" " + std::string(why));
  }
  Status Unsupported(std::string_view field, std::string_view why) const {
    return UnsupportedError(where_ + ": field \"" + std::string(field) + "\" " + std::string(why));
  }
  // The member, or nullptr when absent.
  const json* Find(std::string_view field) const {
    auto it = doc_.find(std::string(field));
    return it == doc_.end() ? nullptr : &*it;
  }
  Result<const json*> Require(std::string_view field) const {
    const json* v = Find(field);
    if (!v) return Bad(field, "is missing");
    return v;
  }

 private:
  const json& doc_;
  const std::string& where_;
};

// Zarr v2 dtype strings: a byte order (| for one byte, < or > otherwise; < and > are accepted
// for one byte too) and a numpy kind+size.
struct ZarrDType {
  DType dtype;
  bool big_endian;
};
constexpr std::string_view kZarrDTypes =
    "|u1, <u2, <i2, <u4, <u8 and <f4 (uint8, uint16, int16, uint32, uint64, float32)";

std::optional<ZarrDType> ParseZarrDType(std::string_view t) {
  if (t.size() != 3 || (t[0] != '<' && t[0] != '>' && t[0] != '|')) return std::nullopt;
  static constexpr std::pair<std::string_view, DType> kKinds[] = {
      {"u1", DType::kUint8},  {"u2", DType::kUint16}, {"i2", DType::kInt16},
      {"u4", DType::kUint32}, {"u8", DType::kUint64}, {"f4", DType::kFloat32},
  };
  for (const auto& [kind, d] : kKinds)
    if (t.substr(1) == kind) {
      if (t[0] == '|' && DTypeSize(d) != 1) return std::nullopt;  // '|' only where order does not matter
      return ZarrDType{d, t[0] == '>' && DTypeSize(d) > 1};
    }
  return std::nullopt;
}

// fill_value as the native bytes of one voxel; nullopt if it is not a value of the dtype.
std::optional<std::array<uint8_t, 8>> FillBytes(const json& v, DType d) {
  std::array<uint8_t, 8> b{};
  if (d == DType::kFloat32) {
    float f;
    if (v.is_number()) {
      const double x = v.get<double>();
      f = static_cast<float>(x);
      if (std::isfinite(x) && !std::isfinite(f)) return std::nullopt;
    } else if (v == "NaN") {
      f = std::numeric_limits<float>::quiet_NaN();
    } else if (v == "Infinity") {
      f = std::numeric_limits<float>::infinity();
    } else if (v == "-Infinity") {
      f = -std::numeric_limits<float>::infinity();
    } else {
      return std::nullopt;
    }
    std::memcpy(b.data(), &f, 4);
    return b;
  }
  if (!v.is_number_integer() && !v.is_number_unsigned()) return std::nullopt;
  if (d == DType::kUint64) {
    if (!v.is_number_unsigned() && v.get<int64_t>() < 0) return std::nullopt;
    const uint64_t u = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    std::memcpy(b.data(), &u, 8);
    return b;
  }
  std::optional<int64_t> x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                                 ? std::nullopt
                                 : std::optional<int64_t>(v.get<int64_t>());
  if (!x) return std::nullopt;
  switch (d) {
    case DType::kUint8:
      if (*x < 0 || *x > 255) return std::nullopt;
      b[0] = static_cast<uint8_t>(*x);
      break;
    case DType::kUint16: {
      if (*x < 0 || *x > 65535) return std::nullopt;
      const uint16_t u = static_cast<uint16_t>(*x);
      std::memcpy(b.data(), &u, 2);
      break;
    }
    case DType::kInt16: {
      if (*x < -32768 || *x > 32767) return std::nullopt;
      const int16_t u = static_cast<int16_t>(*x);
      std::memcpy(b.data(), &u, 2);
      break;
    }
    case DType::kUint32: {
      if (*x < 0 || *x > 4294967295LL) return std::nullopt;
      const uint32_t u = static_cast<uint32_t>(*x);
      std::memcpy(b.data(), &u, 4);
      break;
    }
    default: return std::nullopt;
  }
  return b;
}

std::optional<int64_t> AsInt(const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

Result<std::vector<int64_t>> IntArray(const Checker& c, std::string_view field, const json& v) {
  if (!v.is_array()) return c.Bad(field, "is " + ShortJson(v) + ", expected an array of integers");
  if (v.size() > kMaxRank)
    return c.Bad(field, "has " + std::to_string(v.size()) + " entries, more than " + std::to_string(kMaxRank));
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::optional<int64_t> x = AsInt(v[i]);
    if (!x)
      return c.Bad(field, "entry " + std::to_string(i) + " is " + ShortJson(v[i]) + ", expected an integer (in " +
                              ShortJson(v) + ")");
    out.push_back(*x);
  }
  return out;
}

Status ParseCompressor(const Checker& c, const json& v, ZarrCompressor* out) {
  *out = ZarrCompressor{};
  if (v.is_null()) return OkStatus();
  if (!v.is_object()) return c.Bad("compressor", "is " + ShortJson(v) + ", expected null or an object with an \"id\"");
  auto id_it = v.find("id");
  if (id_it == v.end() || !id_it->is_string())
    return c.Bad("compressor", "has no string \"id\" (" + ShortJson(v) + ")");
  const std::string id = id_it->get<std::string>();
  auto int_member = [&](const char* name, int lo, int hi, int dflt, int* dst) -> Status {
    auto it = v.find(name);
    if (it == v.end() || it->is_null()) {
      *dst = dflt;
      return OkStatus();
    }
    std::optional<int64_t> x = AsInt(*it);
    if (!x || *x < lo || *x > hi)
      return c.Bad(std::string("compressor.") + name, "is " + ShortJson(*it) + ", expected an integer from " +
                                                          std::to_string(lo) + " to " + std::to_string(hi));
    *dst = static_cast<int>(*x);
    return OkStatus();
  };
  if (id == "blosc") {
    out->id = ZarrCompressorId::kBlosc;
    auto cn = v.find("cname");
    if (cn == v.end() || !cn->is_string())
      return c.Bad("compressor.cname", "is missing or not a string (" + ShortJson(v) + ")");
    out->cname = cn->get<std::string>();
    if (blosc_compname_to_compcode(out->cname.c_str()) < 0)
      return c.Unsupported("compressor.cname", "is \"" + out->cname +
                                                   "\", which this build of c-blosc cannot decode (it has " +
                                                   blosc_list_compressors() + ")");
    OZ_RETURN_IF_ERROR(int_member("clevel", 0, 9, 5, &out->clevel));
    OZ_RETURN_IF_ERROR(int_member("shuffle", -1, 2, 1, &out->shuffle));
    OZ_RETURN_IF_ERROR(int_member("blocksize", 0, INT32_MAX, 0, &out->blocksize));
    return OkStatus();
  }
  if (id == "zlib" || id == "gzip") {
    out->id = id == "zlib" ? ZarrCompressorId::kZlib : ZarrCompressorId::kGzip;
    return int_member("level", -1, 9, 1, &out->level);
  }
  return c.Unsupported("compressor", "has id \"" + id +
                                         "\"; omezarrfs reads null, blosc, zlib and gzip chunks (re-save the array "
                                         "with one of them, e.g. numcodecs.Blosc())");
}

}  // namespace

uint64_t ZarrArrayMetadata::chunk_bytes() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t c : chunks) n *= static_cast<uint64_t>(c);
  return n;
}

std::string ZarrArrayMetadata::ChunkKey(const Vec3& idx) const {
  std::string k;
  const size_t rank = shape.size();
  for (size_t a = 0; a < rank; ++a) {
    if (a) k += separator;
    // Axis a of the file is 3-D axis a - (rank - 3); leading axes have index 0.
    const int64_t d = static_cast<int64_t>(a) - static_cast<int64_t>(rank) + 3;
    k += d < 0 ? "0" : std::to_string(idx[static_cast<size_t>(d)]);
  }
  return k;
}

std::string ZarrArrayMetadata::Summary() const {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
    return s;
  };
  return "shape " + list(shape) + ", " + dtype_text + ", chunks " + list(chunks) + ", compressor " +
         ZarrCompressorText(compressor) + (fortran_order ? ", order F" : "");
}

Result<ZarrArrayMetadata> ParseZarray(std::string_view bytes, const std::string& where) {
  ZarrArrayMetadata m;
  const json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError(where + " is not valid JSON; is this a zarr v2 array (.zarray)?");
  if (!doc.is_object()) return InvalidArgumentError(where + " is " + ShortJson(doc) + ", expected a JSON object");
  const Checker c(doc, where);

  OZ_ASSIGN_OR_RETURN(const json* fmt, c.Require("zarr_format"));
  if (AsInt(*fmt) != std::optional<int64_t>(2))
    return c.Unsupported("zarr_format", "is " + ShortJson(*fmt) + "; omezarrfs reads zarr v2 arrays only");

  OZ_ASSIGN_OR_RETURN(const json* shape, c.Require("shape"));
  OZ_ASSIGN_OR_RETURN(m.shape, IntArray(c, "shape", *shape));
  OZ_ASSIGN_OR_RETURN(const json* chunks, c.Require("chunks"));
  OZ_ASSIGN_OR_RETURN(m.chunks, IntArray(c, "chunks", *chunks));
  const size_t rank = m.shape.size();
  if (rank < 2)
    return c.Unsupported("shape", "is " + ShortJson(*shape) + ": a " + std::to_string(rank) +
                                      "-D array; omezarrfs serves 3-D (z, y, x) arrays (or 2-D as one slice)");
  if (m.chunks.size() != rank)
    return c.Bad("chunks", "is " + ShortJson(*chunks) + " with " + std::to_string(m.chunks.size()) +
                               " entries, but \"shape\" has " + std::to_string(rank) + " (rank mismatch)");
  for (size_t a = 0; a < rank; ++a) {
    if (m.shape[a] < 1 || m.shape[a] > kMaxExtent)
      return c.Bad("shape", "is " + ShortJson(*shape) + ": entry " + std::to_string(a) + " must be from 1 to 2^40");
    if (m.chunks[a] < 1 || m.chunks[a] > kMaxExtent)
      return c.Bad("chunks", "is " + ShortJson(*chunks) + ": entry " + std::to_string(a) + " must be from 1 to 2^40");
  }
  for (size_t a = 0; a + 3 < rank; ++a) {
    if (m.shape[a] != 1)
      return c.Unsupported("shape", "is " + ShortJson(*shape) + ": axis " + std::to_string(a) + " has extent " +
                                        std::to_string(m.shape[a]) +
                                        "; omezarrfs serves the last three axes (z, y, x) and needs every axis "
                                        "before them to have extent 1");
  }
  for (int d = 0; d < 3; ++d) {
    const int64_t a = static_cast<int64_t>(rank) - 3 + d;
    m.shape3[d] = a < 0 ? 1 : m.shape[static_cast<size_t>(a)];
    m.chunks3[d] = a < 0 ? 1 : m.chunks[static_cast<size_t>(a)];
  }
  if (!CheckedVolume(m.shape3) || *CheckedVolume(m.shape3) > (INT64_MAX / 2))
    return c.Bad("shape", "is " + ShortJson(*shape) + ": too many voxels to address");

  OZ_ASSIGN_OR_RETURN(const json* dtype, c.Require("dtype"));
  if (!dtype->is_string())
    return c.Unsupported("dtype", "is " + ShortJson(*dtype) + "; omezarrfs reads " + std::string(kZarrDTypes));
  m.dtype_text = dtype->get<std::string>();
  {
    std::optional<ZarrDType> d = ParseZarrDType(m.dtype_text);
    if (!d)
      return c.Unsupported("dtype", "is \"" + m.dtype_text + "\"; omezarrfs reads " + std::string(kZarrDTypes) +
                                        " (byte order < or >); convert the array first, e.g. with numpy: "
                                        "zarr.array(a.astype('float32')) or a.astype('uint16')");
    m.dtype = d->dtype;
    m.big_endian = d->big_endian;
  }
  // Bounded before multiplying so the product cannot overflow (each factor <= 2^40, rank <= 32).
  {
    uint64_t n = DTypeSize(m.dtype);
    for (int64_t ch : m.chunks) {
      if (static_cast<uint64_t>(ch) > kMaxChunkBytes / n)
        return c.Bad("chunks", "is " + ShortJson(*chunks) + ": one chunk would be more than 1 GiB decoded");
      n *= static_cast<uint64_t>(ch);
    }
  }

  OZ_ASSIGN_OR_RETURN(const json* order, c.Require("order"));
  if (*order == "C") {
    m.fortran_order = false;
  } else if (*order == "F") {
    m.fortran_order = true;
  } else {
    return c.Bad("order", "is " + ShortJson(*order) + ", expected \"C\" or \"F\"");
  }

  OZ_ASSIGN_OR_RETURN(const json* fill, c.Require("fill_value"));
  if (!fill->is_null()) {
    std::optional<std::array<uint8_t, 8>> f = FillBytes(*fill, m.dtype);
    if (!f)
      return c.Bad("fill_value",
                   "is " + ShortJson(*fill) + ", expected null or " +
                       (DTypeIsInteger(m.dtype) ? "an integer in the range of "
                                                : "a number, \"NaN\", \"Infinity\" or \"-Infinity\" for ") +
                       std::string(DTypeName(m.dtype)) + " (dtype " + m.dtype_text + ")");
    m.fill_bytes = *f;
  }

  OZ_ASSIGN_OR_RETURN(const json* comp, c.Require("compressor"));
  OZ_RETURN_IF_ERROR(ParseCompressor(c, *comp, &m.compressor));

  if (const json* filters = c.Find("filters"); filters && !filters->is_null()) {
    if (!filters->is_array()) return c.Bad("filters", "is " + ShortJson(*filters) + ", expected null or a list");
    if (!filters->empty()) {
      const json& f = (*filters)[0];
      std::string id =
          f.is_object() && f.contains("id") && f["id"].is_string() ? f["id"].get<std::string>() : ShortJson(f);
      return c.Unsupported("filters", "contains \"" + id +
                                          "\"; omezarrfs reads arrays without filters (filters: null); re-save "
                                          "the array without it");
    }
  }

  if (const json* sep = c.Find("dimension_separator"); sep && !sep->is_null()) {
    if (*sep == ".") {
      m.separator = '.';
    } else if (*sep == "/") {
      m.separator = '/';
    } else {
      return c.Bad("dimension_separator", "is " + ShortJson(*sep) + ", expected \".\" or \"/\"");
    }
  }
  return m;
}

Result<std::vector<std::string>> ParseMultiscalesPaths(std::string_view bytes, const std::string& where) {
  const json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError(where + " is not valid JSON");
  auto bad = [&](const std::string& field, const std::string& why) {
    return InvalidArgumentError(where + ": field \"" + field + "\" " + why);
  };
  const std::string hint =
      "; an OME-Zarr group needs multiscales[0].datasets (or give the path of a zarr array as SOURCE)";
  if (!doc.is_object() || !doc.contains("multiscales")) return bad("multiscales", "is missing" + hint);
  const json& ms = doc["multiscales"];
  if (!ms.is_array() || ms.empty())
    return bad("multiscales", "is " + ShortJson(ms) + ", expected a non-empty list" + hint);
  if (!ms[0].is_object() || !ms[0].contains("datasets")) return bad("multiscales[0].datasets", "is missing" + hint);
  const json& ds = ms[0]["datasets"];
  if (!ds.is_array() || ds.empty())
    return bad("multiscales[0].datasets", "is " + ShortJson(ds) + ", expected a non-empty list" + hint);
  std::vector<std::string> paths;
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string field = "multiscales[0].datasets[" + std::to_string(i) + "].path";
    if (!ds[i].is_object() || !ds[i].contains("path") || !ds[i]["path"].is_string())
      return bad(field, "is missing or not a string");
    std::string p = ds[i]["path"].get<std::string>();
    if (Status s = ValidateKey(p); !s.ok()) return bad(field, "is unsafe: " + s.message());
    paths.push_back(std::move(p));
  }
  return paths;
}

// A JSON value for a message, shortened. Never recurses deeper than two levels (json::dump
// would recurse once per nesting level of a hostile document and could exhaust the stack).
std::string ShortJson(const nlohmann::json& v, int depth) {
  std::string s;
  if (v.is_array() || v.is_object()) {
    const bool arr = v.is_array();
    if (depth >= 2) return arr ? "[...]" : "{...}";
    s = arr ? "[" : "{";
    size_t i = 0;
    for (auto it = v.begin(); it != v.end(); ++it, ++i) {
      if (i) s += ", ";
      if (i == 8) {
        s += "...";
        break;
      }
      if (!arr) s += nlohmann::json(it.key()).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + ": ";
      s += ShortJson(*it, depth + 1);
    }
    s += arr ? "]" : "}";
  } else {
    s = v.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
  }
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

}  // namespace oz
