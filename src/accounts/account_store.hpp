// The account store: keyfolio's accounts over the sealed store, kept in
// memory and kept current, for AccountManager and PortfolioConnector alike.
//
// It holds every account of the store in a cache by id, with an index by
// fingerprint, and brings both up to the backend's change feed. Records are
// kept sealed until first read. Writes of any collection that touch
// accounts are staged in a Write and committed through commit(), which
// applies the cache-coherence rule in one place: what was written is taken
// into the cache, unless something may have brought the cache past it, in
// which case it is read back.
//
// Safe for concurrent use by many threads.
#pragma once

#include <keyfolio/account.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/subscription.hpp>

#include "accounts/account_cache.hpp"
#include "accounts/fingerprint.hpp"
#include "storage/sealed_store.hpp"
#include "storage/subscribers.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::detail {

inline Timestamp now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// The quoted spelling of an id, for messages.
std::string name_of(const AccountId& id);

// An account just sealed into a record with `nonce`, so that taking it into
// the cache needs no decryption.
struct Sealed {
  std::string_view key;  // its storage key; the writer keeps the string alive and unchanged
  NonceTag nonce;
  std::shared_ptr<const Account> account;
  Fingerprint fingerprint;

  bool sealed_into(const Record& record) const {
    return account->version == record.version && nonce == NonceTag::of(record.value);
  }
};

// An account record as stored now: its version, and the account when the
// record authenticates and decodes (nullopt: corrupt).
struct StoredAccount {
  std::uint64_t version = 0;
  std::optional<Account> account;
};

// The fingerprint of the account `id` would be with `credentials` under
// `vault`'s key (empty when its exchange has no identifying field, or it is
// missing).
Fingerprint fingerprint_under(const Vault& vault, const ExchangeCatalog& catalog, const AccountId& id,
                              const Credentials& credentials);

class AccountStore : public std::enable_shared_from_this<AccountStore> {
 public:
  // Opens over `sealed`: subscribes to its change feed when the backend has
  // one, and loads every account (sealed). `catalog` must outlive the store;
  // `max_retries` bounds the compare-and-set attempts of its writers.
  static Result<std::shared_ptr<AccountStore>> open(SealedStore sealed, const ExchangeCatalog& catalog,
                                                    int max_retries);

  AccountStore(SealedStore sealed, const ExchangeCatalog& catalog, int max_retries);
  AccountStore(const AccountStore&) = delete;
  AccountStore& operator=(const AccountStore&) = delete;
  ~AccountStore();

  // One atomic write, across collections, and what it does to accounts.
  class Write {
   public:
    explicit Write(SealedStore::Batch batch) : batch_(std::move(batch)) {}

    // For records of other collections, written in the same commit.
    SealedStore::Batch& batch() noexcept { return batch_; }
    // Stages `account` (at version `expected_version` + 1) under `key`, its
    // storage key, which the caller keeps alive until the commit.
    void put(std::string_view key, std::shared_ptr<const Account> account, const Fingerprint& fingerprint,
             std::uint64_t expected_version);
    void erase(std::string key, std::uint64_t version);
    // Brings the cache entry of `key` up to the backend after the commit,
    // though this write does not change it (it was found gone).
    void reload(std::string key) { reloaded_.push_back(std::move(key)); }
    // The account under `key` must be at `version` when the write lands.
    void expect(std::string_view key, std::uint64_t version);
    // `current`, an account's record just read, is what this write replaces
    // or erases: the commit need not read it again.
    void replaces(const Record& current) { batch_.replaces(collections::accounts, current); }
    // Every account's record (each at its `version`) goes.
    void erase_all(std::span<const Record> records);
    bool empty() const noexcept { return batch_.empty(); }
    // Room for `accounts` puts.
    void reserve(std::size_t accounts) { sealed_.reserve(accounts); }

   private:
    friend class AccountStore;
    SealedStore::Batch batch_;
    std::vector<Sealed> sealed_;  // sorted by key when committed
    std::vector<std::string> reloaded_;  // erased, or to reload
    bool erased_all_ = false;
  };
  Write write() const { return Write(sealed_.batch()); }
  // Commits `write` in one atomic write and brings the cache up to it;
  // `conflict` when an expectation fails, and then nothing changed.
  Result<void> commit(Write& write);

  // The account, `not_found`, or `corrupt_data` naming it.
  Result<std::shared_ptr<const Account>> get(const AccountId& id);
  std::vector<AccountSummary> list();
  std::size_t size() const;

  // The account whose identifying credential has `fingerprint` (the first
  // by id when several do), checked by decrypting it.
  std::optional<AccountId> find_by_fingerprint(const Fingerprint& fingerprint);
  // The fingerprint of the account `id` would be with `credentials` (empty
  // when its exchange has no identifying field, or it is missing).
  Fingerprint fingerprint(const AccountId& id, const Credentials& credentials) const;

