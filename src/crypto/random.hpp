// Randomness from the operating system's CSPRNG (through libsodium).
#pragma once

#include <cstddef>
#include <string>

namespace keyfolio::detail::crypto {

// libsodium's one-time initialization (idempotent, thread-safe); throws
// std::runtime_error when it fails.
void initialize();
// Fills `size` bytes at `out`.
void fill_random(void* out, std::size_t size) noexcept;
// `size` random bytes.
std::string random_bytes(std::size_t size);
// `size` random bytes as 2 * `size` lower-case hex digits: a fresh identifier.
std::string random_hex(std::size_t size);

}  // namespace keyfolio::detail::crypto
