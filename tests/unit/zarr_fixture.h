// MemStore (an in-memory KvStore fake that records reads) and WriteZarrArray (a small zarr v2
// writer over it) for the zarr source tests.
#pragma once

#include <blosc.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/codec/zarr_codec.h"
#include "core/store/kv_store.h"

namespace oz::testing {

class MemStore : public KvStore {
 public:
  explicit MemStore(std::string name = "mem://store") : name_(std::move(name)) {}

  Result<std::optional<KvValue>> Read(std::string_view key, uint64_t max_bytes) override {
    OZ_RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard<std::mutex> l(mu_);
    ++reads_[std::string(key)];
    if (fail_key_ == key) return IoError(name_ + "/" + std::string(key) + ": injected failure");
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return std::optional<KvValue>();
    if (it->second.size() > max_bytes)
      return CorruptError(name_ + "/" + std::string(key) + " is larger than " + std::to_string(max_bytes));
    return std::optional<KvValue>(KvValue{it->second, "v" + std::to_string(it->second.size())});
  }
  std::string Describe() const override { return name_; }

  void Put(const std::string& key, std::string value) {
    std::lock_guard<std::mutex> l(mu_);
    data_[key] = std::move(value);
  }
  void Erase(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    data_.erase(key);
  }
  bool Has(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    return data_.count(key) != 0;
  }
  int Reads(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = reads_.find(key);
    return it == reads_.end() ? 0 : it->second;
  }
  int TotalReads() {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (auto& [k, v] : reads_) n += v;
    return n;
  }
  void FailKey(std::string key) {
    std::lock_guard<std::mutex> l(mu_);
    fail_key_ = std::move(key);
  }

 private:
  std::string name_;
  std::mutex mu_;
  std::map<std::string, std::string> data_;
  std::map<std::string, int> reads_;
  std::string fail_key_;
};

// Encodes raw chunk bytes with a numcodecs-style compressor config (null, blosc, zlib, gzip).
inline std::string EncodeWith(const nlohmann::json& comp, const std::string& raw, size_t typesize) {
  if (comp.is_null()) return raw;
  const std::string id = comp["id"];
  if (id == "blosc") {
    std::string out(raw.size() + BLOSC_MAX_OVERHEAD, '\0');
    int n = blosc_compress_ctx(comp.value("clevel", 5), comp.value("shuffle", 1), typesize, raw.size(), raw.data(),
                               out.data(), out.size(), comp["cname"].get<std::string>().c_str(), 0, 1);
    out.resize(static_cast<size_t>(n > 0 ? n : 0));
    return out;
  }
  auto r = ZlibEncode(raw.data(), raw.size(), comp.value("level", 1), id == "gzip");
  return r.ok() ? *r : std::string();
}

struct ZarrSpec {
  std::vector<int64_t> shape;
  std::vector<int64_t> chunks;
  std::string dtype = "<u2";  // |u1, <u2, >u2
  char order = 'C';
  char separator = '.';
  nlohmann::json compressor = nullptr;
  nlohmann::json fill_value = 0;
};

// Writes `spec` with values value(flat C-order index over `shape`) under prefix ("" or "p/").
// Chunks for which skip(chunk index) is true are not written (absent). Returns the .zarray JSON.
inline nlohmann::json WriteZarrArray(MemStore& store, const std::string& prefix, const ZarrSpec& spec,
                                     const std::function<uint16_t(const std::vector<int64_t>&)>& value,
                                     const std::function<bool(const std::vector<int64_t>&)>& skip = nullptr) {
  const size_t rank = spec.shape.size();
  const size_t item = spec.dtype == "|u1" ? 1 : 2;
  const bool be = spec.dtype[0] == '>';
  nlohmann::json z = {{"zarr_format", 2},
                      {"shape", spec.shape},
                      {"chunks", spec.chunks},
                      {"dtype", spec.dtype},
                      {"order", std::string(1, spec.order)},
                      {"fill_value", spec.fill_value},
                      {"compressor", spec.compressor},
                      {"filters", nullptr},
                      {"dimension_separator", std::string(1, spec.separator)}};
  store.Put(prefix + ".zarray", z.dump());
  std::vector<int64_t> grid(rank);
  int64_t nchunks = 1, per_chunk = 1;
  for (size_t a = 0; a < rank; ++a) {
    grid[a] = (spec.shape[a] + spec.chunks[a] - 1) / spec.chunks[a];
    nchunks *= grid[a];
    per_chunk *= spec.chunks[a];
  }
  for (int64_t k = 0; k < nchunks; ++k) {
    std::vector<int64_t> ci(rank);
    int64_t r = k;
    for (size_t a = rank; a-- > 0;) {
      ci[a] = r % grid[a];
      r /= grid[a];
    }
    if (skip && skip(ci)) continue;
    std::string raw(static_cast<size_t>(per_chunk) * item, '\0');
    const uint16_t fill = spec.fill_value.is_null() ? 0 : spec.fill_value.get<uint16_t>();
    for (int64_t e = 0; e < per_chunk; ++e) {
      // Element e of the chunk in the chunk's memory order -> its position.
      std::vector<int64_t> pos(rank);
      int64_t rem = e;
      if (spec.order == 'C') {
        for (size_t a = rank; a-- > 0;) {
          pos[a] = rem % spec.chunks[a];
          rem /= spec.chunks[a];
        }
      } else {
        for (size_t a = 0; a < rank; ++a) {
          pos[a] = rem % spec.chunks[a];
          rem /= spec.chunks[a];
        }
      }
      bool inside = true;
      for (size_t a = 0; a < rank; ++a) {
        pos[a] += ci[a] * spec.chunks[a];
        if (pos[a] >= spec.shape[a]) inside = false;
      }
      const uint16_t v = inside ? value(pos) : fill;  // zarr pads edge chunks with the fill value
      if (item == 1) {
        raw[static_cast<size_t>(e)] = static_cast<char>(v);
      } else {
        raw[static_cast<size_t>(e) * 2 + (be ? 1 : 0)] = static_cast<char>(v & 0xff);
        raw[static_cast<size_t>(e) * 2 + (be ? 0 : 1)] = static_cast<char>(v >> 8);
      }
    }
    std::string key = prefix;
    for (size_t a = 0; a < rank; ++a) key += (a ? std::string(1, spec.separator) : "") + std::to_string(ci[a]);
    store.Put(key, EncodeWith(spec.compressor, raw, item));
  }
  return z;
}

}  // namespace oz::testing
