// TIFF page layouts from ImageDescription. The OME-XML reader is a tag scanner, not an XML
// parser: it reads element names and attributes (which is all OME's plane mapping needs) and
// ignores text, so no XML library is linked for it.
#include "core/source/tiff_pages.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>

namespace oz {
namespace {

// Far beyond any real file; keeps products of sizes far from overflow.
constexpr int64_t kMaxAxis = 1 << 24;

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n' || s.back() == 0))
    s.remove_suffix(1);
  return s;
}

std::optional<int64_t> ParseCount(std::string_view s) {
  s = Trim(s);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string Range(int64_t n) { return "0.." + std::to_string(n - 1); }

// ---------------------------------------------------------------------------------------------
// ImageJ: "ImageJ=1.54f\nimages=24\nchannels=2\nslices=4\nframes=3\nhyperstack=true\n...".

Result<PageLayout> ParseImageJ(std::string_view d, const std::string& file) {
  std::map<std::string, std::string, std::less<>> kv;
  while (!d.empty()) {
    size_t nl = d.find('\n');
    std::string_view line = d.substr(0, nl);
    d = nl == std::string_view::npos ? std::string_view() : d.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq != std::string_view::npos)
      kv[std::string(Trim(line.substr(0, eq)))] = std::string(Trim(line.substr(eq + 1)));
  }
  PageLayout l;
  l.kind = "ImageJ hyperstack";
  l.order = "TZC";  // ImageJ stores planes channel fastest, then slice, then frame
  auto get = [&](const char* key, int64_t* out) -> Status {
    auto it = kv.find(key);
    if (it == kv.end()) return OkStatus();
    std::optional<int64_t> v = ParseCount(it->second);
    if (!v || *v < 1 || *v > kMaxAxis)
      return UnsupportedError(file + ": its ImageJ description has " + std::string(key) + "=" + it->second +
                              ", not a positive count; fix the description (e.g. in ImageJ: Image > Properties) "
                              "or re-save the stack");
    *out = *v;
    return OkStatus();
  };
  int64_t images = 0, slices = -1;
  OZ_RETURN_IF_ERROR(get("channels", &l.channels));
  OZ_RETURN_IF_ERROR(get("frames", &l.frames));
  OZ_RETURN_IF_ERROR(get("slices", &slices));
  OZ_RETURN_IF_ERROR(get("images", &images));
  if (slices < 0 && images > 0 && images % (l.channels * l.frames) == 0) slices = images / (l.channels * l.frames);
  l.slices = slices;
  if (images > 0 && slices > 0 && images != l.channels * slices * l.frames)
    return UnsupportedError(file + ": its ImageJ description says images=" + std::to_string(images) +
                            " but channels=" + std::to_string(l.channels) + " x slices=" + std::to_string(slices) +
                            " x frames=" + std::to_string(l.frames) + " = " +
                            std::to_string(l.channels * slices * l.frames) + "; fix the description or re-save it");
  l.imagej_images = images;
  l.declared = "channels=" + std::to_string(l.channels) + ", slices=" + (slices < 0 ? "?" : std::to_string(slices)) +
               ", frames=" + std::to_string(l.frames) + " (pages in CZT order, channel fastest)";
  return l;
}

// ---------------------------------------------------------------------------------------------
// OME-XML.

struct Tag {
  std::string name;  // local name (namespace prefix dropped)
  bool closing = false;
  bool self_closing = false;
  std::map<std::string, std::string, std::less<>> attrs;
};

std::string Unescape(std::string_view s) {
  static constexpr std::pair<std::string_view, char> kEntities[] = {
      {"&quot;", '"'}, {"&apos;", '\''}, {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}};
  std::string out;
  for (size_t i = 0; i < s.size();) {
    bool done = false;
    if (s[i] == '&')
      for (const auto& [ent, c] : kEntities)
        if (s.substr(i, ent.size()) == ent) {
          out += c;
          i += ent.size();
          done = true;
          break;
        }
    if (!done) out += s[i++];
  }
  return out;
}

std::string LocalName(std::string_view n) {
  size_t colon = n.find(':');
  return std::string(colon == std::string_view::npos ? n : n.substr(colon + 1));
}

// Every element tag of `xml`, in document order; comments, declarations and text are skipped.
// Malformed markup ends the scan (what was read so far is returned).
std::vector<Tag> ScanTags(std::string_view xml) {
  std::vector<Tag> tags;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  size_t i = 0;
  while ((i = xml.find('<', i)) != std::string_view::npos) {
    if (StartsWith(xml.substr(i), "<!--")) {
      size_t e = xml.find("-->", i);
      if (e == std::string_view::npos) break;
      i = e + 3;
      continue;
    }
    if (i + 1 < xml.size() && (xml[i + 1] == '?' || xml[i + 1] == '!')) {
      size_t e = xml.find('>', i);
      if (e == std::string_view::npos) break;
      i = e + 1;
      continue;
    }
    Tag t;
    ++i;
    if (i < xml.size() && xml[i] == '/') {
      t.closing = true;
      ++i;
    }
    size_t n0 = i;
    while (i < xml.size() && !is_space(xml[i]) && xml[i] != '>' && xml[i] != '/') ++i;
    t.name = LocalName(xml.substr(n0, i - n0));
    bool ok = false;
    while (i < xml.size()) {
      while (i < xml.size() && is_space(xml[i])) ++i;
      if (i >= xml.size()) break;
      if (xml[i] == '>') {
        ok = true;
        ++i;
        break;
      }
      if (xml[i] == '/') {
        t.self_closing = true;
        ++i;
        continue;
      }
      size_t a0 = i;
      while (i < xml.size() && !is_space(xml[i]) && xml[i] != '=' && xml[i] != '>') ++i;
      std::string attr = LocalName(xml.substr(a0, i - a0));
      while (i < xml.size() && is_space(xml[i])) ++i;
      if (i >= xml.size() || xml[i] != '=') continue;  // attribute without a value: ignored
      ++i;
      while (i < xml.size() && is_space(xml[i])) ++i;
      if (i >= xml.size() || (xml[i] != '"' && xml[i] != '\'')) break;
      char q = xml[i++];
      size_t v0 = i;
      size_t e = xml.find(q, i);
      if (e == std::string_view::npos) break;
      t.attrs[attr] = Unescape(xml.substr(v0, e - v0));
      i = e + 1;
    }
    if (!ok) break;
    tags.push_back(std::move(t));
  }
  return tags;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<PageLayout> ParseOme(std::string_view xml, const std::string& file) {
  const std::vector<Tag> tags = ScanTags(xml);
  PageLayout l;
  l.kind = "OME-TIFF";
  l.keyed_by_directory = true;
  int images = 0;
  const Tag* pixels = nullptr;
  struct TiffData {
    const Tag* tag;
    std::string file_name;  // from a UUID inside it
  };
  std::vector<TiffData> tiff_data;
  bool in_tiff_data = false;
  for (const Tag& t : tags) {
    if (t.closing) {
      if (t.name == "TiffData") in_tiff_data = false;
      continue;
    }
    if (t.name == "Image") ++images;
    if (t.name == "BinaryOnly")
      return UnsupportedError(file +
                              " is an OME-TIFF whose metadata lives in a companion file (BinaryOnly); omezarrfs "
                              "reads one self-contained file: convert it with bfconvert COMPANION.ome.xml OUT.ome.tif");
    if (t.name == "Pixels" && !pixels) pixels = &t;
    if (t.name == "TiffData") {
      tiff_data.push_back({&t, ""});
      in_tiff_data = !t.self_closing;
    }
    if (t.name == "UUID" && in_tiff_data) {
      auto fn = t.attrs.find("FileName");
      if (fn != t.attrs.end()) tiff_data.back().file_name = fn->second;
    }
  }
  if (images > 1)
    return UnsupportedError(file + " is an OME-TIFF holding " + std::to_string(images) +
                            " images (series); omezarrfs serves one image: extract one series, e.g. bfconvert "
                            "-series 0 IN OUT.ome.tif, or tifffile: imwrite(OUT, imread(IN, series=0))");
  if (!pixels)
    return UnsupportedError(file + ": its OME-XML has no Pixels element; fix the metadata or re-save the file");
  std::string order = "XYZCT";
  if (auto it = pixels->attrs.find("DimensionOrder"); it != pixels->attrs.end()) order = it->second;
  {
    std::string sorted = order;
    std::sort(sorted.begin(), sorted.end());
    if (sorted != "CTXYZ" || order.substr(0, 2) != "XY")
      return UnsupportedError(file + ": OME DimensionOrder=\"" + order +
                              "\" is not one of XYZCT, XYZTC, XYCZT, XYCTZ, XYTCZ, XYTZC; fix the metadata");
  }
  auto size = [&](const char* key, int64_t* out) -> Status {
    auto it = pixels->attrs.find(key);
    std::optional<int64_t> v = it == pixels->attrs.end() ? std::optional<int64_t>(1) : ParseCount(it->second);
    if (!v || *v < 1 || *v > kMaxAxis)
      return UnsupportedError(file + ": OME Pixels " + key + "=\"" + (it == pixels->attrs.end() ? "" : it->second) +
                              "\" is not a positive count; fix the metadata");
    *out = *v;
    return OkStatus();
  };
  OZ_RETURN_IF_ERROR(size("SizeC", &l.channels));
  OZ_RETURN_IF_ERROR(size("SizeZ", &l.slices));
  OZ_RETURN_IF_ERROR(size("SizeT", &l.frames));
  l.order = {order[4], order[3], order[2]};  // slowest first
  l.declared = "SizeC=" + std::to_string(l.channels) + ", SizeZ=" + std::to_string(l.slices) +
               ", SizeT=" + std::to_string(l.frames) + " (DimensionOrder " + order + ")";

  const int64_t planes = l.planes();
  const std::string own = BaseName(file);
  for (const TiffData& td : tiff_data) {
    if (!td.file_name.empty() && td.file_name != own)
      return UnsupportedError(file + " is part of a multi-file OME-TIFF (its planes are also in " + td.file_name +
                              "); omezarrfs reads one file: merge them, e.g. bfconvert IN OUT.ome.tif");
    auto attr = [&](const char* key, int64_t def, int64_t* out) -> Status {
      auto it = td.tag->attrs.find(key);
      if (it == td.tag->attrs.end()) {
        *out = def;
        return OkStatus();
      }
      std::optional<int64_t> v = ParseCount(it->second);
      if (!v || *v < 0 || *v > kMaxAxis * int64_t{64})
        return UnsupportedError(file + ": OME TiffData " + key + "=\"" + it->second +
                                "\" is not a count; fix the metadata");
      *out = *v;
      return OkStatus();
    };
    int64_t ifd = 0, fc = 0, fz = 0, ft = 0, count = 0;
    const bool has_ifd = td.tag->attrs.count("IFD") != 0;
    OZ_RETURN_IF_ERROR(attr("IFD", 0, &ifd));
    OZ_RETURN_IF_ERROR(attr("FirstC", 0, &fc));
    OZ_RETURN_IF_ERROR(attr("FirstZ", 0, &fz));
    OZ_RETURN_IF_ERROR(attr("FirstT", 0, &ft));
    if (fc >= l.channels || fz >= l.slices || ft >= l.frames)
      return UnsupportedError(file + ": an OME TiffData starts at plane C=" + std::to_string(fc) +
                              ", Z=" + std::to_string(fz) + ", T=" + std::to_string(ft) + ", outside " + l.declared +
                              "; fix the metadata");
    // Plane index of (fc, fz, ft) in `order`.
    int64_t first = 0;
    for (char a : l.order) {
      const int64_t n = a == 'C' ? l.channels : a == 'Z' ? l.slices : l.frames;
      first = first * n + (a == 'C' ? fc : a == 'Z' ? fz : ft);
    }
    OZ_RETURN_IF_ERROR(attr("PlaneCount", has_ifd ? 1 : planes - first, &count));
    if (count < 1 || first + count > planes)
      return UnsupportedError(file + ": an OME TiffData maps " + std::to_string(count) + " planes from plane " +
                              std::to_string(first) + ", beyond the " + std::to_string(planes) + " planes of " +
                              l.declared + "; fix the metadata");
    l.runs.push_back(PageRun{ifd, first, count});
  }
  if (l.runs.empty()) l.runs.push_back(PageRun{0, 0, planes});
  return l;
}

// ---------------------------------------------------------------------------------------------
// tifffile's shaped description: {"shape": [2, 5, 20, 30]} or with "axes": "CZYX".

Result<PageLayout> ParseShaped(const nlohmann::json& j, const std::string& file, bool* recognised) {
  *recognised = false;
  PageLayout l;
  if (!j.is_object() || !j.contains("shape") || !j["shape"].is_array()) return l;
  std::vector<int64_t> shape;
  for (const auto& v : j["shape"]) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0) return l;
    shape.push_back(v.get<int64_t>());
  }
  std::string axes;
  if (j.contains("axes") && j["axes"].is_string()) axes = j["axes"].get<std::string>();
  if (!axes.empty() && axes.size() != shape.size()) axes.clear();
  if (shape.size() < 2) return l;
  *recognised = true;
  l.kind = "tifffile shaped";
  std::string shape_text = "[";
  for (size_t i = 0; i < shape.size(); ++i) shape_text += (i ? ", " : "") + std::to_string(shape[i]);
  shape_text += "]";
  l.declared = "shape " + shape_text + (axes.empty() ? std::string() : " (axes " + axes + ")");
  l.order.clear();
  l.slices = 1;
  std::string stack_axes;
  for (size_t i = 0; i + 2 < shape.size(); ++i) {
    if (shape[i] > kMaxAxis)
      return UnsupportedError(file + ": tifffile " + l.declared + " has an axis of " + std::to_string(shape[i]) +
                              "; fix or re-save the file");
    if (shape[i] == 1) continue;
    char a = axes.empty() ? '?' : axes[i];
    if (a == 'C' || a == 'Z' || a == 'T') {
      if (l.order.find(a) != std::string::npos)
        return UnsupportedError(file + ": tifffile " + l.declared + " names axis " + std::string(1, a) +
                                " twice; re-save it with distinct axes");
      (a == 'C' ? l.channels : a == 'Z' ? l.slices : l.frames) = shape[i];
      l.order += a;
    } else {
      stack_axes += a;
      l.order += '?';
      l.slices = shape[i];
    }
  }
  const std::string hint =
      "; re-save it as an ImageJ hyperstack (tifffile: imwrite(OUT, data, imagej=True, metadata={'axes': "
      "'TZCYX'})) so -o channel= and -o t= can choose, or one file per z slice";
  if (stack_axes.size() > 1 || (stack_axes.size() == 1 && l.order.find('Z') != std::string::npos))
    return UnsupportedError(file + ": tifffile " + l.declared + " has more than one stack axis" +
                            (axes.empty() ? " and no axis names" : "") + ", so its pages are not one z-stack" + hint);
  for (char& a : l.order)
    if (a == '?') a = 'Z';
  if (l.order.empty()) {
    // One plane: tifffile writes such a description on the first page of every series, so a
    // file written one page at a time says nothing about its other pages (plain layout).
    *recognised = false;
    return PageLayout{};
  }
  return l;
}

}  // namespace

