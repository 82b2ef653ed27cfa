#include <keyfolio/error.hpp>

#include <boost/throw_exception.hpp>

#include <ostream>

namespace keyfolio {
namespace {

class Category final : public boost::system::error_category {
 public:
  // A fixed id lets error codes from a shared and a static copy of keyfolio
  // in one process compare equal.
  Category() noexcept : boost::system::error_category(0x6b6579666f6c696fULL) {}

  const char* name() const noexcept override { return "keyfolio"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_exchange_id: return "invalid exchange id";
      case errc::validation_failed: return "validation failed";
      case errc::not_found: return "not found";
      case errc::conflict: return "conflict";
      case errc::wrong_key: return "wrong passphrase or key";
      case errc::corrupt_data: return "corrupt data";
      case errc::storage_error: return "storage error";
      case errc::unavailable: return "unavailable";
      case errc::verification_failed: return "verification failed";
      case errc::not_supported: return "not supported";
      case errc::invalid_argument: return "invalid argument";
    }
    return value == 0 ? "success" : "unknown keyfolio error " + std::to_string(value);
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_exchange_id: return "invalid_exchange_id";
    case errc::validation_failed: return "validation_failed";
    case errc::not_found: return "not_found";
    case errc::conflict: return "conflict";
    case errc::wrong_key: return "wrong_key";
    case errc::corrupt_data: return "corrupt_data";
    case errc::storage_error: return "storage_error";
    case errc::unavailable: return "unavailable";
    case errc::verification_failed: return "verification_failed";
    case errc::not_supported: return "not_supported";
    case errc::invalid_argument: return "invalid_argument";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, const Error& error) {
  return os << to_string(error.code()) << ": " << error.message();
}

void throw_exception_from_error(const Error& error, const boost::source_location& location) {
  boost::throw_exception(Exception(error), location);
}

}  // namespace keyfolio
