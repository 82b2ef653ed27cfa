#include "portfolios/connection.hpp"

#include "detail/text.hpp"

#include <algorithm>

namespace keyfolio::detail {

Result<std::string> checked_portfolio_name(std::string_view name) {
  if (name.size() > PortfolioConnector::max_name_length) {
    return Error(errc::validation_failed, "portfolio name is " + std::to_string(name.size()) + " bytes; at most " +
                                              std::to_string(PortfolioConnector::max_name_length) + " are allowed");
  }
  for (std::size_t pos = 0; pos < name.size();) {
    const std::size_t at = pos;
    auto cp = decode_utf8(name, pos);
    if (!cp) return Error(errc::validation_failed, "portfolio name is not valid UTF-8 at byte " + std::to_string(at));
    if (*cp < 0x20 || *cp == 0x7f || (*cp >= 0x80 && *cp < 0xa0)) {
      return Error(errc::validation_failed, "portfolio name has a control character at byte " + std::to_string(at));
    }
  }
  return std::string(name);
}

namespace {

Error unknown_exchange(const std::string& asked, const ExchangeCatalog& catalog) {
  // Echoed only when it looks like an exchange id: anything else may be a
  // value pasted into the wrong field.
  const bool id_like = !asked.empty() && asked.size() <= 20 && std::all_of(asked.begin(), asked.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
  std::string message = "unknown exchange ";
  if (id_like) {
    message += quote(asked);
  } else {
    message += '(';
    message += std::to_string(asked.size());
    message += " bytes, not an exchange id)";
  }
  if (auto near = catalog.suggest(asked, 1); !near.empty()) message += "; did you mean " + quote(near.front()) + "?";
  return Error(errc::invalid_exchange_id, message);
}

}  // namespace


Connection::Connection(ConnectRequest request, AccountStore& accounts, CredentialVerifier* verifier,
                       const ExchangeInfo& info, std::string name)
    : request_(std::move(request)),
      accounts_(&accounts),
      portfolios_(accounts.sealed(), accounts.catalog()),
      verifier_(verifier),
      info_(&info),
      name_(std::move(name)) {}

Result<Connection> Connection::prepare(ConnectRequest request, AccountStore& accounts, CredentialVerifier* verifier) {
  const ExchangeCatalog& catalog = accounts.catalog();
  const ExchangeInfo* info = catalog.find(request.connection_id);
  if (info == nullptr) return unknown_exchange(request.connection_id, catalog);
  if (auto valid = request.connection_fields.validate(*info); !valid) return valid.error();
  auto name = checked_portfolio_name(request.name);
  if (!name) return name.error();
  if (name->empty()) name = info->name.empty() ? info->id : info->name;
  const AccountId exchange_only = AccountId::from_parts(info->id, {}, catalog).value();
  Connection connection(std::move(request), accounts, verifier, *info, std::move(*name));
  connection.fingerprint_ = accounts.fingerprint(exchange_only, connection.request_.connection_fields);
  connection.fingerprint_hex_ = connection.fingerprint_.hex();
  if (connection.fingerprint_hex_.empty()) {
    return Error(errc::validation_failed, "credentials for " + info->name + " have no identifying field");
  }
  return connection;
}

Result<ConnectResult> Connection::run(int max_retries) {
  // Credentials that no account in the cache holds are most likely new to
  // the store, and then nothing needs reading: the first attempt writes
  // without looking up the index, and the index entry's must-not-exist put
  // catches the rare portfolio the cache could not show (connected elsewhere
  // a moment ago, or left by an account removed or re-keyed since). That
  // attempt does not count as a retry. Not with a verifier: it would be
  // asked about credentials the ordinary path may find connected already,
  // and next to its round trip the reads cost nothing.
  if (verifier_ == nullptr && !accounts_->find_by_fingerprint(fingerprint_)) {
    if (auto done = attempt(true)) return std::move(*done);
  }
  return retry_writes(max_retries, [&] { return "connecting to " + info_->name; }, [&] { return attempt(false); });
}

Result<void> Connection::verify() {
  if (verified_ || verifier_ == nullptr) return {};
  auto ok = verifier_->verify(*info_, request_.connection_fields);
  if (!ok) {
    // Capped: a verifier's message may carry an exchange's reply.
    std::string why = ok.error().message();
    if (why.size() > 200) why = why.substr(0, 200) + "...";
    return Error(errc::verification_failed, "the credentials for " + info_->name +
                                                " were refused by the verifier: " + why + "; nothing was stored");
  }
  verified_ = true;
  return {};
}

Attempt<Connection::Target> Connection::locate(bool optimistic) {
  Target target;
  if (!optimistic) {
    auto index = portfolios_.indexed(fingerprint_hex_);
    if (!index) return index.error();
    if (*index) {
      auto found = portfolios_.find((*index)->portfolio_id);
      if (!found) return found.error();
      if (!*found || (*found)->fingerprint != fingerprint_hex_) {
        // A disconnect may have committed between the two reads: look again.
        auto again = portfolios_.indexed(fingerprint_hex_);
        if (!again) return again.error();
        if (!*again || (*again)->version != (*index)->version) return try_again;
        return Error(errc::corrupt_data, "the portfolio index names a portfolio that is missing or differs");
      }
      target.portfolio = std::move(**found);
    }
  }
  // The account: the portfolio's own, one stored before with the same
  // identifying credential, or a new one.
  if (target.portfolio) {
    target.account_id = target.portfolio->portfolio.account;
    target.owns = target.portfolio->portfolio.owns_account;
  } else if (auto linked = optimistic ? std::nullopt : accounts_->find_by_fingerprint(fingerprint_)) {
    target.account_id = *linked;
    target.linked = true;
  } else {
    target.new_portfolio_id = new_portfolio_id();
    target.account_id = AccountId::from_parts(info_->id, target.new_portfolio_id, accounts_->catalog()).value();
    target.owns = true;
  }
  return target;
}

Attempt<ConnectResult> Connection::attempt(bool optimistic) {
  const Timestamp stamp = now();
  auto located = locate(optimistic);
  if (!located) return try_again;
  if (!*located) return located->error();
  Target& target = **located;
  const std::string account_key = target.account_id->canonical();
  // An account under a tag just drawn at random cannot exist yet: its
  // must-not-exist put below is the check.
  std::optional<StoredAccount> existing;
  if (target.new_portfolio_id.empty()) {
    auto current = accounts_->read_stored(account_key);
    if (!current) return current.error();
    existing = std::move(*current);
  }
  if (existing) {
    if (!existing->account) {
      return Error(errc::corrupt_data, "the stored record of account " + quote(target.account_id->spelling()) +
                                           " does not authenticate; nothing was stored");
    }
    const Account& account = *existing->account;
    if (accounts_->fingerprint(account.id, account.credentials).view() != fingerprint_.view()) {
      if (target.linked) {
        // The cache was behind: that account holds another key now.
        (void)accounts_->reload(account_key);
        return try_again;
      }
      return Error(errc::conflict, "the account " + quote(target.account_id->spelling()) + " of portfolio " +
                                       quote(target.portfolio->portfolio.id) +
                                       " now holds another API key; disconnect the portfolio, or connect with "
                                       "the account's current key; nothing was stored");
    }
  } else if (target.linked) {
    // Removed since the cache last heard: do not bring it back.
    (void)accounts_->reload(account_key);
    return try_again;
  }
  return write(target, account_key, existing, stamp);
}

Attempt<ConnectResult> Connection::write(const Target& target, const std::string& account_key,
                                         const std::optional<StoredAccount>& existing, Timestamp stamp) {
  const Account* stored = existing ? &*existing->account : nullptr;
  auto staged = accounts_->write();
  bool credentials_updated = false;
  if (stored == nullptr || !(stored->credentials == request_.connection_fields)) {
    if (auto ok = verify(); !ok) return ok.error();
    const std::uint64_t version = stored != nullptr ? stored->version : must_not_exist;
    const Timestamp created = stored != nullptr ? stored->created : stamp;
    auto account = std::make_shared<const Account>(Account{stored != nullptr ? stored->id : *target.account_id,
                                                           request_.connection_fields, version + 1, created, stamp});
    staged.put(account_key, std::move(account), fingerprint_, version);
    credentials_updated = stored != nullptr || target.portfolio.has_value();
  }
  const bool account_written = !staged.empty();

  ConnectResult result{target.portfolio                     ? target.portfolio->portfolio.id
                       : target.new_portfolio_id.empty() ? new_portfolio_id()
                                                         : target.new_portfolio_id,
                       info_->id,
                       target.portfolio ? ConnectResult::Status::existing : ConnectResult::Status::connected,
                       *target.account_id, credentials_updated};
  if (!target.portfolio) {
    if (auto ok = verify(); !ok) return ok.error();
    // A linked account left as it is must still be there when the
    // portfolio lands.
    if (!account_written && stored != nullptr) staged.expect(account_key, stored->version);
    StoredPortfolio fresh{Portfolio{result.portfolio_id, name_, *target.account_id, target.owns, stamp, stamp, 1},
                          fingerprint_hex_};
    portfolios_.put(staged.batch(), fresh, must_not_exist);
    portfolios_.put_index(staged.batch(), fingerprint_hex_, result.portfolio_id);
  } else if (account_written) {
    // Touch the portfolio: its account changed, and the compare-and-set on
    // it keeps a concurrent disconnect from being undone.
    StoredPortfolio touched = *target.portfolio;
    touched.portfolio.updated = stamp;
    touched.portfolio.version = target.portfolio->portfolio.version + 1;
    portfolios_.put(staged.batch(), touched, target.portfolio->portfolio.version);
  }
  if (staged.empty()) return result;  // already connected with these very credentials
  if (auto written = accounts_->commit(staged); !written) return again_on_conflict<ConnectResult>(written.error());
  return result;
}

}  // namespace keyfolio::detail
