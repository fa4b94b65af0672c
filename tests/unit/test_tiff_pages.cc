// Page layouts from ImageDescription: ImageJ, OME-XML, tifffile shape; plane of each page and the
// channel/time choice, as tables.
#include <catch2/catch.hpp>

#include "core/source/tiff_pages.h"

namespace oz {
namespace {

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

PageLayout Parse(const std::string& d) {
  Result<PageLayout> r = ParsePageLayout(d, "f.tif");
  INFO(r.status().message());
  REQUIRE(r.ok());
  return *r;
}

std::string ParseError(const std::string& d) {
  Result<PageLayout> r = ParsePageLayout(d, "f.tif");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kUnsupported);
  CHECK(Contains(r.status().message(), "f.tif"));
  return r.status().message();
}

PagePlane Plane(const PageLayout& l, int64_t key) {
  std::optional<PagePlane> p = PlaneOfPage(l, key);
  REQUIRE(p.has_value());
  return *p;
}

TEST_CASE("Plain and unknown descriptions: every page is a slice", "[tiff]") {
  for (const char* d : {"", "a scanner's free text", "{\"shape\": [40, 50]}", "{\"shape\": [1, 1, 40, 50]}",
                        "{not json", "{\"other\": 1}"}) {
    INFO(d);
    PageLayout l = Parse(d);
    CHECK(l.kind.empty());
    CHECK(l.slices == -1);
    CHECK(l.channels == 1);
    CHECK(l.frames == 1);
  }
  PageLayout l = Parse("");
  l.slices = 5;
  CHECK(Plane(l, 3) == PagePlane{0, 3, 0});
  CHECK_FALSE(PlaneOfPage(l, 5).has_value());
}

TEST_CASE("ImageJ hyperstack: CZT order, channel fastest", "[tiff]") {
  PageLayout l =
      Parse("ImageJ=1.11a\nimages=24\nchannels=4\nslices=3\nframes=2\nhyperstack=true\nmode=grayscale\nloop=false");
  CHECK(l.kind == "ImageJ hyperstack");
  CHECK(l.channels == 4);
  CHECK(l.slices == 3);
  CHECK(l.frames == 2);
  CHECK(l.planes() == 24);
  CHECK(l.imagej_images == 24);
  // page = c + 4 * (z + 3 * t)
  CHECK(Plane(l, 0) == PagePlane{0, 0, 0});
  CHECK(Plane(l, 1) == PagePlane{1, 0, 0});
  CHECK(Plane(l, 4) == PagePlane{0, 1, 0});
  CHECK(Plane(l, 12) == PagePlane{0, 0, 1});
  CHECK(Plane(l, 23) == PagePlane{3, 2, 1});
  CHECK_FALSE(PlaneOfPage(l, 24).has_value());

  // images= alone counts slices; missing counts default to 1.
  PageLayout s = Parse("ImageJ=1.54f\nimages=7\n");
  CHECK(s.slices == 7);
  CHECK(s.channels == 1);
  PageLayout c = Parse("ImageJ=1.54f\nimages=6\nchannels=2\n");
  CHECK(c.slices == 3);
  PageLayout none = Parse("ImageJ=1.54f\n");
  CHECK(none.slices == -1);

  CHECK(Contains(ParseError("ImageJ=1.54f\nimages=5\nslices=6\n"), "images=5"));
  CHECK(Contains(ParseError("ImageJ=1.54f\nchannels=0\n"), "channels=0"));
  CHECK(Contains(ParseError("ImageJ=1.54f\nslices=many\n"), "slices=many"));
}

TEST_CASE("OME-XML: DimensionOrder, TiffData runs, refusals", "[tiff]") {
  const std::string head =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- a comment with <Image> in it --><OME "
      "xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><Image ID=\"Image:0\">";
  auto pixels = [](const std::string& order, const std::string& inner) {
    return "<Pixels ID=\"Pixels:0\" DimensionOrder=\"" + order +
           "\" Type=\"uint16\" SizeX=\"6\" SizeY=\"5\" SizeC=\"4\" SizeZ=\"3\" SizeT=\"2\">" + inner + "</Pixels>";
  };
  const std::string tail = "</Image></OME>";

  // tifffile: XYCZT, one run from IFD 0.
  PageLayout a = Parse(head + pixels("XYCZT", "<TiffData IFD=\"0\" PlaneCount=\"24\"/>") + tail);
  CHECK(a.kind == "OME-TIFF");
  CHECK(a.keyed_by_directory);
  CHECK(a.order == "TZC");
  CHECK(Plane(a, 5) == PagePlane{1, 1, 0});
  CHECK(Contains(a.declared, "SizeC=4, SizeZ=3, SizeT=2 (DimensionOrder XYCZT)"));

  // No TiffData: IFD i is plane i. XYZCT: z fastest, then c, then t.
  PageLayout b = Parse(head + pixels("XYZCT", "") + tail);
  CHECK(b.order == "TCZ");
  CHECK(Plane(b, 1) == PagePlane{0, 1, 0});
  CHECK(Plane(b, 3) == PagePlane{1, 0, 0});
  CHECK(Plane(b, 12) == PagePlane{0, 0, 1});

  // Bio-Formats style: one TiffData per plane, out of order, with a UUID naming this file, and
  // single quotes and a namespace prefix.
  std::string per_plane;
  for (int i = 0; i < 24; ++i) {
    const int ifd = 23 - i;  // reversed
    per_plane += "<ome:TiffData FirstC='" + std::to_string(i % 4) + "' FirstZ='" + std::to_string(i / 4 % 3) +
                 "' FirstT='" + std::to_string(i / 12) + "' IFD='" + std::to_string(ifd) +
                 "' PlaneCount='1'><ome:UUID FileName='f.tif'>urn:uuid:1</ome:UUID></ome:TiffData>";
  }
  PageLayout c = Parse(head + pixels("XYCZT", per_plane) + tail);
  CHECK(Plane(c, 23) == PagePlane{0, 0, 0});
  CHECK(Plane(c, 0) == PagePlane{3, 2, 1});
  CHECK(Plane(c, 18) == PagePlane{1, 1, 0});

  CHECK(Contains(ParseError(head + pixels("XYZCT", "") + "</Image><Image ID=\"Image:1\">" + pixels("XYZCT", "") + tail),
                 "2 images"));
  CHECK(Contains(ParseError(head +
                            pixels("XYZCT",
                                   "<TiffData IFD=\"0\"><UUID FileName=\"other.ome.tif\">u</UUID>"
                                   "</TiffData>") +
                            tail),
                 "other.ome.tif"));
  CHECK(Contains(ParseError(head + pixels("XYZZT", "") + tail), "DimensionOrder"));
  CHECK(Contains(ParseError(head + pixels("XYZCT", "<TiffData IFD=\"0\" PlaneCount=\"25\"/>") + tail), "25 planes"));
  CHECK(Contains(ParseError(head + "<BinaryOnly MetadataFile=\"x.ome.xml\"/>" + tail), "companion"));
  CHECK(Contains(ParseError(head + tail), "no Pixels"));
}

TEST_CASE("tifffile shaped descriptions", "[tiff]") {
  PageLayout z = Parse("{\"shape\": [5, 20, 30]}");
  CHECK(z.kind == "tifffile shaped");
  CHECK(z.slices == 5);
  CHECK(z.order == "Z");

  PageLayout tz = Parse("{\"axes\": \"TZYX\", \"shape\": [2, 5, 20, 30]}");
  CHECK(tz.frames == 2);
  CHECK(tz.slices == 5);
  CHECK(tz.order == "TZ");
  CHECK(Plane(tz, 7) == PagePlane{0, 2, 1});

  // An unnamed stack axis beside a time axis is the z axis; a size-1 axis is ignored.
  PageLayout qt = Parse("{\"axes\": \"TQYX\", \"shape\": [3, 4, 20, 30]}");
  CHECK(qt.order == "TZ");
  CHECK(qt.slices == 4);
  PageLayout one = Parse("{\"axes\": \"CZYX\", \"shape\": [1, 4, 20, 30]}");
  CHECK(one.channels == 1);
  CHECK(one.slices == 4);

  CHECK(Contains(ParseError("{\"shape\": [2, 5, 20, 30]}"), "more than one stack axis"));
  CHECK(Contains(ParseError("{\"axes\": \"ZQYX\", \"shape\": [2, 5, 20, 30]}"), "more than one stack axis"));
  CHECK(Contains(ParseError("{\"axes\": \"ZZYX\", \"shape\": [2, 5, 20, 30]}"), "twice"));
}

TEST_CASE("Channel and time choice: refusals name the axes, sizes and options", "[tiff]") {
  PageLayout l = Parse("ImageJ=1.11a\nimages=24\nchannels=4\nslices=3\nframes=2\nhyperstack=true\n");
  Status none = CheckPlaneChoice(l, -1, -1, "h.tif");
  CHECK(none.code() == ErrorCode::kInvalidArgument);
  for (const char* part :
       {"h.tif is an ImageJ hyperstack", "channels=4, slices=3, frames=2", "-o channel=0..3", "-o t=0..1"})
    CHECK(Contains(none.message(), part));
  Status only_c = CheckPlaneChoice(l, 2, -1, "h.tif");
  CHECK(Contains(only_c.message(), "-o t=0..1"));
  CHECK_FALSE(Contains(only_c.message(), "-o channel=0..3"));
  CHECK(CheckPlaneChoice(l, 3, 1, "h.tif").ok());
  CHECK(Contains(CheckPlaneChoice(l, 4, 0, "h.tif").message(), "-o channel=4 is out of range"));
  CHECK(Contains(CheckPlaneChoice(l, 0, 2, "h.tif").message(), "-o t=2 is out of range"));

  PageLayout plain = Parse("");
  CHECK(CheckPlaneChoice(plain, -1, -1, "p.tif").ok());
  CHECK(CheckPlaneChoice(plain, 0, 0, "p.tif").ok());
  CHECK(Contains(CheckPlaneChoice(plain, 1, -1, "p.tif").message(), "one channel"));
}

}  // namespace
}  // namespace oz
