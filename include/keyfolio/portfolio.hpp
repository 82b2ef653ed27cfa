// keyfolio/portfolio.hpp: the values PortfolioConnector takes and returns —
// portfolios, connect requests and results, holdings and their value.
//
// Value types; safe for concurrent const use. Amounts and prices are doubles:
// holdings are tracked for display and charts, not for accounting.
#pragma once

#include <keyfolio/account.hpp>
#include <keyfolio/account_id.hpp>
#include <keyfolio/credentials.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace keyfolio {

// An exchange account tracked as a portfolio (CoinStats' connected portfolio).
struct Portfolio {
  std::string id{};  // 32 hex digits (128 random bits)
  std::string name{};
  AccountId account;  // the account holding its credentials
  // connect() stored the account for this portfolio (rather than linking one
  // stored before); disconnect() removes such an account by default.
  bool owns_account = false;
  Timestamp created{};
  Timestamp updated{};
  std::uint64_t version = 0;
  // The stored record does not authenticate or decode (tampered, truncated,
  // copied from elsewhere). Only `id` and `version` (the stored record's) are
  // known; every other member keeps its default, `account` the empty id.
  // Every call on it but disconnect() returns `corrupt_data`.
  bool corrupt = false;
};

// CoinStats' POST /portfolio/exchange.
struct ConnectRequest {
  std::string connection_id{};      // exchange id or alias: "binance"
  Credentials connection_fields{};  // field names in any spelling the catalog knows
  std::string name{};               // optional; defaults to the exchange's name
};

struct ConnectResult {
  enum class Status {
    connected,  // a new portfolio
    existing,   // this exchange account was already connected
  };
  std::string portfolio_id{};
  std::string connection_id{};  // the canonical exchange id
  Status status = Status::connected;
  AccountId account;
  // The stored credentials were replaced (same API key, new secret).
  bool credentials_updated = false;
};

struct Holding {
  std::string asset{};  // as the balance source names it: "BTC"
  double amount = 0;
};

// Holdings at one moment.
struct Snapshot {
  Timestamp taken{};
  std::vector<Holding> holdings{};
};

// A holding valued in the price source's quote currency.
struct CoinValue {
  std::string asset{};
  double amount = 0;
  std::optional<double> price{};  // empty: the price source has no price
  std::optional<double> value{};  // amount * price, when priced
};

struct PortfolioValue {
  std::string quote_currency{};
  double total = 0;                     // of the priced holdings only
  std::vector<std::string> unpriced{};  // assets held but not valued
  Timestamp as_of{};                    // when the holdings were synced
};

// A closed interval of time; the default covers all time.
struct TimeRange {
  Timestamp from = Timestamp::min();
  Timestamp to = Timestamp::max();
};

}  // namespace keyfolio
