// keyfolio/portfolio_connector.hpp: PortfolioConnector, which connects
// exchange accounts into tracked portfolios (CoinStats' portfolio
// connection), and the host-provided sources it draws on.
//
// A PortfolioConnector works on an AccountManager: the same store, the same
// keys, the same catalog. `connect` validates the connection fields against
// the catalog, asks the host's CredentialVerifier (if any) before storing
// anything, and writes the account and the portfolio in one atomic batch, so
// that no crash or conflict leaves one without the other.
//
// Linking uses the manager's view of its accounts, which other processes'
// writes reach through the backend's change feed (or refresh()); an account
// stored elsewhere moments before may be missed and stored again.
//
// Identity: a portfolio is `existing` when the same exchange account is
// already connected — the same exchange and the same identifying credential
// (the API key; for wallet-style exchanges the wallet address, or the private
// key). It is found through the keyed, non-reversible fingerprint stored
// beside the portfolio and each account, never by decrypting every account
// (only one whose fingerprint matches, to check its record). An account stored
// earlier through the AccountManager (`binance/main`) is linked instead of
// duplicated; a new connection gets the account `<exchange>/<portfolio id>`.
// Connecting twice with the same input changes nothing; with the same API key
// and a new secret, the stored secret is replaced and the result says so.
//
// Holdings: `sync` asks a BalanceSource for an account's balances and keeps a
// timestamped snapshot, at most `Options::max_snapshots` per portfolio (the
// oldest go first). `coins` and `value` price the latest snapshot through a
// PriceSource; assets without a price are reported as unpriced, never valued
// at zero.
//
// Concurrency: safe for concurrent use by many threads, and by several
// connectors and managers on one backend. Writes are compare-and-set,
// retried on fresh state up to `max_retries` times, then `conflict`.
// The sources are called without the connector's locks held; a source shared
// between threads must be thread-safe itself.
#pragma once

#include <keyfolio/account_manager.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/portfolio.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keyfolio {

// Tries credentials against the exchange before they are stored. Return an
// error (any code) to refuse them; its message reaches the caller in a
// `verification_failed` error, so it must not contain a secret.
class KEYFOLIO_EXPORT CredentialVerifier {
 public:
  virtual ~CredentialVerifier();
  virtual Result<void> verify(const ExchangeInfo& exchange, const Credentials& credentials) = 0;
};

// Fetches the balances of an exchange account.
class KEYFOLIO_EXPORT BalanceSource {
 public:
  virtual ~BalanceSource();
  virtual Result<std::vector<Holding>> balances(const Account& account) = 0;
};

// Prices assets in one quote currency.
class KEYFOLIO_EXPORT PriceSource {
 public:
  virtual ~PriceSource();
  virtual std::string quote_currency() const = 0;
  // The price of one unit of `asset`, or an empty optional when unknown.
  virtual Result<std::optional<double>> price(std::string_view asset) = 0;
};

// One exchange a portfolio can be connected to (CoinStats' exchange/support).
struct SupportedExchange {
  std::string connection_id{};               // canonical exchange id
  std::string name{};                        // display name
  std::string icon{};                        // logo URL, may be empty
  std::vector<CredentialField> fields{};     // the connection fields it needs
};

class KEYFOLIO_EXPORT PortfolioConnector {
 public:
  struct Options {
    // Called before credentials are stored; must outlive the connector.
    CredentialVerifier* verifier = nullptr;
    // Snapshots kept per portfolio; at least 1.
    std::size_t max_snapshots = 1000;
    // Compare-and-set attempts of one write before `conflict`.
    int max_retries = 32;
  };

  // What disconnect() does with the portfolio's account.
  enum class AccountPolicy {
    remove_if_owned,  // remove it if connect() created it; keep one stored before
    keep,
    remove,
  };

  // A connector on `accounts`, which must outlive it.
  explicit PortfolioConnector(AccountManager& accounts);
  PortfolioConnector(AccountManager& accounts, Options options);

  // Longest portfolio name accepted (bytes of UTF-8).
  static constexpr std::size_t max_name_length = 200;

  // Connects an exchange account. `invalid_exchange_id` for an unknown
  // exchange, `validation_failed` for missing, unknown or repeated fields or a
  // bad name, `verification_failed` when the verifier refuses; nothing is
  // stored then.
  Result<ConnectResult> connect(ConnectRequest request);

  // All portfolios, ordered by name then id. One whose stored record does
  // not authenticate or decode is listed too, marked `corrupt` with its id
  // only, after the others (by id); one damaged record does not hide the rest.
  Result<std::vector<Portfolio>> list() const;
  // `not_found` for an unknown id; `corrupt_data` when its stored record does
  // not authenticate or decode (as for every call below but disconnect).
  Result<Portfolio> get(std::string_view portfolio_id) const;
  Result<Portfolio> rename(std::string_view portfolio_id, std::string_view name);
  // Removes the portfolio and its snapshots, and its account per `policy`.
  // `not_found` for an unknown id.
  //
  // A corrupt portfolio is removed too, with its snapshots and the index
  // entries that name it; since nothing in its record can be trusted, its
  // account is always kept (remove_if_owned keeps it), and
  // AccountPolicy::remove is refused with `corrupt_data`, changing nothing.
  // The account a portfolio created is named `<exchange>/<portfolio id>`.
  Result<void> disconnect(std::string_view portfolio_id, AccountPolicy policy = AccountPolicy::remove_if_owned);

  // The exchanges of the catalog, with the fields each needs.
  std::vector<SupportedExchange> supported_exchanges() const;

  // Fetches balances for the portfolio's account and stores them as a new
  // snapshot, stamped (to the millisecond) when the source was asked. A
  // snapshot of the same millisecond is replaced by this one; when a
  // concurrent sync asked later, its snapshot is kept and returned instead.
  // `not_found` when the portfolio or its account is gone; the
  // source's error as it is; `invalid_argument` when the source returns an
  // empty or repeated asset name or an amount that is not finite.
  Result<Snapshot> sync(std::string_view portfolio_id, BalanceSource& source);
  // The latest snapshot's holdings, priced; `not_found` before any sync;
  // `invalid_argument` when the price source returns a negative or
  // non-finite price.
  Result<std::vector<CoinValue>> coins(std::string_view portfolio_id, PriceSource& prices) const;
  Result<PortfolioValue> value(std::string_view portfolio_id, PriceSource& prices) const;
  // Snapshots taken within `range`, oldest first.
  Result<std::vector<Snapshot>> snapshots(std::string_view portfolio_id, TimeRange range = {}) const;

  AccountManager& accounts() const noexcept { return *accounts_; }

 private:
  Result<std::pair<Snapshot, std::vector<CoinValue>>> price_latest(std::string_view portfolio_id,
                                                                   PriceSource& prices) const;
  AccountManager* accounts_;
  Options options_;
};

}  // namespace keyfolio
