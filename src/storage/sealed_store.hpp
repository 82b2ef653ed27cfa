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
// Every commit also rewrites the store's integrity record (the manifest, see
// manifest.hpp) in the same atomic write, and read_checked() checks a
// reading of the whole store against it: rollback, deletion and resurrection
// of single records are corrupt_data.
//
// Safe for concurrent use; a Batch is used by one thread at a time.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/integrity.hpp>
#include <keyfolio/key_source.hpp>
#include <keyfolio/storage.hpp>
#include <keyfolio/subscription.hpp>

#include "crypto/vault.hpp"
#include "detail/inline_bytes.hpp"
#include "memory/secure_arena.hpp"
#include "storage/manifest.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
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

struct SealedStoreOptions {
  // Refuse (corrupt_data) a store whose generation is older than this.
  std::uint64_t minimum_generation = 0;
  // Open a store that fails its integrity check anyway, keeping what was
  // found in integrity(), so that what survives can be exported.
  bool recover = false;
  // Create the store when the backend holds none (else `not_found`).
  bool create = true;
};

class SealedStore {
 public:
  using Options = SealedStoreOptions;

  // Opens the store `backend` holds, creating it (a new random data key
  // wrapped by `key`, and an empty integrity record) when it holds none.
  // A store from before integrity records gets its first one, made from the
  // records as they are. `wrong_key` when `key` does not open it,
  // `corrupt_data` for a damaged keyring or one missing from a store that
  // holds records, `conflict` when another writer kept creating it at the
  // same moment, the backend's errors. With Options::create off, a backend
  // that holds no store is `not_found` and nothing is written.
  static Result<SealedStore> open(std::shared_ptr<StorageBackend> backend, const KeySource& key,
                                  Options options = {});

  // Whether `backend` holds a store: a keyring, whether or not it opens.
  static Result<bool> exists(StorageBackend& backend);

  SealedStore(std::shared_ptr<StorageBackend> backend, Vault vault, Options options = {});
  SealedStore(SealedStore&&) noexcept = default;
  SealedStore& operator=(SealedStore&&) = delete;
  SealedStore(const SealedStore&) = delete;
  SealedStore& operator=(const SealedStore&) = delete;

  // Writes staged for one commit, sealed as they are staged.
  class Batch {
   public:
    explicit Batch(std::shared_ptr<const Vault> vault) : vault_(std::move(vault)) {}

    // Seals `plaintext` (with the clear `header`, at most 255 bytes, that a
    // reader may see before opening it) as `key` at `expected_version` + 1,
    // and stages its put; the sealed record's nonce tag.
    NonceTag put(std::string_view collection, std::string_view key, std::uint64_t expected_version,
                 std::string_view plaintext, std::string_view header = {});
    void erase(std::string_view collection, std::string_view key, std::uint64_t expected_version);
    void expect(std::string_view collection, std::string_view key, std::uint64_t expected_version);
    void erase_all(std::string_view collection);
    // Tells the commit that `current`, just read from `collection`, is the
    // record an operation of this batch on its key replaces: the integrity
    // record is then updated without reading it again. Should the record
    // change before the commit, that operation's expected version fails it.
    void replaces(std::string_view collection, const Record& current);

    bool empty() const noexcept { return write_.empty(); }
    std::size_t size() const noexcept { return write_.size(); }
    // What commit() hands the backend, its integrity record aside:
    // ciphertext only.
    const WriteBatch& sealed() const noexcept { return write_; }

   private:
    friend class SealedStore;
    // A record the batch replaces, as replaces() was told of it.
    struct Replaced {
      std::size_t collection;
      std::string key;
      std::uint64_t version;
      Vault::Digest digest;
    };
    std::shared_ptr<const Vault> vault_;
    WriteBatch write_;
    std::vector<Replaced> replaced_;
  };

  Batch batch() const { return Batch(vault()); }

  // Writes `batch`, and the integrity record updated for it, in one atomic
  // write: all of it or, on any error, none. `conflict` when an expectation
  // fails (another writer came first) or the batch was sealed under a data
  // key that has since been rotated. The batch is unchanged afterwards.
  Result<void> commit(Batch& batch);

