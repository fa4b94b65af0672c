// Status and Result<T>: the one error type of core/. Errno mapping lives only in fs/.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace oz {

// Error causes. fs/ maps each to exactly one errno; keep the list short and causal.
enum class ErrorCode {
  kOk = 0,
  kNotFound,           // the name or datum is truly absent (ENOENT)
  kInvalidArgument,    // bad option, bad user input (EINVAL at the edge; exit code at startup)
  kIoError,            // reading the source failed (EIO)
  kCorrupt,            // data read but not valid (EIO)
  kUnsupported,        // valid but not supported format feature (EIO / startup error)
  kNoSpace,            // ENOSPC
  kPermission,         // EACCES
  kReadOnly,           // EROFS
  kNotDirectory,       // ENOTDIR
  kIsDirectory,        // EISDIR
  kNameTooLong,        // ENAMETOOLONG
  kResourceExhausted,  // out of memory or budget (ENOMEM)
  kUnavailable,        // transient; retrying may help (EIO at the edge)
  kCancelled,          // operation cancelled, e.g. at shutdown (ECONNABORTED)
  kInternal,           // a bug (EIO)
};

std::string_view ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CodeName: message" for logs.
  std::string ToString() const;
  // Returns a copy whose message is "prefix: message" (no-op on OK).
  Status WithContext(std::string_view prefix) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status NotFoundError(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status InvalidArgumentError(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status IoError(std::string m) { return {ErrorCode::kIoError, std::move(m)}; }
inline Status CorruptError(std::string m) { return {ErrorCode::kCorrupt, std::move(m)}; }
inline Status UnsupportedError(std::string m) { return {ErrorCode::kUnsupported, std::move(m)}; }
inline Status InternalError(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {ErrorCode::kResourceExhausted, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
// Status from an errno value, choosing the closest ErrorCode; message is "what: strerror".
Status ErrnoError(int err, std::string_view what);

// Result<T>: a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status(ErrorCode::kInternal, "Result built from OK status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

#define OZ_CONCAT_INNER_(a, b) a##b
#define OZ_CONCAT_(a, b) OZ_CONCAT_INNER_(a, b)

#define OZ_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::oz::Status oz_status_ = (expr);        \
    if (!oz_status_.ok()) return oz_status_; \
  } while (0)

#define OZ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#define OZ_ASSIGN_OR_RETURN(lhs, expr) OZ_ASSIGN_OR_RETURN_IMPL_(OZ_CONCAT_(oz_result_, __LINE__), lhs, expr)

}  // namespace oz
