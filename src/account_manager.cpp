#include <keyfolio/account_manager.hpp>

#include "crypto/vault.hpp"
#include "detail/secure_arena.hpp"
#include "detail/subscribers.hpp"
#include "detail/text.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>

namespace keyfolio {
namespace {

constexpr std::string_view accounts_collection = "accounts";
constexpr std::string_view meta_collection = "keyfolio";
constexpr std::string_view keyring_key = "keyring";
constexpr unsigned char payload_format = 1;

Timestamp now() { return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()); }

// The plaintext of an account record, built in secure memory:
//   u8 format | i64 created ms | i64 updated ms | str spelling |
//   u32 field count | (str key | str value)*    (str = u32 length + bytes)
class PayloadWriter {
 public:
  explicit PayloadWriter(std::size_t size) : buffer_(size) {}
  void u8(unsigned char v) { buffer_.data()[at_++] = static_cast<char>(v); }
  void u32(std::uint32_t v) { integer(v, 4); }
  void i64(std::int64_t v) { integer(static_cast<std::uint64_t>(v), 8); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    if (!s.empty()) std::memcpy(buffer_.data() + at_, s.data(), s.size());
    at_ += s.size();
  }
  std::string_view view() const { return buffer_.view(); }

 private:
  void integer(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) buffer_.data()[at_++] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  detail::SecureBuffer buffer_;
  std::size_t at_ = 0;
};

class PayloadReader {
 public:
  explicit PayloadReader(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool done() const { return at_ == data_.size(); }
  unsigned char u8() { return static_cast<unsigned char>(take(1).empty() ? 0 : data_[at_ - 1]); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(integer(4)); }
  std::int64_t i64() { return static_cast<std::int64_t>(integer(8)); }
  std::string_view str() { return take(u32()); }

 private:
  std::string_view take(std::size_t n) {
    if (!ok_ || data_.size() - at_ < n) {
      ok_ = false;
      return {};
    }
    at_ += n;
    return data_.substr(at_ - n, n);
  }
  std::uint64_t integer(int n) {
    const auto bytes = take(static_cast<std::size_t>(n));
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) v |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return v;
  }
  std::string_view data_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

struct Entry {
  std::shared_ptr<const Account> account;  // null when the record is corrupt
  std::uint64_t version = 0;
  std::string nonce;
  std::string fingerprint;
};

std::string name_of(const AccountId& id) { return detail::quote(id.spelling()); }

// An account this manager has just sealed into a record with `nonce`, so
// that taking it into the cache needs no decryption.
struct Sealed {
  std::string nonce;
  std::shared_ptr<const Account> account;
  std::string fingerprint;
};

}  // namespace

struct AccountManager::Impl : std::enable_shared_from_this<Impl> {
  std::shared_ptr<StorageBackend> backend;
  const ExchangeCatalog* catalog = nullptr;
  int max_retries = 32;
  detail::Vault vault;
  bool feed_active = false;

  mutable std::shared_mutex cache_mutex;
  std::unordered_map<AccountId, Entry> cache;
  std::unordered_map<std::string, AccountId> ids_by_key;

  std::mutex sync_mutex;  // orders cache updates: each re-reads the backend
  Subscription feed;

  std::shared_ptr<detail::Subscribers<AccountEvent>> subscribers =
      std::make_shared<detail::Subscribers<AccountEvent>>();

  Impl(std::shared_ptr<StorageBackend> b, const ExchangeCatalog* c, int retries, detail::Vault v)
      : backend(std::move(b)), catalog(c), max_retries(retries), vault(std::move(v)) {}

  ~Impl() { feed.reset(); }

  std::string fingerprint_of(const AccountId& id, const Credentials& credentials) const {
    const ExchangeInfo* info = catalog->find(id.exchange());
    if (info == nullptr) return {};
    const auto field = info->identifying_field();
    const SecretString* value = field.empty() ? nullptr : credentials.find(field);
    if (value == nullptr) return {};
    detail::SecureBuffer message(id.exchange().size() + 1 + value->size());
    std::memcpy(message.data(), id.exchange().data(), id.exchange().size());
    message.data()[id.exchange().size()] = '\0';
    std::memcpy(message.data() + id.exchange().size() + 1, value->reveal().data(), value->size());
    return vault.fingerprint(message.view());
  }

