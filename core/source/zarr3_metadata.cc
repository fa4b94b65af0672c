// Zarr v3 zarr.json parsing and the codec chain decoder (contracts in the header). Written from
// the zarr v3 core spec and the codec specs (bytes, transpose, blosc, gzip, zstd, crc32c,
// sharding_indexed).
#include "core/source/zarr3_metadata.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/codec/crc32c.h"
#include "core/codec/shard_index.h"
#include "core/source/zarr_metadata.h"
#include "core/store/kv_store.h"

namespace oz {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxRank = 32;

std::string Dims(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

// Messages: "<where>: field "<field>" <why>".
struct Where {
  const std::string& file;
  Status Bad(const std::string& field, const std::string& why) const {
    return InvalidArgumentError(file + ": field \"" + field + "\" " + why);
  }
  Status Unsupported(const std::string& field, const std::string& why) const {
    return UnsupportedError(file + ": field \"" + field + "\" " + why);
  }
};

std::optional<int64_t> AsInt(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

Result<std::vector<int64_t>> Extents(const Where& w, const std::string& field, const json& v) {
  if (!v.is_array() || v.empty() || v.size() > kMaxRank)
    return w.Bad(field, "is " + ShortJson(v) + ", expected a list of 1 to 32 integers");
  std::vector<int64_t> out;
  for (const json& e : v) {
    std::optional<int64_t> i = AsInt(e);
    if (!i || *i < 1 || *i > kMaxExtent)
      return w.Bad(field, "is " + ShortJson(v) + ": every entry must be from 1 to 2^40");
    out.push_back(*i);
  }
  return out;
}

const json* Member(const json& obj, const char* name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

const std::string kConvertHint =
    "; convert the array with zarr-python or tensorstore to one using bytes, transpose, blosc, gzip, zstd, crc32c "
    "and sharding_indexed (e.g. blosc or zstd)";

// Parses a codec list for chunks of `shape` (elements of `item` bytes). `field` names the list.
Result<Zarr3Chain> ParseChain(const Where& w, const std::string& field, const json& codecs,
                              const std::vector<int64_t>& shape, size_t item, int depth) {
  if (!codecs.is_array() || codecs.empty())
    return w.Bad(field, "is " + ShortJson(codecs) + ", expected a non-empty list of codecs");
  Zarr3Chain chain;
  const size_t rank = shape.size();
  int stage = 0;  // 0: array->array, 1: after the array->bytes codec
  int compressors = 0;
  for (size_t k = 0; k < codecs.size(); ++k) {
    const json& c = codecs[k];
    const std::string f = field + "[" + std::to_string(k) + "]";
    const json* name = Member(c, "name");
    if (!name || !name->is_string()) return w.Bad(f, "is " + ShortJson(c) + ", expected an object with a \"name\"");
    const std::string n = name->get<std::string>();
    const json* cfg = Member(c, "configuration");
    if (cfg && !cfg->is_object()) return w.Bad(f + ".configuration", "is " + ShortJson(*cfg) + ", expected an object");
    static const json kEmpty = json::object();
    const json& conf = cfg ? *cfg : kEmpty;
    if (n == "transpose") {
      if (stage != 0) return w.Bad(f, "is transpose after the array -> bytes codec");
      const json* order = Member(conf, "order");
      std::vector<int> perm;
      if (order && order->is_array() && order->size() == rank) {
        std::vector<bool> seen(rank, false);
        for (const json& e : *order) {
          std::optional<int64_t> i = AsInt(e);
          if (!i || *i < 0 || static_cast<size_t>(*i) >= rank || seen[static_cast<size_t>(*i)]) {
            perm.clear();
            break;
          }
          seen[static_cast<size_t>(*i)] = true;
          perm.push_back(static_cast<int>(*i));
        }
      } else if (order && *order == "C") {
        for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int>(i));
      } else if (order && *order == "F") {
        for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int>(rank - 1 - i));
      }
      if (perm.size() != rank)
        return w.Bad(f + ".configuration.order", "is " + (order ? ShortJson(*order) : std::string("missing")) +
                                                     ", expected a permutation of 0.." + std::to_string(rank - 1));
      chain.transposes.push_back(std::move(perm));
    } else if (n == "bytes") {
      if (stage != 0) return w.Bad(f, "is a second array -> bytes codec");
      stage = 1;
      const json* endian = Member(conf, "endian");
      if (!endian || endian->is_null()) {
        if (item > 1) return w.Bad(f + ".configuration.endian", "is missing (required for multi-byte data types)");
      } else if (*endian == "big") {
        chain.big_endian = true;
      } else if (*endian != "little") {
        return w.Bad(f + ".configuration.endian", "is " + ShortJson(*endian) + ", expected \"little\" or \"big\"");
      }
    } else if (n == "sharding_indexed") {
      if (stage != 0) return w.Bad(f, "is a second array -> bytes codec");
      if (!chain.transposes.empty())
        return w.Unsupported(f,
                             "is sharding_indexed after a transpose; omezarrfs reads shards of untransposed "
                             "arrays (put the transpose inside the shard's codecs)" +
                                 kConvertHint);
      if (depth >= kMaxShardDepth)
        return w.Unsupported(f, "nests sharding_indexed more than " + std::to_string(kMaxShardDepth) + " deep");
      stage = 1;
      auto s = std::make_shared<Zarr3Sharding>();
      const json* cs = Member(conf, "chunk_shape");
      if (!cs) return w.Bad(f + ".configuration.chunk_shape", "is missing");
      OZ_ASSIGN_OR_RETURN(s->chunk_shape, Extents(w, f + ".configuration.chunk_shape", *cs));
      if (s->chunk_shape.size() != rank)
        return w.Bad(f + ".configuration.chunk_shape",
                     "is " + ShortJson(*cs) + ", expected " + std::to_string(rank) + " entries (the array's rank)");
      for (size_t a = 0; a < rank; ++a)
        if (shape[a] % s->chunk_shape[a] != 0)
          return w.Bad(f + ".configuration.chunk_shape",
                       "is " + ShortJson(*cs) + ": it must divide the shard shape " + Dims(shape) + " on every axis");
      const json* inner = Member(conf, "codecs");
      if (!inner) return w.Bad(f + ".configuration.codecs", "is missing");
      OZ_ASSIGN_OR_RETURN(s->codecs,
                          ParseChain(w, f + ".configuration.codecs", *inner, s->chunk_shape, item, depth + 1));
      const json* ic = Member(conf, "index_codecs");
      if (!ic || !ic->is_array() || ic->empty())
        return w.Bad(f + ".configuration.index_codecs",
                     "is " + (ic ? ShortJson(*ic) : std::string("missing")) + ", expected a list of codecs");
      auto is_le_bytes = [](const json& x) {
        const json* nm = Member(x, "name");
        if (!nm || *nm != "bytes") return false;
        const json* e = Member(x, "configuration") ? Member(*Member(x, "configuration"), "endian") : nullptr;
        return !e || *e == "little";
      };
      auto is_crc = [](const json& x) {
        const json* nm = Member(x, "name");
        return nm && *nm == "crc32c";
      };
      if (ic->size() == 1 && is_le_bytes((*ic)[0])) {
        s->index_crc32c = false;
      } else if (ic->size() == 2 && is_le_bytes((*ic)[0]) && is_crc((*ic)[1])) {
        s->index_crc32c = true;
      } else {
        return w.Unsupported(f + ".configuration.index_codecs",
                             "is " + ShortJson(*ic) +
                                 "; omezarrfs reads shard indexes encoded with bytes (little endian), optionally "
                                 "followed by crc32c" +
                                 kConvertHint);
      }
      const json* loc = Member(conf, "index_location");
      if (!loc || *loc == "end") {
        s->index_at_end = true;
      } else if (*loc == "start") {
        s->index_at_end = false;
      } else {
        return w.Bad(f + ".configuration.index_location", "is " + ShortJson(*loc) + ", expected \"start\" or \"end\"");
      }
      chain.sharding = std::move(s);
    } else if (n == "blosc" || n == "gzip" || n == "zstd" || n == "crc32c") {
      if (stage != 1) return w.Bad(f, "is the bytes -> bytes codec " + n + " before the array -> bytes codec");
      if (n == "crc32c") {
        chain.bytes_codecs.push_back(Zarr3BytesCodec::kCrc32c);
        continue;
      }
      if (++compressors > 1)
        return w.Unsupported(
            f, "is a second compressor (" + n + "); omezarrfs reads one compressor per chain" + kConvertHint);
      if (chain.sharding)
        return w.Unsupported(f, "compresses a whole shard (" + n +
                                    " after sharding_indexed); omezarrfs reads shards whose inner chunks are "
                                    "compressed (put " +
                                    n + " in the sharding codec's codecs)");
      if (n == "blosc") {
        chain.bytes_codecs.push_back(Zarr3BytesCodec::kBlosc);
        chain.compressor.id = ZarrCompressorId::kBlosc;
        const json* cname = Member(conf, "cname");
        chain.compressor.cname = cname && cname->is_string() ? cname->get<std::string>() : "lz4";
        const json* clevel = Member(conf, "clevel");
        chain.compressor.clevel = clevel ? static_cast<int>(std::clamp<int64_t>(AsInt(*clevel).value_or(5), 0, 9)) : 5;
        const json* shuffle = Member(conf, "shuffle");
        chain.compressor.shuffle = !shuffle || *shuffle == "shuffle" ? 1 : *shuffle == "bitshuffle" ? 2 : 0;
      } else if (n == "gzip") {
        chain.bytes_codecs.push_back(Zarr3BytesCodec::kGzip);
        chain.compressor.id = ZarrCompressorId::kGzip;
        const json* level = Member(conf, "level");
        chain.compressor.level = level ? static_cast<int>(std::clamp<int64_t>(AsInt(*level).value_or(6), 0, 9)) : 6;
      } else {
        chain.bytes_codecs.push_back(Zarr3BytesCodec::kZstd);
        chain.zstd = true;
        const json* level = Member(conf, "level");
        chain.zstd_level = level ? static_cast<int>(std::clamp<int64_t>(AsInt(*level).value_or(3), 1, 22)) : 3;
      }
    } else {
      return w.Unsupported(f, "is the codec \"" + n + "\", which omezarrfs does not read" + kConvertHint);
    }
  }
  if (stage != 1) return w.Bad(field, "has no array -> bytes codec (bytes or sharding_indexed)");
  return chain;
}

std::string ChainText(const Zarr3Chain& c) {
  std::string s;
  for (const auto& t : c.transposes) {
    s += "transpose(";
    for (size_t i = 0; i < t.size(); ++i) s += (i ? "," : "") + std::to_string(t[i]);
    s += ") > ";
  }
  if (c.sharding) {
    s += "sharding_indexed(" + Dims(c.sharding->chunk_shape) + ": " + ChainText(c.sharding->codecs) + "; index " +
         (c.sharding->index_at_end ? "end" : "start") + (c.sharding->index_crc32c ? ", crc32c" : "") + ")";
  } else {
    s += c.big_endian ? "bytes(big)" : "bytes(little)";
  }
  for (Zarr3BytesCodec b : c.bytes_codecs) {
    switch (b) {
      case Zarr3BytesCodec::kBlosc: s += " > blosc(" + c.compressor.cname + ")"; break;
      case Zarr3BytesCodec::kGzip: s += " > gzip"; break;
      case Zarr3BytesCodec::kZstd: s += " > zstd"; break;
      case Zarr3BytesCodec::kCrc32c: s += " > crc32c"; break;
    }
  }
  return s;
}

Status ParseFill(const Where& w, const json& v, DType t, std::array<uint8_t, 8>* out) {
  const std::string what = "is " + ShortJson(v) + ", which is not a " + std::string(DTypeName(t)) + " value";
  if (t == DType::kFloat32) {
    float f = 0;
    if (v.is_number()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) return w.Bad("fill_value", what);
      f = static_cast<float>(d);
    } else if (v == "NaN") {
      f = std::numeric_limits<float>::quiet_NaN();
    } else if (v == "Infinity") {
      f = std::numeric_limits<float>::infinity();
    } else if (v == "-Infinity") {
      f = -std::numeric_limits<float>::infinity();
    } else if (v.is_string() && v.get<std::string>().size() == 10 && v.get<std::string>().rfind("0x", 0) == 0) {
      uint32_t bits = 0;
      for (char ch : v.get<std::string>().substr(2)) {
        const int d = ch >= '0' && ch <= '9'   ? ch - '0'
                      : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                      : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                               : -1;
        if (d < 0) return w.Bad("fill_value", what);
        bits = bits << 4 | static_cast<uint32_t>(d);
      }
      std::memcpy(&f, &bits, 4);
    } else {
      return w.Bad("fill_value", what + " (a number, \"NaN\", \"Infinity\", \"-Infinity\" or \"0x\" + 8 hex digits)");
    }
    std::memcpy(out->data(), &f, 4);
    return OkStatus();
  }
  if (t == DType::kUint64) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) return w.Bad("fill_value", what);
    const uint64_t u = v.get<uint64_t>();
    std::memcpy(out->data(), &u, 8);
    return OkStatus();
  }
  std::optional<int64_t> i = AsInt(v);
  int64_t lo = 0, hi = 0;
  switch (t) {
    case DType::kUint8: hi = 255; break;
    case DType::kUint16: hi = 65535; break;
    case DType::kUint32: hi = 4294967295; break;
    case DType::kInt16:
      lo = -32768;
      hi = 32767;
      break;
    default: break;
  }
  if (!i || *i < lo || *i > hi) return w.Bad("fill_value", what);
  switch (t) {
    case DType::kUint8: (*out)[0] = static_cast<uint8_t>(*i); break;
    case DType::kUint16: {
      const auto x = static_cast<uint16_t>(*i);
      std::memcpy(out->data(), &x, 2);
      break;
    }
    case DType::kUint32: {
      const auto x = static_cast<uint32_t>(*i);
      std::memcpy(out->data(), &x, 4);
      break;
    }
    case DType::kInt16: {
      const auto x = static_cast<int16_t>(*i);
      std::memcpy(out->data(), &x, 2);
      break;
    }
    default: break;
  }
  return OkStatus();
}

