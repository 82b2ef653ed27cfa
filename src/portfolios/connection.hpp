// One PortfolioConnector::connect, in steps: check the request, find what is
// already stored for the exchange account (a portfolio through the index, or
// an account through its fingerprint), then stage the account, the
// portfolio and its index entry in one batch and commit it.
#pragma once

#include <keyfolio/portfolio.hpp>
#include <keyfolio/portfolio_connector.hpp>

#include "accounts/account_store.hpp"
#include "portfolios/portfolio_store.hpp"
#include "storage/retry.hpp"

#include <optional>
#include <string>

namespace keyfolio::detail {

// `name` as a portfolio name: `validation_failed` when it is too long, not
// UTF-8, or has a control character.
Result<std::string> checked_portfolio_name(std::string_view name);

class Connection {
 public:
  // The request checked against the catalog: `invalid_exchange_id`,
  // `validation_failed` for bad fields or name, or no identifying field.
  static Result<Connection> prepare(ConnectRequest request, AccountStore& accounts, CredentialVerifier* verifier);

  // Connects, retrying on fresh state up to `max_retries` times.
  Result<ConnectResult> run(int max_retries);

 private:
  // What is stored for the exchange account, as one attempt finds it.
  struct Target {
    std::optional<StoredPortfolio> portfolio;
    std::optional<AccountId> account_id;  // set by locate()
    bool owns = false;            // connect creates the account (or did, for the portfolio)
    bool linked = false;          // an account stored before, found by fingerprint
    std::string new_portfolio_id; // set when the account is new, under this tag
  };

  Connection(ConnectRequest request, AccountStore& accounts, CredentialVerifier* verifier, const ExchangeInfo& info,
             std::string name);

  // `optimistic`: assume the credentials are new to the store and read
  // nothing; a conflict on the index entry then sends connect down the
  // ordinary path.
  Attempt<ConnectResult> attempt(bool optimistic);
  Attempt<Target> locate(bool optimistic);
  // Stages what `target` lacks and commits it.
  Attempt<ConnectResult> write(const Target& target, const std::string& account_key,
                               const std::optional<StoredAccount>& existing, Timestamp stamp);
  Result<void> verify();

  ConnectRequest request_;
  AccountStore* accounts_;
  PortfolioStore portfolios_;
  CredentialVerifier* verifier_;
  const ExchangeInfo* info_;
  std::string name_;
  Fingerprint fingerprint_;
  std::string fingerprint_hex_;
  bool verified_ = false;
};

}  // namespace keyfolio::detail
