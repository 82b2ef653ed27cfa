#include "portfolios/portfolio_store.hpp"

#include "crypto/random.hpp"
#include "detail/text.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>

namespace keyfolio::detail {
namespace {

namespace json = boost::json;

std::int64_t ms(Timestamp t) { return t.time_since_epoch().count(); }
Timestamp from_ms(std::int64_t v) { return Timestamp(std::chrono::milliseconds(v)); }

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

Error unparsable(std::string_view what, const Record& record) {
  return Error(errc::corrupt_data, "the stored " + std::string(what) + " " + quote(record.key) + " does not parse");
}

// A JSON object in `text`, or the error of a record that does not parse.
Result<json::object> object_of(const std::string& text, std::string_view what, const Record& record) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return unparsable(what, record);
  return std::move(v.get_object());
}

}  // namespace

bool is_portfolio_id(std::string_view id) {
  return id.size() == portfolio_id_bytes * 2 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string new_portfolio_id() { return crypto::random_hex(portfolio_id_bytes); }

Error no_portfolio(std::string_view id) {
  // Only a well-formed id is echoed; anything else might be pasted text.
  return Error(errc::not_found, is_portfolio_id(id) ? "no portfolio " + quote(id)
                                                    : "no portfolio with that id (a portfolio id is 32 hex digits)");
}

Result<std::string> PortfolioStore::open_text(std::string_view collection, const Record& record,
                                              std::string_view what) const {
  auto plain = sealed_->open(collection, record);
  if (!plain) {
    return Error(errc::corrupt_data, "the stored " + std::string(what) + " " + quote(record.key) +
                                         " does not authenticate (tampered, truncated or copied)");
  }
  return std::string(plain->view());
}

Result<StoredPortfolio> PortfolioStore::decode_portfolio(const Record& record) const {
  auto text = open_text(collections::portfolios, record, "portfolio");
  if (!text) return text.error();
  auto o = object_of(*text, "portfolio", record);
  if (!o) return o.error();
  const auto* name = o->if_contains("name");
  const auto* account = o->if_contains("account");
  const auto* owns = o->if_contains("owns");
  const auto* fingerprint = o->if_contains("fingerprint");
  const auto* created = o->if_contains("created");
  const auto* updated = o->if_contains("updated");
  if (!name || !name->is_string() || !account || !account->is_string() || !owns || !owns->is_bool() ||
      !fingerprint || !fingerprint->is_string() || !created || !created->is_int64() || !updated ||
      !updated->is_int64()) {
    return unparsable("portfolio", record);
  }
  auto id = AccountId::parse(std::string_view(account->get_string()), *catalog_);
  if (!id) return unparsable("portfolio", record);
  return StoredPortfolio{Portfolio{record.key, std::string(name->get_string()), std::move(*id), owns->get_bool(),
                                   from_ms(created->get_int64()), from_ms(updated->get_int64()), record.version},
                         std::string(fingerprint->get_string())};
}

Result<Snapshot> PortfolioStore::decode_snapshot(const Record& record) const {
  auto text = open_text(collections::snapshots, record, "snapshot");
  if (!text) return text.error();
  auto o = object_of(*text, "snapshot", record);
  if (!o) return o.error();
  const auto* taken = o->if_contains("taken");
  const auto* holdings = o->if_contains("holdings");
  if (!taken || !taken->is_int64() || !holdings || !holdings->is_array()) return unparsable("snapshot", record);
  Snapshot s{from_ms(taken->get_int64()), {}};
  for (const auto& h : holdings->get_array()) {
    const json::array* pair = h.if_array();
    if (!pair || pair->size() != 2 || !(*pair)[0].is_string() || !(*pair)[1].is_number()) {
      return unparsable("snapshot", record);
    }
    s.holdings.push_back({std::string((*pair)[0].get_string()), (*pair)[1].to_number<double>()});
  }
  return s;
}

Result<std::optional<Record>> PortfolioStore::record(std::string_view id) const {
  if (!is_portfolio_id(id)) return std::optional<Record>();
  return sealed_->get(collections::portfolios, id);
}

Result<std::optional<StoredPortfolio>> PortfolioStore::find(std::string_view id) const {
  auto record = this->record(id);
  if (!record) return record.error();
  if (!*record) return std::optional<StoredPortfolio>();
  auto p = decode_portfolio(**record);
  if (!p) return p.error();
  return std::optional<StoredPortfolio>(std::move(*p));
}

Result<StoredPortfolio> PortfolioStore::require(std::string_view id) const {
  auto found = find(id);
  if (!found) return found.error();
  if (!*found) return no_portfolio(id);
  return std::move(**found);
}

Result<std::vector<Portfolio>> PortfolioStore::list() const {
  auto records = sealed_->scan(collections::portfolios);
  if (!records) return records.error();
  std::vector<Portfolio> out;
  out.reserve(records->size());
  for (const Record& record : *records) {
    auto p = decode_portfolio(record);
    if (p) {
      out.push_back(std::move(p->portfolio));
    } else if (p.error().code() == errc::corrupt_data) {
      // Nothing in the record is trusted; its key and version are the
      // backend's, and are what removing it needs.
      Portfolio corrupt;
      corrupt.id = record.key;
      corrupt.version = record.version;
      corrupt.corrupt = true;
      out.push_back(std::move(corrupt));
    } else {
      return p.error();
    }
  }
  return out;
}

Result<std::optional<IndexEntry>> PortfolioStore::indexed(std::string_view fingerprint) const {
  auto record = sealed_->get(collections::portfolio_index, fingerprint);
  if (!record) return record.error();
  if (!*record) return std::optional<IndexEntry>();
  auto id = open_text(collections::portfolio_index, **record, "portfolio index entry");
  if (!id) return id.error();
  return std::optional<IndexEntry>(IndexEntry{std::move(*id), (*record)->version});
}

Result<std::vector<Record>> PortfolioStore::snapshot_records(std::string_view id) const {
  return sealed_->scan(collections::snapshots, std::string(id) + "/");
}

void PortfolioStore::put(SealedStore::Batch& batch, const StoredPortfolio& p, std::uint64_t expected_version) const {
  batch.put(collections::portfolios, p.portfolio.id, expected_version, encode(p));
}

void PortfolioStore::put_index(SealedStore::Batch& batch, const std::string& fingerprint,
                               const std::string& portfolio_id) const {
  batch.put(collections::portfolio_index, fingerprint, must_not_exist, portfolio_id);
}

void PortfolioStore::put_snapshot(SealedStore::Batch& batch, std::string_view id, const Snapshot& snapshot,
                                  std::uint64_t replaced) const {
  batch.put(collections::snapshots, snapshot_key(id, snapshot.taken), replaced, encode(snapshot));
}

Result<void> PortfolioStore::erase(SealedStore::Batch& batch, const StoredPortfolio& p) const {
  batch.erase(collections::portfolios, p.portfolio.id, p.portfolio.version);
  auto index = indexed(p.fingerprint);
  if (index && *index && (*index)->portfolio_id == p.portfolio.id) {
    batch.erase(collections::portfolio_index, p.fingerprint, (*index)->version);
  } else if (!index && index.error().code() != errc::corrupt_data) {
    return index.error();
  }
  return erase_snapshots(batch, p.portfolio.id);
}

Result<void> PortfolioStore::erase_unreadable(SealedStore::Batch& batch, const Record& record) const {
  batch.erase(collections::portfolios, record.key, record.version);
  auto index = sealed_->scan(collections::portfolio_index);
  if (!index) return index.error();
  for (const Record& entry : *index) {
    const auto names = sealed_->open(collections::portfolio_index, entry);
    if (names && names->view() == record.key) batch.erase(collections::portfolio_index, entry.key, entry.version);
  }
  return erase_snapshots(batch, record.key);
}

Result<void> PortfolioStore::erase_snapshots(SealedStore::Batch& batch, std::string_view id) const {
  auto snapshots = snapshot_records(id);
  if (!snapshots) return snapshots.error();
  for (const Record& r : *snapshots) erase_snapshot(batch, r);
  return {};
}

}  // namespace keyfolio::detail
