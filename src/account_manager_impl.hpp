// AccountManager's internals, shared with PortfolioConnector, which writes
// accounts and portfolios in one batch over the same vault and cache.
#pragma once

#include <keyfolio/account_manager.hpp>

#include "crypto/vault.hpp"
#include "detail/pointer_table.hpp"
#include "detail/secure_arena.hpp"
#include "detail/subscribers.hpp"
#include "detail/text.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>

namespace keyfolio {
namespace detail::accounts {

inline constexpr std::string_view accounts_collection = "accounts";
inline constexpr std::string_view meta_collection = "keyfolio";
inline constexpr std::string_view keyring_key = "keyring";
inline constexpr unsigned char payload_format = 1;

inline Timestamp now() { return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()); }

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

// Fixed-size bytes kept inline in a cache entry (no allocation of their own):
// a record's nonce, an account's fingerprint.
template <std::size_t N>
class InlineBytes {
 public:
  InlineBytes() = default;
  explicit InlineBytes(std::string_view s) {
    if (s.size() != N) return;
    std::memcpy(bytes_.data(), s.data(), N);
    set_ = true;
  }
  std::string_view view() const noexcept { return set_ ? std::string_view(bytes_.data(), N) : std::string_view(); }
  bool empty() const noexcept { return !set_; }

 private:
  std::array<char, N> bytes_{};
  bool set_ = false;
};

// An account's fingerprint as kept in memory: its 16 bytes, not the 32 hex
// digits it is written and shown as.
class Fingerprint : public InlineBytes<detail::Vault::fingerprint_size> {
 public:
  static constexpr std::size_t size = detail::Vault::fingerprint_size;
  Fingerprint() = default;
  // From the 32 hex digits; empty when `hex` is not that.
  explicit Fingerprint(std::string_view hex) : InlineBytes(decoded(hex)) {}
  // As the vault computes it.
  explicit Fingerprint(const detail::Vault::FingerprintBytes& bytes)
      : InlineBytes(std::string_view(bytes.data(), bytes.size())) {}
  // From its 16 bytes as stored in a record header.
  static Fingerprint from_bytes(std::string_view bytes) {
    Fingerprint f;
    static_cast<InlineBytes&>(f) = InlineBytes(bytes);
    return f;
  }
  // The first 8 bytes: the key of the fingerprint index (keyed hash output,
  // so as good as any hash of the whole).
  std::uint64_t prefix() const noexcept {
    std::uint64_t v = 0;
    if (!empty()) std::memcpy(&v, view().data(), sizeof v);
    return v;
  }
  std::string hex() const {
    if (empty()) return {};
    std::string out(2 * size + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(view().data()), size);
    out.pop_back();
    return out;
  }

 private:
  static std::string decoded(std::string_view hex) {
    std::string out(size, '\0');
    std::size_t n = 0;
    const char* end = nullptr;
    if (hex.size() != 2 * size ||
        sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), size, hex.data(), hex.size(), nullptr, &n,
                       &end) != 0 ||
        n != size || end != hex.data() + hex.size()) {
      return {};
    }
    return out;
  }
};

// The first 16 bytes of a record's 24-byte random nonce: what tells two
// records of one key at one version apart, in 17 bytes of a cache entry
// instead of 25.
class NonceTag : public InlineBytes<16> {
 public:
  NonceTag() = default;
  static NonceTag of(std::string_view record) {
    NonceTag tag;
    const std::string_view nonce = detail::Vault::nonce_of(record);
    if (nonce.size() >= 16) static_cast<InlineBytes&>(tag) = InlineBytes(nonce.substr(0, 16));
    return tag;
  }
  friend bool operator==(const NonceTag& a, const NonceTag& b) noexcept { return a.view() == b.view(); }
};

