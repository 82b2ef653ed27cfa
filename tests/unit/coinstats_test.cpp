#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/portfolio_connector.hpp>
#include <keyfolio/testing/static_sources.hpp>
#include <keyfolio/wire/coinstats.hpp>

#include "catch.hpp"
#include "damage.hpp"
#include "stored.hpp"

#include <boost/json.hpp>

namespace coinstats = keyfolio::wire::coinstats;
namespace json = boost::json;
using keyfolio::AccountManager;
using keyfolio::KeySource;
using keyfolio::PortfolioConnector;
using keyfolio::SecretString;
using keyfolio::errc;

namespace {

struct Fixture {
  std::shared_ptr<keyfolio::StorageBackend> backend = keyfolio::make_memory_backend();
  AccountManager accounts =
      AccountManager::open(backend, KeySource::raw_key(SecretString(std::string(32, 'k')))).value();
  PortfolioConnector connector{accounts};

  std::vector<keyfolio::Record> stored() const { return keyfolio::test::everything(*backend); }
};

using keyfolio::test::same;

using keyfolio::test::mentions;

const json::value& member(const json::value& v, std::string_view name) { return v.as_object().at(name); }

std::string text_of(const json::value& v) { return std::string(v.as_string()); }

constexpr std::string_view connect_binance = R"({"connectionId": "binance",
    "connectionFields": {"apiKey": "CANARY-key-1", "apiSecret": "CANARY-secret-1"},
    "name": "My Binance Portfolio"})";

}  // namespace

TEST_CASE("a CoinStats connect body connects a portfolio and answers with its id and status") {
  Fixture f;
  auto response = coinstats::post_portfolio_exchange(f.connector, connect_binance);
  REQUIRE(response.status == 200);
  CHECK_FALSE(mentions(response.body, "CANARY"));
  const auto reply = json::parse(response.body);
  const std::string id = text_of(member(reply, "portfolioId"));
  CHECK(id.size() == 32);
  CHECK(text_of(member(reply, "connectionId")) == "binance");
  CHECK(text_of(member(reply, "status")) == "connected");
  CHECK(f.connector.get(id).value().name == "My Binance Portfolio");

  auto again = json::parse(coinstats::post_portfolio_exchange(f.connector, connect_binance).body);
  CHECK(text_of(member(again, "status")) == "existing");
  CHECK(text_of(member(again, "portfolioId")) == id);

  const auto list = json::parse(coinstats::get_portfolios(f.connector).body).as_array();
  REQUIRE(list.size() == 1);
  CHECK(text_of(member(list[0], "portfolioId")) == id);
  CHECK(text_of(member(list[0], "name")) == "My Binance Portfolio");
  CHECK(text_of(member(list[0], "connectionId")) == "binance");
  const std::string created = text_of(member(list[0], "createdAt"));
  CHECK(created.size() == 24);
  CHECK(created.back() == 'Z');
  CHECK(created[10] == 'T');

  auto deleted = coinstats::delete_portfolio(f.connector, id);
  CHECK(deleted.status == 200);
  CHECK(member(json::parse(deleted.body), "deleted") == true);
  CHECK(coinstats::delete_portfolio(f.connector, id).status == 404);
  CHECK(json::parse(coinstats::get_portfolios(f.connector).body).as_array().empty());
}

TEST_CASE("GET portfolios marks a portfolio whose stored record does not authenticate, and DELETE removes it") {
  Fixture f;
  const auto connected = json::parse(coinstats::post_portfolio_exchange(f.connector, connect_binance).body);
  const std::string damaged = text_of(member(connected, "portfolioId"));
  const auto kraken = coinstats::post_portfolio_exchange(f.connector, R"({"connectionId": "kraken",
      "connectionFields": {"apiKey": "CANARY-key-2", "apiSecret": "CANARY-secret-2"}, "name": "Kraken"})");
  REQUIRE(kraken.status == 200);
  const std::string healthy = text_of(member(json::parse(kraken.body), "portfolioId"));
  keyfolio::test::damage(*f.backend, "portfolios", damaged);

  auto listed = coinstats::get_portfolios(f.connector);
  REQUIRE(listed.status == 200);
  const auto list = json::parse(listed.body).as_array();
  REQUIRE(list.size() == 2);
  CHECK(text_of(member(list[0], "portfolioId")) == healthy);
  CHECK(text_of(member(list[0], "name")) == "Kraken");
  CHECK_FALSE(list[0].as_object().contains("corrupt"));
  CHECK(list[1].as_object() == json::object{{"portfolioId", damaged}, {"corrupt", true}});

  auto deleted = coinstats::delete_portfolio(f.connector, damaged);
  CHECK(deleted.status == 200);
  CHECK(json::parse(deleted.body) == json::object{{"portfolioId", damaged}, {"deleted", true}});
  CHECK(coinstats::delete_portfolio(f.connector, damaged).status == 404);
  const auto after = json::parse(coinstats::get_portfolios(f.connector).body).as_array();
  REQUIRE(after.size() == 1);
  CHECK(text_of(member(after[0], "portfolioId")) == healthy);
}

