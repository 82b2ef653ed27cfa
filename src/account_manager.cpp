#include <keyfolio/account_manager.hpp>

#include "account_manager_impl.hpp"

namespace keyfolio {

AccountManager::AccountManager(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
AccountManager::AccountManager(AccountManager&&) noexcept = default;
// A change-feed delivery in progress holds the internals alive (so that it
// can finish); stopping the feed first waits for it, so that nothing of this
// manager runs on a backend thread once it is gone.
AccountManager& AccountManager::operator=(AccountManager&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->feed.reset();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
AccountManager::~AccountManager() {
  if (impl_) impl_->feed.reset();
}

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
    } else if (event.kind == ChangeEvent::Kind::put && event.version != 0 &&
               self->holds_at_least(event.key, event.version)) {
      return;  // this manager's own write, taken in already: no read, and no reason to read back
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
  if (auto loaded = impl->sync_all(true); !loaded) return loaded.error();
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
  return upsert(std::move(accounts), Progress{});
}

Result<std::vector<UpsertResult>> AccountManager::upsert(std::vector<AccountUpdate> accounts,
                                                         const Progress& progress) {
  constexpr std::size_t progress_step = 4096;
  Impl& m = *impl_;
  // (storage key, position in `accounts`), sorted: the batch is written in
  // key order, and an account given twice sits beside itself.
  std::vector<std::pair<std::string, std::size_t>> order;
  order.reserve(accounts.size());
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
    order.emplace_back(id.canonical(), i);
  }
  std::sort(order.begin(), order.end());
  // Of the accounts given twice, the one whose second mention comes first.
  std::optional<std::pair<std::size_t, std::size_t>> twice;
  for (std::size_t k = 1; k < order.size(); ++k) {
    if (order[k].first == order[k - 1].first && (!twice || order[k].second < twice->second)) {
      std::size_t first = k - 1;
      while (first > 0 && order[first - 1].first == order[k].first) --first;
      twice = std::pair{order[first].second, order[k].second};
    }
  }
  if (twice) {
    const AccountId& id = accounts[twice->second].id;
    return Error(errc::validation_failed, "account " + name_of(id) + " is given twice (as " +
                                              name_of(accounts[twice->first].id) + " and " + name_of(id) +
                                              "); nothing was stored");
  }
  std::vector<UpsertResult> results(accounts.size());
  if (accounts.empty()) return results;
  std::vector<std::string_view> keys;
  keys.reserve(order.size());
  for (const auto& [key, i] : order) keys.push_back(key);
  // Built once; each attempt stamps versions and times before sealing, and
  // only a committed attempt publishes them to the cache.
  std::vector<std::shared_ptr<Account>> prepared(accounts.size());
  std::vector<Fingerprint> fingerprints(accounts.size());
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    fingerprints[i] = m.fingerprint(accounts[i].id, accounts[i].credentials);
    prepared[i] = std::make_shared<Account>(Account{std::move(accounts[i].id), std::move(accounts[i].credentials)});
  }

  for (int attempt = 0; attempt < m.max_retries; ++attempt) {
    const bool report = progress && attempt == 0;
    auto current = m.read_current(keys);
    if (!current) return current.error();
    const Timestamp updated = now();
    WriteBatch batch;
    std::vector<Sealed> sealed;
    sealed.reserve(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      const auto& [key, i] = order[k];
      Account& account = *prepared[i];
      const AccountId& id = account.id;
      Timestamp created = updated;
      std::uint64_t version = must_not_exist;
      if (const auto& found = (*current)[k]) {
        auto stored_created = m.created_of(id, key, *found);
        if (!stored_created) {
          return Error(errc::corrupt_data, "the stored record of account " + name_of(id) +
                                               " does not authenticate (tampered, truncated or copied); "
                                               "remove it before storing new credentials");
        }
        created = *stored_created;
        version = found->version;
      }
      account.version = version + 1;
      account.created = created;
      account.updated = updated;
      std::string value = m.seal(id, key, account.version, created, updated, account.credentials, fingerprints[i]);
      sealed.push_back(
          Sealed{key, NonceTag::of(value), prepared[i], fingerprints[i]});
      batch.put(accounts_collection, key, std::move(value), version);
      results[i] = UpsertResult{version == must_not_exist, version + 1};
      if (report && sealed.size() % progress_step == 0 && sealed.size() < accounts.size()) {
        progress(sealed.size(), accounts.size());
      }
    }
    if (report) progress(accounts.size(), accounts.size());
    const std::uint64_t before = m.generation();
    auto written = m.backend->write(batch);
    if (!written) {
      if (written.error().code() == errc::conflict) continue;
      return written.error();
    }
    (void)m.sync_sealed(sealed, before);
    return results;
  }
  return m.exhausted("upsert", prepared[order.front().second]->id);
}

namespace {

Result<std::shared_ptr<const Account>> account_of(const AccountId& id, const Entry& entry) {
  if (!entry.account) {
    return Error(errc::corrupt_data, "the stored record of account " + name_of(id) +
                                         " does not authenticate (tampered, truncated or copied from elsewhere)");
  }
  return entry.account;
}

}  // namespace

Result<std::shared_ptr<const Account>> AccountManager::get(const AccountId& id) const {
  Impl& m = *impl_;
  {
    std::shared_lock lock(m.cache_mutex);
    if (auto account = m.cache.open_account(id)) return account;
    const Entry* entry = m.cache.find(id);
    if (entry == nullptr) return Error(errc::not_found, "no account " + name_of(id));
    if (entry->opened()) return account_of(id, *entry);
  }
  // The first read of an account kept sealed since it was loaded.
  auto found = m.with_opened(id, [&](const Entry& entry) { return account_of(id, entry); });
  if (!found) return Error(errc::not_found, "no account " + name_of(id));
  return std::move(*found);
}

Result<std::shared_ptr<const Account>> AccountManager::get(std::string_view id) const {
  auto parsed = AccountId::parse(id, *impl_->catalog);
  if (!parsed) return parsed.error();
  return get(*parsed);
}

std::vector<AccountSummary> AccountManager::list() const {
  std::vector<AccountSummary> out;
  {
    // Summaries need every account opened (fields, times, integrity).
    std::unique_lock lock(impl_->cache_mutex);
    impl_->cache.for_each([&](Entry& entry) { impl_->open_entry(entry); });
    out.reserve(impl_->cache.size());
    impl_->cache.for_each([&](const Entry& entry) {
      AccountSummary summary{impl_->id_of(entry)};
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
