#include <keyfolio/secret.hpp>

#include "crypto/hash.hpp"
#include "memory/secure_arena.hpp"

#include <cstring>
#include <ostream>
#include <stdexcept>

namespace keyfolio {
namespace {

// One more byte than the value, kept zero, so that a value handed to a C API
// expecting a terminated string stays terminated.
char* copy_into_arena(std::string_view value) {
  char* p = detail::SecureArena::instance().allocate(value.size() + 1);
  std::memcpy(p, value.data(), value.size());
  p[value.size()] = '\0';
  return p;
}

}  // namespace

SecretString::SecretString(std::string_view value) {
  if (value.size() > max_size) throw std::length_error("secret longer than SecretString::max_size");
  if (value.empty()) return;
  data_ = copy_into_arena(value);
  size_ = value.size();
}

SecretString::SecretString(const SecretString& other) : SecretString(other.reveal()) {}

SecretString& SecretString::operator=(const SecretString& other) {
  if (this != &other) *this = SecretString(other);
  return *this;
}

SecretString::SecretString(SecretString&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    clear();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SecretString::~SecretString() { clear(); }

void SecretString::clear() noexcept {
  if (data_ != nullptr) detail::SecureArena::instance().deallocate(data_, size_ + 1);
  data_ = nullptr;
  size_ = 0;
}

bool operator==(const SecretString& a, const SecretString& b) noexcept {
  return detail::crypto::constant_time_equal(a.reveal(), b.reveal());
}

std::ostream& operator<<(std::ostream& os, const SecretString&) { return os << SecretString::redacted; }

SecureMemoryStats secure_memory_stats() { return detail::SecureArena::instance().stats(); }

}  // namespace keyfolio
