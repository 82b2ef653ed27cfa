#include "accounts/account_store.hpp"

#include "accounts/account_record.hpp"
#include "detail/text.hpp"
#include "memory/secure_arena.hpp"

#include <algorithm>
#include <cstring>

namespace keyfolio::detail {

std::string name_of(const AccountId& id) { return quote(id.spelling()); }

// What decrypting an entry kept sealed gives: the account, or nothing when
// the record does not authenticate or its header disagrees with its
// contents.
struct AccountStore::Opened {
  std::shared_ptr<const Account> account;
  Fingerprint fingerprint;
};

AccountStore::AccountStore(SealedStore sealed, const ExchangeCatalog& catalog, int max_retries)
    : sealed_(std::move(sealed)), catalog_(&catalog), max_retries_(max_retries) {}

AccountStore::~AccountStore() { feed_.reset(); }

Result<std::shared_ptr<AccountStore>> AccountStore::open(SealedStore sealed, const ExchangeCatalog& catalog,
                                                         int max_retries) {
  auto store = std::make_shared<AccountStore>(std::move(sealed), catalog, max_retries);
  std::weak_ptr<AccountStore> weak = store;
  auto feed = store->sealed_.subscribe([weak](const ChangeEvent& event) {
    if (auto self = weak.lock()) self->on_change(event);
  });
  if (feed) {
    store->feed_ = std::move(*feed);
    store->feed_active_ = true;
  } else if (feed.error().code() != errc::not_supported) {
    return feed.error();
  }
  if (auto loaded = store->sync_all(true); !loaded) return loaded.error();
  return store;
}

// --- Writes -------------------------------------------------------------

void AccountStore::Write::put(std::string_view key, std::shared_ptr<const Account> account,
                              const Fingerprint& fingerprint, std::uint64_t expected_version) {
  const SecureBuffer plaintext = account_record::encode(*account);
  const NonceTag nonce = batch_.put(collections::accounts, key, expected_version, plaintext.view(),
                                    account_record::header(fingerprint, account->id.spelling()));
  sealed_.push_back(Sealed{key, nonce, std::move(account), fingerprint});
}

void AccountStore::Write::erase(std::string key, std::uint64_t version) {
  batch_.erase(collections::accounts, key, version);
  reloaded_.push_back(std::move(key));
}

void AccountStore::Write::expect(std::string_view key, std::uint64_t version) {
  batch_.expect(collections::accounts, key, version);
}

void AccountStore::Write::erase_all(std::span<const Record> records) {
  for (const Record& record : records) {
    batch_.erase(collections::accounts, record.key, record.version);
    replaces(record);
  }
  erased_all_ = true;
}

Result<void> AccountStore::commit(Write& write) {
  // Writers that stage many accounts stage them in key order already.
  const auto by_key = [](const Sealed& a, const Sealed& b) { return a.key < b.key; };
  if (!std::is_sorted(write.sealed_.begin(), write.sealed_.end(), by_key)) {
    std::sort(write.sealed_.begin(), write.sealed_.end(), by_key);
  }
  const std::uint64_t before = generation();
  if (auto written = sealed_.commit(write.batch_); !written) return written;
  // The write has landed: a failure to bring the cache up to it now is not
  // the write's failure, and the feed or the next refresh() mends it.
  if (write.erased_all_) {
    (void)sync_all(false);
    return {};
  }
  (void)sync_sealed(write.sealed_, before);
  for (const std::string& key : write.reloaded_) (void)reload(key);
  return {};
}

// --- Reads --------------------------------------------------------------

namespace {

Result<std::shared_ptr<const Account>> account_of(const AccountId& id, const Entry& entry) {
  if (!entry.account) {
    return Error(errc::corrupt_data, "the stored record of account " + name_of(id) +
                                         " does not authenticate (tampered, truncated or copied from elsewhere)");
  }
  return entry.account;
}

Error no_account(const AccountId& id) { return Error(errc::not_found, "no account " + name_of(id)); }

}  // namespace

Result<std::shared_ptr<const Account>> AccountStore::get(const AccountId& id) {
  if (sealed_.retired()) return SealedStore::retired_error();
  {
    std::shared_lock lock(cache_mutex_);
    if (auto account = cache_.open_account(id)) return account;
    const Entry* entry = cache_.find(id);
    if (entry == nullptr) return no_account(id);
    if (entry->opened()) return account_of(id, *entry);
  }
  // The first read of an account kept sealed since it was loaded.
  auto found = with_opened(id, [&](const Entry& entry) { return account_of(id, entry); });
  if (!found) return no_account(id);
  return std::move(*found);
}

std::vector<AccountSummary> AccountStore::list() {
  std::vector<AccountSummary> out;
  {
    // Summaries need every account opened (fields, times, integrity).
    std::unique_lock lock(cache_mutex_);
    cache_.for_each([&](Entry& entry) { open_entry(entry); });
    out.reserve(cache_.size());
    cache_.for_each([&](const Entry& entry) {
      AccountSummary summary{id_of(entry)};
      summary.version = entry.version;
      summary.fingerprint = entry.fingerprint.hex();
      if (entry.account) {
        summary.created = entry.account->created;
        summary.updated = entry.account->updated;
        summary.fields = entry.account->credentials.field_names();
      } else {
        summary.corrupt = true;
      }
      out.push_back(std::move(summary));
    });
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::size_t AccountStore::size() const {
  std::shared_lock lock(cache_mutex_);
  return cache_.size();
}

Fingerprint AccountStore::fingerprint(const AccountId& id, const Credentials& credentials) const {
  return fingerprint_under(*sealed_.vault_now(), *catalog_, id, credentials);
}

Fingerprint fingerprint_under(const Vault& vault, const ExchangeCatalog& catalog, const AccountId& id,
                              const Credentials& credentials) {
  const ExchangeInfo* info = catalog.find(id.exchange());
  if (info == nullptr) return {};
  const auto field = info->identifying_field();
  const SecretString* value = field.empty() ? nullptr : credentials.find(field);
  if (value == nullptr) return {};
  // exchange NUL value, in secure memory: the value is a credential.
  const std::string& exchange = id.exchange();
  SecureBuffer message(exchange.size() + 1 + value->size());
  std::memcpy(message.data(), exchange.data(), exchange.size());
  message.data()[exchange.size()] = '\0';
  std::memcpy(message.data() + exchange.size() + 1, value->reveal().data(), value->size());
  return Fingerprint(vault.fingerprint_bytes(message.view()));
}

std::optional<AccountId> AccountStore::find_by_fingerprint(const Fingerprint& wanted) {
  if (wanted.empty()) return std::nullopt;
  std::unique_lock lock(cache_mutex_);
  // Gathered first: opening an entry files it again. Entries do not move,
  // and none goes while the lock is held.
  std::vector<Entry*> candidates;
  ids_by_fingerprint_.for_each(wanted.prefix(), [&](Entry& entry) { candidates.push_back(&entry); });
  const Entry* best = nullptr;
  for (Entry* candidate : candidates) {
    open_entry(*candidate);
    if (candidate->corrupt || candidate->fingerprint.view() != wanted.view()) continue;
    if (best == nullptr || candidate->account->id < best->account->id) best = candidate;
  }
  if (best == nullptr) return std::nullopt;
  return best->account->id;
}

Result<std::vector<std::optional<Record>>> AccountStore::read_current(std::span<const std::string_view> keys) const {
  std::vector<std::optional<Record>> out(keys.size());
  // One get each for a few keys, one scan for many.
  if (keys.size() > 64) {
    auto records = sealed_.scan(collections::accounts);
    if (!records) return records.error();
    for (Record& record : *records) {
      auto it = std::lower_bound(keys.begin(), keys.end(), std::string_view(record.key));
      if (it != keys.end() && *it == record.key) out[static_cast<std::size_t>(it - keys.begin())] = std::move(record);
    }
    return out;
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto record = sealed_.get(collections::accounts, keys[i]);
    if (!record) return record.error();
    out[i] = std::move(*record);
  }
  return out;
}

std::optional<Timestamp> AccountStore::created_of(const AccountId& id, std::string_view key,
                                                  const Record& record) const {
  {
    // Served from the cache when it holds this very record open.
    std::shared_lock lock(cache_mutex_);
    if (const Entry* entry = cache_.find(id); entry != nullptr && entry->account != nullptr && entry->holds(record)) {
      return entry->account->created;
    }
  }
  auto existing = open_record(key, record.version, record.value);
  if (!existing) return std::nullopt;
  return existing->created;
}

Result<std::optional<StoredAccount>> AccountStore::read_stored(std::string_view key) const {
  auto record = sealed_.get(collections::accounts, key);
  if (!record) return record.error();
  if (!*record) return std::optional<StoredAccount>();
  return std::optional<StoredAccount>(
      StoredAccount{(*record)->version, open_record(key, (*record)->version, (*record)->value)});
}

// --- Entries ------------------------------------------------------------

std::optional<Account> AccountStore::open_record(std::string_view key, std::uint64_t version,
                                                 std::string_view value) const {
  auto plain = sealed_.open(collections::accounts, key, version, value);
  if (!plain) return std::nullopt;
  return account_record::decode(key, version, plain->view(), *catalog_);
}

std::optional<AccountId> AccountStore::id_of_key(std::string_view key) const {
  auto id = AccountId::parse(key, *catalog_);
  // Only the canonical spelling of an id is an account's storage key: a
  // stray record under another spelling must not stand for the account.
  if (!id || id->canonical() != key) return std::nullopt;
  return std::move(*id);
}

AccountId AccountStore::id_of(const Entry& entry) const {
  if (entry.account != nullptr) return entry.account->id;
  if (auto header = account_record::header_of(entry.closed.record())) {
    if (auto id = AccountId::parse(header->spelling, *catalog_)) return std::move(*id);  // checked by make_entry
  }
  return id_of_key(entry.closed.key()).value();  // the cache holds only keys that name ids
}

// A record with a header is kept sealed until first read, its strings moved
// into the entry; one without is opened now. nullopt: a key this catalog
// cannot name, not an account of ours.
std::optional<std::pair<AccountId, Entry>> AccountStore::make_entry(Record record) const {
  const std::string& key = record.key;
  Entry entry;
  entry.version = record.version;
  entry.nonce = NonceTag::of(record.value);
  if (auto header = account_record::header_of(record.value)) {
    auto id = AccountId::parse(header->spelling, *catalog_);
    if (id && id->canonical() == key && id->spelling() == header->spelling &&
        (header->fingerprint.empty() || header->fingerprint.size() == Fingerprint::size)) {
      entry.fingerprint = Fingerprint::from_bytes(header->fingerprint);
      entry.closed = ClosedRecord(std::move(record.key), std::move(record.value));
      return std::pair{std::move(*id), std::move(entry)};
    }
  } else if (auto account = open_record(key, record.version, record.value)) {
    entry.fingerprint = fingerprint(account->id, account->credentials);
    AccountId id = account->id;  // the spelling it was stored with
    entry.account = std::make_shared<const Account>(std::move(*account));
    return std::pair{std::move(id), std::move(entry)};
  }
  auto id = id_of_key(key);
  if (!id) return std::nullopt;
  entry.corrupt = true;
  entry.closed = ClosedRecord(std::move(record.key), {});
  return std::pair{std::move(*id), std::move(entry)};
}

// Needs no lock: works on a copy of the entry's record.
AccountStore::Opened AccountStore::decrypt(std::string_view key, std::uint64_t version,
                                           std::string_view record) const {
  const auto header = account_record::header_of(record);
  auto account = open_record(key, version, record);
  if (!account || !header || account->id.spelling() != header->spelling) return {};
  // The header authenticated with the record; a fingerprint that differs
  // from it now comes from another catalog's idea of the identifying field.
  Fingerprint recomputed = fingerprint(account->id, account->credentials);
  return {std::make_shared<const Account>(std::move(*account)), recomputed};
}

// Puts what decrypt() gave into a closed entry; under cache_mutex_
// (exclusive).
void AccountStore::install(Entry& entry, Opened opened) {
  unindex(entry);
  if (opened.account) {
    entry.account = std::move(opened.account);
    entry.closed.reset();  // the account carries the same id
    cache_.published(entry.account->id, entry);
    entry.fingerprint = opened.fingerprint;
    index(entry);
  } else {
    // A corrupt record has no fingerprint to trust, as when loaded eagerly.
    // The record stays: its header still names the spelling.
    entry.fingerprint = {};
    entry.corrupt = true;
  }
}

// Decrypts an entry kept sealed; under cache_mutex_ (exclusive).
void AccountStore::open_entry(Entry& entry) {
  if (entry.opened()) return;
  install(entry, decrypt(entry.closed.key(), entry.version, entry.closed.record()));
}

// The cache entry of `id`, opened if it was kept sealed: the decryption runs
// with no lock held, so that first reads of different accounts do not wait
// on each other or hold up other readers. nullopt when absent. Calls `use`
// with the entry while holding the cache lock, shared or exclusive.
template <class Use>
auto AccountStore::with_opened(const AccountId& id, Use use)
    -> std::optional<decltype(use(std::declval<const Entry&>()))> {
  std::string key;
  std::string record;
  std::uint64_t version = 0;
  {
    std::shared_lock lock(cache_mutex_);
    const Entry* entry = cache_.find(id);
    if (entry == nullptr) return std::nullopt;
    if (entry->opened()) return use(*entry);
    key = entry->closed.key();
    record = entry->closed.record();
    version = entry->version;
  }
  Opened opened = decrypt(key, version, record);
  std::unique_lock lock(cache_mutex_);
  Entry* entry = cache_.find(id);
  if (entry == nullptr) return std::nullopt;
  // Installed only if the entry is still the record that was decrypted.
  if (!entry->opened() && entry->version == version && entry->closed.record() == record) {
    install(*entry, std::move(opened));
  } else {
    open_entry(*entry);
  }
  return use(*entry);
}

// Adds a cache entry to the fingerprint index; under cache_mutex_ (exclusive).
void AccountStore::index(Entry& entry) {
  if (!entry.fingerprint.empty()) ids_by_fingerprint_.insert(entry.fingerprint.prefix(), &entry);
}

// Drops a cache entry from the fingerprint index; under cache_mutex_
// (exclusive).
void AccountStore::unindex(const Entry& entry) {
  if (!entry.fingerprint.empty()) ids_by_fingerprint_.erase(entry.fingerprint.prefix(), &entry);
}

}  // namespace keyfolio::detail