  std::string seal(const AccountId& id, const std::string& key, std::uint64_t version, Timestamp created,
                   Timestamp updated, const Credentials& credentials) const {
    std::size_t size = 1 + 8 + 8 + 4 + id.spelling().size() + 4;
    for (const auto& [field, value] : credentials) size += 8 + field.size() + value.size();
    PayloadWriter w(size);
    w.u8(payload_format);
    w.i64(created.time_since_epoch().count());
    w.i64(updated.time_since_epoch().count());
    w.str(id.spelling());
    w.u32(static_cast<std::uint32_t>(credentials.size()));
    for (const auto& [field, value] : credentials) {
      w.str(field);
      w.str(value.reveal());
    }
    return vault.seal(accounts_collection, key, version, w.view());
  }

  // Opens a stored record: the account, or nullopt when it does not
  // authenticate or does not parse.
  std::optional<Account> open_record(const std::string& key, const Record& record) const {
    auto plain = vault.open(accounts_collection, key, record.version, record.value);
    if (!plain) return std::nullopt;
    PayloadReader r(plain->view());
    if (r.u8() != payload_format) return std::nullopt;
    const Timestamp created{std::chrono::milliseconds(r.i64())};
    const Timestamp updated{std::chrono::milliseconds(r.i64())};
    const auto spelling = r.str();
    const auto count = r.u32();
    if (!r.ok()) return std::nullopt;
    auto id = AccountId::parse(spelling, *catalog);
    if (!id || id->canonical() != key) return std::nullopt;
    Credentials credentials;
    for (std::uint32_t i = 0; i < count; ++i) {
      const auto field = r.str();
      const auto value = r.str();
      if (!r.ok() || !credentials.add(field, SecretString(value), *catalog)) return std::nullopt;
    }
    if (!r.done()) return std::nullopt;
    return Account{std::move(*id), std::move(credentials), record.version, created, updated};
  }

  // The id a storage key names, for records that cannot be opened.
  std::optional<AccountId> id_of_key(const std::string& key) const {
    if (auto it = ids_by_key.find(key); it != ids_by_key.end()) return it->second;
    auto id = AccountId::parse(key, *catalog);
    if (!id) return std::nullopt;
    return std::move(*id);
  }

  // Brings the cache entry of `key` up to `record` (absent: removed), under
  // sync_mutex. Appends what changed to `events`.
  void apply(const std::string& key, const std::optional<Record>& record, std::vector<AccountEvent>& events,
             const Sealed* sealed = nullptr) {
    std::optional<AccountId> known;
    {
      std::shared_lock lock(cache_mutex);
      if (auto it = ids_by_key.find(key); it != ids_by_key.end()) {
        known = it->second;
        const Entry& entry = cache.at(it->second);
        if (record && entry.version == record->version && entry.nonce == detail::Vault::nonce_of(record->value)) {
          return;
        }
      }
    }
    if (!record) {
      if (!known) return;
      std::unique_lock lock(cache_mutex);
      cache.erase(*known);
      ids_by_key.erase(key);
      events.push_back({AccountEvent::Kind::removed, *known, 0});
      return;
    }
    Entry entry;
    entry.version = record->version;
    entry.nonce = std::string(detail::Vault::nonce_of(record->value));
    std::optional<AccountId> id;
    if (sealed != nullptr && sealed->account->version == record->version && sealed->nonce == entry.nonce) {
      entry.fingerprint = sealed->fingerprint;
      entry.account = sealed->account;
      id = sealed->account->id;
    } else if (auto account = open_record(key, *record)) {
      entry.fingerprint = fingerprint_of(account->id, account->credentials);
      id = account->id;
      entry.account = std::make_shared<const Account>(std::move(*account));
    } else {
      id = id_of_key(key);
      if (!id) return;  // a key this catalog cannot name: not an account of ours
    }
    std::unique_lock lock(cache_mutex);
    if (known && !(*known == *id)) cache.erase(*known);
    cache.insert_or_assign(*id, std::move(entry));
    ids_by_key.insert_or_assign(key, *id);
    events.push_back({known ? AccountEvent::Kind::updated : AccountEvent::Kind::created, *id, record->version});
  }

