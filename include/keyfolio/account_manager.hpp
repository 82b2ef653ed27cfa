// keyfolio/account_manager.hpp: AccountManager, the encrypted account store.
//
// An AccountManager keeps exchange accounts — an AccountId and its
// Credentials — in a StorageBackend, sealing each one with the store's data
// key before it reaches the backend (see key_source.hpp for what unlocks a
// store). It validates ids and credentials against an ExchangeCatalog.
//
// Reads are served from memory. Opening a store reads every record; an
// account is decrypted into secure memory on its first `get` (a few
// microseconds, once; first reads of different accounts run in parallel),
// and until then its secrets are in memory only as ciphertext. Every later
// `get` returns a shared, immutable snapshot with no decryption and no
// system call. `list`, and PortfolioConnector's search for an account by its
// API key, decrypt the accounts they look at. Changes made through other
// managers reach this one through the backend's change feed
// (has_change_feed()); on a backend without one, call `refresh()`. Once a
// write has returned, this manager's reads see it or a later write.
//
// Concurrency: safe for concurrent use by many threads. Writes never lose an
// update made elsewhere: each write is a compare-and-set on the record's
// version, read fresh from the backend; when another writer got there first
// the operation is retried on the new state (upsert and remove are
// add-or-replace and delete-if-present, so a retry is what the caller
// asked for), up to `Options::max_retries` times, after which it fails with
// `conflict`. `change_key` is not retried: it fails with `conflict` if the
// key was changed concurrently.
//
// Notifications: `subscribe` tells a host which account was created, updated
// or removed, by this manager or any other on the same backend, when the
// change feed made it read every account again (`resync`), and when another
// handle's rotation of the data key retired this manager (`retired`; see
// AccountEvent). Handlers run
// outside the manager's locks, possibly on a backend thread; they may call
// the manager. Read the account for its current state: events of concurrent
// writes may arrive out of order. Destroying (or assigning over) a manager
// stops its change feed and waits for a delivery in progress, so that no
// backend thread runs manager code once it is gone.
#pragma once

#include <keyfolio/account.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/integrity.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/key_source.hpp>
#include <keyfolio/storage.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio {

namespace detail {
class AccountStore;
}  // namespace detail

// One account of a batch upsert.
struct AccountUpdate {
  AccountId id;
  Credentials credentials{};
};

// What rotate_data_key() did.
struct RotationResult {
  std::size_t resealed = 0;  // records re-sealed under the new data key
  std::size_t dropped = 0;   // records left behind: opened to recover, those that did not authenticate
};

struct UpsertResult {
  bool created = false;  // false: an existing account was replaced
  std::uint64_t version = 0;
};

class KEYFOLIO_EXPORT AccountManager {
 public:
  struct Options {
    // The catalog ids and credentials are validated against; must outlive
    // the manager. Null: the built-in catalog.
    const ExchangeCatalog* catalog = nullptr;
    // Compare-and-set attempts of one write before it fails with `conflict`.
    int max_retries = 32;
    // Refuse (`corrupt_data`) a store whose generation() is older than this:
    // the generation a host kept from an earlier open, somewhere the store's
    // attacker cannot write, so that the whole store replaced by an older
    // copy of itself is seen (see keyfolio/integrity.hpp).
    std::uint64_t minimum_generation = 0;
    // Open a store that fails its integrity check anyway, so that what
    // survives can be read and exported; integrity() says what was found.
    // Damaged records still read as damaged. Writes go on to keep the
    // integrity record as it was (a store whose integrity record itself is
    // lost takes none); rotate_data_key() seals what survives anew.
    bool recover = false;
    // Create the store when the backend holds none. Off: such a backend is
    // `not_found` and nothing is written, so that a command meant for an
    // existing store never makes a new one under whatever key it was given.
    bool create = true;
  };

  // Whether `backend` holds a store (its keyring), without opening it: what
  // a caller asks before deciding whether a passphrase is a new store's.
  static Result<bool> exists(StorageBackend& backend);

  // Opens the store in `backend`, creating it (with a new random data key
  // wrapped by `key`) when the backend holds none (`not_found` instead with
  // Options::create off). Returns `wrong_key` when
  // `key` does not open an existing store, `corrupt_data` when its keyring is
  // damaged, or missing from a backend that holds records (then nothing is
  // written), or when the store fails its integrity check (a record put back
  // at an older version, deleted or re-inserted; the message names it) or is
  // older than Options::minimum_generation, and the backend's error when it
  // fails. A store written before stores kept an integrity record gets its
  // first one, made from its records as they are.
  static Result<AccountManager> open(std::shared_ptr<StorageBackend> backend, const KeySource& key,
                                     Options options);
  static Result<AccountManager> open(std::shared_ptr<StorageBackend> backend, const KeySource& key);

  AccountManager(AccountManager&&) noexcept;
  AccountManager& operator=(AccountManager&&) noexcept;
  ~AccountManager();