uint64_t Product(const std::vector<int64_t>& v) {
  uint64_t n = 1;
  for (int64_t x : v) n *= static_cast<uint64_t>(x);
  return n;
}

// dst = numpy.transpose(src, perm): dst shape[k] = src_shape[perm[k]].
void Permute(const uint8_t* src, const std::vector<int64_t>& src_shape, const std::vector<int>& perm, size_t item,
             uint8_t* dst) {
  const size_t rank = src_shape.size();
  std::vector<int64_t> src_stride(rank, 1);
  for (size_t a = rank - 1; a > 0; --a) src_stride[a - 1] = src_stride[a] * src_shape[a];
  std::vector<int64_t> dshape(rank), dstride(rank);  // dst axis k walks src axis perm[k]
  for (size_t k = 0; k < rank; ++k) {
    dshape[k] = src_shape[static_cast<size_t>(perm[k])];
    dstride[k] = src_stride[static_cast<size_t>(perm[k])];
  }
  std::vector<int64_t> idx(rank, 0);
  const uint64_t n = Product(src_shape);
  int64_t off = 0;
  for (uint64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * item, src + static_cast<uint64_t>(off) * item, item);
    for (size_t k = rank; k-- > 0;) {
      off += dstride[k];
      if (++idx[k] < dshape[k]) break;
      off -= dstride[k] * dshape[k];
      idx[k] = 0;
    }
  }
}

