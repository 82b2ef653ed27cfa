#include <keyfolio/portfolio_connector.hpp>

#include "account_manager_impl.hpp"
#include "detail/text.hpp"

#include <boost/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

namespace keyfolio {
namespace {

namespace json = boost::json;

constexpr std::string_view portfolios_collection = "portfolios";
constexpr std::string_view index_collection = "portfolio_index";
constexpr std::string_view snapshots_collection = "snapshots";
constexpr std::size_t portfolio_id_bytes = 16;

std::int64_t ms(Timestamp t) { return t.time_since_epoch().count(); }
Timestamp from_ms(std::int64_t v) { return Timestamp(std::chrono::milliseconds(v)); }

std::string new_portfolio_id() {
  unsigned char bytes[portfolio_id_bytes];
  randombytes_buf(bytes, sizeof bytes);
  char hex[portfolio_id_bytes * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
  return std::string(hex, portfolio_id_bytes * 2);
}

bool is_portfolio_id(std::string_view id) {
  return id.size() == portfolio_id_bytes * 2 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Error no_portfolio(std::string_view id) {
  // Only a well-formed id is echoed; anything else might be pasted text.
  return Error(errc::not_found, is_portfolio_id(id) ? "no portfolio " + detail::quote(id)
                                                    : "no portfolio with that id (a portfolio id is 32 hex digits)");
}

Result<std::string> checked_name(std::string_view name) {
  if (name.size() > PortfolioConnector::max_name_length) {
    return Error(errc::validation_failed, "portfolio name is " + std::to_string(name.size()) + " bytes; at most " +
                                              std::to_string(PortfolioConnector::max_name_length) + " are allowed");
  }
  for (std::size_t pos = 0; pos < name.size();) {
    const std::size_t at = pos;
    auto cp = detail::decode_utf8(name, pos);
    if (!cp) return Error(errc::validation_failed, "portfolio name is not valid UTF-8 at byte " + std::to_string(at));
    if (*cp < 0x20 || *cp == 0x7f || (*cp >= 0x80 && *cp < 0xa0)) {
      return Error(errc::validation_failed, "portfolio name has a control character at byte " + std::to_string(at));
    }
  }
  return std::string(name);
}

// Stored forms. Portfolio: {"name","account","owns","fingerprint","created","updated"}.
struct StoredPortfolio {
  Portfolio portfolio;
  std::string fingerprint;
};

std::string encode(const StoredPortfolio& p) {
  return json::serialize(json::object{{"name", p.portfolio.name},
                                      {"account", p.portfolio.account.spelling()},
                                      {"owns", p.portfolio.owns_account},
                                      {"fingerprint", p.fingerprint},
                                      {"created", ms(p.portfolio.created)},
                                      {"updated", ms(p.portfolio.updated)}});
}

std::string encode(const Snapshot& s) {
  json::array holdings;
  for (const auto& h : s.holdings) holdings.push_back(json::array{json::string(h.asset), h.amount});
  return json::serialize(json::object{{"taken", ms(s.taken)}, {"holdings", std::move(holdings)}});
}

std::string snapshot_key(std::string_view portfolio_id, Timestamp taken) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(ms(taken)));
  return std::string(portfolio_id) + "/" + digits;
}

}  // namespace

CredentialVerifier::~CredentialVerifier() = default;
BalanceSource::~BalanceSource() = default;
PriceSource::~PriceSource() = default;

struct PortfolioConnector::Access {
  static AccountManager::Impl& of(AccountManager& m) { return *m.impl_; }
  struct Store;
};

// The operations on stored portfolio records, over the manager's vault.
struct PortfolioConnector::Access::Store {
  AccountManager::Impl& m;

  std::string seal(std::string_view collection, const std::string& key, std::uint64_t version,
                   std::string_view plain) const {
    return m.vault.seal(collection, key, version, plain);
  }

  Result<std::string> open_text(std::string_view collection, const Record& record, std::string_view what) const {
    auto plain = m.vault.open(collection, record.key, record.version, record.value);
    if (!plain) {
      return Error(errc::corrupt_data, "the stored " + std::string(what) + " " + detail::quote(record.key) +
                                           " does not authenticate (tampered, truncated or copied)");
    }
    return std::string(plain->view());
  }

