// AccountManager's internals, shared with PortfolioConnector, which writes
// accounts and portfolios in one batch over the same vault and cache.
#pragma once

#include <keyfolio/account_manager.hpp>

#include "crypto/vault.hpp"
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
#include <unordered_map>

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

// An account in the cache. Records that carry their fingerprint and
// spelling in the clear header are decrypted on first read: until then the
// entry keeps the sealed record, and no plaintext secret is in memory.
struct Entry {
  std::shared_ptr<const Account> account;  // null until opened, or when corrupt
  // While not yet opened: the record after its header (nonce and
  // ciphertext); the header is rebuilt from the id and the fingerprint.
  std::string sealed;
  std::uint64_t version = 0;
  InlineBytes<detail::nonce_size> nonce;
  Fingerprint fingerprint;
  bool corrupt = false;  // the record does not authenticate

  bool opened() const noexcept { return account != nullptr || corrupt; }

  bool holds(const Record& record) const {
    return version == record.version && nonce.view() == detail::Vault::nonce_of(record.value);
  }
};

inline std::string name_of(const AccountId& id) { return detail::quote(id.spelling()); }

// An account this manager has just sealed into a record with `nonce`, so
// that taking it into the cache needs no decryption.
struct Sealed {
  std::string_view key;  // its storage key; the writer keeps the string alive and unchanged
  InlineBytes<detail::nonce_size> nonce;
  std::shared_ptr<const Account> account;
  Fingerprint fingerprint;

  bool sealed_into(const Record& record) const {
    return account->version == record.version && nonce.view() == detail::Vault::nonce_of(record.value);
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
  std::unordered_map<AccountId, Entry> cache;
  // Accounts by fingerprint of their identifying credential, so that
  // PortfolioConnector finds an exchange account without decrypting. Keyed
  // by the fingerprint's first 8 bytes (a match is checked against the whole
  // one); values point into `cache`, whose nodes do not move: an entry is
  // taken out of this index before it changes or goes.
  using CacheItem = std::pair<const AccountId, Entry>;
  std::unordered_multimap<std::uint64_t, const CacheItem*> ids_by_fingerprint;

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
    std::size_t body_offset = 0;  // where the nonce starts in the record
  };
  static std::optional<Header> parse_header(std::string_view value) {
    auto header = detail::Vault::header_of(value);
    if (!header || header->empty()) return std::nullopt;
    const std::size_t length = static_cast<unsigned char>((*header)[0]);
    if (header->size() < 1 + length) return std::nullopt;
    const auto offset = static_cast<std::size_t>(header->data() - value.data()) + header->size();
    return Header{header->substr(1, length), header->substr(1 + length), offset};
  }