// Copies a C-order block of `bshape` into the C-order array of `ashape` at origin `at`.
void PutBlock(const uint8_t* block, const std::vector<int64_t>& bshape, uint8_t* arr,
              const std::vector<int64_t>& ashape, const std::vector<int64_t>& at, size_t item) {
  const size_t rank = ashape.size();
  std::vector<int64_t> astride(rank, 1);
  for (size_t a = rank - 1; a > 0; --a) astride[a - 1] = astride[a] * ashape[a];
  const size_t row = static_cast<size_t>(bshape[rank - 1]) * item;
  const uint64_t rows = Product(bshape) / static_cast<uint64_t>(bshape[rank - 1]);
  std::vector<int64_t> idx(rank, 0);
  for (uint64_t r = 0; r < rows; ++r) {
    int64_t off = 0;
    for (size_t a = 0; a < rank; ++a) off += (at[a] + idx[a]) * astride[a];
    std::memcpy(arr + static_cast<uint64_t>(off) * item, block + r * row, row);
    for (size_t a = rank - 1; a-- > 0;) {
      if (++idx[a] < bshape[a]) break;
      idx[a] = 0;
    }
  }
}

void ByteSwap(uint8_t* p, uint64_t n, size_t item) {
  if (item == 1) return;
  for (uint64_t i = 0; i < n; ++i) std::reverse(p + i * item, p + (i + 1) * item);
}