  Result<void> sync_key(const std::string& key) {
    std::vector<AccountEvent> events;
    {
      std::lock_guard lock(sync_mutex);
      auto record = backend->get(accounts_collection, key);
      if (!record) return record.error();
      apply(key, *record, events);
    }
    deliver(events);
    return {};
  }

  // Takes records this manager has just written into the cache, re-reading
  // them from the backend so that a newer write from elsewhere wins.
  Result<void> sync_sealed(const std::map<std::string, Sealed>& sealed) {
    if (sealed.size() > 64) {
      std::vector<AccountEvent> events;
      {
        std::lock_guard lock(sync_mutex);
        auto records = backend->scan(accounts_collection);
        if (!records) return records.error();
        for (const Record& record : *records) {
          auto it = sealed.find(record.key);
          if (it != sealed.end()) apply(record.key, record, events, &it->second);
        }
        for (const auto& [key, s] : sealed) {
          const bool present = std::binary_search(records->begin(), records->end(), key,
                                                  [](const auto& a, const auto& b) { return key_of(a) < key_of(b); });
          if (!present) apply(key, std::nullopt, events);
        }
      }
      deliver(events);
      return {};
    }
    for (const auto& [key, s] : sealed) {
      std::vector<AccountEvent> events;
      {
        std::lock_guard lock(sync_mutex);
        auto record = backend->get(accounts_collection, key);
        if (!record) return record.error();
        apply(key, *record, events, &s);
      }
      deliver(events);
    }
    return {};
  }

  static std::string_view key_of(const Record& r) { return r.key; }
  static std::string_view key_of(const std::string& k) { return k; }

  Result<void> sync_all() {
    std::vector<AccountEvent> events;
    {
      std::lock_guard lock(sync_mutex);
      auto records = backend->scan(accounts_collection);
      if (!records) return records.error();
      std::set<std::string> present;
      for (const Record& record : *records) {
        present.insert(record.key);
        apply(record.key, record, events);
      }
      std::vector<std::string> gone;
      {
        std::shared_lock lock(cache_mutex);
        for (const auto& [key, id] : ids_by_key) {
          if (!present.contains(key)) gone.push_back(key);
        }
      }
      for (const auto& key : gone) apply(key, std::nullopt, events);
    }
    deliver(events);
    return {};
  }

  void deliver(const std::vector<AccountEvent>& events) { subscribers->deliver(events); }

  // The stored records of `keys`: one get each for a few keys, one scan for
  // many.
  template <class Keys>
  Result<std::map<std::string, Record, std::less<>>> read_current(const Keys& keys) const {
    std::map<std::string, Record, std::less<>> out;
    if (keys.size() > 64) {
      auto records = backend->scan(accounts_collection);
      if (!records) return records.error();
      for (Record& record : *records) {
        if (keys.contains(record.key)) {
          std::string key = record.key;
          out.emplace(std::move(key), std::move(record));
        }
      }
      return out;
    }
    for (const auto& entry : keys) {
      const std::string& key = entry.first;
      auto record = backend->get(accounts_collection, key);
      if (!record) return record.error();
      if (*record) out.emplace(key, std::move(**record));
    }
    return out;
  }

  // When the stored record of `key` was created; nullopt when it does not
  // authenticate. Served from the cache when it holds this very record.
  std::optional<Timestamp> created_of(const std::string& key, const Record& record) const {
    {
      std::shared_lock lock(cache_mutex);
      if (auto it = ids_by_key.find(key); it != ids_by_key.end()) {
        const Entry& entry = cache.at(it->second);
        if (entry.account && entry.version == record.version && entry.nonce == detail::Vault::nonce_of(record.value)) {
          return entry.account->created;
        }
      }
    }
    auto existing = open_record(key, record);
    if (!existing) return std::nullopt;
    return existing->created;
  }

