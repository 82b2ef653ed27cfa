// The crypto layer between AccountManager and storage: the keyring record
// that wraps the store's data key, and sealing/opening of records.
//
// Record formats:
//   "KF1" | 24-byte nonce | XChaCha20-Poly1305-IETF ciphertext
//   "KF2" | u8 header length | header | 24-byte nonce | ciphertext
// The associated data binds a record to its store id, collection, key and
// version (and its header), so a record copied to another key, store or
// version, or given another header, fails to open. The header is readable
// without the key: what a reader needs before decrypting (an account's
// fingerprint and spelling), never a secret.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/key_source.hpp>
#include <keyfolio/secret.hpp>

#include "memory/secure_arena.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keyfolio::detail {

constexpr std::size_t store_id_size = 16;
constexpr std::size_t nonce_size = 24;

class Vault {
 public:
  // A new store: a random store id and data key.
  static Vault generate();
  Vault(std::string store_id, SecretString data_key);

  const std::string& store_id() const noexcept { return store_id_; }
  // The store id in hex, for messages and diagnostics.
  std::string store_id_hex() const;

  // A header (at most 255 bytes) makes a "KF2" record; none, a "KF1" one.
  std::string seal(std::string_view collection, std::string_view key, std::uint64_t version,
                   std::string_view plaintext, std::string_view header = {}) const;
  // The plaintext, or nullopt when the record does not authenticate.
  std::optional<SecureBuffer> open(std::string_view collection, std::string_view key, std::uint64_t version,
                                   std::string_view sealed) const;
  // The nonce of a sealed record (empty if malformed): tells two seals apart.
  static std::string_view nonce_of(std::string_view sealed) noexcept;
  // The header of a "KF2" record; nullopt for a "KF1" or malformed one. Not
  // authenticated until the record opens.
  static std::optional<std::string_view> header_of(std::string_view sealed) noexcept;

  static constexpr std::size_t fingerprint_size = 16;
  using FingerprintBytes = std::array<char, fingerprint_size>;
  // A keyed, non-reversible fingerprint of `data`: its bytes, or in hex (32
  // digits).
  FingerprintBytes fingerprint_bytes(std::string_view data) const;
  std::string fingerprint(std::string_view data) const;

  // The keyed digest (SipHash-2-4, 128 bits, under a key of its own) of a
  // stored record's identity: its collection, key and version, and its
  // nonce and authentication tag, which pin its exact ciphertext. What the
  // store's integrity record adds up; never stored in clear.
  static constexpr std::size_t digest_size = 16;
  using Digest = std::array<unsigned char, digest_size>;
  Digest record_digest(std::string_view collection, std::string_view key, std::uint64_t version,
                       std::string_view sealed) const;

  // The keyring record: the data key wrapped by `source`'s key. `cost`
  // applies to passphrases. It says that the store keeps an integrity
  // record, in a way that cannot be removed without the key.
  Result<std::string> keyring_record(const KeySource& source) const;

  // An opened keyring. A keyring written before stores kept an integrity
  // record is `legacy`; `upgraded` is then the same keyring (same key, same
  // salt and cost) saying that the store keeps one, to be written together
  // with the store's first integrity record.
  struct Opened;
  // Unwraps a keyring record: `wrong_key` when `source` is not the key that
  // wrapped it, `corrupt_data` when the record is damaged.
  static Result<Opened> open_keyring(std::string_view record, const KeySource& source);
  // The store id a keyring record names (hex), read without any key;
  // nullopt when it names none.
  static std::optional<std::string> keyring_store_id(std::string_view record);

 private:
  std::string store_id_;
  SecretString data_key_;
  SecretString record_key_;
  SecretString fingerprint_key_;
  SecretString digest_key_;
};

struct Vault::Opened {
  Vault vault;
  bool legacy = false;
  std::string upgraded;  // when legacy
};

}  // namespace keyfolio::detail