  // A record kept as its body, whole again: "KF2" | u8 length | header | body.
  static std::string rebuilt(std::string_view header, std::string_view body) {
    std::string record = "KF2";
    record.push_back(static_cast<char>(header.size()));
    record += header;
    record += body;
    return record;
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
  std::optional<Account> open_record(const std::string& key, const Record& record) const {
    return open_record(key, record.version, record.value);
  }
  std::optional<Account> open_record(const std::string& key, std::uint64_t version, std::string_view value) const {
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

  // The cache entry of a stored record, and the id it goes under (nullopt:
  // a key this catalog cannot name, not an account of ours). A record with a
  // header is kept sealed until first read; one without is opened now.
  std::optional<std::pair<AccountId, Entry>> make_entry(Record record) const {
    const std::string& key = record.key;
    Entry entry;
    entry.version = record.version;
    entry.nonce = InlineBytes<detail::nonce_size>(detail::Vault::nonce_of(record.value));
    if (auto header = parse_header(record.value)) {
      auto id = AccountId::parse(header->spelling, *catalog);
      if (id && id->canonical() == key && id->spelling() == header->spelling &&
          (header->fingerprint.empty() || header->fingerprint.size() == Fingerprint::size)) {
        entry.fingerprint = Fingerprint::from_bytes(header->fingerprint);
        entry.sealed = record.value.substr(header->body_offset);
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
    return std::pair{std::move(*id), std::move(entry)};
  }

  // What decrypting an entry kept sealed gives: the account, or nothing
  // when the record does not authenticate or its header disagrees with its
  // contents. Needs no lock: works on a copy of the entry's fields.
  struct Opened {
    std::shared_ptr<const Account> account;
    Fingerprint fingerprint;
  };
  Opened decrypt(const AccountId& id, const Entry& entry) const {
    auto account = open_record(id.canonical(), entry.version,
                               rebuilt(account_header(entry.fingerprint, id.spelling()), entry.sealed));
    if (!account || account->id.spelling() != id.spelling()) return {};
    // The header authenticated with the record; a fingerprint that differs
    // from it now comes from another catalog's idea of the identifying field.
    Fingerprint recomputed = fingerprint(account->id, account->credentials);
    return {std::make_shared<const Account>(std::move(*account)), recomputed};
  }

  // Puts what decrypt() gave into the entry; under cache_mutex (exclusive).
  void install(std::unordered_map<AccountId, Entry>::iterator it, Opened opened) {
    Entry& entry = it->second;
    unindex(it);
    if (opened.account) {
      entry.account = std::move(opened.account);
      entry.fingerprint = opened.fingerprint;
      index(*it);
    } else {
      // A corrupt record has no fingerprint to trust, as when loaded eagerly.
      entry.fingerprint = {};
      entry.corrupt = true;
    }
    std::string().swap(entry.sealed);
  }

  // Decrypts an entry kept sealed; under cache_mutex (exclusive).
  void open_entry(std::unordered_map<AccountId, Entry>::iterator it) {
    if (it->second.opened()) return;
    install(it, decrypt(it->first, it->second));
  }

  // The cache entry of `id`, opened if it was kept sealed: the decryption
  // runs with no lock held, so that first reads of different accounts do
  // not wait on each other or hold up other readers. nullopt when absent.
  // Calls `use` with the entry while holding the cache lock.
  template <class Use>
  auto with_opened(const AccountId& id, Use use) -> std::optional<decltype(use(std::declval<const Entry&>()))> {
    AccountId key = id;
    Entry copy;
    {
      std::shared_lock lock(cache_mutex);
      auto it = cache.find(id);
      if (it == cache.end()) return std::nullopt;
      if (it->second.opened()) return use(it->second);
      key = it->first;
      copy.sealed = it->second.sealed;
      copy.version = it->second.version;
      copy.nonce = it->second.nonce;
      copy.fingerprint = it->second.fingerprint;
    }
    Opened opened = decrypt(key, copy);
    std::unique_lock lock(cache_mutex);
    auto it = cache.find(id);
    if (it == cache.end()) return std::nullopt;
    // Installed only if the entry is still the record that was decrypted.
    if (!it->second.opened() && it->second.version == copy.version &&
        it->second.nonce.view() == copy.nonce.view() && it->first.spelling() == key.spelling()) {
      install(it, std::move(opened));
    } else {
      open_entry(it);
    }
    return use(it->second);
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
      if (auto it = cache.find(*id); it != cache.end()) {
        known = true;
        if (record && it->second.holds(*record)) {
          if (sealed == nullptr || it->second.opened()) return;
          adopt = true;
        }
      }
    }
    if (adopt) {
      std::unique_lock lock(cache_mutex);
      auto it = cache.find(*id);
      if (it != cache.end() && it->second.holds(*record) && !it->second.opened() && sealed->sealed_into(*record)) {
        it->second.account = sealed->account;
        std::string().swap(it->second.sealed);
      }
      return;
    }
    if (!record) {
      if (!known) return;
      std::unique_lock lock(cache_mutex);
      auto it = cache.find(*id);
      AccountId gone = it->first;
      unindex(it);
      cache.erase(it);
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
  // id, and appends the event to `events` (unless null); under cache_mutex
  // (exclusive).
  void store_entry(const AccountId& id, Entry entry, std::vector<AccountEvent>* events) {
    const std::uint64_t version = entry.version;
    auto it = cache.find(id);
    const bool known = it != cache.end();
    if (known) {
      unindex(it);
      if (it->first.spelling() != id.spelling()) {
        // Keep the latest spelling; the node (and pointers into it) stays.
        auto node = cache.extract(it);
        node.key() = id;
        it = cache.insert(std::move(node)).position;
      }
      it->second = std::move(entry);
    } else {
      it = cache.emplace(id, std::move(entry)).first;
    }
    index(*it);
    if (events != nullptr) {
      events->push_back({known ? AccountEvent::Kind::updated : AccountEvent::Kind::created, it->first, version});
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
  void index(const CacheItem& item) {
    if (!item.second.fingerprint.empty()) ids_by_fingerprint.emplace(item.second.fingerprint.prefix(), &item);
  }

  // Drops a cache entry from the fingerprint index; under cache_mutex
  // (exclusive).
  void unindex(std::unordered_map<AccountId, Entry>::iterator it) {
    if (it->second.fingerprint.empty()) return;
    auto [from, to] = ids_by_fingerprint.equal_range(it->second.fingerprint.prefix());
    for (auto i = from; i != to; ++i) {
      if (i->second == &*it) {
        ids_by_fingerprint.erase(i);
        return;
      }
    }
  }

  // An account whose identifying credential has `fingerprint`: the first by
  // id when several do. Candidates kept sealed are decrypted first, so that
  // only a record that authenticates (with that fingerprint) is returned.
  std::optional<AccountId> find_by_fingerprint(const std::string& fingerprint) {
    const Fingerprint wanted(fingerprint);
    if (wanted.empty()) return std::nullopt;
    std::unique_lock lock(cache_mutex);
    std::vector<AccountId> candidates;
    auto [from, to] = ids_by_fingerprint.equal_range(wanted.prefix());
    for (auto i = from; i != to; ++i) candidates.push_back(i->second->first);
    const AccountId* best = nullptr;
    for (const AccountId& candidate : candidates) {
      auto it = cache.find(candidate);
      if (it == cache.end()) continue;
      open_entry(it);
      if (it->second.corrupt || it->second.fingerprint.view() != wanted.view()) continue;
      if (best == nullptr || it->first < *best) best = &it->first;
    }
    if (best == nullptr) return std::nullopt;
    return *best;
  }

  // Whether the cache already holds `key` at `version` or later, so that a
  // feed event announcing that version brings nothing new. Versions of a
  // key only move forward until it is erased, and the feed reports the
  // erase (which is always read) before any write that follows it.
  bool holds_at_least(std::string_view key, std::uint64_t version) const {
    auto id = id_of_key(key);
    if (!id) return false;
    std::shared_lock lock(cache_mutex);
    auto it = cache.find(*id);
    return it != cache.end() && it->second.version >= version;
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
      if (!made) continue;
      auto [it, inserted] = cache.emplace(std::move(made->first), std::move(made->second));
      if (!inserted) continue;
      index(*it);
      if (events != nullptr) events->push_back({AccountEvent::Kind::created, it->first, it->second.version});
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
          for (const auto& [id, entry] : cache) {
            std::string key = id.canonical();
            const bool present = std::binary_search(records->begin(), records->end(), key,
                                                    [](const auto& a, const auto& b) { return key_of(a) < key_of(b); });
            if (!present) gone.push_back(std::move(key));
          }
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

  // When the stored record of `key` was created; nullopt when it does not
  // authenticate. Served from the cache when it holds this very record.
  std::optional<Timestamp> created_of(const std::string& key, const Record& record) const {
    if (auto id = id_of_key(key)) {
      std::shared_lock lock(cache_mutex);
      if (auto it = cache.find(*id); it != cache.end() && it->second.account != nullptr && it->second.holds(record)) {
        return it->second.account->created;
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
