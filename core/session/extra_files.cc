// Extra files (layer TIFFs, label images) are rewritten by every run (no manifest): their bytes
// depend only on the surface or label source, the view and the options.
#include "core/session/extra_files.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "core/store/atomic_file.h"
#include "core/sync/thread_pool.h"

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
  std::vector<std::string> dirs;
  OZ_ASSIGN_OR_RETURN(std::vector<std::string> all, mount.ExtraFiles(&dirs));
  // Every directory, also those without files (a label row of empty chunks), as the mount shows.
  for (const std::string& d : dirs) OZ_RETURN_IF_ERROR(MakeDirs(dest + "/" + d));
  // Label images (labels/): many small chunk files, each computed by its engine; each read and
  // written on its own, so memory is one file per thread, not the tree.
  std::vector<std::string> files, label_files;
  for (const std::string& rel : all) (rel.rfind("labels/", 0) == 0 ? label_files : files).push_back(rel);
  // Label files on a few threads (the project's ThreadPool) in listing order (neighbours computed
  // together); after the first error the remaining files are skipped.
  {
    std::atomic<uint64_t> written{0};
    std::atomic<bool> failed{false};
    ThreadPool pool(static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u)));
    Status st = ParallelForStatus(
        &pool, label_files.size(),
        [&](size_t i) -> Status {
          if (failed.load()) return OkStatus();
          uint64_t n = 0;
          Status one = [&]() -> Status {
            OZ_ASSIGN_OR_RETURN(ChunkBytes bytes, mount.Read("/" + label_files[i]));
            return WriteOne(dest, label_files[i], *bytes, &n);
          }();
          written += n;
          if (!one.ok()) failed = true;
          return one;
        },
        [&](size_t i) { return "writing " + label_files[i]; });
    *bytes_written += written.load();
    OZ_RETURN_IF_ERROR(st);
  }
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
