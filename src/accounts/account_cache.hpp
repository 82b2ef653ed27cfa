// The accounts of an AccountStore in memory: entries by id, each holding
// its record sealed until first read, then the account itself.
#pragma once

#include <keyfolio/account.hpp>
#include <keyfolio/account_id.hpp>
#include <keyfolio/storage.hpp>

#include "accounts/fingerprint.hpp"
#include "detail/pointer_table.hpp"
#include "storage/sealed_store.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace keyfolio::detail {

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
  using Table = PointerTable<Entry, std::shared_ptr<const Account>>;
  using Slot = Table::Slot;
  const Slot* find_slot(const AccountId& id) const {
    return table_.find_slot(id.hash(), [&](const Slot& s) { return s.extra ? s.extra->id == id : s.value->is(id); });
  }
  Table table_;
};

}  // namespace keyfolio::detail