  // The stored record of each of `keys` (sorted), at the same positions.
  Result<std::vector<std::optional<Record>>> read_current(std::span<const std::string_view> keys) const;
  // When the stored `record` of `id` (under `key`) was created; nullopt when
  // it does not authenticate or decode here, as a read would report it.
  std::optional<Timestamp> created_of(const AccountId& id, std::string_view key, const Record& record) const;
  // The record stored under `key` now, as the backend holds it.
  Result<std::optional<Record>> read(std::string_view key) const { return sealed_.get(collections::accounts, key); }
  // The account stored under `key` now, read from the backend.
  Result<std::optional<StoredAccount>> read_stored(std::string_view key) const;
  // Every account record as stored now.
  Result<std::vector<Record>> scan() const { return sealed_.scan(collections::accounts); }

  // Brings the account under `key`, or every account, up to the backend.
  Result<void> reload(std::string_view key);
  Result<void> refresh();

  Subscription subscribe(std::function<void(const AccountEvent&)> handler);
  // Stops the change feed, waiting for a delivery in progress.
  void stop_feed() noexcept { feed_.reset(); }

  const ExchangeCatalog& catalog() const noexcept { return *catalog_; }
  int max_retries() const noexcept { return max_retries_; }
  bool has_change_feed() const noexcept { return feed_active_; }
  // While set, the feed's account events are not taken in one by one: a
  // rotation of this store rewrites every record, and the full refresh()
  // that follows it (begun after this is cleared) takes in all of them.
  void defer_account_events(bool defer) noexcept { deferring_.store(defer, std::memory_order_release); }
  // After this store rotated the data key: the same accounts, each at a new
  // version under the new key, as the rotation wrote them (`written`) with the
  // integrity record at `manifest_version` (read from the store instead
  // when another write has come since). The cache is rebuilt in one pass
  // under one lock (readers wait; none sees it empty) and no event is
  // delivered, as no account changed.
  Result<void> reload_rotated(std::vector<Record> written, std::uint64_t manifest_version);
  SealedStore& sealed() noexcept { return sealed_; }
  const SealedStore& sealed() const noexcept { return sealed_; }

 private:
  struct Opened;

  // Reads (account_store.cpp).
  std::optional<Account> open_record(std::string_view key, std::uint64_t version, std::string_view value) const;
  std::optional<AccountId> id_of_key(std::string_view key) const;
  AccountId id_of(const Entry& entry) const;
  std::optional<std::pair<AccountId, Entry>> make_entry(Record record) const;
  Opened decrypt(std::string_view key, std::uint64_t version, std::string_view record) const;
  void install(Entry& entry, Opened opened);
  void open_entry(Entry& entry);
  template <class Use>
  auto with_opened(const AccountId& id, Use use) -> std::optional<decltype(use(std::declval<const Entry&>()))>;
  void index(Entry& entry);
  void unindex(const Entry& entry);

  // Keeping current (account_sync.cpp).
  void on_change(const ChangeEvent& event);
  void take_in(const ChangeEvent& event);
  void tell_if_retired();
  void apply(std::string_view key, const std::optional<Record>& record, std::vector<AccountEvent>& events,
             const Sealed* sealed = nullptr);
  void store_entry(const AccountId& id, Entry entry, std::vector<AccountEvent>* events);
  bool holds_at_least(std::string_view key, std::uint64_t version) const;
  std::uint64_t generation();
  Result<void> sync_sealed(std::span<const Sealed> sealed, std::uint64_t before);
  void install(std::span<const Sealed> sealed, std::vector<AccountEvent>& events);
  Result<void> read_back(std::span<const Sealed> sealed, std::vector<AccountEvent>& events);
  // `replace`: the cache is emptied first, under the same lock.
  void load(std::vector<Record> records, std::vector<AccountEvent>* events, bool replace = false);
  Result<void> sync_all(bool initial);
  void deliver(const std::vector<AccountEvent>& events) { subscribers_->deliver(events); }

  SealedStore sealed_;
  const ExchangeCatalog* catalog_;
  int max_retries_;
  bool feed_active_ = false;
  std::atomic<bool> deferring_{false};
  std::atomic<bool> told_retired_{false};  // subscribers heard `retired`

  mutable std::shared_mutex cache_mutex_;
  // Keyed by id; a storage key finds its entry by parsing it (the canonical
  // form parses back to an equal id), so no second map of keys is kept.
  AccountCache cache_;
  // Accounts by fingerprint of their identifying credential, so that an
  // exchange account is found without decrypting. Filed under the
  // fingerprint's first 8 bytes (a match is checked against the whole one);
  // values point at entries of `cache_`, which do not move: an entry is
  // taken out of this index before its fingerprint changes or it goes.
  PointerTable<Entry> ids_by_fingerprint_;

  std::mutex sync_mutex_;  // orders cache updates
  // Counts the cache updates made under sync_mutex_: a writer that finds it
  // unchanged across its write knows that nothing has brought the cache past
  // its commit (see sync_sealed). Under sync_mutex_.
  std::uint64_t sync_generation_ = 0;
  Subscription feed_;
  std::shared_ptr<Subscribers<AccountEvent>> subscribers_ = std::make_shared<Subscribers<AccountEvent>>();
};

}  // namespace keyfolio::detail