  // Records as stored (sealed), from the backend, unchecked.
  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) const;
  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix = {}) const;

  // One consistent reading of every collection, checked against the
  // integrity record: `corrupt_data` naming what differs (unless opened to
  // recover; integrity() holds what was found either way), `wrong_key` when
  // the store's data key was rotated by another handle since this one
  // opened, `unavailable` when writers kept changing the store throughout.
  Result<CollectionRecords> read_checked() const;
  // What the last check found.
  IntegrityReport integrity() const;
  // The newest generation this handle has seen.
  std::uint64_t generation() const noexcept { return state_->generation.load(std::memory_order_acquire); }

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
  Vault::FingerprintBytes fingerprint(std::string_view data) const { return vault()->fingerprint_bytes(data); }

  // Changes committed to the backend by any handle, process or host.
  Result<Subscription> subscribe(ChangeHandler handler) const;

  // Re-wraps the data key with `new_key` in one atomic write. `conflict`
  // when the key was changed concurrently; nothing changes then.
  Result<void> change_key(const KeySource& new_key);

  // A record re-sealed by rotate(): where it goes (its own key, or a new
  // one), and what to seal there.
  struct Resealed {
    std::string key;
    SecureBuffer plaintext;
    std::string header;
  };
  // Given a record of covered collection `collection` (its index, see
  // covered_name()) and its plaintext, what to seal in its place under
  // `fresh`, or nullopt to drop it. Called collection by collection in
  // covered order, each in key order: accounts first.
  using Resealer = std::function<Result<std::optional<Resealed>>(std::size_t collection, const Record& record,
                                                                 SecureBuffer plaintext, const Vault& fresh)>;
  using RotationProgress = std::function<void(std::size_t done, std::size_t total)>;
  struct Rotated {
    std::size_t resealed = 0;
    std::size_t dropped = 0;  // what `reseal` dropped, or (opened to recover) did not authenticate
    // The accounts' records as the rotation wrote them, in key order, and
    // the version of the integrity record it wrote: while that is still the
    // store's, these are the store's accounts.
    std::vector<Record> accounts;
    std::uint64_t manifest_version = 0;
  };
  // Re-seals every record of the store under a new random data key and a
  // new store id, wrapped by `key`, with a new integrity record: keyring,
  // records and integrity record in one atomic write, so that the store is
  // either as it was or wholly under the new key. Checks the store first
  // (`corrupt_data` as read_checked() says; opened to recover, what does not
  // authenticate is dropped instead, which is how a damaged store is sealed
  // anew). `conflict` when another handle wrote meanwhile; nothing changed
  // then. Afterwards this handle works under the new key, and every other
  // handle is retired.
  Result<Rotated> rotate(const KeySource& key, const Resealer& reseal, const RotationProgress& progress);

  // The backend's scrub(), after the keyring was replaced (`done` says how,
  // for the message of a failure: the change itself has landed).
  Result<void> scrub(std::string_view done);

  // After this handle's rotation, records it read before (kept sealed in a
  // cache) still open under the previous key until this is called, once
  // the cache has taken in the re-sealed records.
  void forget_previous_key();

  // The vault records are sealed under now.
  std::shared_ptr<const Vault> vault_now() const { return vault(); }

  // Looks at the stored keyring after it changed: when another handle has
  // rotated the data key, this handle stops serving (`retired()`), and every
  // later read or write through it is `wrong_key`.
  void keyring_changed() const;
  bool retired() const noexcept { return state_->retired.load(std::memory_order_acquire); }
  // The error of a retired handle.
  static Error retired_error();

  static constexpr std::string_view keyring_key = "keyring";
  static constexpr std::string_view manifest_key = "manifest";

 private:
  struct State {
    mutable std::shared_mutex vault_mutex;
    std::mutex write_mutex;
    // The integrity record as last written or read by this handle, and its
    // version; under write_mutex.
    std::optional<Manifest> manifest;
    std::uint64_t manifest_version = 0;
    std::atomic<std::uint64_t> generation{0};
    std::atomic<bool> retired{false};
    mutable std::mutex report_mutex;
    IntegrityReport report;
    // The store id of a rotation being written by this handle, whose
    // keyring change the feed may report before the rotation is in place.
    mutable std::mutex rotation_mutex;
    std::string rotating_to;
  };

  std::shared_ptr<const Vault> vault() const {
    std::shared_lock lock(state_->vault_mutex);
    return vault_;
  }
  // Every write of every collection, the keyring's included, passes here:
  // `batch` and the integrity record updated for it (or `replacement`, made
  // from scratch), in one write. `batch` is handed back unchanged.
  Result<void> write(WriteBatch& batch, const Vault& vault, const Manifest* replacement = nullptr,
                     std::span<const Batch::Replaced> replaced = {});
  // Reads the integrity record into state_ (under write_mutex).
  Result<void> load_manifest(const Vault& vault);
  // The integrity record `record` holds: `corrupt_data` when it does not
  // open, `wrong_key` (and this handle retired) when the data key was
  // rotated.
  Result<Manifest> open_manifest(const Record& record, const Vault& vault) const;
  // The integrity record updated for `batch` on top of `base`; `conflict`
  // when the batch expects a version the store does not hold.
  Result<Manifest> apply(const Manifest& base, const WriteBatch& batch, const Vault& vault,
                         std::span<const Batch::Replaced> replaced);
  // The integrity record of `records`, as the store holds them.
  static Manifest tally(const CollectionRecords& records, const Vault& vault, std::uint64_t generation);
  // Every covered collection, unchecked.
  Result<CollectionRecords> read_all() const;
  // The integrity record (absent: nullopt) and every covered collection, as
  // one consistent reading; nullopt when a write came between.
  struct Reading {
    std::optional<Record> manifest;
    CollectionRecords records;
  };
  Result<std::optional<Reading>> read_once() const;
  // What the integrity record `manifest` (absent: nullopt) says of `records`.
  Result<IntegrityReport> check(const std::optional<Record>& manifest, const CollectionRecords& records,
                                const Vault& vault) const;
  Result<void> upgrade(std::uint64_t keyring_version, std::string keyring);
  Result<void> create(std::string keyring);
  // `keyring` (expected at `keyring_version`) and the store's first
  // integrity record, `manifest`, in one write.
  Result<void> write_first(std::string keyring, std::uint64_t keyring_version, Manifest manifest);
  void saw_generation(std::uint64_t generation) const noexcept;

  std::shared_ptr<StorageBackend> backend_;
  std::shared_ptr<const Vault> vault_;  // under state_->vault_mutex
  std::shared_ptr<const Vault> previous_;  // under state_->vault_mutex; see forget_previous_key()
  Options options_;
  std::unique_ptr<State> state_ = std::make_unique<State>();
};

}  // namespace keyfolio::detail
