// keyfolio/error.hpp: how keyfolio reports failure.
//
// Every fallible keyfolio call returns `Result<T>`: either a value or an
// `Error`, which carries an error code in keyfolio's error category and a
// message written for a person. The caller chooses the style: inspect the
// result (`if (!r) ... r.error()`), or call `r.value()` and get a
// `keyfolio::Exception` when it holds an error. Success costs nothing beyond
// returning the value.
//
// Messages name accounts, exchanges and fields; they never contain a secret
// value.
//
// All types here are values: safe to use from many threads as long as one
// object is not modified while another thread reads it.
#pragma once

#include <keyfolio/export.hpp>

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace keyfolio {

// What went wrong, stable across versions; the numeric values are part of the
// ABI and never reused.
enum class errc : int {
  invalid_exchange_id = 1,  // account id malformed, or its exchange unknown
  validation_failed = 2,    // credentials or other input do not satisfy the rules
  not_found = 3,            // the account, portfolio or record does not exist
  conflict = 4,             // a concurrent change or an existing entry got in the way
  wrong_key = 5,            // the passphrase or key does not open the store
  corrupt_data = 6,         // stored bytes fail authentication or do not parse
  storage_error = 7,        // the storage backend failed
  unavailable = 8,          // a resource is busy or unreachable; retrying may help
  verification_failed = 9,  // a host-provided verifier rejected the credentials
  not_supported = 10,       // the operation is not offered by this backend or build
  invalid_argument = 11,    // a malformed argument or document (e.g. catalog JSON)
};

// The category of keyfolio's error codes; its name is "keyfolio".
KEYFOLIO_EXPORT const boost::system::error_category& error_category() noexcept;

// The enumerator's name, e.g. "invalid_exchange_id"; "unknown" for other values.
KEYFOLIO_EXPORT std::string_view to_string(errc code) noexcept;

inline boost::system::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code), error_category()};
}

// An error code and a message for a person. A default-constructed Error (code
// 0, no message) stands for "no error", as boost::system::result expects.
class KEYFOLIO_EXPORT Error {
 public:
  Error() noexcept = default;
  Error(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // The code as a boost::system::error_code (convertible to std::error_code).
  boost::system::error_code error_code() const noexcept { return make_error_code(code_); }

  friend bool operator==(const Error& e, errc code) noexcept { return e.code_ == code; }
  friend bool operator==(const Error& a, const Error& b) noexcept {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  errc code_{};
  std::string message_;
};

// Prints "<code name>: <message>".
KEYFOLIO_EXPORT std::ostream& operator<<(std::ostream& os, const Error& error);

template <class T>
using Result = boost::system::result<T, Error>;

// Thrown by `Result<T>::value()` when the result holds an error. `what()` is
// the error's message.
class KEYFOLIO_EXPORT Exception : public std::runtime_error {
 public:
  explicit Exception(const Error& error) : std::runtime_error(error.message()), code_(error.code()) {}

  errc code() const noexcept { return code_; }
  Error error() const { return Error(code_, what()); }

 private:
  errc code_;
};

// Found by argument-dependent lookup from `Result<T>::value()`.
[[noreturn]] KEYFOLIO_EXPORT void throw_exception_from_error(const Error& error,
                                                            const boost::source_location& location);

}  // namespace keyfolio

template <>
struct boost::system::is_error_code_enum<keyfolio::errc> : std::true_type {};