// Whether `key` is the storage key (canonical spelling) of `id`:
// exchange, or exchange "/" tag. An exchange id holds no separator.
inline bool is_key_of(std::string_view key, const AccountId& id) noexcept {
  const std::string& exchange = id.exchange();
  const std::string& tag = id.tag();
  if (tag.empty()) return key == exchange;
  return key.size() == exchange.size() + 1 + tag.size() && key.starts_with(exchange) && key[exchange.size()] == '/' &&
         key.ends_with(tag);
}

// A record's storage key and bytes, for an entry not yet opened: the
// strings the backend returned, moved in rather than copied, so that loading
// a store leaves no copy behind. No id object: the id's spelling is in the
// record's clear header.
class ClosedRecord {
 public:
  ClosedRecord() = default;
  ClosedRecord(std::string key, std::string record)
      : strings_(std::make_unique<Strings>(Strings{std::move(key), std::move(record)})) {}

  bool empty() const noexcept { return strings_ == nullptr; }
  std::string_view key() const noexcept { return empty() ? std::string_view() : std::string_view(strings_->key); }
  std::string_view record() const noexcept {
    return empty() ? std::string_view() : std::string_view(strings_->record);
  }
  void reset() noexcept { strings_.reset(); }

 private:
  struct Strings {
    std::string key;
    std::string record;
  };
  std::unique_ptr<Strings> strings_;
};

// An account in the cache. Records that carry their fingerprint and
// spelling in the clear header are decrypted on first read: until then the
// entry keeps the sealed record, and no plaintext secret is in memory.
//
// Small, since every account has one: a read of an open account does not
// touch it (its cache slot holds the account too), and the id is kept only
// inside the account or, while closed, as the storage key beside the record.
// 72 bytes on 64-bit targets.
struct Entry {
  std::shared_ptr<const Account> account;  // null until opened, or when corrupt
  std::uint64_t version = 0;
  NonceTag nonce;
  Fingerprint fingerprint;
  bool corrupt = false;  // the record does not authenticate
  // Set exactly when `account` is not: the key and the record (none when
  // it came without a usable header and did not authenticate).
  ClosedRecord closed;

  bool opened() const noexcept { return account != nullptr || corrupt; }
  bool is(const AccountId& id) const noexcept {
    return account != nullptr ? account->id == id : is_key_of(closed.key(), id);
  }
  std::string key() const { return account != nullptr ? account->id.canonical() : std::string(closed.key()); }

  bool holds(const Record& record) const { return version == record.version && nonce == NonceTag::of(record.value); }
};

// The accounts in memory, by id. Entries are owned here and never move, so
// that the fingerprint index can point at them. Each slot also holds the
// account of an open entry: a read goes from the slot to the account it
// returns, and touches the entry only when the account is not open yet.
// Entries are filed under their id's hash, which callers give; whoever
// changes an entry's `account` calls published() after.
class AccountCache {
 public:
  AccountCache() = default;
  AccountCache(const AccountCache&) = delete;
  AccountCache& operator=(const AccountCache&) = delete;
  ~AccountCache() { clear(); }

  Entry* find(const AccountId& id) const {
    const Slot* slot = find_slot(id);
    return slot != nullptr ? slot->value : nullptr;
  }
  // The account of `id` when its entry is open (null otherwise, or when
  // there is none).
  std::shared_ptr<const Account> open_account(const AccountId& id) const {
    const Slot* slot = table_.find_slot(id.hash(), [&](const Slot& s) { return s.extra && s.extra->id == id; });
    return slot != nullptr ? slot->extra : nullptr;
  }
  // Adds the entry of `id`, which is not here yet.
  Entry* insert(const AccountId& id, Entry entry) {
    auto owned = std::make_unique<Entry>(std::move(entry));
    table_.insert(id.hash(), owned.get(), owned->account);
    return owned.release();
  }
  // Brings the slot up to a change of `entry.account`; `entry` is the
  // entry of `id`.
  void published(const AccountId& id, const Entry& entry) {
    if (Slot* slot = table_.slot_of(id.hash(), &entry)) slot->extra = entry.account;
  }
  // Removes `entry`, the entry of `id`.
  void erase(const AccountId& id, Entry* entry) {
    table_.erase(id.hash(), entry);
    delete entry;
  }
  void clear() {
    table_.for_each([](Entry& e) { delete &e; });
    table_.clear();
  }
  std::size_t size() const noexcept { return table_.size(); }
  bool empty() const noexcept { return table_.empty(); }
  void reserve(std::size_t n) { table_.reserve(n); }
  // Every entry; `visit` may change entries but not add or remove them.
  template <class Visit>
  void for_each(Visit&& visit) const {
    table_.for_each(visit);
  }