Result<PageLayout> ParsePageLayout(std::string_view description, const std::string& file) {
  std::string_view d = Trim(description);
  if (StartsWith(d, "ImageJ=")) return ParseImageJ(d, file);
  if (StartsWith(d, "<") && d.find("<OME") != std::string_view::npos) return ParseOme(d, file);
  if (StartsWith(d, "{")) {
    nlohmann::json j = nlohmann::json::parse(d.begin(), d.end(), nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      bool recognised = false;
      OZ_ASSIGN_OR_RETURN(PageLayout l, ParseShaped(j, file, &recognised));
      if (recognised) return l;
    }
  }
  return PageLayout{};
}

std::optional<PagePlane> PlaneOfPage(const PageLayout& l, int64_t key) {
  int64_t plane = -1;
  if (l.runs.empty()) {
    plane = key;
  } else {
    for (const PageRun& r : l.runs)
      if (key >= r.first_page && key - r.first_page < r.count) {
        plane = r.first_plane + (key - r.first_page);
        break;
      }
  }
  if (plane < 0 || plane >= l.planes()) return std::nullopt;
  PagePlane p;
  for (auto it = l.order.rbegin(); it != l.order.rend(); ++it) {
    const int64_t n = *it == 'C' ? l.channels : *it == 'Z' ? l.slices : l.frames;
    (*it == 'C' ? p.c : *it == 'Z' ? p.z : p.t) = plane % n;
    plane /= n;
  }
  return p;
}

