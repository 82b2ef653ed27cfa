#include <keyfolio/portfolio_connector.hpp>

#include "accounts/account_store.hpp"
#include "detail/text.hpp"
#include "portfolios/connection.hpp"
#include "portfolios/portfolio_store.hpp"
#include "storage/retry.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

namespace keyfolio {

using detail::quote;

CredentialVerifier::~CredentialVerifier() = default;
BalanceSource::~BalanceSource() = default;
PriceSource::~PriceSource() = default;

namespace {

detail::PortfolioStore portfolios_of(const AccountManager& accounts) {
  detail::AccountStore& store = *accounts.store();
  return detail::PortfolioStore(store.sealed(), store.catalog());
}

// The balance source's answer as a snapshot's holdings may hold it.
Result<void> check_balances(const std::vector<Holding>& balances) {
  std::set<std::string> seen;
  for (const Holding& h : balances) {
    if (h.asset.empty()) return Error(errc::invalid_argument, "the balance source returned an empty asset name");
    if (h.asset.size() > 64) {
      return Error(errc::invalid_argument, "the balance source returned an asset name of " +
                                               std::to_string(h.asset.size()) + " bytes; at most 64 are kept");
    }
    if (!std::isfinite(h.amount)) {
      return Error(errc::invalid_argument, "the balance source returned a non-finite amount of " + quote(h.asset));
    }
    if (!seen.insert(h.asset).second) {
      return Error(errc::invalid_argument, "the balance source returned " + quote(h.asset) + " twice");
    }
  }
  return {};
}

}  // namespace

PortfolioConnector::PortfolioConnector(AccountManager& accounts) : PortfolioConnector(accounts, Options{}) {}
PortfolioConnector::PortfolioConnector(AccountManager& accounts, Options options)
    : accounts_(&accounts), options_(options) {
  if (options_.max_snapshots < 1) options_.max_snapshots = 1;
  if (options_.max_retries < 1) options_.max_retries = 1;
}

Result<ConnectResult> PortfolioConnector::connect(ConnectRequest request) {
  auto connection = detail::Connection::prepare(std::move(request), *accounts_->store(), options_.verifier);
  if (!connection) return connection.error();
  return connection->run(options_.max_retries);
}

Result<std::vector<Portfolio>> PortfolioConnector::list() const {
  auto out = portfolios_of(*accounts_).list();
  if (!out) return out;
  // A corrupt portfolio has no name to sort by: those come last, by id.
  std::sort(out->begin(), out->end(), [](const Portfolio& a, const Portfolio& b) {
    if (a.corrupt != b.corrupt) return b.corrupt;
    return a.name != b.name ? a.name < b.name : a.id < b.id;
  });
  return out;
}

Result<Portfolio> PortfolioConnector::get(std::string_view portfolio_id) const {
  auto p = portfolios_of(*accounts_).require(portfolio_id);
  if (!p) return p.error();
  return std::move(p->portfolio);
}

Result<Portfolio> PortfolioConnector::rename(std::string_view portfolio_id, std::string_view name) {
  auto checked = detail::checked_portfolio_name(name);
  if (!checked) return checked.error();
  if (checked->empty()) return Error(errc::validation_failed, "portfolio name is empty");
  const detail::PortfolioStore store = portfolios_of(*accounts_);
  const auto attempt = [&]() -> detail::Attempt<Portfolio> {
    auto p = store.require(portfolio_id);
    if (!p) return p.error();
    const std::uint64_t v = p->portfolio.version;
    p->portfolio.name = *checked;
    p->portfolio.updated = detail::now();
    p->portfolio.version = v + 1;
    auto batch = store.batch();
    store.put(batch, *p, v);
    if (auto written = store.commit(batch); !written) return detail::again_on_conflict<Portfolio>(written.error());
    return std::move(p->portfolio);
  };
  return detail::retry_writes(
      options_.max_retries, [&] { return "renaming portfolio " + quote(portfolio_id); }, attempt);
}

Result<void> PortfolioConnector::disconnect(std::string_view portfolio_id, AccountPolicy policy) {
  detail::AccountStore& accounts = *accounts_->store();
  const detail::PortfolioStore store = portfolios_of(*accounts_);
  const auto attempt = [&]() -> detail::Attempt<void> {
    auto record = store.record(portfolio_id);
    if (!record) return record.error();
    if (!*record) return detail::no_portfolio(portfolio_id);
    auto p = store.decode_portfolio(**record);
    if (!p && p.error().code() != errc::corrupt_data) return p.error();
    auto write = accounts.write();
    if (!p) {
      // Nothing in the record can be trusted, the account it names and
      // whether it owns it included: its account is never removed.
      if (policy == AccountPolicy::remove) {
        return Error(errc::corrupt_data, "the stored portfolio " + quote(portfolio_id) +
                                             " does not authenticate, so which account it holds is unknown;"
                                             " nothing was changed (disconnect it keeping its account)");
      }
      if (auto staged = store.erase_unreadable(write.batch(), **record); !staged) return staged.error();
      if (auto written = accounts.commit(write); !written) return detail::again_on_conflict<void>(written.error());
      return Result<void>();
    }
    if (auto staged = store.erase(write.batch(), *p); !staged) return staged.error();
    const bool remove_account = policy == AccountPolicy::remove ||
                                (policy == AccountPolicy::remove_if_owned && p->portfolio.owns_account);
    if (remove_account) {
      std::string account_key = p->portfolio.account.canonical();
      auto account = accounts.read(account_key);
      if (!account) return account.error();
      if (*account) {
        write.erase(std::move(account_key), (*account)->version);
      } else {
        write.reload(std::move(account_key));  // gone already: the cache hears of it now
      }
    }
    if (auto written = accounts.commit(write); !written) return detail::again_on_conflict<void>(written.error());
    return Result<void>();
  };
  return detail::retry_writes(
      options_.max_retries, [&] { return "disconnecting portfolio " + quote(portfolio_id); }, attempt);
}

std::vector<SupportedExchange> PortfolioConnector::supported_exchanges() const {
  const ExchangeCatalog& catalog = accounts_->catalog();
  std::vector<SupportedExchange> out;
  out.reserve(catalog.exchanges().size());
  for (const ExchangeInfo& info : catalog.exchanges()) {
    SupportedExchange e{info.id, info.name, info.icon, {}};
    for (const auto& key : info.required) {
      if (const CredentialField* field = catalog.find_field(key)) e.fields.push_back(*field);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<Snapshot> PortfolioConnector::sync(std::string_view portfolio_id, BalanceSource& source) {
  const detail::PortfolioStore store = portfolios_of(*accounts_);
  auto p = store.require(portfolio_id);
  if (!p) return p.error();
  auto account = accounts_->get(p->portfolio.account);
  if (!account) {
    if (account.error().code() == errc::not_found) {
      return Error(errc::not_found, "the account " + quote(p->portfolio.account.spelling()) + " of portfolio " +
                                        quote(p->portfolio.id) + " was removed");
    }
    return account.error();
  }
  // Stamped when asked, so that of two concurrent syncs the later
  // observation is the latest snapshot.
  const Timestamp observed = detail::now();
  auto balances = source.balances(**account);
  if (!balances) return balances.error();
  if (auto checked = check_balances(*balances); !checked) return checked.error();
  const auto attempt = [&]() -> detail::Attempt<Snapshot> {
    auto existing = store.snapshot_records(p->portfolio.id);
    if (!existing) return existing.error();
    Snapshot snapshot{observed, *balances};
    // Snapshots are kept per millisecond. One of the same millisecond is
    // replaced (this answer is at least as recent); one asked for later
    // means this answer is stale, and that one stays.
    std::uint64_t replaced = must_not_exist;
    if (!existing->empty()) {
      auto last = store.decode_snapshot(existing->back());
      if (!last) return last.error();
      if (last->taken > observed) return std::move(*last);
      if (last->taken == observed) {
        replaced = existing->back().version;
        existing->pop_back();
      }
    }
    auto batch = store.batch();
    // The portfolio must still exist when the snapshot lands.
    store.put(batch, *p, p->portfolio.version);
    store.put_snapshot(batch, p->portfolio.id, snapshot, replaced);
    const std::size_t keep = options_.max_snapshots - 1;
    for (std::size_t i = 0; existing->size() > keep && i < existing->size() - keep; ++i) {
      store.erase_snapshot(batch, (*existing)[i]);
    }
    auto written = store.commit(batch);
    if (written) return snapshot;
    if (written.error().code() != errc::conflict) return written.error();
    auto fresh = store.require(portfolio_id);
    if (!fresh) return fresh.error();
    p = std::move(fresh);
    return detail::try_again;
  };
  return detail::retry_writes(
      options_.max_retries, [&] { return "syncing portfolio " + quote(portfolio_id); }, attempt);
}

Result<std::vector<Snapshot>> PortfolioConnector::snapshots(std::string_view portfolio_id, TimeRange range) const {
  const detail::PortfolioStore store = portfolios_of(*accounts_);
  auto p = store.require(portfolio_id);
  if (!p) return p.error();
  auto records = store.snapshot_records(p->portfolio.id);
  if (!records) return records.error();
  std::vector<Snapshot> out;
  for (const Record& r : *records) {
    auto s = store.decode_snapshot(r);
    if (!s) return s.error();
    if (s->taken >= range.from && s->taken <= range.to) out.push_back(std::move(*s));
  }
  return out;
}

Result<std::vector<CoinValue>> PortfolioConnector::coins(std::string_view portfolio_id, PriceSource& prices) const {
  auto priced = price_latest(portfolio_id, prices);
  if (!priced) return priced.error();
  return std::move(priced->second);
}

Result<std::pair<Snapshot, std::vector<CoinValue>>> PortfolioConnector::price_latest(std::string_view portfolio_id,
                                                                                    PriceSource& prices) const {
  const detail::PortfolioStore store = portfolios_of(*accounts_);
  auto p = store.require(portfolio_id);
  if (!p) return p.error();
  auto records = store.snapshot_records(p->portfolio.id);
  if (!records) return records.error();
  if (records->empty()) {
    return Error(errc::not_found, "portfolio " + quote(p->portfolio.id) + " has no holdings yet; sync it first");
  }
  auto latest = store.decode_snapshot(records->back());
  if (!latest) return latest.error();
  std::vector<CoinValue> out;
  out.reserve(latest->holdings.size());
  for (const Holding& h : latest->holdings) {
    auto price = prices.price(h.asset);
    if (!price) return price.error();
    if (*price && (!std::isfinite(**price) || **price < 0)) {
      return Error(errc::invalid_argument, "the price source returned a price for " + quote(h.asset) +
                                               " that is negative or not finite");
    }
    CoinValue c{h.asset, h.amount, *price, std::nullopt};
    if (c.price) c.value = h.amount * *c.price;
    out.push_back(std::move(c));
  }
  return std::make_pair(std::move(*latest), std::move(out));
}

Result<PortfolioValue> PortfolioConnector::value(std::string_view portfolio_id, PriceSource& prices) const {
  auto priced = price_latest(portfolio_id, prices);
  if (!priced) return priced.error();
  PortfolioValue out{prices.quote_currency(), 0, {}, priced->first.taken};
  for (const CoinValue& c : priced->second) {
    if (c.value) {
      out.total += *c.value;
    } else {
      out.unpriced.push_back(c.asset);
    }
  }
  return out;
}

}  // namespace keyfolio
