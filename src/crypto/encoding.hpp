// Hex and base64, as libsodium encodes them (constant-time, so that encoding
// a key or a digest leaks nothing through timing).
#pragma once

#include "memory/secure_arena.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace keyfolio::detail::crypto {

// Lower-case hex digits of `bytes`.
std::string to_hex(std::string_view bytes);
// The bytes of `hex` (an even number of hex digits, either case, nothing
// else); nullopt otherwise.
std::optional<std::string> from_hex(std::string_view hex);
// The same, for a secret: exactly `size` bytes decoded into secure memory,
// nullopt unless `hex` is exactly 2 * `size` hex digits.
std::optional<SecureBuffer> secret_from_hex(std::string_view hex, std::size_t size);

// Standard base64 (RFC 4648 section 4, with padding).
std::string to_base64(std::string_view bytes);
// nullopt unless all of `text` is standard padded base64.
std::optional<std::string> from_base64(std::string_view text);

}  // namespace keyfolio::detail::crypto
