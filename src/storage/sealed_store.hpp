// The sealed store: the seam between plaintext and ciphertext, and the only
// code of the library (backends aside) that reads or writes keyfolio's
// records.
//
// It owns the store's Vault and its StorageBackend. Above it, records are
// plaintext addressed by collection and key; below it, every value is sealed
// to its store, collection, key and version, so that a record copied
// anywhere else fails to open. Writes are staged into a Batch, which seals
// each value as it is staged, and reach the backend through commit() alone:
// one atomic write per batch, and one place that sees every change of every
// collection.
//
// Reads hand out records as the backend holds them (still sealed) together
// with the means to open them, so that a cache can keep records sealed until
// they are needed.
//
// Safe for concurrent use; a Batch is used by one thread at a time.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/key_source.hpp>
#include <keyfolio/storage.hpp>
#include <keyfolio/subscription.hpp>

#include "crypto/vault.hpp"
#include "detail/inline_bytes.hpp"
#include "memory/secure_arena.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::detail {

// The collections of a keyfolio store.
namespace collections {
inline constexpr std::string_view meta = "keyfolio";  // the keyring
inline constexpr std::string_view accounts = "accounts";
inline constexpr std::string_view portfolios = "portfolios";
inline constexpr std::string_view portfolio_index = "portfolio_index";
inline constexpr std::string_view snapshots = "snapshots";
}  // namespace collections

// The first 16 bytes of a sealed record's 24-byte random nonce: what tells
// two records of one key at one version apart, in 17 bytes instead of 25.
class NonceTag : public InlineBytes<16> {
 public:
  NonceTag() = default;
  static NonceTag of(std::string_view sealed);

 private:
  explicit NonceTag(std::string_view bytes) : InlineBytes(bytes) {}
};

class SealedStore {
 public:
  // Opens the store `backend` holds, creating it (a new random data key
  // wrapped by `key`) when it holds none. `wrong_key` when `key` does not
  // open it, `corrupt_data` for a damaged keyring or one missing from a store
  // that holds records, `conflict` when another writer kept creating it at
  // the same moment, the backend's errors.
  static Result<SealedStore> open(std::shared_ptr<StorageBackend> backend, const KeySource& key);

  SealedStore(std::shared_ptr<StorageBackend> backend, Vault vault);
  // Movable while no Batch of it exists (a Batch points at its vault).
  SealedStore(SealedStore&&) noexcept = default;
  SealedStore& operator=(SealedStore&&) = delete;
  SealedStore(const SealedStore&) = delete;
  SealedStore& operator=(const SealedStore&) = delete;

  // Writes staged for one commit, sealed as they are staged.
  class Batch {
   public:
    explicit Batch(const Vault& vault) : vault_(&vault) {}

    // Seals `plaintext` (with the clear `header`, at most 255 bytes, that a
    // reader may see before opening it) as `key` at `expected_version` + 1,
    // and stages its put; the sealed record's nonce tag.
    NonceTag put(std::string_view collection, std::string_view key, std::uint64_t expected_version,
                 std::string_view plaintext, std::string_view header = {});
    void erase(std::string_view collection, std::string_view key, std::uint64_t expected_version);
    void expect(std::string_view collection, std::string_view key, std::uint64_t expected_version);
    void erase_all(std::string_view collection);

    bool empty() const noexcept { return write_.empty(); }
    std::size_t size() const noexcept { return write_.size(); }
    // What commit() hands the backend: ciphertext only.
    const WriteBatch& sealed() const noexcept { return write_; }

   private:
    const Vault* vault_;
    WriteBatch write_;
  };

  Batch batch() const { return Batch(vault_); }

  // Writes `batch` in one atomic write: all of it or, on any error, none.
  // `conflict` when an expectation fails (another writer came first).
  Result<void> commit(const Batch& batch);

  // Records as stored (sealed), from the backend.
  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) const;
  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix = {}) const;

  // The plaintext of a record read from `collection` under `key` at
  // `version`, in secure memory; nullopt when it does not authenticate there
  // (tampered, truncated, or copied from another key, version or store).
  std::optional<SecureBuffer> open(std::string_view collection, std::string_view key, std::uint64_t version,
                                   std::string_view sealed) const;
  std::optional<SecureBuffer> open(std::string_view collection, const Record& record) const {
    return open(collection, record.key, record.version, record.value);
  }
  // A sealed record's clear header; nullopt when it has none. Trusted only
  // once the record opens.
  static std::optional<std::string_view> header_of(std::string_view sealed) noexcept;

  // A keyed, non-reversible fingerprint of `data`, the same for every
  // handle on this store.
  Vault::FingerprintBytes fingerprint(std::string_view data) const { return vault_.fingerprint_bytes(data); }

  // Changes committed to the backend by any handle, process or host.
  Result<Subscription> subscribe(ChangeHandler handler) const;

  // Re-wraps the data key with `new_key` in one atomic write. `conflict`
  // when the key was changed concurrently; nothing changes then.
  Result<void> change_key(const KeySource& new_key);

 private:
  // Every write of every collection, the keyring's included, passes here.
  Result<void> write(const WriteBatch& batch);

  std::shared_ptr<StorageBackend> backend_;
  Vault vault_;
};

}  // namespace keyfolio::detail