 private:
  using Table = detail::PointerTable<Entry, std::shared_ptr<const Account>>;
  using Slot = Table::Slot;
  const Slot* find_slot(const AccountId& id) const {
    return table_.find_slot(id.hash(), [&](const Slot& s) { return s.extra ? s.extra->id == id : s.value->is(id); });
  }
  Table table_;
};

inline std::string name_of(const AccountId& id) { return detail::quote(id.spelling()); }

// An account this manager has just sealed into a record with `nonce`, so
// that taking it into the cache needs no decryption.
struct Sealed {
  std::string_view key;  // its storage key; the writer keeps the string alive and unchanged
  NonceTag nonce;
  std::shared_ptr<const Account> account;
  Fingerprint fingerprint;

  bool sealed_into(const Record& record) const {
    return account->version == record.version && nonce == NonceTag::of(record.value);
  }
};

}  // namespace detail::accounts

using namespace detail::accounts;

struct AccountManager::Impl : std::enable_shared_from_this<Impl> {
  std::shared_ptr<StorageBackend> backend;
  const ExchangeCatalog* catalog = nullptr;
  int max_retries = 32;
  detail::Vault vault;
  bool feed_active = false;

  mutable std::shared_mutex cache_mutex;
  // Keyed by id; a storage key finds its entry by parsing it (the canonical
  // form parses back to an equal id), so no second map of keys is kept.
  AccountCache cache;
  // Accounts by fingerprint of their identifying credential, so that
  // PortfolioConnector finds an exchange account without decrypting. Filed
  // under the fingerprint's first 8 bytes (a match is checked against the
  // whole one); values point at entries of `cache`, which do not move: an
  // entry is taken out of this index before its fingerprint changes or it
  // goes.
  detail::PointerTable<Entry> ids_by_fingerprint;

  std::mutex sync_mutex;  // orders cache updates
  // Counts the cache updates made under sync_mutex: a writer that finds it
  // unchanged across its write knows that nothing has brought the cache past
  // its commit (see sync_sealed). Under sync_mutex.
  std::uint64_t sync_generation = 0;
  Subscription feed;

  std::shared_ptr<detail::Subscribers<AccountEvent>> subscribers =
      std::make_shared<detail::Subscribers<AccountEvent>>();

  Impl(std::shared_ptr<StorageBackend> b, const ExchangeCatalog* c, int retries, detail::Vault v)
      : backend(std::move(b)), catalog(c), max_retries(retries), vault(std::move(v)) {}

  ~Impl() { feed.reset(); }

  // The keyed fingerprint of an account's identifying credential (empty
  // when its exchange has none, or it is missing).
  Fingerprint fingerprint(const AccountId& id, const Credentials& credentials) const {
    const ExchangeInfo* info = catalog->find(id.exchange());
    if (info == nullptr) return {};
    const auto field = info->identifying_field();
    const SecretString* value = field.empty() ? nullptr : credentials.find(field);
    if (value == nullptr) return {};
    detail::SecureBuffer message(id.exchange().size() + 1 + value->size());
    std::memcpy(message.data(), id.exchange().data(), id.exchange().size());
    message.data()[id.exchange().size()] = '\0';
    std::memcpy(message.data() + id.exchange().size() + 1, value->reveal().data(), value->size());
    return Fingerprint(vault.fingerprint_bytes(message.view()));
  }
  // The same in hex, as stored in the portfolio index.
  std::string fingerprint_of(const AccountId& id, const Credentials& credentials) const {
    return fingerprint(id, credentials).hex();
  }