  static Error unparsable(std::string_view what, const Record& record) {
    return Error(errc::corrupt_data, "the stored " + std::string(what) + " " + detail::quote(record.key) +
                                         " does not parse");
  }

  // A stored record that holds a JSON object.
  Result<json::object> open_object(std::string_view collection, const Record& record, std::string_view what) const {
    auto text = open_text(collection, record, what);
    if (!text) return text.error();
    boost::system::error_code ec;
    auto v = json::parse(*text, ec);
    if (ec || !v.is_object()) return unparsable(what, record);
    return std::move(v.get_object());
  }

  Result<StoredPortfolio> decode_portfolio(const Record& record) const {
    auto o = open_object(portfolios_collection, record, "portfolio");
    if (!o) return o.error();
    const auto corrupt = [&] { return unparsable("portfolio", record); };
    const auto* name = o->if_contains("name");
    const auto* account = o->if_contains("account");
    const auto* owns = o->if_contains("owns");
    const auto* fingerprint = o->if_contains("fingerprint");
    const auto* created = o->if_contains("created");
    const auto* updated = o->if_contains("updated");
    if (!name || !name->is_string() || !account || !account->is_string() || !owns || !owns->is_bool() ||
        !fingerprint || !fingerprint->is_string() || !created || !created->is_int64() || !updated ||
        !updated->is_int64()) {
      return corrupt();
    }
    auto id = AccountId::parse(std::string_view(account->get_string()), *m.catalog);
    if (!id) return corrupt();
    StoredPortfolio out{Portfolio{record.key, std::string(name->get_string()), std::move(*id), owns->get_bool(),
                                  from_ms(created->get_int64()), from_ms(updated->get_int64()), record.version},
                        std::string(fingerprint->get_string())};
    return out;
  }

  Result<Snapshot> decode_snapshot(const Record& record) const {
    auto o = open_object(snapshots_collection, record, "snapshot");
    if (!o) return o.error();
    const auto corrupt = [&] { return unparsable("snapshot", record); };
    const auto* taken = o->if_contains("taken");
    const auto* holdings = o->if_contains("holdings");
    if (!taken || !taken->is_int64() || !holdings || !holdings->is_array()) return corrupt();
    Snapshot s{from_ms(taken->get_int64()), {}};
    for (const auto& h : holdings->get_array()) {
      const json::array* pair = h.if_array();
      if (!pair || pair->size() != 2 || !(*pair)[0].is_string() || !(*pair)[1].is_number()) return corrupt();
      s.holdings.push_back({std::string((*pair)[0].get_string()), (*pair)[1].to_number<double>()});
    }
    return s;
  }

  Result<std::optional<StoredPortfolio>> find(std::string_view id) const {
    if (!is_portfolio_id(id)) return std::optional<StoredPortfolio>();
    auto record = m.backend->get(portfolios_collection, id);
    if (!record) return record.error();
    if (!*record) return std::optional<StoredPortfolio>();
    auto p = decode_portfolio(**record);
    if (!p) return p.error();
    return std::optional<StoredPortfolio>(std::move(*p));
  }

  Result<StoredPortfolio> require(std::string_view id) const {
    auto found = find(id);
    if (!found) return found.error();
    if (!*found) return no_portfolio(id);
    return std::move(**found);
  }

  // The portfolio id the index holds for `fingerprint`, with the index
  // record's version.
  Result<std::optional<std::pair<std::string, std::uint64_t>>> indexed(const std::string& fingerprint) const {
    using Out = std::optional<std::pair<std::string, std::uint64_t>>;
    auto record = m.backend->get(index_collection, fingerprint);
    if (!record) return record.error();
    if (!*record) return Out();
    auto id = open_text(index_collection, **record, "portfolio index entry");
    if (!id) return id.error();
    return Out(std::make_pair(std::move(*id), (*record)->version));
  }

