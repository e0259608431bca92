// Status and Result<T>: droce's internal error reporting. Errors become
// libibverbs-style errno values only at the ibv_* boundary (to_errno).
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace droce {

enum class Errc {
  kOk = 0,
  kInvalidArgument,   // EINVAL
  kNoMemory,          // ENOMEM
  kBusy,              // EBUSY
  kNotFound,          // ENOENT
  kNotSupported,      // EOPNOTSUPP
  kPermission,        // EPERM / EACCES
  kNoDevice,          // ENODEV
  kTimeout,           // ETIMEDOUT
  kAgain,             // EAGAIN
  kIo,                // EIO
  kBadConfig,         // EINVAL, from a user setting (environment variable)
};

int to_errno(Errc e);
const char* errc_name(Errc e);

// A status with a human-readable message for the user (never on the hot path).
class Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }
  bool is_ok() const { return code_ == Errc::kOk; }
  explicit operator bool() const { return is_ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace droce