  const ExchangeInfo* exchange_of(const AccountId& id) const { return catalog->find(id.exchange()); }

  Error exhausted(std::string_view what, const AccountId& id) const {
    return Error(errc::conflict, std::string(what) + " of account " + name_of(id) + " lost to concurrent writers " +
                                     std::to_string(max_retries) + " times in a row");
  }
};

AccountManager::AccountManager(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
AccountManager::AccountManager(AccountManager&&) noexcept = default;
AccountManager& AccountManager::operator=(AccountManager&&) noexcept = default;
AccountManager::~AccountManager() = default;

Result<AccountManager> AccountManager::open(std::shared_ptr<StorageBackend> backend, const KeySource& key) {
  return open(std::move(backend), key, Options{});
}

Result<AccountManager> AccountManager::open(std::shared_ptr<StorageBackend> backend, const KeySource& key,
                                            Options options) {
  if (!backend) return Error(errc::invalid_argument, "AccountManager::open: no storage backend");
  if (options.max_retries < 1) return Error(errc::invalid_argument, "AccountManager::open: max_retries must be >= 1");
  const ExchangeCatalog* catalog = options.catalog != nullptr ? options.catalog : &ExchangeCatalog::builtin();

  std::optional<detail::Vault> vault;
  for (int attempt = 0; attempt < 2 && !vault; ++attempt) {
    auto stored = backend->get(meta_collection, keyring_key);
    if (!stored) return stored.error();
    if (*stored) {
      auto opened = detail::Vault::open_keyring((*stored)->value, key);
      if (!opened) return opened.error();
      vault.emplace(std::move(*opened));
      break;
    }
    auto fresh = detail::Vault::generate();
    auto record = fresh.keyring_record(key);
    if (!record) return record.error();
    WriteBatch batch;
    batch.put(meta_collection, keyring_key, std::move(*record), must_not_exist);
    auto written = backend->write(batch);
    if (written) {
      vault.emplace(std::move(fresh));
    } else if (written.error().code() != errc::conflict) {
      return written.error();
    }
    // conflict: another process created the store first; open theirs.
  }
  if (!vault) return Error(errc::conflict, "the store was being created concurrently; try again");

  auto impl = std::make_shared<Impl>(std::move(backend), catalog, options.max_retries, std::move(*vault));
  std::weak_ptr<Impl> weak = impl;
  auto feed = impl->backend->subscribe([weak](const ChangeEvent& event) {
    auto self = weak.lock();
    if (!self) return;
    if (event.kind == ChangeEvent::Kind::resync && (event.collection.empty() || event.collection == accounts_collection)) {
      (void)self->sync_all();
    } else if (event.collection != accounts_collection) {
      return;
    } else if (event.kind == ChangeEvent::Kind::erase_all) {
      (void)self->sync_all();
    } else {
      (void)self->sync_key(event.key);
    }
  });
  if (feed) {
    impl->feed = std::move(*feed);
    impl->feed_active = true;
  } else if (feed.error().code() != errc::not_supported) {
    return feed.error();
  }
  if (auto loaded = impl->sync_all(); !loaded) return loaded.error();
  return AccountManager(std::move(impl));
}

Result<UpsertResult> AccountManager::upsert(std::string_view id, Credentials credentials) {
  auto parsed = AccountId::parse(id, *impl_->catalog);
  if (!parsed) return parsed.error();
  return upsert(*parsed, std::move(credentials));
}

Result<UpsertResult> AccountManager::upsert(const AccountId& id, Credentials credentials) {
  std::vector<AccountUpdate> one;
  one.push_back({id, std::move(credentials)});
  auto done = upsert(std::move(one));
  if (!done) return done.error();
  return done->front();
}

Result<std::vector<UpsertResult>> AccountManager::upsert(std::vector<AccountUpdate> accounts) {
  Impl& m = *impl_;
  std::map<std::string, std::size_t> index;  // storage key -> position in `accounts`
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    const AccountId& id = accounts[i].id;
    const ExchangeInfo* info = m.exchange_of(id);
    if (info == nullptr) {
      return Error(errc::invalid_exchange_id, "account " + name_of(id) + ": exchange " + detail::quote(id.exchange()) +
                                                  " is not in this manager's catalog");
    }
    if (auto valid = accounts[i].credentials.validate(*info); !valid) {
      return Error(errc::validation_failed, "account " + name_of(id) + ": " + valid.error().message());
    }
    auto [it, inserted] = index.emplace(id.canonical(), i);
    if (!inserted) {
      return Error(errc::validation_failed, "account " + name_of(id) + " is given twice (as " +
                                                name_of(accounts[it->second].id) + " and " + name_of(id) +
                                                "); nothing was stored");
    }
  }
  std::vector<UpsertResult> results(accounts.size());
  if (accounts.empty()) return results;
  // Built once; each attempt stamps versions and times before sealing, and
  // only a committed attempt publishes them to the cache.
  std::vector<std::shared_ptr<Account>> prepared(accounts.size());
  std::vector<std::string> fingerprints(accounts.size());
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    fingerprints[i] = m.fingerprint_of(accounts[i].id, accounts[i].credentials);
    prepared[i] = std::make_shared<Account>(Account{std::move(accounts[i].id), std::move(accounts[i].credentials)});
  }