  Result<std::vector<Record>> snapshot_records(std::string_view id) const {
    return m.backend->scan(snapshots_collection, std::string(id) + "/");
  }
};

PortfolioConnector::PortfolioConnector(AccountManager& accounts) : PortfolioConnector(accounts, Options{}) {}
PortfolioConnector::PortfolioConnector(AccountManager& accounts, Options options)
    : accounts_(&accounts), options_(options) {
  if (options_.max_snapshots < 1) options_.max_snapshots = 1;
  if (options_.max_retries < 1) options_.max_retries = 1;
}

Result<ConnectResult> PortfolioConnector::connect(ConnectRequest request) {
  AccountManager::Impl& m = Access::of(*accounts_);
  const Access::Store store{m};
  const ExchangeInfo* info = m.catalog->find(request.connection_id);
  if (info == nullptr) {
    // Echoed only when it looks like an exchange id: anything else may be a
    // value pasted into the wrong field.
    const std::string& asked = request.connection_id;
    const bool id_like = !asked.empty() && asked.size() <= 20 &&
                         std::all_of(asked.begin(), asked.end(), [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                         });
    std::string message = "unknown exchange " + (id_like ? detail::quote(asked)
                                                          : "(" + std::to_string(asked.size()) + " bytes, not an exchange id)");
    if (auto near = m.catalog->suggest(request.connection_id, 1); !near.empty()) {
      message += "; did you mean " + detail::quote(near.front()) + "?";
    }
    return Error(errc::invalid_exchange_id, message);
  }
  if (auto valid = request.connection_fields.validate(*info); !valid) return valid.error();
  auto name = checked_name(request.name);
  if (!name) return name.error();
  if (name->empty()) name = info->name.empty() ? info->id : info->name;
  const AccountId exchange_only = AccountId::from_parts(info->id, {}, *m.catalog).value();
  const Fingerprint fingerprint_bytes = m.fingerprint(exchange_only, request.connection_fields);
  const std::string fingerprint = fingerprint_bytes.hex();
  if (fingerprint.empty()) {
    return Error(errc::validation_failed, "credentials for " + info->name + " have no identifying field");
  }

  bool verified = false;
  auto verify = [&]() -> Result<void> {
    if (verified || options_.verifier == nullptr) return {};
    auto ok = options_.verifier->verify(*info, request.connection_fields);
    if (!ok) {
      // Capped: a verifier's message may carry an exchange's reply.
      std::string why = ok.error().message();
      if (why.size() > 200) why = why.substr(0, 200) + "...";
      return Error(errc::verification_failed, "the credentials for " + info->name +
                                                  " were refused by the verifier: " + why + "; nothing was stored");
    }
    verified = true;
    return {};
  };

  // A key that no account in the manager's cache holds is most likely new
  // to the store, and then nothing needs reading: the first attempt writes
  // without looking up the index, and the index entry's must-not-exist
  // put catches the rare portfolio the cache could not show (connected
  // elsewhere a moment ago, or left by an account removed or re-keyed since).
  // Its conflict sends connect down the ordinary path, which reads first;
  // that first attempt does not count as a retry. Not with a verifier: it
  // would be asked about credentials the ordinary path may find connected
  // already, and next to its round trip the reads cost nothing.
  bool optimistic = options_.verifier == nullptr && !m.find_by_fingerprint(fingerprint);
  for (int attempt = 0; attempt < options_.max_retries; ++attempt) {
    const Timestamp stamp = now();
    using Indexed = std::optional<std::pair<std::string, std::uint64_t>>;
    auto index = optimistic ? Result<Indexed>(Indexed()) : store.indexed(fingerprint);
    if (!index) return index.error();

    std::optional<StoredPortfolio> portfolio;
    if (*index) {
      auto found = store.find((*index)->first);
      if (!found) return found.error();
      if (!*found || (*found)->fingerprint != fingerprint) {
        // A disconnect may have committed between the two reads: look again.
        auto again = store.indexed(fingerprint);
        if (!again) return again.error();
        if (!*again || (*again)->second != (*index)->second) continue;
        return Error(errc::corrupt_data, "the portfolio index names a portfolio that is missing or differs");
      }
      portfolio = std::move(**found);
    }

    // The account: the portfolio's own, one stored before with the same
    // identifying credential, or a new one.
    std::optional<AccountId> account_id;
    bool owns = false;
    bool linked_account = false;
    std::string new_id;
    if (portfolio) {
      account_id = portfolio->portfolio.account;
      owns = portfolio->portfolio.owns_account;
    } else if (auto linked = optimistic ? std::nullopt : m.find_by_fingerprint(fingerprint)) {
      account_id = *linked;
      linked_account = true;
    } else {
      new_id = new_portfolio_id();
      account_id = AccountId::from_parts(info->id, new_id, *m.catalog).value();
      owns = true;
    }
    const std::string account_key = account_id->canonical();
    // An account under a tag just drawn at random cannot exist yet: its
    // must-not-exist put below is the check.
    auto current = new_id.empty() ? m.backend->get(accounts_collection, account_key)
                                  : Result<std::optional<Record>>(std::optional<Record>());
    if (!current) return current.error();

    WriteBatch batch;
    std::vector<Sealed> sealed;
    bool credentials_updated = false;
    std::optional<Account> existing;
    if (*current) {
      existing = m.open_record(account_key, **current);
      if (!existing) {
        return Error(errc::corrupt_data, "the stored record of account " + detail::quote(account_id->spelling()) +
                                             " does not authenticate; nothing was stored");
      }
      if (m.fingerprint(existing->id, existing->credentials).view() != fingerprint_bytes.view()) {
        if (linked_account) {
          // The manager's view was behind: that account holds another key now.
          (void)m.sync_key(account_key);
          continue;
        }
        return Error(errc::conflict, "the account " + detail::quote(account_id->spelling()) + " of portfolio " +
                                         detail::quote(portfolio->portfolio.id) +
                                         " now holds another API key; disconnect the portfolio, or connect with "
                                         "the account's current key; nothing was stored");
      }
    } else if (linked_account) {
      // Removed since the manager last heard: do not bring it back.
      (void)m.sync_key(account_key);
      continue;
    }
    if (!existing || !(existing->credentials == request.connection_fields)) {
      if (auto ok = verify(); !ok) return ok.error();
      const std::uint64_t version = existing ? existing->version : must_not_exist;
      const Timestamp created = existing ? existing->created : stamp;
      auto account = std::make_shared<Account>(
          Account{existing ? existing->id : *account_id, request.connection_fields, version + 1, created, stamp});
      std::string value =
          m.seal(account->id, account_key, version + 1, created, stamp, account->credentials, fingerprint_bytes);
      sealed.push_back(
          Sealed{account_key, NonceTag::of(value), account, fingerprint_bytes});
      batch.put(accounts_collection, account_key, std::move(value), version);
      credentials_updated = existing.has_value() || portfolio.has_value();
    }

    ConnectResult result{portfolio ? portfolio->portfolio.id : new_id.empty() ? new_portfolio_id() : new_id,
                         info->id,
                         portfolio ? ConnectResult::Status::existing : ConnectResult::Status::connected,
                         *account_id, credentials_updated};
    if (!portfolio) {
      if (auto ok = verify(); !ok) return ok.error();
      // A linked account left as it is must still be there when the
      // portfolio lands.
      if (sealed.empty() && existing) batch.expect(accounts_collection, account_key, existing->version);
      StoredPortfolio fresh{Portfolio{result.portfolio_id, *name, *account_id, owns, stamp, stamp, 1}, fingerprint};
      batch.put(portfolios_collection, result.portfolio_id,
                store.seal(portfolios_collection, result.portfolio_id, 1, encode(fresh)), must_not_exist);
      batch.put(index_collection, fingerprint, store.seal(index_collection, fingerprint, 1, result.portfolio_id),
                must_not_exist);
    } else if (!batch.empty()) {
      // Touch the portfolio: its account changed, and the compare-and-set on
      // it keeps a concurrent disconnect from being undone.
      StoredPortfolio touched = *portfolio;
      touched.portfolio.updated = stamp;
      const std::uint64_t v = portfolio->portfolio.version;
      touched.portfolio.version = v + 1;
      batch.put(portfolios_collection, result.portfolio_id,
                store.seal(portfolios_collection, result.portfolio_id, v + 1, encode(touched)), v);
    }
    if (batch.empty()) return result;  // already connected with these very credentials
    const std::uint64_t before = m.generation();
    auto written = m.backend->write(batch);
    if (!written) {
      if (written.error().code() != errc::conflict) return written.error();
      if (std::exchange(optimistic, false)) --attempt;
      continue;
    }
    (void)m.sync_sealed(sealed, before);
    return result;
  }
  return Error(errc::conflict, "connecting to " + info->name + " lost to concurrent writers " +
                                   std::to_string(options_.max_retries) + " times in a row");
}

Result<std::vector<Portfolio>> PortfolioConnector::list() const {
  const Access::Store store{Access::of(*accounts_)};
  auto records = store.m.backend->scan(portfolios_collection);
  if (!records) return records.error();
  std::vector<Portfolio> out;
  out.reserve(records->size());
  for (const Record& record : *records) {
    auto p = store.decode_portfolio(record);
    if (!p) return p.error();
    out.push_back(std::move(p->portfolio));
  }
  std::sort(out.begin(), out.end(), [](const Portfolio& a, const Portfolio& b) {
    return a.name != b.name ? a.name < b.name : a.id < b.id;
  });
  return out;
}

Result<Portfolio> PortfolioConnector::get(std::string_view portfolio_id) const {
  auto p = Access::Store{Access::of(*accounts_)}.require(portfolio_id);
  if (!p) return p.error();
  return std::move(p->portfolio);
}

Result<Portfolio> PortfolioConnector::rename(std::string_view portfolio_id, std::string_view name) {
  auto checked = checked_name(name);
  if (!checked) return checked.error();
  if (checked->empty()) return Error(errc::validation_failed, "portfolio name is empty");
  const Access::Store store{Access::of(*accounts_)};
  for (int attempt = 0; attempt < options_.max_retries; ++attempt) {
    auto p = store.require(portfolio_id);
    if (!p) return p.error();
    const std::uint64_t v = p->portfolio.version;
    p->portfolio.name = *checked;
    p->portfolio.updated = now();
    p->portfolio.version = v + 1;
    WriteBatch batch;
    batch.put(portfolios_collection, p->portfolio.id,
              store.seal(portfolios_collection, p->portfolio.id, v + 1, encode(*p)), v);
    auto written = store.m.backend->write(batch);
    if (written) return std::move(p->portfolio);
    if (written.error().code() != errc::conflict) return written.error();
  }
  return Error(errc::conflict, "renaming portfolio " + detail::quote(portfolio_id) + " lost to concurrent writers");
}

Result<void> PortfolioConnector::disconnect(std::string_view portfolio_id, AccountPolicy policy) {
  AccountManager::Impl& m = Access::of(*accounts_);
  const Access::Store store{m};
  for (int attempt = 0; attempt < options_.max_retries; ++attempt) {
    auto p = store.require(portfolio_id);
    if (!p) return p.error();
    WriteBatch batch;
    batch.erase(portfolios_collection, p->portfolio.id, p->portfolio.version);
    // An index entry that does not authenticate is left alone rather than
    // making the portfolio impossible to remove.
    auto index = store.indexed(p->fingerprint);
    if (index && *index && (*index)->first == p->portfolio.id) {
      batch.erase(index_collection, p->fingerprint, (*index)->second);
    } else if (!index && index.error().code() != errc::corrupt_data) {
      return index.error();
    }
    auto snapshots = store.snapshot_records(p->portfolio.id);
    if (!snapshots) return snapshots.error();
    for (const Record& r : *snapshots) batch.erase(snapshots_collection, r.key, r.version);
    const bool remove_account = policy == AccountPolicy::remove ||
                                (policy == AccountPolicy::remove_if_owned && p->portfolio.owns_account);
    const std::string account_key = p->portfolio.account.canonical();
    if (remove_account) {
      auto account = m.backend->get(accounts_collection, account_key);
      if (!account) return account.error();
      if (*account) batch.erase(accounts_collection, account_key, (*account)->version);
    }
    auto written = m.backend->write(batch);
    if (!written) {
      if (written.error().code() == errc::conflict) continue;
      return written.error();
    }
    if (remove_account) (void)m.sync_key(account_key);
    return {};
  }
  return Error(errc::conflict, "disconnecting portfolio " + detail::quote(portfolio_id) +
                                   " lost to concurrent writers");
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
  AccountManager::Impl& m = Access::of(*accounts_);
  const Access::Store store{m};
  auto p = store.require(portfolio_id);
  if (!p) return p.error();
  auto account = accounts_->get(p->portfolio.account);
  if (!account) {
    if (account.error().code() == errc::not_found) {
      return Error(errc::not_found, "the account " + detail::quote(p->portfolio.account.spelling()) +
                                        " of portfolio " + detail::quote(p->portfolio.id) + " was removed");
    }
    return account.error();
  }
  // Stamped when asked, so that of two concurrent syncs the later
  // observation is the latest snapshot.
  const Timestamp observed = now();
  auto balances = source.balances(**account);
  if (!balances) return balances.error();
  std::set<std::string> seen;
  for (const Holding& h : *balances) {
    if (h.asset.empty()) return Error(errc::invalid_argument, "the balance source returned an empty asset name");
    if (h.asset.size() > 64) {
      return Error(errc::invalid_argument, "the balance source returned an asset name of " +
                                               std::to_string(h.asset.size()) + " bytes; at most 64 are kept");
    }
    if (!std::isfinite(h.amount)) {
      return Error(errc::invalid_argument, "the balance source returned a non-finite amount of " +
                                               detail::quote(h.asset));
    }
    if (!seen.insert(h.asset).second) {
      return Error(errc::invalid_argument, "the balance source returned " + detail::quote(h.asset) + " twice");
    }
  }
  for (int attempt = 0; attempt < options_.max_retries; ++attempt) {
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
    const std::string key = snapshot_key(p->portfolio.id, snapshot.taken);
    WriteBatch batch;
    // The portfolio must still exist when the snapshot lands.
    batch.put(portfolios_collection, p->portfolio.id,
              store.seal(portfolios_collection, p->portfolio.id, p->portfolio.version + 1, encode(*p)),
              p->portfolio.version);
    batch.put(snapshots_collection, key, store.seal(snapshots_collection, key, replaced + 1, encode(snapshot)),
              replaced);
    const std::size_t keep = options_.max_snapshots - 1;
    for (std::size_t i = 0; existing->size() > keep && i < existing->size() - keep; ++i) {
      batch.erase(snapshots_collection, (*existing)[i].key, (*existing)[i].version);
    }
    auto written = m.backend->write(batch);
    if (written) return snapshot;
    if (written.error().code() != errc::conflict) return written.error();
    auto fresh = store.require(portfolio_id);
    if (!fresh) return fresh.error();
    p = std::move(fresh);
  }
  return Error(errc::conflict, "syncing portfolio " + detail::quote(portfolio_id) + " lost to concurrent writers");
}

Result<std::vector<Snapshot>> PortfolioConnector::snapshots(std::string_view portfolio_id, TimeRange range) const {
  const Access::Store store{Access::of(*accounts_)};
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
  const Access::Store store{Access::of(*accounts_)};
  auto p = store.require(portfolio_id);
  if (!p) return p.error();
  auto records = store.snapshot_records(p->portfolio.id);
  if (!records) return records.error();
  if (records->empty()) {
    return Error(errc::not_found, "portfolio " + detail::quote(p->portfolio.id) + " has no holdings yet; sync it first");
  }
  auto latest = store.decode_snapshot(records->back());
  if (!latest) return latest.error();
  std::vector<CoinValue> out;
  out.reserve(latest->holdings.size());
  for (const Holding& h : latest->holdings) {
    auto price = prices.price(h.asset);
    if (!price) return price.error();
    if (*price && (!std::isfinite(**price) || **price < 0)) {
      return Error(errc::invalid_argument, "the price source returned a price for " + detail::quote(h.asset) +
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
