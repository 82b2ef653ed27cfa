// Keyed hashing (BLAKE2b, libsodium's crypto_generichash) and constant-time
// comparison: fingerprints that identify a credential without revealing it,
// and proofs of a key that reveal nothing about it.
#pragma once

#include <keyfolio/secret.hpp>

#include <cstddef>
#include <string_view>

namespace keyfolio::detail::crypto {

// The `size`-byte (16 to 64) BLAKE2b of `message` keyed with `key`, into `out`.
void keyed_hash(const SecretString& key, std::string_view message, char* out, std::size_t size) noexcept;

// The 16-byte SipHash-2-4 (libsodium's crypto_shorthash_siphashx24) of
// `message` keyed with the 16-byte `key`, into `out`: a fast keyed PRF for
// short messages whose outputs nobody without the key ever sees.
constexpr std::size_t short_hash_size = 16;
constexpr std::size_t short_hash_key_size = 16;
void short_keyed_hash(const SecretString& key, std::string_view message, unsigned char* out) noexcept;

// Whether `a` and `b` are equal, in time that depends on their length only.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace keyfolio::detail::crypto
