// Extra files are few and small beside the image tree (layer TIFFs), or written one at a time
// (label images), so they are simply rewritten by every run
// (no manifest): their bytes depend only on the surface, the view and the options.
#include "core/session/extra_files.h"

#include <algorithm>

#include "core/store/atomic_file.h"

namespace oz {

namespace {

Status WriteOne(const std::string& dest, const std::string& rel, const std::string& data, uint64_t* bytes_written) {
  const std::string path = dest + "/" + rel;
  OZ_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/'))));
  AtomicWriteOptions wo;
  wo.fault_site = "materialize";
  OZ_RETURN_IF_ERROR(WriteFileAtomic(path, data, wo));
  *bytes_written += data.size();
  return OkStatus();
}

}  // namespace

Status WriteExtraFiles(MountTree& mount, const std::string& dest, uint64_t* bytes_written) {
  OZ_ASSIGN_OR_RETURN(std::vector<std::string> all, mount.ExtraFiles());
  // Label images (labels/): many small chunk files, each computed on its own by its engine;
  // written one at a time in listing order (chunk rows), so memory is one file, not the tree.
  std::vector<std::string> files;
  for (const std::string& rel : all) {
    if (rel.rfind("labels/", 0) != 0) {
      files.push_back(rel);
      continue;
    }
    OZ_ASSIGN_OR_RETURN(ChunkBytes bytes, mount.Read("/" + rel));
    OZ_RETURN_IF_ERROR(WriteOne(dest, rel, *bytes, bytes_written));
  }
  // Read round-robin, one piece of every file in turn, so that files computed together (every
  // layer TIFF of a band of rows) are read together and computed once.
  std::vector<std::shared_ptr<FileContent>> contents;
  std::vector<std::string> data;
  uint64_t longest = 0;
  for (const std::string& rel : files) {
    OZ_ASSIGN_OR_RETURN(std::shared_ptr<FileContent> content, mount.Open("/" + rel));
    data.emplace_back(content->size(), '\0');
    longest = std::max(longest, content->size());
    contents.push_back(std::move(content));
  }
  constexpr uint64_t kPiece = 1 << 20;
  for (uint64_t off = 0; off < longest; off += kPiece)
    for (size_t i = 0; i < files.size(); ++i) {
      if (off >= data[i].size()) continue;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, data[i].size() - off));
      OZ_ASSIGN_OR_RETURN(size_t got, contents[i]->ReadAt(off, n, data[i].data() + off));
      if (got != n)
        return InternalError(files[i] + ": read " + std::to_string(got) + " bytes at " + std::to_string(off) +
                             ", expected " + std::to_string(n));
    }
  for (size_t i = 0; i < files.size(); ++i) OZ_RETURN_IF_ERROR(WriteOne(dest, files[i], data[i], bytes_written));
  return OkStatus();
}

}  // namespace oz