  // The clear header of an account record: u8 fingerprint length |
  // fingerprint (its 16 bytes, or none) | spelling. Empty (a "KF1" record)
  // when it would not fit.
  static std::string account_header(const Fingerprint& f, std::string_view spelling) {
    const std::string_view fingerprint = f.view();
    std::string header;
    if (1 + fingerprint.size() + spelling.size() > 255) return header;
    header.push_back(static_cast<char>(fingerprint.size()));
    header += fingerprint;
    header += spelling;
    return header;
  }

  struct Header {
    std::string_view fingerprint;
    std::string_view spelling;
  };
  static std::optional<Header> parse_header(std::string_view value) {
    auto header = detail::Vault::header_of(value);
    if (!header || header->empty()) return std::nullopt;
    const std::size_t length = static_cast<unsigned char>((*header)[0]);
    if (header->size() < 1 + length) return std::nullopt;
    return Header{header->substr(1, length), header->substr(1 + length)};
  }

  std::string seal(const AccountId& id, std::string_view key, std::uint64_t version, Timestamp created,
                   Timestamp updated, const Credentials& credentials, const Fingerprint& fingerprint) const {
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
    return vault.seal(accounts_collection, key, version, w.view(), account_header(fingerprint, id.spelling()));
  }

  // Opens a stored record: the account, or nullopt when it does not
  // authenticate or does not parse.
  std::optional<Account> open_record(std::string_view key, const Record& record) const {
    return open_record(key, record.version, record.value);
  }
  std::optional<Account> open_record(std::string_view key, std::uint64_t version, std::string_view value) const {
    auto plain = vault.open(accounts_collection, key, version, value);
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
    // A count no record of this size could hold is caught by the reads below.
    credentials.reserve(std::min<std::size_t>(count, plain->view().size() / 8));
    for (std::uint32_t i = 0; i < count; ++i) {
      const auto field = r.str();
      const auto value = r.str();
      if (!r.ok() || !credentials.add(field, SecretString(value), *catalog)) return std::nullopt;
    }
    if (!r.done()) return std::nullopt;
    return Account{std::move(*id), std::move(credentials), version, created, updated};
  }

  // The id a storage key names; nullopt for a key this catalog cannot name
  // (not an account of ours).
  std::optional<AccountId> id_of_key(std::string_view key) const {
    auto id = AccountId::parse(key, *catalog);
    // Only the canonical spelling of an id is an account's storage key: a
    // stray record under another spelling must not stand for the account.
    if (!id || id->canonical() != key) return std::nullopt;
    return std::move(*id);
  }

  // The id of a cache entry, in the spelling it was stored with.
  AccountId id_of(const Entry& entry) const {
    if (entry.account != nullptr) return entry.account->id;
    if (auto header = parse_header(entry.closed.record())) {
      if (auto id = AccountId::parse(header->spelling, *catalog)) return std::move(*id);  // checked by make_entry
    }
    return id_of_key(entry.closed.key()).value();  // the cache holds only keys that name ids
  }

