// Extra files are few and small beside the image tree, so they are simply rewritten by every run
// (no manifest): their bytes depend only on the surface, the view and the options.
#include "core/session/extra_files.h"

#include <algorithm>

#include "core/store/atomic_file.h"

namespace oz {

Status WriteExtraFiles(MountTree& mount, const std::string& dest, uint64_t* bytes_written) {
  OZ_ASSIGN_OR_RETURN(std::vector<std::string> files, mount.ExtraFiles());
  // Files are written in groups (bounded open descriptors); within a group they are read
  // round-robin, one piece of every file in turn, so that files computed together (every layer
  // TIFF of a band of rows) are read together and computed once. Each piece goes straight to its
  // file's temp file: memory is one piece, not the files.
  constexpr size_t kGroup = 128;
  // 64 KiB: about one strip of a layer TIFF (strips are ~64 KiB), so a round over the group
  // touches one band of rows and the view's strip cache holds it (1 MiB pieces touched 16 bands
  // x 66 files per round, more than that cache: bands were recomputed, 50x slower).
  constexpr uint64_t kPiece = 64 << 10;
  std::string piece;
  for (size_t g = 0; g < files.size(); g += kGroup) {
    const size_t end = std::min(files.size(), g + kGroup);
    std::vector<std::shared_ptr<FileContent>> contents;
    std::vector<AtomicFileWriter> writers;
    uint64_t longest = 0;
    for (size_t i = g; i < end; ++i) {
      OZ_ASSIGN_OR_RETURN(std::shared_ptr<FileContent> content, mount.Open("/" + files[i]));
      const std::string path = dest + "/" + files[i];
      OZ_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/'))));
      AtomicWriteOptions wo;
      wo.fault_site = "materialize";
      OZ_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path, wo));
      longest = std::max(longest, content->size());
      contents.push_back(std::move(content));
      writers.push_back(std::move(w));
    }
    for (uint64_t off = 0; off < longest; off += kPiece)
      for (size_t i = 0; i < contents.size(); ++i) {
        const uint64_t size = contents[i]->size();
        if (off >= size) continue;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, size - off));
        piece.resize(n);
        OZ_ASSIGN_OR_RETURN(size_t got, contents[i]->ReadAt(off, n, piece.data()));
        if (got != n)
          return InternalError(files[g + i] + ": read " + std::to_string(got) + " bytes at " + std::to_string(off) +
                               ", expected " + std::to_string(n));
        OZ_RETURN_IF_ERROR(writers[i].Append(piece));
      }
    for (size_t i = 0; i < writers.size(); ++i) {
      OZ_RETURN_IF_ERROR(writers[i].Commit());
      *bytes_written += writers[i].bytes_written();
    }
  }
  return OkStatus();
}

}  // namespace oz
