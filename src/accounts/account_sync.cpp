// Keeping the account cache current: the change feed, reloads, and taking in
// what this store has just written. Every cache update runs under
// sync_mutex_, which orders them; the cache lock is taken only to read or
// change entries, and events are delivered with neither held.
#include "accounts/account_store.hpp"

#include <algorithm>
#include <cassert>

namespace keyfolio::detail {
namespace {

Entry entry_of(const Sealed& sealed) {
  Entry entry;
  entry.version = sealed.account->version;
  entry.nonce = sealed.nonce;
  entry.fingerprint = sealed.fingerprint;
  entry.account = sealed.account;
  return entry;
}

std::string_view key_of(const Record& r) { return r.key; }
std::string_view key_of(const std::string& k) { return k; }

}  // namespace

void AccountStore::on_change(const ChangeEvent& event) {
  take_in(event);
  // A rotation by another handle is learnt from its keyring change, or from
  // a read that no longer opens (a resync's).
  tell_if_retired();
}

void AccountStore::tell_if_retired() {
  if (!sealed_.retired() || told_retired_.exchange(true)) return;
  deliver({AccountEvent{AccountEvent::Kind::retired, {}, 0}});
}

void AccountStore::take_in(const ChangeEvent& event) {
  using Kind = ChangeEvent::Kind;
  const bool accounts = event.collection == collections::accounts;
  if (event.collection == collections::meta && event.key == SealedStore::keyring_key) {
    // A changed key (nothing to do) or a rotated data key (this handle
    // stops serving).
    sealed_.keyring_changed();
    return;
  }
  if (accounts && deferring_.load(std::memory_order_acquire)) return;
  if (event.kind == Kind::resync && (event.collection.empty() || accounts)) {
    if (sealed_.retired()) return;
    deliver({AccountEvent{AccountEvent::Kind::resync, {}, 0}});
    (void)sync_all(false);
  } else if (!accounts) {
    return;
  } else if (event.kind == Kind::erase_all) {
    (void)sync_all(false);
  } else if (event.kind == Kind::put && event.version != 0 && holds_at_least(event.key, event.version)) {
    return;  // this store's own write, taken in already: no read, and no reason to read back
  } else {
    (void)reload(event.key);
  }
}

// Brings the cache entry of `key` up to `record` (absent: removed), under
// sync_mutex_. Appends what changed to `events`. `sealed`: what this store
// wrote under `key`, if it did.
void AccountStore::apply(std::string_view key, const std::optional<Record>& record,
                         std::vector<AccountEvent>& events, const Sealed* sealed) {
  std::optional<AccountId> id = sealed != nullptr ? std::optional<AccountId>(sealed->account->id) : id_of_key(key);
  if (!id) return;
  bool known = false;
  bool adopt = false;  // the entry holds this record, still sealed, and we have it in clear
  {
    std::shared_lock lock(cache_mutex_);
    if (const Entry* entry = cache_.find(*id)) {
      known = true;
      if (record && entry->holds(*record)) {
        if (sealed == nullptr || entry->opened()) return;
        adopt = true;
      }
    }
  }
  if (adopt) {
    std::unique_lock lock(cache_mutex_);
    Entry* entry = cache_.find(*id);
    if (entry != nullptr && entry->holds(*record) && !entry->opened() && sealed->sealed_into(*record)) {
      // The same record, so the same spelling and fingerprint.
      entry->account = sealed->account;
      entry->closed.reset();
      cache_.published(*id, *entry);
    }
    return;
  }
  if (!record) {
    if (!known) return;
    std::unique_lock lock(cache_mutex_);
    Entry* entry = cache_.find(*id);
    if (entry == nullptr) return;
    AccountId gone = id_of(*entry);
    unindex(*entry);
    cache_.erase(*id, entry);
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
  std::unique_lock lock(cache_mutex_);
  store_entry(*id, std::move(entry), &events);
}

// Puts `entry` into the cache under `id`, replacing the entry of an equal id
// (whose place, and pointers to it, stay; the spelling becomes `id`'s), and
// appends the event to `events` (unless null); under cache_mutex_
// (exclusive).
void AccountStore::store_entry(const AccountId& id, Entry entry, std::vector<AccountEvent>* events) {
  const std::uint64_t version = entry.version;
  Entry* stored = cache_.find(id);
  const bool known = stored != nullptr;
  if (known) {
    unindex(*stored);
    *stored = std::move(entry);
    cache_.published(id, *stored);
  } else {
    stored = cache_.insert(id, std::move(entry));
  }
  index(*stored);
  if (events != nullptr) {
    events->push_back({known ? AccountEvent::Kind::updated : AccountEvent::Kind::created, id, version});
  }
}

// Whether the cache already holds `key` at `version` or later, so that a
// feed event announcing that version brings nothing new. Versions of a key
// only move forward until it is erased, and the feed reports the erase
// (which is always read) before any write that follows it.
bool AccountStore::holds_at_least(std::string_view key, std::uint64_t version) const {
  auto id = id_of_key(key);
  if (!id) return false;
  std::shared_lock lock(cache_mutex_);
  const Entry* entry = cache_.find(*id);
  return entry != nullptr && entry->version >= version;
}

Result<void> AccountStore::reload(std::string_view key) {
  std::vector<AccountEvent> events;
  {
    std::lock_guard lock(sync_mutex_);
    ++sync_generation_;
    auto record = sealed_.get(collections::accounts, key);
    if (!record) return record.error();
    apply(key, *record, events);
  }
  deliver(events);
  return {};
}

Result<void> AccountStore::refresh() { return sync_all(false); }

Subscription AccountStore::subscribe(std::function<void(const AccountEvent&)> handler) {
  return subscribers_->add(std::move(handler));
}

// The sync generation, taken before a write for sync_sealed().
std::uint64_t AccountStore::generation() {
  std::lock_guard lock(sync_mutex_);
  return sync_generation_;
}

// Takes records this store has just written into the cache. `sealed` is
// sorted by key; `before` is generation() taken before the write began.
//
// With a change feed, and the generation unmoved, nothing has updated the
// cache since before the commit, so these records are at least as new as
// anything the cache holds, and they go in as they are: a change made
// elsewhere after the commit reaches the cache through the feed, whose
// update runs after this one. Otherwise the records are read back, so that a
// later state wins: another update (a concurrent write through this store,
// or the feed) may have seen one, and without a feed a writer that came
// after the commit would not be heard of at all.
Result<void> AccountStore::sync_sealed(std::span<const Sealed> sealed, std::uint64_t before) {
  std::vector<AccountEvent> events;
  Result<void> done;
  {
    std::lock_guard lock(sync_mutex_);
    const bool untouched = feed_active_ && sync_generation_ == before;
    ++sync_generation_;
    if (untouched) {
      install(sealed, events);
    } else {
      done = read_back(sealed, events);
    }
  }
  deliver(events);
  return done;
}

// sync_sealed() when nothing came between: no storage read. Under
// sync_mutex_; the cache lock is taken a chunk at a time, so that readers
// wait for at most one chunk of a large batch.
void AccountStore::install(std::span<const Sealed> sealed, std::vector<AccountEvent>& events) {
  constexpr std::size_t chunk = 1024;
  // Events are for subscribers; with none, building them is wasted.
  std::vector<AccountEvent>* notify = subscribers_->empty() ? nullptr : &events;
  if (notify != nullptr) events.reserve(sealed.size());
  for (std::size_t from = 0; from < sealed.size(); from += chunk) {
    std::unique_lock lock(cache_mutex_);
    if (from == 0 && sealed.size() > chunk) {
      cache_.reserve(cache_.size() + sealed.size());
      ids_by_fingerprint_.reserve(ids_by_fingerprint_.size() + sealed.size());
    }
    for (const Sealed& s : sealed.subspan(from, std::min(chunk, sealed.size() - from))) {
      store_entry(s.account->id, entry_of(s), notify);
    }
  }
}

// sync_sealed() when something came between: each record as stored now.
// Under sync_mutex_.
Result<void> AccountStore::read_back(std::span<const Sealed> sealed, std::vector<AccountEvent>& events) {
  assert(std::is_sorted(sealed.begin(), sealed.end(), [](const Sealed& a, const Sealed& b) { return a.key < b.key; }));
  const auto find = [&](std::string_view key) -> const Sealed* {
    auto it = std::lower_bound(sealed.begin(), sealed.end(), key,
                               [](const Sealed& s, std::string_view k) { return s.key < k; });
    return it != sealed.end() && it->key == key ? &*it : nullptr;
  };
  if (sealed.size() > 64) {
    auto records = sealed_.scan(collections::accounts);
    if (!records) return records.error();
    std::vector<bool> present(sealed.size());
    for (const Record& record : *records) {
      if (const Sealed* s = find(record.key)) {
        present[static_cast<std::size_t>(s - sealed.data())] = true;
        apply(record.key, record, events, s);
      }
    }
    for (std::size_t i = 0; i < sealed.size(); ++i) {
      if (!present[i]) apply(sealed[i].key, std::nullopt, events);
    }
    return {};
  }
  for (const Sealed& s : sealed) {
    auto record = sealed_.get(collections::accounts, s.key);
    if (!record) return record.error();
    apply(s.key, *record, events, &s);
  }
  return {};
}

// Fills an empty cache from `records` in one pass under one lock: no entry
// to compare with, none to remove. Under sync_mutex_.
void AccountStore::load(std::vector<Record> records, std::vector<AccountEvent>* events, bool replace) {
  // Straight into the cache: records with a header need no decryption, so
  // the lock is held briefly, and no second copy of the store is built.
  std::unique_lock lock(cache_mutex_);
  if (replace) {
    ids_by_fingerprint_.clear();
    cache_.clear();
  }
  cache_.reserve(records.size());
  ids_by_fingerprint_.reserve(records.size());
  for (Record& record : records) {
    auto made = make_entry(std::move(record));
    if (!made || cache_.find(made->first) != nullptr) continue;
    Entry* entry = cache_.insert(made->first, std::move(made->second));
    index(*entry);
    if (events != nullptr) events->push_back({AccountEvent::Kind::created, std::move(made->first), entry->version});
  }
}

Result<void> AccountStore::reload_rotated(std::vector<Record> written, std::uint64_t manifest_version) {
  std::lock_guard lock(sync_mutex_);
  ++sync_generation_;
  // While the integrity record is the one the rotation wrote, no write has
  // come since, and the accounts are what the rotation wrote: the feed's
  // events of a later write (those the rotation held back among them) wait
  // for sync_mutex_. Else the whole store is read again.
  auto manifest = sealed_.get(collections::meta, SealedStore::manifest_key);
  if (!manifest) return manifest.error();
  if (!*manifest || (*manifest)->version != manifest_version) {
    auto checked = sealed_.read_checked();
    if (!checked) return checked.error();
    written = std::move((*checked)[*covered_index(collections::accounts)]);
  }
  load(std::move(written), nullptr, true);
  sealed_.forget_previous_key();
  return {};
}

// Brings the whole cache up to the backend. `initial`: the load of open(),
// before anyone can have subscribed.
Result<void> AccountStore::sync_all(bool initial) {
  std::vector<AccountEvent> events;
  {
    std::lock_guard lock(sync_mutex_);
    ++sync_generation_;
    // The whole store, checked against its integrity record.
    auto checked = sealed_.read_checked();
    if (!checked) return checked.error();
    auto records = &(*checked)[*covered_index(collections::accounts)];
    bool empty = false;
    {
      std::shared_lock shared(cache_mutex_);
      empty = cache_.empty();
    }
    if (empty) {
      load(std::move(*records), initial ? nullptr : &events);
    } else {
      for (const Record& record : *records) apply(record.key, record, events);
      // scan() is ordered by key, so presence is a binary search.
      std::vector<std::string> gone;
      {
        std::shared_lock shared(cache_mutex_);
        cache_.for_each([&](const Entry& entry) {
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

}  // namespace keyfolio::detail
