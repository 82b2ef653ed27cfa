// The portfolio store: portfolio, portfolio-index and snapshot records over
// the sealed store, for PortfolioConnector.
//
// Records (JSON, sealed like every record):
//   portfolios/<id>                {"name","account","owns","fingerprint","created","updated"}
//   portfolio_index/<fingerprint>  the portfolio id, finding a portfolio by
//                                  its account's identifying credential
//   snapshots/<id>/<20-digit ms>   {"taken", "holdings": [[asset, amount], ...]}
// Reads go to the backend each time; writes are staged into a batch that may
// also hold account records, and are committed by whoever stages them.
//
// Safe for concurrent use.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/portfolio.hpp>
#include <keyfolio/storage.hpp>

#include "storage/sealed_store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::detail {

inline constexpr std::size_t portfolio_id_bytes = 16;

// Whether `id` is 32 lower-case hex digits, as every portfolio id is.
bool is_portfolio_id(std::string_view id);
// A fresh random portfolio id.
std::string new_portfolio_id();
// `not_found` for `id`, echoing it only when it is a well-formed id.
Error no_portfolio(std::string_view id);

struct StoredPortfolio {
  Portfolio portfolio;
  std::string fingerprint;  // of its account's identifying credential, in hex
};

// The portfolio id the index holds for a fingerprint, and the index
// record's version.
struct IndexEntry {
  std::string portfolio_id;
  std::uint64_t version = 0;
};

class PortfolioStore {
 public:
  // Over `sealed`, which must outlive it; account ids parse under `catalog`.
  PortfolioStore(SealedStore& sealed, const ExchangeCatalog& catalog) : sealed_(&sealed), catalog_(&catalog) {}

  // The portfolio, or nullopt (also for an id that cannot be one);
  // `corrupt_data` when its record does not authenticate or parse.
  Result<std::optional<StoredPortfolio>> find(std::string_view id) const;
  // The same, `not_found` when absent.
  Result<StoredPortfolio> require(std::string_view id) const;
  // The portfolio's record as stored (sealed), or nullopt (also for an id
  // that cannot be one).
  Result<std::optional<Record>> record(std::string_view id) const;
  // The portfolio a record read from the portfolios collection holds;
  // `corrupt_data` when it does not authenticate or parse.
  Result<StoredPortfolio> decode_portfolio(const Record& record) const;
  // Every portfolio, ordered by id; one whose record does not authenticate
  // or parse is marked corrupt, with its id and version only.
  Result<std::vector<Portfolio>> list() const;
  Result<std::optional<IndexEntry>> indexed(std::string_view fingerprint) const;
  // The portfolio's snapshot records, oldest first.
  Result<std::vector<Record>> snapshot_records(std::string_view id) const;
  Result<Snapshot> decode_snapshot(const Record& record) const;

  // Stages `p` at p.portfolio.version, which is `expected_version` + 1.
  void put(SealedStore::Batch& batch, const StoredPortfolio& p, std::uint64_t expected_version) const;
  void put_index(SealedStore::Batch& batch, const std::string& fingerprint, const std::string& portfolio_id) const;
  // Stages `snapshot` of portfolio `id` (replacing the one of the same
  // millisecond at `replaced`, or must_not_exist).
  void put_snapshot(SealedStore::Batch& batch, std::string_view id, const Snapshot& snapshot,
                    std::uint64_t replaced) const;

  // Stages the removal of `p`, its snapshots, and its index entry when that
  // still names it. An index entry that does not authenticate is left alone
  // rather than making the portfolio impossible to remove.
  Result<void> erase(SealedStore::Batch& batch, const StoredPortfolio& p) const;
  // Stages the removal of the portfolio record `record`, which does not
  // authenticate or parse, its snapshots, and every index entry that names it
  // (its fingerprint cannot be read, so the index is scanned for them).
  // Only records that open say whose they are: an index entry that does not
  // authenticate is left alone.
  Result<void> erase_unreadable(SealedStore::Batch& batch, const Record& record) const;
  void erase_snapshot(SealedStore::Batch& batch, const Record& snapshot) const {
    batch.erase(collections::snapshots, snapshot.key, snapshot.version);
  }

  SealedStore::Batch batch() const { return sealed_->batch(); }
  Result<void> commit(SealedStore::Batch& batch) const { return sealed_->commit(batch); }

 private:
  Result<std::string> open_text(std::string_view collection, const Record& record, std::string_view what) const;
  Result<void> erase_snapshots(SealedStore::Batch& batch, std::string_view id) const;

  SealedStore* sealed_;
  const ExchangeCatalog* catalog_;
};

}  // namespace keyfolio::detail