TEST_CASE("every malformed CoinStats connect body gets a clear error and the CoinStats status, storing nothing") {
  Fixture f;
  REQUIRE(coinstats::post_portfolio_exchange(f.connector, connect_binance).status == 200);
  const auto before = f.stored();
  const std::string canary = "CANARY-cs-91ab";
  struct Case {
    std::string name;
    std::string body;
    int status;
    std::string says;
  };
  const std::vector<Case> cases{
      {"malformed JSON", R"({"connectionId": "binance", "connectionFields": {"apiKey": ")" + canary, 400,
       "not valid JSON"},
      {"not an object", "[]", 400, "must be an object"},
      {"an oversized body", std::string(300 * 1024, ' '), 400, "at most"},
      {"no connectionId", R"({"connectionFields": {"apiKey": ")" + canary + R"("}})", 400, "no \"connectionId\""},
      {"a numeric connectionId", R"({"connectionId": 1, "connectionFields": {}})", 400, "must be a string"},
      {"an unknown exchange", R"({"connectionId": "binanse", "connectionFields": {"apiKey": "k", "secret": "s"}})",
       400, "did you mean"},
      {"no connectionFields", R"({"connectionId": "binance"})", 400, "no \"connectionFields\""},
      {"connectionFields as an array", R"({"connectionId": "binance", "connectionFields": [")" + canary + R"("]})",
       400, "must be an object"},
      {"a numeric field value", R"({"connectionId": "binance", "connectionFields": {"apiKey": 5}})", 400,
       "must be a string, not a number"},
      {"an empty field value", R"({"connectionId": "binance", "connectionFields": {"apiKey": "", "secret": "s"}})",
       400, "empty"},
      {"a repeated member", R"({"connectionId": "binance", "connectionId": "okx", "connectionFields": {}})", 400,
       "twice"},
      {"a repeated field", R"({"connectionId": "binance", "connectionFields": {"apiKey": "a", "apiKey": "b"}})", 400,
       "twice"},
      {"one field under two spellings",
       R"({"connectionId": "binance", "connectionFields": {"apiKey": "k", "secret": ")" + canary +
           R"(", "apiSecret": "x"}})",
       400, "given twice"},
      {"a missing required field", R"({"connectionId": "okx", "connectionFields": {"apiKey": "k", "secret": ")" +
                                        canary + R"("}})",
       400, "password"},
      {"an unknown member", R"({"connectionId": "binance", "connectionFields": {}, "nmae": "x"})", 400,
       "unknown member \"nmae\""},
      {"a short passphrase pasted as a member name",
       R"({"connectionId": "binance", "connectionFields": {}, "hunter2!x9Q": "x"})", 400,
       "unknown member a field name of 11 bytes"},
      {"a random key pasted as a connection field name",
       R"({"connectionId": "binance", "connectionFields": {"apiKey": "k", "secret": "s", "q7GzR2mKp9XwLb4T": 1}})",
       400, "a field name of 16 bytes"},
      {"an unknown identifier-like member", R"({"connectionId": "binance", "connectionFields": {}, "apikey2": "x"})",
       400, "unknown member \"apikey2\""},
      {"a numeric name", R"({"connectionId": "binance", "connectionFields": {"apiKey": "k", "secret": "s"}, "name": 3})",
       400, "\"name\" must be a string"},
      {"a name with a control character",
       R"({"connectionId": "binance", "connectionFields": {"apiKey": "k2", "secret": "s"}, "name": "a\u0001b"})", 400,
       "control character"},
      {"a short secret pasted as connectionId",
       R"({"connectionId": ")" + canary + R"(", "connectionFields": {"apiKey": "k", "secret": "s"}})", 400,
       "not an exchange id"},
      {"a secret pasted as connectionId",
       R"({"connectionId": ")" + canary + canary + R"(", "connectionFields": {"apiKey": "k", "secret": "s"}})", 400,
       "bytes"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto response = coinstats::post_portfolio_exchange(f.connector, c.body);
    CHECK(response.status == c.status);
    const auto reply = json::parse(response.body);
    CHECK(member(reply, "statusCode") == c.status);
    CHECK(mentions(text_of(member(reply, "message")), c.says));
    CHECK_FALSE(mentions(response.body, canary));
    CHECK_FALSE(mentions(response.body, "hunter2"));
    CHECK_FALSE(mentions(response.body, "q7GzR2mKp9XwLb4T"));
    CHECK(same(f.stored(), before));
  }
}

