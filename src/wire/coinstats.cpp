#include <keyfolio/wire/coinstats.hpp>

#include "detail/text.hpp"
#include "wire/json_input.hpp"

#include <boost/json.hpp>

#include <ctime>

namespace keyfolio::wire::coinstats {
namespace {

namespace json = boost::json;

Error bad_shape(const std::string& message) { return Error(errc::invalid_argument, "the request body " + message); }

std::string iso8601(Timestamp t) {
  const auto ms = t.time_since_epoch().count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
  const int millis = static_cast<int>(((ms % 1000) + 1000) % 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(n), text, millis);
  return out;
}

json::value optional_number(const std::optional<double>& v) { return v ? json::value(*v) : json::value(nullptr); }

Response error_response(const Error& error) { return {http_status(error.code()), error_body(error)}; }

}  // namespace

Result<ConnectRequest> parse_connect(std::string_view body, const ExchangeCatalog& catalog, const Limits& limits) {
  auto document = detail::parse_json(body, "the request body", {limits.max_body_size, 4}, detail::wiping_storage());
  if (!document) return document.error();
  const json::object* object = document->if_object();
  if (object == nullptr) {
    return bad_shape("must be an object with \"connectionId\" and \"connectionFields\", not " +
                     std::string(detail::kind_of(*document)));
  }
  for (const auto& member : *object) {
    if (member.key() != "connectionId" && member.key() != "connectionFields" && member.key() != "name") {
      return bad_shape("has the unknown member " + detail::shown_name(member.key()) +
                       "; expected \"connectionId\", \"connectionFields\" and an optional \"name\"");
    }
  }
  ConnectRequest request;
  const json::value* connection = object->if_contains("connectionId");
  if (connection == nullptr) return Error(errc::invalid_exchange_id, "the request body has no \"connectionId\"");
  if (!connection->is_string()) {
    return bad_shape("\"connectionId\" must be a string, not " + std::string(detail::kind_of(*connection)));
  }
  request.connection_id = std::string(connection->get_string());
  if (const json::value* name = object->if_contains("name"); name != nullptr && !name->is_null()) {
    if (!name->is_string()) return bad_shape("\"name\" must be a string, not " + std::string(detail::kind_of(*name)));
    request.name = std::string(name->get_string());
  }
  const json::value* fields = object->if_contains("connectionFields");
  if (fields == nullptr) return bad_shape("has no \"connectionFields\"");
  const json::object* map = fields->if_object();
  if (map == nullptr) {
    return bad_shape("\"connectionFields\" must be an object of field name to value, not " +
                     std::string(detail::kind_of(*fields)));
  }
  if (map->size() > limits.max_fields) {
    return bad_shape("has " + std::to_string(map->size()) + " connection fields; at most " +
                     std::to_string(limits.max_fields) + " are accepted");
  }
  for (const auto& [key, value] : *map) {
    const std::string_view name(key.data(), key.size());
    if (!value.is_string()) {
      return bad_shape("connection field " + detail::shown_name(name) + " must be a string, not " +
                       std::string(detail::kind_of(value)));
    }
    const json::string& text = value.get_string();
    if (text.size() > Credentials::max_value_size) {
      return Error(errc::validation_failed, "connection field " + detail::shown_name(name) + " is " +
                                                std::to_string(text.size()) + " bytes; at most " +
                                                std::to_string(Credentials::max_value_size) + " are accepted");
    }
    if (auto added =
            request.connection_fields.add(name, SecretString(std::string_view(text.data(), text.size())), catalog);
        !added) {
      return added.error();
    }
  }
  return request;
}

std::string connect_body(const ConnectResult& result) {
  return json::serialize(
      json::object{{"portfolioId", result.portfolio_id},
                   {"connectionId", result.connection_id},
                   {"status", result.status == ConnectResult::Status::connected ? "connected" : "existing"}});
}

std::string support_body(const std::vector<SupportedExchange>& exchanges) {
  json::array out;
  out.reserve(exchanges.size());
  for (const auto& e : exchanges) {
    json::array fields;
    for (const auto& f : e.fields) fields.push_back(json::object{{"name", f.name}, {"key", f.key}});
    out.push_back(json::object{
        {"connectionId", e.connection_id}, {"name", e.name}, {"icon", e.icon}, {"connectionFields", std::move(fields)}});
  }
  return json::serialize(out);
}

std::string portfolios_body(const std::vector<Portfolio>& portfolios) {
  json::array out;
  out.reserve(portfolios.size());
  for (const auto& p : portfolios) {
    if (p.corrupt) {
      out.push_back(json::object{{"portfolioId", p.id}, {"corrupt", true}});
      continue;
    }
    out.push_back(json::object{{"portfolioId", p.id},
                               {"name", p.name},
                               {"connectionId", p.account.exchange()},
                               {"createdAt", iso8601(p.created)},
                               {"updatedAt", iso8601(p.updated)}});
  }
  return json::serialize(out);
}

std::string coins_body(const std::vector<CoinValue>& coins, std::string_view currency) {
  json::array result;
  result.reserve(coins.size());
  for (const auto& c : coins) {
    result.push_back(json::object{
        {"coinId", c.asset}, {"amount", c.amount}, {"price", optional_number(c.price)}, {"value", optional_number(c.value)}});
  }
  return json::serialize(json::object{{"currency", currency}, {"result", std::move(result)}});
}

std::string value_body(const PortfolioValue& value) {
  json::array unpriced;
  for (const auto& a : value.unpriced) unpriced.emplace_back(a);
  return json::serialize(json::object{{"currency", value.quote_currency},
                                      {"totalValue", value.total},
                                      {"unpricedCoins", std::move(unpriced)},
                                      {"asOf", iso8601(value.as_of)}});
}

std::string snapshots_body(const std::vector<Snapshot>& snapshots) {
  json::array out;
  out.reserve(snapshots.size());
  for (const auto& s : snapshots) {
    json::array holdings;
    for (const auto& h : s.holdings) holdings.push_back(json::object{{"coinId", h.asset}, {"amount", h.amount}});
    out.push_back(json::object{{"timestamp", iso8601(s.taken)}, {"holdings", std::move(holdings)}});
  }
  return json::serialize(out);
}

int http_status(errc code) noexcept {
  switch (code) {
    case errc::invalid_exchange_id:
    case errc::validation_failed:
    case errc::invalid_argument:
    case errc::verification_failed: return 400;
    case errc::not_found: return 404;
    case errc::conflict: return 409;
    case errc::unavailable: return 503;
    default: return 500;
  }
}

std::string error_body(const Error& error) {
  return json::serialize(json::object{{"statusCode", http_status(error.code())}, {"message", error.message()}});
}

Response post_portfolio_exchange(PortfolioConnector& connector, std::string_view body, const Limits& limits) {
  auto request = parse_connect(body, connector.accounts().catalog(), limits);
  if (!request) return error_response(request.error());
  auto result = connector.connect(std::move(*request));
  if (!result) return error_response(result.error());
  return {200, connect_body(*result)};
}

Response get_exchange_support(const PortfolioConnector& connector) {
  return {200, support_body(connector.supported_exchanges())};
}

Response get_portfolios(const PortfolioConnector& connector) {
  auto list = connector.list();
  if (!list) return error_response(list.error());
  return {200, portfolios_body(*list)};
}

Response delete_portfolio(PortfolioConnector& connector, std::string_view portfolio_id) {
  // Not read first: a corrupt portfolio, which get() refuses, is deleted too.
  // Only an id that names a portfolio gets past disconnect, so echoing it
  // echoes no pasted text.
  if (auto removed = connector.disconnect(portfolio_id); !removed) return error_response(removed.error());
  return {200, json::serialize(json::object{{"portfolioId", portfolio_id}, {"deleted", true}})};
}

Response get_coins(const PortfolioConnector& connector, std::string_view portfolio_id, PriceSource& prices) {
  auto coins = connector.coins(portfolio_id, prices);
  if (!coins) return error_response(coins.error());
  return {200, coins_body(*coins, prices.quote_currency())};
}

Response get_value(const PortfolioConnector& connector, std::string_view portfolio_id, PriceSource& prices) {
  auto value = connector.value(portfolio_id, prices);
  if (!value) return error_response(value.error());
  return {200, value_body(*value)};
}

Response get_snapshots(const PortfolioConnector& connector, std::string_view portfolio_id, TimeRange range) {
  auto snapshots = connector.snapshots(portfolio_id, range);
  if (!snapshots) return error_response(snapshots.error());
  return {200, snapshots_body(*snapshots)};
}

}  // namespace keyfolio::wire::coinstats