Status DecodeShardInMemory(const Zarr3Sharding& s, std::string_view in, const std::vector<int64_t>& shape, DType dtype,
                           const uint8_t* fill, uint8_t* out) {
  const size_t rank = shape.size();
  const size_t item = DTypeSize(dtype);
  std::vector<int64_t> grid(rank);
  for (size_t a = 0; a < rank; ++a) grid[a] = shape[a] / s.chunk_shape[a];
  const uint64_t n = Product(grid);
  const uint64_t isize = ShardIndexBytes(n, s.index_crc32c);
  if (in.size() < isize)
    return CorruptError("the shard is " + std::to_string(in.size()) + " bytes, shorter than its index (" +
                        std::to_string(isize) + " bytes)");
  const uint64_t index_at = s.index_at_end ? in.size() - isize : 0;
  OZ_ASSIGN_OR_RETURN(
      std::vector<ShardIndexEntry> entries,
      DecodeShardIndex(in.substr(static_cast<size_t>(index_at), static_cast<size_t>(isize)), n, s.index_crc32c));
  const uint64_t data_begin = s.index_at_end ? 0 : isize;
  const uint64_t data_end = s.index_at_end ? in.size() - isize : in.size();
  const uint64_t inner_n = Product(s.chunk_shape);
  std::vector<uint8_t> block(static_cast<size_t>(inner_n * item));
  std::vector<int64_t> at(rank, 0), gi(rank, 0);
  for (uint64_t i = 0; i < n; ++i) {
    for (size_t a = 0; a < rank; ++a) at[a] = gi[a] * s.chunk_shape[a];
    const ShardIndexEntry& e = entries[i];
    OZ_RETURN_IF_ERROR(CheckShardEntry(e, i, data_begin, data_end));
    if (e.fill()) {
      FillVoxels(block.data(), inner_n, item, fill);
    } else {
      Status st = DecodeZarr3Chunk(s.codecs, in.substr(static_cast<size_t>(e.offset), static_cast<size_t>(e.nbytes)),
                                   s.chunk_shape, dtype, fill, block.data());
      if (!st.ok()) return Status(st.code(), "inner chunk " + std::to_string(i) + ": " + st.message());
    }
    PutBlock(block.data(), s.chunk_shape, out, shape, at, item);
    for (size_t a = rank; a-- > 0;) {
      if (++gi[a] < grid[a]) break;
      gi[a] = 0;
    }
  }
  return OkStatus();
}

}  // namespace

