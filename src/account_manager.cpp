#include <keyfolio/account_manager.hpp>

#include "accounts/account_store.hpp"
#include "detail/text.hpp"
#include "storage/retry.hpp"

#include <algorithm>
#include <map>

namespace keyfolio {

using detail::name_of;

AccountManager::AccountManager(std::shared_ptr<detail::AccountStore> store) : store_(std::move(store)) {}
AccountManager::AccountManager(AccountManager&&) noexcept = default;
// A change-feed delivery in progress holds the store alive (so that it can
// finish); stopping the feed first waits for it, so that nothing of this
// manager runs on a backend thread once it is gone.
AccountManager& AccountManager::operator=(AccountManager&& other) noexcept {
  if (this != &other) {
    if (store_) store_->stop_feed();
    store_ = std::move(other.store_);
  }
  return *this;
}
AccountManager::~AccountManager() {
  if (store_) store_->stop_feed();
}

Result<AccountManager> AccountManager::open(std::shared_ptr<StorageBackend> backend, const KeySource& key) {
  return open(std::move(backend), key, Options{});
}

Result<AccountManager> AccountManager::open(std::shared_ptr<StorageBackend> backend, const KeySource& key,
                                            Options options) {
  if (!backend) return Error(errc::invalid_argument, "AccountManager::open: no storage backend");
  if (options.max_retries < 1) return Error(errc::invalid_argument, "AccountManager::open: max_retries must be >= 1");
  const ExchangeCatalog& catalog = options.catalog != nullptr ? *options.catalog : ExchangeCatalog::builtin();
  auto sealed = detail::SealedStore::open(std::move(backend), key,
                                         {.minimum_generation = options.minimum_generation,
                                          .recover = options.recover,
                                          .create = options.create});
  if (!sealed) return sealed.error();
  auto store = detail::AccountStore::open(std::move(*sealed), catalog, options.max_retries);
  if (!store) return store.error();
  return AccountManager(std::move(*store));
}

Result<bool> AccountManager::exists(StorageBackend& backend) { return detail::SealedStore::exists(backend); }

Result<UpsertResult> AccountManager::upsert(std::string_view id, Credentials credentials) {
  auto parsed = AccountId::parse(id, store_->catalog());
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

namespace {

// An upsert's accounts checked against the catalog, and in the order they
// are written: (storage key, position in the input), sorted by key, so that
// an account given twice sits beside itself.
using WriteOrder = std::vector<std::pair<std::string, std::size_t>>;

Result<WriteOrder> checked_order(const std::vector<AccountUpdate>& accounts, const ExchangeCatalog& catalog) {
  WriteOrder order;
  order.reserve(accounts.size());
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    const AccountId& id = accounts[i].id;
    const ExchangeInfo* info = catalog.find(id.exchange());
    if (info == nullptr) {
      return Error(errc::invalid_exchange_id, "account " + name_of(id) + ": exchange " +
                                                  detail::quote(id.exchange()) + " is not in this manager's catalog");
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
  return order;
}

}  // namespace

Result<std::vector<UpsertResult>> AccountManager::upsert(std::vector<AccountUpdate> accounts,
                                                         const Progress& progress) {
  constexpr std::size_t progress_step = 4096;
  detail::AccountStore& store = *store_;
  auto ordered = checked_order(accounts, store.catalog());
  if (!ordered) return ordered.error();
  const WriteOrder& order = *ordered;
  std::vector<UpsertResult> results(accounts.size());
  if (accounts.empty()) return results;
  std::vector<std::string_view> keys;
  keys.reserve(order.size());
  for (const auto& [key, i] : order) keys.push_back(key);
  // Built once; each attempt stamps versions and times before sealing, and
  // only a committed attempt publishes them to the cache.
  std::vector<std::shared_ptr<Account>> prepared(accounts.size());
  std::vector<detail::Fingerprint> fingerprints(accounts.size());
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    fingerprints[i] = store.fingerprint(accounts[i].id, accounts[i].credentials);
    prepared[i] = std::make_shared<Account>(Account{std::move(accounts[i].id), std::move(accounts[i].credentials)});
  }

  bool first_attempt = true;
  const auto attempt = [&]() -> detail::Attempt<std::vector<UpsertResult>> {
    const bool report = progress && std::exchange(first_attempt, false);
    auto current = store.read_current(keys);
    if (!current) return current.error();
    const Timestamp updated = detail::now();
    auto write = store.write();
    write.reserve(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      const auto& [key, i] = order[k];
      Account& account = *prepared[i];
      Timestamp created = updated;
      std::uint64_t version = must_not_exist;
      if (const auto& found = (*current)[k]) {
        auto stored_created = store.created_of(account.id, key, *found);
        if (!stored_created) {
          return Error(errc::corrupt_data, "the stored record of account " + name_of(account.id) +
                                               " does not authenticate (tampered, truncated or copied); "
                                               "remove it before storing new credentials");
        }
        created = *stored_created;
        version = found->version;
        write.replaces(*found);
      }
      account.version = version + 1;
      account.created = created;
      account.updated = updated;
      write.put(key, prepared[i], fingerprints[i], version);
      results[i] = UpsertResult{version == must_not_exist, version + 1};
      if (report && (k + 1) % progress_step == 0 && k + 1 < accounts.size()) progress(k + 1, accounts.size());
    }
    if (report) progress(accounts.size(), accounts.size());
    if (auto written = store.commit(write); !written) {
      return detail::again_on_conflict<std::vector<UpsertResult>>(written.error());
    }
    return results;
  };
  return detail::retry_writes(
      store.max_retries(), [&] { return "upsert of account " + name_of(prepared[order.front().second]->id); }, attempt);
}

Result<std::shared_ptr<const Account>> AccountManager::get(const AccountId& id) const { return store_->get(id); }

Result<std::shared_ptr<const Account>> AccountManager::get(std::string_view id) const {
  auto parsed = AccountId::parse(id, store_->catalog());
  if (!parsed) return parsed.error();
  return get(*parsed);
}

std::vector<AccountSummary> AccountManager::list() const { return store_->list(); }

Result<std::vector<AccountSummary>> AccountManager::list(std::string_view exchange) const {
  const ExchangeInfo* info = store_->catalog().find(exchange);
  if (info == nullptr) {
    return Error(errc::invalid_exchange_id, "unknown exchange " + detail::quote(exchange) + " in list filter");
  }
  auto all = list();
  std::erase_if(all, [&](const AccountSummary& s) { return s.id.exchange() != info->id; });
  return all;
}

std::size_t AccountManager::size() const { return store_->size(); }

Result<void> AccountManager::remove(const AccountId& id) {
  auto removed = remove(std::span<const AccountId>(&id, 1));
  if (!removed) return removed.error();
  return {};
}

Result<std::size_t> AccountManager::remove(std::span<const AccountId> ids) {
  detail::AccountStore& store = *store_;
  std::map<std::string, const AccountId*> keys;
  for (const auto& id : ids) keys.emplace(id.canonical(), &id);
  if (keys.empty()) return std::size_t{0};
  const auto attempt = [&]() -> detail::Attempt<std::size_t> {
    auto write = store.write();
    for (const auto& [key, id] : keys) {
      auto found = store.read(key);
      if (!found) return found.error();
      if (!*found) return Error(errc::not_found, "no account " + name_of(*id) + "; nothing was removed");
      write.erase(key, (*found)->version);
      write.replaces(**found);
    }
    if (auto written = store.commit(write); !written) return detail::again_on_conflict<std::size_t>(written.error());
    return keys.size();
  };
  return detail::retry_writes(
      store.max_retries(), [&] { return "removal of account " + name_of(*keys.begin()->second); }, attempt);
}

Result<std::size_t> AccountManager::remove_all() {
  detail::AccountStore& store = *store_;
  const auto attempt = [&]() -> detail::Attempt<std::size_t> {
    auto records = store.scan();
    if (!records) return records.error();
    auto write = store.write();
    write.erase_all(*records);
    if (auto written = store.commit(write); !written) return detail::again_on_conflict<std::size_t>(written.error());
    return records->size();
  };
  return detail::retry_writes(store.max_retries(), [] { return std::string("removing all accounts"); }, attempt);
}

Result<void> AccountManager::change_key(const KeySource& new_key) { return store_->sealed().change_key(new_key); }

Result<void> AccountManager::refresh() { return store_->refresh(); }

std::uint64_t AccountManager::generation() const noexcept { return store_->sealed().generation(); }

IntegrityReport AccountManager::integrity() const { return store_->sealed().integrity(); }

Subscription AccountManager::subscribe(std::function<void(const AccountEvent&)> handler) {
  return store_->subscribe(std::move(handler));
}

const ExchangeCatalog& AccountManager::catalog() const noexcept { return store_->catalog(); }
bool AccountManager::has_change_feed() const noexcept { return store_->has_change_feed(); }

}  // namespace keyfolio