Status CheckPlaneChoice(const PageLayout& l, int channel, int time, const std::string& file) {
  const std::string what = file + (l.kind.empty() ? std::string(" (a multi-page TIFF)") : " is an " + l.kind) +
                           (l.declared.empty() ? std::string() : " with " + l.declared);
  if (channel >= l.channels)
    return InvalidArgumentError(
        "-o channel=" + std::to_string(channel) + " is out of range: " + what +
        (l.channels == 1 ? "; it has one channel, drop channel=" : "; use channel=" + Range(l.channels)));
  if (time >= l.frames)
    return InvalidArgumentError("-o t=" + std::to_string(time) + " is out of range: " + what +
                                (l.frames == 1 ? "; it has one time point, drop t=" : "; use t=" + Range(l.frames)));
  std::vector<std::string> need;
  if (l.channels > 1 && channel < 0) need.push_back("-o channel=" + Range(l.channels) + " (one channel)");
  if (l.frames > 1 && time < 0) need.push_back("-o t=" + Range(l.frames) + " (one time point)");
  if (need.empty()) return OkStatus();
  std::string m = what + "; omezarrfs serves one z-stack of it: choose " + need[0];
  if (need.size() > 1) m += " and " + need[1];
  return InvalidArgumentError(m);
}

}  // namespace oz