void FillVoxels(uint8_t* out, uint64_t n, size_t item, const uint8_t* fill) {
  if (item == 1) {
    std::memset(out, fill[0], static_cast<size_t>(n));
    return;
  }
  for (uint64_t i = 0; i < n; ++i) std::memcpy(out + i * item, fill, item);
}

std::string Zarr3Chain::Text() const { return ChainText(*this); }

uint64_t Zarr3ArrayMetadata::read_chunk_bytes() const { return Product(read_chunk) * DTypeSize(dtype); }

std::string Zarr3ArrayMetadata::ChunkKey(const Vec3& idx) const {
  const size_t rank = shape.size();
  std::string k = key_v2 ? "" : "c";
  for (size_t a = 0; a < rank; ++a) {
    const int64_t d = static_cast<int64_t>(a) - static_cast<int64_t>(rank) + 3;
    const int64_t i = d < 0 ? 0 : idx[static_cast<size_t>(d)];
    if (!(key_v2 && a == 0)) k += separator;
    k += std::to_string(i);
  }
  return k;
}

std::string Zarr3ArrayMetadata::Summary() const {
  return "shape " + Dims(shape) + ", " + data_type + ", chunks " + Dims(chunks) + ", codecs " + codecs.Text();
}

Result<Zarr3Node> ParseZarr3Node(std::string_view bytes, const std::string& where) {
  const json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  const Where w{where};
  if (doc.is_discarded() || !doc.is_object())
    return InvalidArgumentError(where + " is not a JSON object; is this a zarr v3 store (zarr.json)?");
  const json* fmt = Member(doc, "zarr_format");
  if (!fmt || AsInt(*fmt) != std::optional<int64_t>(3))
    return w.Bad("zarr_format", "is " + (fmt ? ShortJson(*fmt) : std::string("missing")) + ", expected 3");
  const json* nt = Member(doc, "node_type");
  Zarr3Node node;
  if (nt && *nt == "array") {
    node.array = true;
    return node;
  }
  if (!nt || *nt != "group")
    return w.Bad("node_type",
                 "is " + (nt ? ShortJson(*nt) : std::string("missing")) + ", expected \"array\" or \"group\"");
  const json* attrs = Member(doc, "attributes");
  const json* ome = attrs ? Member(*attrs, "ome") : nullptr;
  const json* ms = ome ? Member(*ome, "multiscales") : nullptr;
  if (!ms) return node;
  if (!ms->is_array() || ms->empty())
    return w.Bad("attributes.ome.multiscales", "is " + ShortJson(*ms) + ", expected a non-empty list");
  const json* ds = Member((*ms)[0], "datasets");
  if (!ds || !ds->is_array() || ds->empty())
    return w.Bad("attributes.ome.multiscales[0].datasets", "is missing or empty");
  for (size_t i = 0; i < ds->size(); ++i) {
    const std::string field = "attributes.ome.multiscales[0].datasets[" + std::to_string(i) + "].path";
    const json* p = Member((*ds)[i], "path");
    if (!p || !p->is_string()) return w.Bad(field, "is missing or not a string");
    std::string path = p->get<std::string>();
    if (Status s = ValidateKey(path); !s.ok()) return w.Bad(field, "is unsafe: " + s.message());
    node.dataset_paths.push_back(std::move(path));
  }
  return node;
}

