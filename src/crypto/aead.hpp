// Authenticated encryption with associated data: XChaCha20-Poly1305-IETF
// (libsodium). Encrypting gives confidentiality and integrity of the
// plaintext and integrity of the associated data; a ciphertext opens only
// under the key, nonce and associated data it was sealed with. Nonces are
// 24 random bytes, large enough that random ones never collide in practice.
//
// Shared by the vault (store records, the keyring) and sealed bundles, each
// with an associated-data scheme of its own built with AssociatedData.
// Stateless; safe to call concurrently.
#pragma once

#include <keyfolio/secret.hpp>

#include "memory/secure_arena.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keyfolio::detail::crypto {

inline constexpr std::size_t aead_key_size = 32;
inline constexpr std::size_t aead_nonce_size = 24;
inline constexpr std::size_t aead_tag_size = 16;

// A new random key, in secure memory.
SecretString aead_keygen();

// Encrypts `plain` under `key` (aead_key_size bytes) and `nonce`
// (aead_nonce_size bytes), binding `ad`, into `out`, which has room for
// plain.size() + aead_tag_size bytes.
void aead_encrypt(const SecretString& key, std::string_view nonce, std::string_view plain, std::string_view ad,
                  char* out) noexcept;

// The plaintext of `cipher` in secure memory, or nullopt when it does not
// authenticate under `key`, `nonce` and `ad` (or is shorter than a tag).
std::optional<SecureBuffer> aead_decrypt(const SecretString& key, std::string_view nonce, std::string_view cipher,
                                         std::string_view ad);

// Associated data built field by field: a label naming the scheme, then
// fixed-width little-endian integers and byte strings, so that no two
// different sequences of fields give the same bytes.
class AssociatedData {
 public:
  explicit AssociatedData(std::string_view label, std::size_t reserve = 0);

  AssociatedData& bytes(std::string_view raw);  // as they are
  AssociatedData& byte(char c);
  AssociatedData& u32(std::uint32_t v);
  AssociatedData& u64(std::uint64_t v);
  AssociatedData& sized(std::string_view raw);  // u32 length, then the bytes

  std::string_view view() const noexcept { return ad_; }

 private:
  std::string ad_;
};

}  // namespace keyfolio::detail::crypto
