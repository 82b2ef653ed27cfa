#include "crypto/encoding.hpp"

#include <sodium.h>

namespace keyfolio::detail::crypto {
namespace {

const unsigned char* bytes_of(std::string_view s) noexcept { return reinterpret_cast<const unsigned char*>(s.data()); }

// Decodes all of `hex` into `out` (room for `capacity` bytes); the number of
// bytes, or nullopt when `hex` is not entirely hex digits that fit.
std::optional<std::size_t> decode_hex(std::string_view hex, unsigned char* out, std::size_t capacity) {
  std::size_t n = 0;
  const char* end = nullptr;
  if (hex.size() % 2 != 0 ||
      sodium_hex2bin(out, capacity, hex.data(), hex.size(), nullptr, &n, &end) != 0 ||
      end != hex.data() + hex.size()) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

std::string to_hex(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes_of(bytes), bytes.size());
  out.pop_back();  // the terminating NUL
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  std::string out(hex.size() / 2, '\0');
  const auto n = decode_hex(hex, reinterpret_cast<unsigned char*>(out.data()), out.size());
  if (!n) return std::nullopt;
  out.resize(*n);
  return out;
}

std::optional<SecureBuffer> secret_from_hex(std::string_view hex, std::size_t size) {
  if (hex.size() != 2 * size) return std::nullopt;
  SecureBuffer out(size);
  const auto n = decode_hex(hex, out.bytes(), out.size());
  if (!n || *n != size) return std::nullopt;
  return out;
}

std::string to_base64(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes_of(bytes), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

std::optional<std::string> from_base64(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t size = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &size, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(size);
  return out;
}

}  // namespace keyfolio::detail::crypto