Result<Zarr3ArrayMetadata> ParseZarr3Array(std::string_view bytes, const std::string& where) {
  const json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  const Where w{where};
  if (doc.is_discarded() || !doc.is_object())
    return InvalidArgumentError(where + " is not a JSON object; is this a zarr v3 array (zarr.json)?");
  Zarr3ArrayMetadata m;
  const json* fmt = Member(doc, "zarr_format");
  if (!fmt || AsInt(*fmt) != std::optional<int64_t>(3))
    return w.Bad("zarr_format", "is " + (fmt ? ShortJson(*fmt) : std::string("missing")) + ", expected 3");
  const json* nt = Member(doc, "node_type");
  if (!nt || *nt != "array")
    return w.Bad("node_type", "is " + (nt ? ShortJson(*nt) : std::string("missing")) + ", expected \"array\"");
  static const char* kKnown[] = {"zarr_format",         "node_type",          "shape",  "data_type",  "chunk_grid",
                                 "fill_value",          "chunk_key_encoding", "codecs", "attributes", "dimension_names",
                                 "storage_transformers"};
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (std::find(std::begin(kKnown), std::end(kKnown), it.key()) != std::end(kKnown)) continue;
    const json* mu = Member(*it, "must_understand");
    if (!mu || *mu != false)
      return w.Unsupported(it.key(),
                           "is an extension omezarrfs does not know (and it does not say "
                           "\"must_understand\": false)" +
                               kConvertHint);
  }
  if (const json* st = Member(doc, "storage_transformers"); st && !(st->is_array() && st->empty()))
    return w.Unsupported("storage_transformers",
                         "is " + ShortJson(*st) + "; omezarrfs reads arrays without them" + kConvertHint);

  const json* shape = Member(doc, "shape");
  if (!shape) return w.Bad("shape", "is missing");
  OZ_ASSIGN_OR_RETURN(m.shape, Extents(w, "shape", *shape));
  const size_t rank = m.shape.size();
  if (rank < 2)
    return w.Unsupported("shape", "is " + ShortJson(*shape) +
                                      ": a 1-D array; omezarrfs serves 3-D (z, y, x) arrays (or "
                                      "2-D as one slice)");
  for (size_t a = 0; a + 3 < rank; ++a)
    if (m.shape[a] != 1)
      return w.Unsupported("shape", "is " + ShortJson(*shape) + ": axis " + std::to_string(a) + " has extent " +
                                        std::to_string(m.shape[a]) +
                                        "; omezarrfs serves the last three axes (z, y, x) and needs every axis "
                                        "before them to have extent 1");

  const json* dt = Member(doc, "data_type");
  if (!dt || !dt->is_string())
    return w.Bad("data_type", "is " + (dt ? ShortJson(*dt) : std::string("missing")) + ", expected a data type name");
  m.data_type = dt->get<std::string>();
  std::optional<DType> dtype = DTypeFromName(m.data_type);
  if (!dtype)
    return w.Unsupported("data_type", "is \"" + m.data_type + "\"; omezarrfs reads " + std::string(kDTypeNames) +
                                          ": convert the array (e.g. numpy astype with zarr-python) first");
  m.dtype = *dtype;
  const size_t item = DTypeSize(m.dtype);

  const json* grid = Member(doc, "chunk_grid");
  const json* gname = grid ? Member(*grid, "name") : nullptr;
  if (!gname || *gname != "regular")
    return w.Unsupported("chunk_grid", "is " + (grid ? ShortJson(*grid) : std::string("missing")) +
                                           "; omezarrfs reads the \"regular\" chunk grid only (rechunk the array "
                                           "with zarr-python or tensorstore)");
  const json* gconf = Member(*grid, "configuration");
  const json* cs = gconf ? Member(*gconf, "chunk_shape") : nullptr;
  if (!cs) return w.Bad("chunk_grid.configuration.chunk_shape", "is missing");
  OZ_ASSIGN_OR_RETURN(m.chunks, Extents(w, "chunk_grid.configuration.chunk_shape", *cs));
  if (m.chunks.size() != rank)
    return w.Bad("chunk_grid.configuration.chunk_shape",
                 "is " + ShortJson(*cs) + " but \"shape\" has " + std::to_string(rank) + " entries (rank mismatch)");
  // The stored chunk (the shard) may be large when sharded; the read unit is bounded below.
  {
    uint64_t n = 1;
    for (int64_t c : m.chunks) {
      if (static_cast<uint64_t>(c) > (uint64_t{1} << 50) / n)
        return w.Bad("chunk_grid.configuration.chunk_shape", "is " + ShortJson(*cs) + ": too many voxels per chunk");
      n *= static_cast<uint64_t>(c);
    }
  }

  const json* ke = Member(doc, "chunk_key_encoding");
  const json* kname = ke ? Member(*ke, "name") : nullptr;
  const json* kconf = ke ? Member(*ke, "configuration") : nullptr;
  const json* sep = kconf ? Member(*kconf, "separator") : nullptr;
  if (!kname || (*kname != "default" && *kname != "v2"))
    return w.Unsupported("chunk_key_encoding", "is " + (ke ? ShortJson(*ke) : std::string("missing")) +
                                                   ", expected {\"name\": \"default\"} or {\"name\": \"v2\"}");
  m.key_v2 = *kname == "v2";
  m.separator = m.key_v2 ? '.' : '/';
  if (sep) {
    if (*sep == "/") {
      m.separator = '/';
    } else if (*sep == ".") {
      m.separator = '.';
    } else {
      return w.Bad("chunk_key_encoding.configuration.separator", "is " + ShortJson(*sep) + ", expected \"/\" or \".\"");
    }
  }

  const json* fill = Member(doc, "fill_value");
  if (!fill) return w.Bad("fill_value", "is missing");
  OZ_RETURN_IF_ERROR(ParseFill(w, *fill, m.dtype, &m.fill));

  const json* codecs = Member(doc, "codecs");
  if (!codecs) return w.Bad("codecs", "is missing");
  OZ_ASSIGN_OR_RETURN(m.codecs, ParseChain(w, "codecs", *codecs, m.chunks, item, 0));
  m.read_chunk = m.codecs.sharding ? m.codecs.sharding->chunk_shape : m.chunks;
  if (Product(m.read_chunk) > kMaxChunkBytes / item)
    return w.Bad(m.codecs.sharding ? "codecs[0].configuration.chunk_shape" : "chunk_grid.configuration.chunk_shape",
                 "is " + Dims(m.read_chunk) + ": one chunk would be more than 1 GiB decoded");
  for (int d = 0; d < 3; ++d) {
    const int64_t a = static_cast<int64_t>(rank) - 3 + d;
    m.shape3[d] = a < 0 ? 1 : m.shape[static_cast<size_t>(a)];
    m.chunks3[d] = a < 0 ? 1 : m.chunks[static_cast<size_t>(a)];
    m.read3[d] = a < 0 ? 1 : m.read_chunk[static_cast<size_t>(a)];
  }
  if (!CheckedVolume(m.shape3) || *CheckedVolume(m.shape3) > (INT64_MAX / 2))
    return w.Bad("shape", "is " + ShortJson(*shape) + ": too many voxels to address");
  return m;
}

