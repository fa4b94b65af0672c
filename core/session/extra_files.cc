// Extra files are few and small beside the image tree, so they are simply rewritten by every run
// (no manifest): their bytes depend only on the surface, the view and the options.
#include "core/session/extra_files.h"

#include "core/store/atomic_file.h"

namespace oz {

Status WriteExtraFiles(MountTree& mount, const std::string& dest, uint64_t* bytes_written) {
  OZ_ASSIGN_OR_RETURN(std::vector<std::string> files, mount.ExtraFiles());
  for (const std::string& rel : files) {
    OZ_ASSIGN_OR_RETURN(std::shared_ptr<FileContent> content, mount.Open("/" + rel));
    std::string data(content->size(), '\0');
    OZ_ASSIGN_OR_RETURN(size_t got, content->ReadAt(0, data.size(), data.data()));
    if (got != data.size()) return InternalError(rel + ": read " + std::to_string(got) + " of its bytes");
    const std::string path = dest + "/" + rel;
    OZ_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/'))));
    AtomicWriteOptions wo;
    wo.fault_site = "materialize";
    OZ_RETURN_IF_ERROR(WriteFileAtomic(path, data, wo));
    *bytes_written += data.size();
  }
  return OkStatus();
}

}  // namespace oz
