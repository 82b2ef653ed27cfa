// keyfolio/wire/coinstats.hpp: the JSON bodies of CoinStats' portfolio
// connection API, so that a host can serve it from a PortfolioConnector.
//
//   POST /portfolio/exchange   {"connectionId": "binance",
//                               "connectionFields": {"apiKey": "...", "apiSecret": "..."},
//                               "name": "My Binance Portfolio"}          (name optional)
//                           -> {"portfolioId": "...", "connectionId": "binance",
//                               "status": "connected" | "existing"}
//   GET /exchange/support   -> [{"connectionId", "name", "icon",
//                                "connectionFields": [{"name": "API Key", "key": "apiKey"}, ...]}]
//   GET /portfolios         -> [{"portfolioId", "name", "connectionId", "createdAt", "updatedAt"}]
//                              (a corrupt portfolio: {"portfolioId", "corrupt": true})
//   GET .../coins           -> {"currency": "USD", "result": [{"coinId": "BTC", "amount": 0.5,
//                               "price": 64000, "value": 32000}, ...]}   (price and value null
//                                                                          when unpriced)
//   GET .../value           -> {"currency", "totalValue", "unpricedCoins": [...], "asOf"}
//   GET .../snapshots       -> [{"timestamp", "holdings": [{"coinId", "amount"}]}]
//   errors                  -> {"statusCode": 400, "message": "..."}
// Times are ISO 8601 in UTC with milliseconds ("2026-11-21T10:40:00.000Z").
//
// Parsing is strict: unknown or duplicate members, wrong types and oversized
// bodies are refused with the place and the reason, never quoting a value;
// a refused body stores nothing. Statuses: 400 for bad input (malformed body,
// unknown exchange, invalid fields, refused by the verifier), 404 not found,
// 409 conflict, 503 unavailable, 500 otherwise.
//
// Functions taking a PortfolioConnector are as thread-safe as it is.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/portfolio.hpp>
#include <keyfolio/portfolio_connector.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::wire::coinstats {

struct Limits {
  std::size_t max_body_size = 256 * 1024;  // bytes
  std::size_t max_fields = 32;             // members of connectionFields
};

// Parses a connect body; `invalid_argument` for a body of another shape,
// `validation_failed` for an empty or repeated field.
KEYFOLIO_EXPORT Result<ConnectRequest> parse_connect(std::string_view body, const ExchangeCatalog& catalog,
                                                     const Limits& limits = {});

KEYFOLIO_EXPORT std::string connect_body(const ConnectResult& result);
KEYFOLIO_EXPORT std::string support_body(const std::vector<SupportedExchange>& exchanges);
KEYFOLIO_EXPORT std::string portfolios_body(const std::vector<Portfolio>& portfolios);
KEYFOLIO_EXPORT std::string coins_body(const std::vector<CoinValue>& coins, std::string_view currency);
KEYFOLIO_EXPORT std::string value_body(const PortfolioValue& value);
KEYFOLIO_EXPORT std::string snapshots_body(const std::vector<Snapshot>& snapshots);

KEYFOLIO_EXPORT int http_status(errc code) noexcept;
KEYFOLIO_EXPORT std::string error_body(const Error& error);

struct Response {
  int status = 200;
  std::string body;  // JSON
};

KEYFOLIO_EXPORT Response post_portfolio_exchange(PortfolioConnector& connector, std::string_view body,
                                                 const Limits& limits = {});
KEYFOLIO_EXPORT Response get_exchange_support(const PortfolioConnector& connector);
KEYFOLIO_EXPORT Response get_portfolios(const PortfolioConnector& connector);
// DELETE: 200 with {"portfolioId": "...", "deleted": true}; a corrupt
// portfolio is deleted too, keeping its account (PortfolioConnector::disconnect).
KEYFOLIO_EXPORT Response delete_portfolio(PortfolioConnector& connector, std::string_view portfolio_id);
KEYFOLIO_EXPORT Response get_coins(const PortfolioConnector& connector, std::string_view portfolio_id,
                                   PriceSource& prices);
KEYFOLIO_EXPORT Response get_value(const PortfolioConnector& connector, std::string_view portfolio_id,
                                   PriceSource& prices);
KEYFOLIO_EXPORT Response get_snapshots(const PortfolioConnector& connector, std::string_view portfolio_id,
                                       TimeRange range = {});

}  // namespace keyfolio::wire::coinstats