  for (int attempt = 0; attempt < m.max_retries; ++attempt) {
    auto current = m.read_current(index);
    if (!current) return current.error();
    const Timestamp updated = now();
    WriteBatch batch;
    std::map<std::string, Sealed> sealed;
    for (const auto& [key, i] : index) {
      Account& account = *prepared[i];
      const AccountId& id = account.id;
      Timestamp created = updated;
      std::uint64_t version = must_not_exist;
      if (auto found = current->find(key); found != current->end()) {
        auto stored_created = m.created_of(key, found->second);
        if (!stored_created) {
          return Error(errc::corrupt_data, "the stored record of account " + name_of(id) +
                                               " does not authenticate (tampered, truncated or copied); "
                                               "remove it before storing new credentials");
        }
        created = *stored_created;
        version = found->second.version;
      }
      account.version = version + 1;
      account.created = created;
      account.updated = updated;
      std::string value = m.seal(id, key, account.version, created, updated, account.credentials);
      sealed.emplace(key, Sealed{std::string(detail::Vault::nonce_of(value)), prepared[i], fingerprints[i]});
      batch.put(accounts_collection, key, std::move(value), version);
      results[i] = UpsertResult{version == must_not_exist, version + 1};
    }
    auto written = m.backend->write(batch);
    if (!written) {
      if (written.error().code() == errc::conflict) continue;
      return written.error();
    }
    (void)m.sync_sealed(sealed);
    return results;
  }
  return m.exhausted("upsert", prepared[index.begin()->second]->id);
}

Result<std::shared_ptr<const Account>> AccountManager::get(const AccountId& id) const {
  std::shared_lock lock(impl_->cache_mutex);
  auto it = impl_->cache.find(id);
  if (it == impl_->cache.end()) return Error(errc::not_found, "no account " + name_of(id));
  if (!it->second.account) {
    return Error(errc::corrupt_data, "the stored record of account " + name_of(id) +
                                         " does not authenticate (tampered, truncated or copied from elsewhere)");
  }
  return it->second.account;
}

Result<std::shared_ptr<const Account>> AccountManager::get(std::string_view id) const {
  auto parsed = AccountId::parse(id, *impl_->catalog);
  if (!parsed) return parsed.error();
  return get(*parsed);
}