  // The cache entry of a stored record, and the id it goes under (nullopt:
  // a key this catalog cannot name, not an account of ours). A record with a
  // header is kept sealed until first read, its strings moved into the
  // entry; one without is opened now.
  std::optional<std::pair<AccountId, Entry>> make_entry(Record record) const {
    const std::string& key = record.key;
    Entry entry;
    entry.version = record.version;
    entry.nonce = NonceTag::of(record.value);
    if (auto header = parse_header(record.value)) {
      auto id = AccountId::parse(header->spelling, *catalog);
      if (id && id->canonical() == key && id->spelling() == header->spelling &&
          (header->fingerprint.empty() || header->fingerprint.size() == Fingerprint::size)) {
        entry.fingerprint = Fingerprint::from_bytes(header->fingerprint);
        entry.closed = ClosedRecord(std::move(record.key), std::move(record.value));
        return std::pair{std::move(*id), std::move(entry)};
      }
    } else if (auto account = open_record(key, record)) {
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

  // What decrypting an entry kept sealed gives: the account, or nothing
  // when the record does not authenticate or its header disagrees with its
  // contents. Needs no lock: works on a copy of the entry's record.
  struct Opened {
    std::shared_ptr<const Account> account;
    Fingerprint fingerprint;
  };
  Opened decrypt(std::string_view key, std::uint64_t version, std::string_view record) const {
    const auto header = parse_header(record);
    auto account = open_record(key, version, record);
    if (!account || !header || account->id.spelling() != header->spelling) return {};
    // The header authenticated with the record; a fingerprint that differs
    // from it now comes from another catalog's idea of the identifying field.
    Fingerprint recomputed = fingerprint(account->id, account->credentials);
    return {std::make_shared<const Account>(std::move(*account)), recomputed};
  }

  // Puts what decrypt() gave into a closed entry; under cache_mutex
  // (exclusive).
  void install(Entry& entry, Opened opened) {
    unindex(entry);
    if (opened.account) {
      entry.account = std::move(opened.account);
      entry.closed.reset();  // the account carries the same id
      cache.published(entry.account->id, entry);
      entry.fingerprint = opened.fingerprint;
      index(entry);
    } else {
      // A corrupt record has no fingerprint to trust, as when loaded eagerly.
      // The record stays: its header still names the spelling.
      entry.fingerprint = {};
      entry.corrupt = true;
    }
  }

  // Decrypts an entry kept sealed; under cache_mutex (exclusive).
  void open_entry(Entry& entry) {
    if (entry.opened()) return;
    install(entry, decrypt(entry.closed.key(), entry.version, entry.closed.record()));
  }

  // The cache entry of `id`, opened if it was kept sealed: the decryption
  // runs with no lock held, so that first reads of different accounts do
  // not wait on each other or hold up other readers. nullopt when absent.
  // Calls `use` with the entry while holding the cache lock.
  template <class Use>
  auto with_opened(const AccountId& id, Use use) -> std::optional<decltype(use(std::declval<const Entry&>()))> {
    std::string key;
    std::string record;
    std::uint64_t version = 0;
    {
      std::shared_lock lock(cache_mutex);
      const Entry* entry = cache.find(id);
      if (entry == nullptr) return std::nullopt;
      if (entry->opened()) return use(*entry);
      key = entry->closed.key();
      record = entry->closed.record();
      version = entry->version;
    }
    Opened opened = decrypt(key, version, record);
    std::unique_lock lock(cache_mutex);
    Entry* entry = cache.find(id);
    if (entry == nullptr) return std::nullopt;
    // Installed only if the entry is still the record that was decrypted.
    if (!entry->opened() && entry->version == version && entry->closed.record() == record) {
      install(*entry, std::move(opened));
    } else {
      open_entry(*entry);
    }
    return use(*entry);
  }

  // Brings the cache entry of `key` up to `record` (absent: removed), under
  // sync_mutex. Appends what changed to `events`.
  void apply(const std::string& key, const std::optional<Record>& record, std::vector<AccountEvent>& events,
             const Sealed* sealed = nullptr) {
    std::optional<AccountId> id = sealed != nullptr ? std::optional<AccountId>(sealed->account->id) : id_of_key(key);
    if (!id) return;
    bool known = false;
    bool adopt = false;  // the entry holds this record, still sealed, and we have it in clear
    {
      std::shared_lock lock(cache_mutex);
      if (const Entry* entry = cache.find(*id)) {
        known = true;
        if (record && entry->holds(*record)) {
          if (sealed == nullptr || entry->opened()) return;
          adopt = true;
        }
      }
    }
    if (adopt) {
      std::unique_lock lock(cache_mutex);
      Entry* entry = cache.find(*id);
      if (entry != nullptr && entry->holds(*record) && !entry->opened() && sealed->sealed_into(*record)) {
        // The same record, so the same spelling and fingerprint.
        entry->account = sealed->account;
        entry->closed.reset();
        cache.published(*id, *entry);
      }
      return;
    }
    if (!record) {
      if (!known) return;
      std::unique_lock lock(cache_mutex);
      Entry* entry = cache.find(*id);
      if (entry == nullptr) return;
      AccountId gone = id_of(*entry);
      unindex(*entry);
      cache.erase(*id, entry);
      events.push_back({AccountEvent::Kind::removed, std::move(gone), 0});
      return;
    }
    Entry entry;
    if (sealed != nullptr && sealed->sealed_into(*record)) {
      entry = entry_of(*sealed);
    } else {
      auto made = make_entry(*record);
      if (!made) return;
      id = std::move(made->first);
      entry = std::move(made->second);
    }
    std::unique_lock lock(cache_mutex);
    store_entry(*id, std::move(entry), &events);
  }

  // Puts `entry` into the cache under `id`, replacing the entry of an equal
  // id (whose place, and pointers to it, stay; the spelling becomes `id`'s),
  // and appends the event to `events` (unless null); under cache_mutex
  // (exclusive).
  void store_entry(const AccountId& id, Entry entry, std::vector<AccountEvent>* events) {
    const std::uint64_t version = entry.version;
    Entry* stored = cache.find(id);
    const bool known = stored != nullptr;
    if (known) {
      unindex(*stored);
      *stored = std::move(entry);
      cache.published(id, *stored);
    } else {
      stored = cache.insert(id, std::move(entry));
    }
    index(*stored);
    if (events != nullptr) {
      events->push_back({known ? AccountEvent::Kind::updated : AccountEvent::Kind::created, id, version});
    }
  }

  static Entry entry_of(const Sealed& sealed) {
    Entry entry;
    entry.version = sealed.account->version;
    entry.nonce = sealed.nonce;
    entry.fingerprint = sealed.fingerprint;
    entry.account = sealed.account;
    return entry;
  }

  // Adds a cache entry to the fingerprint index; under cache_mutex
  // (exclusive).
  void index(Entry& entry) {
    if (!entry.fingerprint.empty()) ids_by_fingerprint.insert(entry.fingerprint.prefix(), &entry);
  }

  // Drops a cache entry from the fingerprint index; under cache_mutex
  // (exclusive).
  void unindex(const Entry& entry) {
    if (!entry.fingerprint.empty()) ids_by_fingerprint.erase(entry.fingerprint.prefix(), &entry);
  }

  // An account whose identifying credential has `fingerprint`: the first by
  // id when several do. Candidates kept sealed are decrypted first, so that
  // only a record that authenticates (with that fingerprint) is returned.
  std::optional<AccountId> find_by_fingerprint(const std::string& fingerprint) {
    const Fingerprint wanted(fingerprint);
    if (wanted.empty()) return std::nullopt;
    std::unique_lock lock(cache_mutex);
    // Gathered first: opening an entry files it again. Entries do not move,
    // and none goes while the lock is held.
    std::vector<Entry*> candidates;
    ids_by_fingerprint.for_each(wanted.prefix(), [&](Entry& entry) { candidates.push_back(&entry); });
    const Entry* best = nullptr;
    for (Entry* candidate : candidates) {
      open_entry(*candidate);
      if (candidate->corrupt || candidate->fingerprint.view() != wanted.view()) continue;
      if (best == nullptr || candidate->account->id < best->account->id) best = candidate;
    }
    if (best == nullptr) return std::nullopt;
    return best->account->id;
  }

  // Whether the cache already holds `key` at `version` or later, so that a
  // feed event announcing that version brings nothing new. Versions of a
  // key only move forward until it is erased, and the feed reports the
  // erase (which is always read) before any write that follows it.
  bool holds_at_least(std::string_view key, std::uint64_t version) const {
    auto id = id_of_key(key);
    if (!id) return false;
    std::shared_lock lock(cache_mutex);
    const Entry* entry = cache.find(*id);
    return entry != nullptr && entry->version >= version;
  }

  Result<void> sync_key(const std::string& key) {
    std::vector<AccountEvent> events;
    {
      std::lock_guard lock(sync_mutex);
      ++sync_generation;
      auto record = backend->get(accounts_collection, key);
      if (!record) return record.error();
      apply(key, *record, events);
    }
    deliver(events);
    return {};
  }

  // The sync generation, taken before a write for sync_sealed().
  std::uint64_t generation() {
    std::lock_guard lock(sync_mutex);
    return sync_generation;
  }

  // Takes records this manager has just written into the cache. `sealed`
  // is sorted by key; `before` is generation() taken before the write began.
  //
  // With a change feed, and the generation unmoved, nothing has updated the
  // cache since before the commit, so these records are at least as new as
  // anything the cache holds, and they go in as they are: a change made
  // elsewhere after the commit reaches the cache through the feed, whose
  // update runs after this one. Otherwise the records are read back, so
  // that a later state wins: another update (a concurrent write through
  // this manager, or the feed) may have seen one, and without a feed a
  // writer that came after the commit would not be heard of at all.
  Result<void> sync_sealed(std::span<const Sealed> sealed, std::uint64_t before) {
    std::vector<AccountEvent> events;
    Result<void> done;
    {
      std::lock_guard lock(sync_mutex);
      const bool untouched = feed_active && sync_generation == before;
      ++sync_generation;
      done = untouched ? install(sealed, events) : read_back(sealed, events);
    }
    deliver(events);
    return done;
  }

  // sync_sealed() when nothing came between: no storage read. Under
  // sync_mutex; the cache lock is taken a chunk at a time, so that readers
  // wait for at most one chunk of a large batch.
  Result<void> install(std::span<const Sealed> sealed, std::vector<AccountEvent>& events) {
    constexpr std::size_t chunk = 1024;
    // Events are for subscribers; with none, building them is wasted.
    std::vector<AccountEvent>* notify = subscribers->empty() ? nullptr : &events;
    if (notify != nullptr) events.reserve(sealed.size());
    for (std::size_t from = 0; from < sealed.size(); from += chunk) {
      std::unique_lock lock(cache_mutex);
      if (from == 0 && sealed.size() > chunk) {
        cache.reserve(cache.size() + sealed.size());
        ids_by_fingerprint.reserve(ids_by_fingerprint.size() + sealed.size());
      }
      for (const Sealed& s : sealed.subspan(from, std::min(chunk, sealed.size() - from))) {
        store_entry(s.account->id, entry_of(s), notify);
      }
    }
    return {};
  }

  // sync_sealed() when something came between: each record as stored now.
  // Under sync_mutex.
  Result<void> read_back(std::span<const Sealed> sealed, std::vector<AccountEvent>& events) {
    assert(std::is_sorted(sealed.begin(), sealed.end(), [](const Sealed& a, const Sealed& b) { return a.key < b.key; }));
    const auto find = [&](std::string_view key) -> const Sealed* {
      auto it = std::lower_bound(sealed.begin(), sealed.end(), key,
                                 [](const Sealed& s, std::string_view k) { return s.key < k; });
      return it != sealed.end() && it->key == key ? &*it : nullptr;
    };
    if (sealed.size() > 64) {
      auto records = backend->scan(accounts_collection);
      if (!records) return records.error();
      std::vector<bool> present(sealed.size());
      for (const Record& record : *records) {
        if (const Sealed* s = find(record.key)) {
          present[static_cast<std::size_t>(s - sealed.data())] = true;
          apply(record.key, record, events, s);
        }
      }
      for (std::size_t i = 0; i < sealed.size(); ++i) {
        if (!present[i]) apply(std::string(sealed[i].key), std::nullopt, events);
      }
      return {};
    }
    for (const Sealed& s : sealed) {
      const std::string key(s.key);
      auto record = backend->get(accounts_collection, key);
      if (!record) return record.error();
      apply(key, *record, events, &s);
    }
    return {};
  }

  static std::string_view key_of(const Record& r) { return r.key; }
  static std::string_view key_of(const std::string& k) { return k; }

  // Fills an empty cache from `records` in one pass under one lock: no
  // entry to compare with, none to remove. Under sync_mutex.
  void load(std::vector<Record> records, std::vector<AccountEvent>* events) {
    // Straight into the cache: records with a header need no decryption, so
    // the lock is held briefly, and no second copy of the store is built.
    std::unique_lock lock(cache_mutex);
    cache.reserve(records.size());
    ids_by_fingerprint.reserve(records.size());
    for (Record& record : records) {
      auto made = make_entry(std::move(record));
      if (!made || cache.find(made->first) != nullptr) continue;
      Entry* entry = cache.insert(made->first, std::move(made->second));
      index(*entry);
      if (events != nullptr) events->push_back({AccountEvent::Kind::created, std::move(made->first), entry->version});
    }
  }

  // Brings the whole cache up to the backend. `initial`: the load of open(),
  // before anyone can have subscribed.
  Result<void> sync_all(bool initial = false) {
    std::vector<AccountEvent> events;
    {
      std::lock_guard lock(sync_mutex);
      ++sync_generation;
      auto records = backend->scan(accounts_collection);
      if (!records) return records.error();
      bool empty = false;
      {
        std::shared_lock shared(cache_mutex);
        empty = cache.empty();
      }
      if (empty) {
        load(std::move(*records), initial ? nullptr : &events);
      } else {
        for (const Record& record : *records) apply(record.key, record, events);
        // scan() is ordered by key, so presence is a binary search.
        std::vector<std::string> gone;
        {
          std::shared_lock shared(cache_mutex);
          cache.for_each([&](const Entry& entry) {
            std::string key = entry.key();
            const bool present = std::binary_search(records->begin(), records->end(), key,
                                                    [](const auto& a, const auto& b) { return key_of(a) < key_of(b); });
            if (!present) gone.push_back(std::move(key));
          });
        }
        for (const auto& key : gone) apply(key, std::nullopt, events);
      }
    }
    deliver(events);
    return {};
  }

  void deliver(const std::vector<AccountEvent>& events) { subscribers->deliver(events); }

  // The stored record of each of `keys` (sorted), at the same positions
  // (nullopt: absent): one get each for a few keys, one scan for many.
  Result<std::vector<std::optional<Record>>> read_current(std::span<const std::string_view> keys) const {
    std::vector<std::optional<Record>> out(keys.size());
    if (keys.size() > 64) {
      auto records = backend->scan(accounts_collection);
      if (!records) return records.error();
      for (Record& record : *records) {
        auto it = std::lower_bound(keys.begin(), keys.end(), std::string_view(record.key));
        if (it != keys.end() && *it == record.key) out[static_cast<std::size_t>(it - keys.begin())] = std::move(record);
      }
      return out;
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto record = backend->get(accounts_collection, keys[i]);
      if (!record) return record.error();
      out[i] = std::move(*record);
    }
    return out;
  }

  // When the stored record of `id` (under `key`) was created; nullopt when
  // it does not authenticate or does not decode under this catalog (as a
  // read would report it). Served from the cache when it holds this very
  // record open.
  std::optional<Timestamp> created_of(const AccountId& id, std::string_view key, const Record& record) const {
    {
      std::shared_lock lock(cache_mutex);
      if (const Entry* entry = cache.find(id); entry != nullptr && entry->account != nullptr && entry->holds(record)) {
        return entry->account->created;
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

}  // namespace keyfolio
