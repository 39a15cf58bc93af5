// Errors raised by tersor kernels. The N-API layer turns each into a JS `TersorError` whose
// `code` is the stable string below, so callers can branch on the kind of failure.
#pragma once
#include <stdexcept>
#include <string>

namespace tersor {

enum class ErrorCode { Shape, DType, Format, IO, Range, Native };

inline const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::Shape: return "E_SHAPE";
    case ErrorCode::DType: return "E_DTYPE";
    case ErrorCode::Format: return "E_FORMAT";
    case ErrorCode::IO: return "E_IO";
    case ErrorCode::Range: return "E_RANGE";
    case ErrorCode::Native: return "E_NATIVE";
  }
  return "E_NATIVE";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

inline void require(bool ok, ErrorCode code, const std::string& message) {
  if (!ok) fail(code, message);
}

}  // namespace tersor