Status DecodeZarr3Chunk(const Zarr3Chain& chain, std::string_view in, const std::vector<int64_t>& shape, DType dtype,
                        const uint8_t* fill, uint8_t* out) {
  const size_t item = DTypeSize(dtype);
  const uint64_t n = Product(shape);
  const uint64_t array_bytes = n * item;
  // Size of the data after each bytes -> bytes codec, forward (0 = unknown: after a shard).
  std::vector<uint64_t> size_after(chain.bytes_codecs.size() + 1);
  size_after[0] = chain.sharding ? 0 : array_bytes;
  for (size_t k = 0; k < chain.bytes_codecs.size(); ++k)
    size_after[k + 1] = chain.bytes_codecs[k] == Zarr3BytesCodec::kCrc32c && size_after[k] ? size_after[k] + 4 : 0;
  std::string buf;
  std::string_view cur = in;
  for (size_t k = chain.bytes_codecs.size(); k-- > 0;) {
    const Zarr3BytesCodec c = chain.bytes_codecs[k];
    if (c == Zarr3BytesCodec::kCrc32c) {
      if (cur.size() < 4) return CorruptError("crc32c: the data is shorter than its checksum");
      const auto* p = reinterpret_cast<const unsigned char*>(cur.data() + cur.size() - 4);
      const uint32_t stored = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                              static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
      if (Crc32c(cur.data(), cur.size() - 4) != stored) return CorruptError("crc32c checksum mismatch");
      cur.remove_suffix(4);
      continue;
    }
    const uint64_t want = size_after[k];  // known: a compressor never follows a shard
    if (want == 0 || want > kMaxChunkBytes + 4096) return CorruptError("cannot size the decompressed data");
    std::string dec(static_cast<size_t>(want), '\0');
    Status st = c == Zarr3BytesCodec::kBlosc  ? BloscDecode(cur, dec.data(), dec.size())
                : c == Zarr3BytesCodec::kGzip ? ZlibDecode(cur, dec.data(), dec.size(), /*gzip=*/true)
                                              : ZstdDecode(cur, dec.data(), dec.size());
    if (!st.ok())
      return Status(st.code(), std::string(c == Zarr3BytesCodec::kBlosc  ? "blosc"
                                           : c == Zarr3BytesCodec::kGzip ? "gzip"
                                                                         : "zstd") +
                                   ": " + st.message());
    buf = std::move(dec);
    cur = buf;
  }
  if (chain.sharding) return DecodeShardInMemory(*chain.sharding, cur, shape, dtype, fill, out);
  if (cur.size() != array_bytes)
    return CorruptError("the chunk decodes to " + std::to_string(cur.size()) + " bytes, expected " +
                        std::to_string(array_bytes) + " (" + Dims(shape) + " " + std::string(DTypeName(dtype)) + ")");
  if (chain.transposes.empty()) {
    std::memcpy(out, cur.data(), static_cast<size_t>(array_bytes));
    if (chain.big_endian) ByteSwap(out, n, item);
    return OkStatus();
  }
  // shapes[k]: the array's shape before transpose k; shapes.back() is what `bytes` holds.
  std::vector<std::vector<int64_t>> shapes{shape};
  for (const auto& perm : chain.transposes) {
    std::vector<int64_t> s(shape.size());
    for (size_t a = 0; a < s.size(); ++a) s[a] = shapes.back()[static_cast<size_t>(perm[a])];
    shapes.push_back(std::move(s));
  }
  std::vector<uint8_t> a(cur.begin(), cur.end()), b(a.size());
  if (chain.big_endian) ByteSwap(a.data(), n, item);
  for (size_t k = chain.transposes.size(); k-- > 0;) {
    // Undo transpose k: a has shapes[k + 1]; b = transpose(a, inverse(perm)) has shapes[k].
    const std::vector<int>& perm = chain.transposes[k];
    std::vector<int> inv(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inv[static_cast<size_t>(perm[i])] = static_cast<int>(i);
    Permute(a.data(), shapes[k + 1], inv, item, b.data());
    std::swap(a, b);
  }
  std::memcpy(out, a.data(), static_cast<size_t>(array_bytes));
  return OkStatus();
}

}  // namespace oz
