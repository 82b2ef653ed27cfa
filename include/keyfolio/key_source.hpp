// keyfolio/key_source.hpp: KeySource, what unlocks a keyfolio store.
//
// A store's records are encrypted with a random data key; the data key is
// kept wrapped (encrypted) by a key-encryption key that comes from a
// KeySource:
//  - a passphrase, stretched with Argon2id; the salt and the cost are stored
//    with the store, and the cost given here applies when a store is created
//    or its key is changed (opening uses the stored cost);
//  - a raw 32-byte key, for hosts that keep keys in their own KMS;
//  - a key file holding 32 raw bytes or 64 hex digits (one trailing newline
//    allowed), readable only by its owner.
// A store remembers which kind protects it and says so when opened with
// another kind.
//
// KeySource holds its material in secure memory; it is a value type, safe for
// concurrent const use.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/secret.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace keyfolio {

// Argon2id cost: passes over memory, and memory in bytes.
struct KdfCost {
  std::uint64_t ops = 0;
  std::size_t memory_bytes = 0;

  // libsodium's presets: interactive (64 MiB), moderate (256 MiB, keyfolio's
  // default), sensitive (1 GiB).
  static KEYFOLIO_EXPORT KdfCost interactive() noexcept;
  static KEYFOLIO_EXPORT KdfCost moderate() noexcept;
  static KEYFOLIO_EXPORT KdfCost sensitive() noexcept;
  // The least Argon2id allows: for tests only, never for real passphrases.
  static KEYFOLIO_EXPORT KdfCost minimum_for_tests() noexcept;

  friend bool operator==(const KdfCost&, const KdfCost&) = default;
};

class KEYFOLIO_EXPORT KeySource {
 public:
  enum class Kind { passphrase, raw_key, key_file };

  static constexpr std::size_t key_size = 32;

  static KeySource passphrase(SecretString passphrase, KdfCost cost = KdfCost::moderate());
  static KeySource raw_key(SecretString key);
  static KeySource key_file(std::filesystem::path path);

  Kind kind() const noexcept { return kind_; }
  const KdfCost& cost() const noexcept { return cost_; }
  // "passphrase", "raw key" or "key file <path>"; never the material.
  std::string describe() const;

  // The key-encryption key: for a raw key or key file the key itself, for a
  // passphrase Argon2id of it with `salt` (16 bytes) at `cost`. Returns
  // `invalid_argument` for a raw key of the wrong size, an empty passphrase,
  // or a key file that is missing, unreadable, readable by others, or not 32
  // bytes / 64 hex digits; `unavailable` when Argon2id cannot get its memory.
  Result<SecretString> derive(std::string_view salt, const KdfCost& cost) const;

 private:
  KeySource(Kind kind, SecretString material, KdfCost cost, std::filesystem::path path)
      : kind_(kind), material_(std::move(material)), cost_(cost), path_(std::move(path)) {}

  Kind kind_;
  SecretString material_;
  KdfCost cost_;
  std::filesystem::path path_;
};

}  // namespace keyfolio
