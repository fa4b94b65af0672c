// zarr3_read: opens a zarr v3 source (a directory or an http(s) URL) with Zarr3Volume and writes
// the voxels of a box (default: the whole volume) to a file, raw, C order, native endianness; for
// the tests that compare every data type and codec against numpy without a mount.
//
//   zarr3_read SOURCE OUT [--level N] [--box z0,y0,x0,z1,y1,x1]
// Prints "shape Z Y X", "dtype NAME" and "describe TEXT" on stdout. Exit status 0, or 1 with the
// error ("CODE: MESSAGE") on stderr.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/source/zarr3_source.h"
#include "core/store/file_store.h"
#include "core/store/http_store.h"

int main(int argc, char** argv) {
  using namespace oz;
  if (argc < 3) {
    std::fprintf(stderr, "usage: zarr3_read SOURCE OUT [--level N] [--box z0,y0,x0,z1,y1,x1]\n");
    return 2;
  }
  const std::string source = argv[1], out_path = argv[2];
  ZarrSourceOptions zo;
  std::vector<int64_t> box_arg;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--level") == 0) {
      zo.source_level = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--box") == 0) {
      for (char* p = argv[i + 1]; *p;) {
        box_arg.push_back(std::strtoll(p, &p, 10));
        if (*p == ',') ++p;
      }
    }
  }
  std::shared_ptr<KvStore> store;
  if (IsHttpUrl(source)) {
    auto s = OpenHttpStore(source, HttpOptions(), nullptr);
    if (!s.ok()) return std::fprintf(stderr, "%s\n", s.status().ToString().c_str()), 1;
    store = std::move(s).value();
  } else {
    auto s = FileStore::Open(source);
    if (!s.ok()) return std::fprintf(stderr, "%s\n", s.status().ToString().c_str()), 1;
    store = std::move(s).value();
  }
  auto vol = Zarr3Volume::Open(store, zo);
  if (!vol.ok()) return std::fprintf(stderr, "%s\n", vol.status().ToString().c_str()), 1;
  const Vec3 shape = (*vol)->shape();
  Box box = BoxFromShape(shape);
  if (box_arg.size() == 6) box = Box{{box_arg[0], box_arg[1], box_arg[2]}, {box_arg[3], box_arg[4], box_arg[5]}};
  std::printf("shape %lld %lld %lld\ndtype %s\ndescribe %s\n", static_cast<long long>(shape[0]),
              static_cast<long long>(shape[1]), static_cast<long long>(shape[2]),
              std::string(DTypeName((*vol)->dtype())).c_str(), (*vol)->Describe().c_str());
  std::vector<uint8_t> buf(static_cast<size_t>(box.volume()) * DTypeSize((*vol)->dtype()));
  Status st = (*vol)->ReadBox(box, buf.data());
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!f || std::fwrite(buf.data(), 1, buf.size(), f) != buf.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "cannot write %s\n", out_path.c_str());
    return 1;
  }
  return 0;
}