TEST_CASE("the CoinStats exchange/support list names each exchange's connection fields") {
  Fixture f;
  auto response = coinstats::get_exchange_support(f.connector);
  REQUIRE(response.status == 200);
  const auto list = json::parse(response.body).as_array();
  CHECK(list.size() == f.accounts.catalog().exchanges().size());
  bool saw_okx = false;
  for (const auto& entry : list) {
    if (member(entry, "connectionId") != "okx") continue;
    saw_okx = true;
    CHECK(member(entry, "name") == "OKX");
    CHECK(member(entry, "icon").is_string());
    CHECK(member(entry, "connectionFields") ==
          json::parse(R"([{"name": "API Key", "key": "apiKey"}, {"name": "API Secret", "key": "secret"},
                          {"name": "Passphrase", "key": "password"}])"));
  }
  CHECK(saw_okx);
}

TEST_CASE("CoinStats coins, value and snapshots bodies report holdings, prices and unpriced coins") {
  Fixture f;
  const std::string id =
      text_of(member(json::parse(coinstats::post_portfolio_exchange(f.connector, connect_binance).body), "portfolioId"));
  keyfolio::testing::StaticBalanceSource balances;
  balances.set("binance", {{"BTC", 0.25}, {"NOPRICE", 7}});
  keyfolio::testing::StaticPriceSource prices("EUR");
  prices.set("BTC", 40000);
  CHECK(coinstats::get_coins(f.connector, id, prices).status == 404);  // not synced yet
  f.connector.sync(id, balances).value();

  auto coins = coinstats::get_coins(f.connector, id, prices);
  REQUIRE(coins.status == 200);
  CHECK(json::parse(coins.body) == json::parse(R"({"currency": "EUR", "result": [
      {"coinId": "BTC", "amount": 0.25, "price": 40000.0, "value": 10000.0},
      {"coinId": "NOPRICE", "amount": 7.0, "price": null, "value": null}]})"));

  auto value = json::parse(coinstats::get_value(f.connector, id, prices).body);
  CHECK(member(value, "currency") == "EUR");
  CHECK(member(value, "totalValue") == 10000.0);
  CHECK(member(value, "unpricedCoins") == json::array{"NOPRICE"});

  const auto snapshots = json::parse(coinstats::get_snapshots(f.connector, id).body).as_array();
  REQUIRE(snapshots.size() == 1);
  CHECK(member(snapshots[0], "holdings").as_array().size() == 2);

  CHECK(coinstats::get_value(f.connector, std::string(32, '0'), prices).status == 404);
}

TEST_CASE("keyfolio errors map onto the statuses CoinStats uses") {
  CHECK(coinstats::http_status(errc::invalid_exchange_id) == 400);
  CHECK(coinstats::http_status(errc::validation_failed) == 400);
  CHECK(coinstats::http_status(errc::verification_failed) == 400);
  CHECK(coinstats::http_status(errc::not_found) == 404);
  CHECK(coinstats::http_status(errc::conflict) == 409);
  CHECK(coinstats::http_status(errc::storage_error) == 500);
  CHECK(json::parse(coinstats::error_body(keyfolio::Error(errc::conflict, "busy"))) ==
        json::parse(R"({"statusCode": 409, "message": "busy"})"));
}