  // Adds the account or replaces its credentials (CoinAPI EMS add-or-update).
  // `invalid_exchange_id` when the id's exchange is not in the catalog,
  // `validation_failed` when the credentials do not fit the exchange. The
  // version starts at 1 and grows by one per update.
  Result<UpsertResult> upsert(const AccountId& id, Credentials credentials);
  // Parses `id` first (AccountId::parse with the manager's catalog).
  Result<UpsertResult> upsert(std::string_view id, Credentials credentials);
  // Adds or replaces all of `accounts` in one atomic write: either every one
  // is stored or, on any error, none is. Each is validated as above; an id
  // given twice is `validation_failed`. Results are in the order given.
  Result<std::vector<UpsertResult>> upsert(std::vector<AccountUpdate> accounts);
  // How far a large upsert has come: `done` of `total` accounts validated and
  // sealed; at (total, total) the single write begins. Called on the calling
  // thread, every few thousand accounts and at the end; never goes back
  // (a retried write does not report its second sealing).
  using Progress = std::function<void(std::size_t done, std::size_t total)>;
  Result<std::vector<UpsertResult>> upsert(std::vector<AccountUpdate> accounts, const Progress& progress);

  // The account, or `not_found`; `corrupt_data` naming it when its stored
  // record does not authenticate (found on the account's first read).
  Result<std::shared_ptr<const Account>> get(const AccountId& id) const;
  Result<std::shared_ptr<const Account>> get(std::string_view id) const;

  // Summaries ordered by id; with `exchange`, only that exchange's accounts
  // (matched through the catalog, so "OKEX" lists okx accounts). Decrypts
  // every account not read yet (its fields and times are inside the record).
  std::vector<AccountSummary> list() const;
  Result<std::vector<AccountSummary>> list(std::string_view exchange) const;
  std::size_t size() const;

  // Removes the account; `not_found` when absent.
  Result<void> remove(const AccountId& id);
  // Removes all of `ids` in one atomic write; `not_found` naming the first
  // absent one, and then nothing is removed. Returns how many were removed.
  Result<std::size_t> remove(std::span<const AccountId> ids);
  // Removes every account; returns how many there were.
  Result<std::size_t> remove_all();

  // Re-wraps the data key with `new_key` in one atomic write; afterwards only
  // `new_key` opens the store. Records are not re-encrypted.
  Result<void> change_key(const KeySource& new_key);

  // Replaces the store's data key: a new random data key and store id,
  // wrapped by `key` (the store's key, or a new one, as change_key takes),
  // every record of every collection re-sealed under it (account
  // fingerprints and the portfolio index re-keyed too), and the integrity
  // record begun anew, all in one atomic write. A crash at any moment leaves
  // the store as it was or wholly rotated; either opens with its own key.
  // Afterwards a copy of the old keyring (a backup, a snapshot) and the old
  // key open no current record.
  //
  // The store is checked first (`corrupt_data` as open() says). A store
  // opened with Options::recover is rotated without the records that do
  // not authenticate (counted in `dropped`): how a damaged store is sealed
  // anew. `conflict` when another handle kept writing meanwhile; nothing
  // changed then.
  //
  // This manager follows the rotation. Every other manager on the store
  // fails closed from the moment it learns of it (through the change feed,
  // or at its next refresh() or write): `wrong_key` ("the store's data key
  // was rotated by another handle; open the store again") from every read
  // of credentials and every write, never a credential sealed under the old
  // key. This manager's subscribers hear no event (no account changes),
  // and its readers never see an account missing meanwhile. `progress` is
  // called as for a large upsert, with records counted.
  Result<RotationResult> rotate_data_key(const KeySource& key, const Progress& progress = {});

  // Re-reads every account from the backend, and checks the whole store
  // against its integrity record (`corrupt_data` as open() says).
  Result<void> refresh();

  // The store's generation: it grows by one with every write, from any
  // handle. A host that keeps it elsewhere and opens with
  // Options::minimum_generation sees the whole store rolled back.
  std::uint64_t generation() const noexcept;
  // What the last integrity check (at open, or at refresh()) found.
  IntegrityReport integrity() const;

  Subscription subscribe(std::function<void(const AccountEvent&)> handler);

  const ExchangeCatalog& catalog() const noexcept;
  // Whether changes made elsewhere arrive on their own (the backend has a
  // change feed) or need refresh().
  bool has_change_feed() const noexcept;

  // The store behind this manager, for the classes of keyfolio that build
  // on a manager (PortfolioConnector writes accounts and portfolios in one
  // batch through it). An internal type: hosts have no use for it.
  const std::shared_ptr<detail::AccountStore>& store() const noexcept { return store_; }

 private:
  explicit AccountManager(std::shared_ptr<detail::AccountStore> store);
  std::shared_ptr<detail::AccountStore> store_;
};

}  // namespace keyfolio