std::vector<AccountSummary> AccountManager::list() const {
  std::vector<AccountSummary> out;
  {
    std::shared_lock lock(impl_->cache_mutex);
    out.reserve(impl_->cache.size());
    for (const auto& [id, entry] : impl_->cache) {
      AccountSummary summary{id};
      summary.version = entry.version;
      summary.fingerprint = entry.fingerprint;
      if (entry.account) {
        summary.created = entry.account->created;
        summary.updated = entry.account->updated;
        summary.fields = entry.account->credentials.field_names();
      } else {
        summary.corrupt = true;
      }
      out.push_back(std::move(summary));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

Result<std::vector<AccountSummary>> AccountManager::list(std::string_view exchange) const {
  const ExchangeInfo* info = impl_->catalog->find(exchange);
  if (info == nullptr) {
    return Error(errc::invalid_exchange_id, "unknown exchange " + detail::quote(exchange) + " in list filter");
  }
  auto all = list();
  std::erase_if(all, [&](const AccountSummary& s) { return s.id.exchange() != info->id; });
  return all;
}

std::size_t AccountManager::size() const {
  std::shared_lock lock(impl_->cache_mutex);
  return impl_->cache.size();
}

Result<void> AccountManager::remove(const AccountId& id) {
  auto removed = remove(std::span<const AccountId>(&id, 1));
  if (!removed) return removed.error();
  return {};
}

Result<std::size_t> AccountManager::remove(std::span<const AccountId> ids) {
  Impl& m = *impl_;
  std::map<std::string, const AccountId*> keys;
  for (const auto& id : ids) keys.emplace(id.canonical(), &id);
  if (keys.empty()) return std::size_t{0};
  for (int attempt = 0; attempt < m.max_retries; ++attempt) {
    WriteBatch batch;
    for (const auto& [key, id] : keys) {
      auto current = m.backend->get(accounts_collection, key);
      if (!current) return current.error();
      if (!*current) return Error(errc::not_found, "no account " + name_of(*id) + "; nothing was removed");
      batch.erase(accounts_collection, key, (*current)->version);
    }
    auto written = m.backend->write(batch);
    if (!written) {
      if (written.error().code() == errc::conflict) continue;
      return written.error();
    }
    for (const auto& [key, id] : keys) (void)m.sync_key(key);
    return keys.size();
  }
  return m.exhausted("removal", *keys.begin()->second);
}

Result<std::size_t> AccountManager::remove_all() {
  Impl& m = *impl_;
  for (int attempt = 0; attempt < m.max_retries; ++attempt) {
    auto records = m.backend->scan(accounts_collection);
    if (!records) return records.error();
    WriteBatch batch;
    for (const Record& record : *records) batch.erase(accounts_collection, record.key, record.version);
    auto written = m.backend->write(batch);
    if (!written) {
      if (written.error().code() == errc::conflict) continue;
      return written.error();
    }
    (void)m.sync_all();
    return records->size();
  }
  return Error(errc::conflict, "removing all accounts lost to concurrent writers " + std::to_string(m.max_retries) +
                                   " times in a row");
}

Result<void> AccountManager::change_key(const KeySource& new_key) {
  Impl& m = *impl_;
  auto current = m.backend->get(meta_collection, keyring_key);
  if (!current) return current.error();
  if (!*current) return Error(errc::corrupt_data, "the store's keyring record is missing");
  auto record = m.vault.keyring_record(new_key);
  if (!record) return record.error();
  WriteBatch batch;
  batch.put(meta_collection, keyring_key, std::move(*record), (*current)->version);
  auto written = m.backend->write(batch);
  if (!written) {
    if (written.error().code() == errc::conflict) {
      return Error(errc::conflict, "the store's key was changed concurrently; nothing was changed");
    }
    return written.error();
  }
  return {};
}

Result<void> AccountManager::refresh() { return impl_->sync_all(); }

Subscription AccountManager::subscribe(std::function<void(const AccountEvent&)> handler) {
  return impl_->subscribers->add(std::move(handler));
}

const ExchangeCatalog& AccountManager::catalog() const noexcept { return *impl_->catalog; }
bool AccountManager::has_change_feed() const noexcept { return impl_->feed_active; }

}  // namespace keyfolio
