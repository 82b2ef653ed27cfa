// keyfolio/testing/static_sources.hpp: BalanceSource and PriceSource that
// answer from tables set up in advance, so that downstream unit tests and
// demos need no network.
//
// Both are safe for concurrent use.
#pragma once

#include <keyfolio/portfolio_connector.hpp>

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace keyfolio::testing {

class StaticBalanceSource final : public BalanceSource {
 public:
  // The holdings returned for one account ("binance/main", canonical form) or,
  // when no account entry matches, for every account of an exchange
  // ("binance").
  StaticBalanceSource& set(std::string account_or_exchange, std::vector<Holding> holdings) {
    std::lock_guard lock(mutex_);
    table_[std::move(account_or_exchange)] = std::move(holdings);
    return *this;
  }

  // `not_found` for an account with no entry.
  Result<std::vector<Holding>> balances(const Account& account) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (auto it = table_.find(account.id.canonical()); it != table_.end()) return it->second;
    if (auto it = table_.find(account.id.exchange()); it != table_.end()) return it->second;
    return Error(errc::not_found, "no balances set up for account " + account.id.spelling());
  }

  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Holding>> table_;
  int calls_ = 0;
};

class StaticPriceSource final : public PriceSource {
 public:
  explicit StaticPriceSource(std::string quote_currency = "USD") : quote_(std::move(quote_currency)) {}

  StaticPriceSource& set(std::string asset, double price) {
    std::lock_guard lock(mutex_);
    prices_[std::move(asset)] = price;
    return *this;
  }

  std::string quote_currency() const override { return quote_; }

  // An empty optional for assets without a price.
  Result<std::optional<double>> price(std::string_view asset) override {
    std::lock_guard lock(mutex_);
    if (auto it = prices_.find(std::string(asset)); it != prices_.end()) return std::optional<double>(it->second);
    return std::optional<double>();
  }

 private:
  std::string quote_;
  std::mutex mutex_;
  std::map<std::string, double> prices_;
};

}  // namespace keyfolio::testing
