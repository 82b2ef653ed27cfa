// Key derivation: Argon2id for passphrases (libsodium's crypto_pwhash,
// version 1.3), and subkeys of a data key (BLAKE2b-based crypto_kdf), so that
// one data key yields independent keys for independent purposes.
#pragma once

#include <keyfolio/key_source.hpp>
#include <keyfolio/secret.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace keyfolio::detail::crypto {

inline constexpr std::size_t argon2id_salt_size = 16;
inline constexpr std::size_t derived_key_size = 32;

// libsodium's presets and bounds.
KdfCost argon2id_interactive() noexcept;
KdfCost argon2id_moderate() noexcept;
KdfCost argon2id_sensitive() noexcept;
KdfCost argon2id_minimum() noexcept;
// Whether Argon2id accepts `cost` at all (its own bounds, far beyond what
// keyfolio asks for).
bool argon2id_accepts(const KdfCost& cost) noexcept;

// A derived_key_size key from `passphrase` and `salt` (argon2id_salt_size
// bytes) at `cost`, which argon2id_accepts; nullopt when the memory it needs
// cannot be had.
std::optional<SecretString> argon2id(const SecretString& passphrase, std::string_view salt, const KdfCost& cost);

// Subkey number `id` of `key` (32 bytes) for the 8-character `context`.
SecretString derive_subkey(const SecretString& key, std::uint64_t id, std::string_view context,
                           std::size_t size = 32);

}  // namespace keyfolio::detail::crypto
