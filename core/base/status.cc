// Status helpers: names, context, errno translation.
#include "core/base/status.h"

#include <cerrno>
#include <cstring>

namespace oz {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kIoError: return "IoError";
    case ErrorCode::kCorrupt: return "Corrupt";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kNoSpace: return "NoSpace";
    case ErrorCode::kPermission: return "Permission";
    case ErrorCode::kReadOnly: return "ReadOnly";
    case ErrorCode::kNotDirectory: return "NotDirectory";
    case ErrorCode::kIsDirectory: return "IsDirectory";
    case ErrorCode::kNameTooLong: return "NameTooLong";
    case ErrorCode::kResourceExhausted: return "ResourceExhausted";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kCancelled: return "Cancelled";
    case ErrorCode::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(ErrorCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  std::string m(prefix);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

Status ErrnoError(int err, std::string_view what) {
  ErrorCode code;
  switch (err) {
    case ENOENT: code = ErrorCode::kNotFound; break;
    case EACCES:
    case EPERM: code = ErrorCode::kPermission; break;
    case ENOSPC:
    case EDQUOT: code = ErrorCode::kNoSpace; break;
    case EROFS: code = ErrorCode::kReadOnly; break;
    case ENOTDIR: code = ErrorCode::kNotDirectory; break;
    case EISDIR: code = ErrorCode::kIsDirectory; break;
    case ENAMETOOLONG: code = ErrorCode::kNameTooLong; break;
    case ENOMEM: code = ErrorCode::kResourceExhausted; break;
    case EINVAL: code = ErrorCode::kInvalidArgument; break;
    case EINTR: code = ErrorCode::kCancelled; break;
    default: code = ErrorCode::kIoError; break;
  }
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  return Status(code, std::move(m));
}

}  // namespace oz
