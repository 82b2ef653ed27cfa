#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/wire/coinapi_ems.hpp>

#include "catch.hpp"
#include "keys.hpp"
#include "stored.hpp"

#include <boost/json.hpp>

#include <string>
#include <vector>

namespace ems = keyfolio::wire::coinapi_ems;
namespace json = boost::json;
using keyfolio::AccountManager;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::errc;
using keyfolio::test::reveals;

namespace {

using keyfolio::test::raw;

struct Store {
  std::shared_ptr<keyfolio::StorageBackend> backend = keyfolio::make_memory_backend();
  AccountManager manager = AccountManager::open(backend, raw('k')).value();

  std::vector<keyfolio::Record> records() const { return backend->scan("accounts").value(); }
};

using keyfolio::test::same;

using keyfolio::test::mentions;

std::string body_of(std::string_view exchange_id, std::string_view key, std::string_view secret) {
  return json::serialize(json::object{
      {"exchange_id", exchange_id},
      {"parameters", json::array{json::object{{"key", "PublicApiKey"}, {"value", key}},
                                 json::object{{"key", "PrivateApiKey"}, {"value", secret}}}}});
}

const json::value& member(const json::value& v, std::string_view name) { return v.as_object().at(name); }

}  // namespace

TEST_CASE("an EMS add-or-update body creates the account under canonical field names") {
  Store s;
  auto response = ems::post_accounts(s.manager, body_of("BITSTAMP/2574", "pub-1", "priv-1"));
  REQUIRE(response.status == 200);
  const auto reply = json::parse(response.body);
  REQUIRE(reply.as_array().size() == 1);
  CHECK(member(reply.as_array()[0], "exchange_id") == "BITSTAMP/2574");
  CHECK(member(reply.as_array()[0], "status") == "created");
  CHECK(member(reply.as_array()[0], "version") == 1);

  auto account = s.manager.get("bitstamp/2574").value();
  CHECK(account->id.spelling() == "BITSTAMP/2574");
  REQUIRE(account->credentials.find("apiKey") != nullptr);
  REQUIRE(account->credentials.find("secret") != nullptr);
  CHECK(reveals(*account->credentials.find("apiKey"), "pub-1"));
  CHECK(reveals(*account->credentials.find("secret"), "priv-1"));
}

TEST_CASE("posting the same EMS account again updates it and bumps its version") {
  Store s;
  REQUIRE(ems::post_accounts(s.manager, body_of("KRAKEN/JOHN", "pub-1", "priv-1")).status == 200);
  auto response = ems::post_accounts(s.manager, body_of("kraken:JOHN", "pub-1", "priv-2"));
  REQUIRE(response.status == 200);
  const auto reply = json::parse(response.body);
  CHECK(member(reply.as_array()[0], "status") == "updated");
  CHECK(member(reply.as_array()[0], "version") == 2);
  CHECK(s.manager.size() == 1);
  CHECK(reveals(*s.manager.get("KRAKEN/JOHN").value()->credentials.find("secret"), "priv-2"));
}

TEST_CASE("an EMS body may carry an array of accounts, stored in one atomic write") {
  Store s;
  const std::string body = "[" + body_of("BINANCE/a", "k1", "s1") + "," + body_of("BINANCE/b", "k2", "s2") + "]";
  auto stored = ems::add_or_update(s.manager, body).value();
  REQUIRE(stored.size() == 2);
  CHECK(stored[0].created);
  CHECK(stored[1].created);
  CHECK(s.manager.size() == 2);
  CHECK(reveals(*s.manager.get("BINANCE/b").value()->credentials.find("apiKey"), "k2"));
}

TEST_CASE("EMS parameter names map through every catalog alias, including PassPhrase") {
  Store s;
  const std::string body = R"({"exchange_id": "OKX/desk", "parameters": [
      {"key": "PublicApiKey", "value": "k"}, {"key": "apiSecret", "value": "s"},
      {"key": "PassPhrase", "value": "p"}]})";
  REQUIRE(ems::add_or_update(s.manager, body));
  auto account = s.manager.get("okx/desk").value();
  CHECK(account->credentials.field_names() == std::vector<std::string>{"apiKey", "password", "secret"});
}

TEST_CASE("every malformed EMS body gets a clear error, the EMS status, and stores nothing") {
  Store s;
  REQUIRE(ems::add_or_update(s.manager, body_of("BINANCE/kept", "kept-key", "kept-secret")));
  const auto before = s.records();
  const std::string canary = "CANARY-ems-7f3a9c";

  struct Case {
    std::string name;
    std::string body;
    errc code;
    int status;
    std::string says;
  };
  const std::string big(ems::Limits{}.max_body_size + 1, ' ');
  std::string deep = std::string(40, '[') + std::string(40, ']');
  std::string many = R"({"exchange_id": "BINANCE/x", "parameters": [)";
  for (int i = 0; i < 40; ++i) many += std::string(i ? "," : "") + R"({"key": "k)" + std::to_string(i) + R"(", "value": "v"})";
  many += "]}";
  const std::vector<Case> cases{
      {"malformed JSON", R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "apiKey", "value": ")" + canary,
       errc::invalid_argument, 400, "not valid JSON"},
      {"a JSON syntax error placed by line and column", "{\n  \"exchange_id\" \"BINANCE\"\n}", errc::invalid_argument,
       400, "line 2, column"},
      {"trailing data", body_of("BINANCE/x", "k", canary) + " {}", errc::invalid_argument, 400, "after the end"},
      {"an empty body", "  ", errc::invalid_argument, 400, "empty"},
      {"an oversized body", big, errc::invalid_argument, 400, "at most"},
      {"nesting too deep", deep, errc::invalid_argument, 400, "nested deeper"},
      {"not an object", "42", errc::invalid_argument, 400, "must be an object"},
      {"an empty array", "[]", errc::invalid_argument, 400, "no account"},
      {"a missing exchange_id", R"({"parameters": [{"key": "apiKey", "value": ")" + canary + R"("}]})",
       errc::invalid_exchange_id, 400, "no \"exchange_id\""},
      {"a numeric exchange_id", R"({"exchange_id": 7, "parameters": []})", errc::invalid_argument, 400,
       "must be a string, not a number"},
      {"an unknown exchange", body_of("NOSUCHX/a", "k", canary), errc::invalid_exchange_id, 400, "NOSUCHX"},
      {"a malformed exchange id", body_of("BINANCE/", "k", canary), errc::invalid_exchange_id, 400, "tag"},
      {"a secret pasted as exchange_id", body_of(canary + "0123456789abcdef", "k", "s"), errc::invalid_exchange_id,
       400, "bytes"},
      {"a secret pasted as a filter-like exchange_id with a space", body_of("BINANCE/" + canary + " x", "k", "s"),
       errc::invalid_exchange_id, 400, "whitespace"},
      {"the member exchange_id twice",
       R"({"exchange_id": "BINANCE/x", "exchange_id": "BINANCE/y", "parameters": []})", errc::invalid_argument, 400,
       "\"exchange_id\" twice"},
      {"an unknown member", R"({"exchange_id": "BINANCE/x", "params": []})", errc::invalid_argument, 400,
       "unknown member \"params\""},
      {"missing parameters", R"({"exchange_id": "BINANCE/x"})", errc::invalid_argument, 400, "no \"parameters\""},
      {"parameters as an object", R"({"exchange_id": "BINANCE/x", "parameters": {"apiKey": "k"}})",
       errc::invalid_argument, 400, "must be an array, not an object"},
      {"a parameter that is a string", R"({"exchange_id": "BINANCE/x", "parameters": ["apiKey"]})",
       errc::invalid_argument, 400, "parameter 1"},
      {"a numeric parameter value",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": 12345}]})",
       errc::invalid_argument, 400, "\"value\" must be a string, not a number"},
      {"a numeric parameter key", R"({"exchange_id": "BINANCE/x", "parameters": [{"key": 1, "value": "v"}]})",
       errc::invalid_argument, 400, "\"key\" must be a string"},
      {"a parameter without a value", R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey"}]})",
       errc::validation_failed, 405, "no \"value\""},
      {"a redacted (null) value", R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": null}]})",
       errc::validation_failed, 405, "redacted"},
      {"an unknown parameter member",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "vaule": "v"}]})",
       errc::invalid_argument, 400, "unknown member \"vaule\""},
      {"duplicate parameter keys",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": ")" + canary +
           R"("}, {"key": "PublicApiKey", "value": "other"}, {"key": "PrivateApiKey", "value": "s"}]})",
       errc::validation_failed, 405, "parameter 2"},
      {"the same field under two spellings",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PrivateApiKey", "value": ")" + canary +
           R"("}, {"key": "secret", "value": "other"}, {"key": "apiKey", "value": "k"}]})",
       errc::validation_failed, 405, "parameter 2"},
      {"an empty value",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": ""}, {"key": "PrivateApiKey", "value": "s"}]})",
       errc::validation_failed, 405, "empty"},
      {"a missing required parameter",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": ")" + canary + R"("}]})",
       errc::validation_failed, 405, "secret"},
      {"a parameter the exchange does not take",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": "k"}, {"key": "PrivateApiKey", "value": "s"}, {"key": "PassPhrase", "value": ")" +
           canary + R"("}]})",
       errc::validation_failed, 405, "password"},
      {"a secret pasted as a parameter key",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": ")" + canary + canary + R"(", "value": "v"}]})",
       errc::validation_failed, 405, "bytes"},
      {"a short passphrase pasted as a parameter key",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "hunter2!x9Q", "value": "v"}]})",
       errc::validation_failed, 405, "a field name of 11 bytes"},
      {"a random key pasted as a parameter key",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "q7GzR2mKp9XwLb4T", "value": "v"}]})",
       errc::validation_failed, 405, "a field name of 16 bytes"},
      {"a short passphrase pasted as a member name", R"({"exchange_id": "BINANCE/x", "hunter2!x9Q": []})",
       errc::invalid_argument, 400, "unknown member a field name of 11 bytes"},
      {"an unknown identifier-like parameter key",
       R"({"exchange_id": "BINANCE/x", "parameters": [{"key": "PublicApiKey", "value": "k"}, {"key": "PrivateApiKey", "value": "s"}, {"key": "apikey2", "value": "v"}]})",
       errc::validation_failed, 405, "\"apikey2\""},
      {"too many parameters", many, errc::invalid_argument, 400, "at most 32"},
      {"one bad account in an array",
       "[" + body_of("BINANCE/ok", "k", "s") + "," + body_of("NOSUCHX/a", "k", canary) + "]",
       errc::invalid_exchange_id, 400, "account 2"},
      {"the same account twice in an array",
       "[" + body_of("BINANCE/twice", "k", canary) + "," + body_of("binance:twice", "k", "s") + "]",
       errc::validation_failed, 405, "given twice"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto parsed = ems::add_or_update(s.manager, c.body);
    REQUIRE_FALSE(parsed);
    const keyfolio::Error error = parsed.error();
    CHECK(error.code() == c.code);
    CHECK(mentions(error.message(), c.says));
    CHECK_FALSE(mentions(error.message(), canary));
    CHECK_FALSE(mentions(error.message(), "hunter2"));
    CHECK_FALSE(mentions(error.message(), "q7GzR2mKp9XwLb4T"));

    auto response = ems::post_accounts(s.manager, c.body);
    CHECK(response.status == c.status);
    CHECK(ems::http_status(c.code) == c.status);
    const auto reply = json::parse(response.body);
    CHECK(member(reply, "status") == c.status);
    CHECK(member(reply, "error").as_string() == json::string_view(keyfolio::to_string(c.code)));
    CHECK(member(reply, "message").as_string() == json::string_view(error.message()));
    CHECK_FALSE(mentions(response.body, canary));
    CHECK(same(s.records(), before));
  }
  CHECK(s.manager.size() == 1);
}

TEST_CASE("the EMS accounts listing redacts secret values and shows non-secret ones") {
  Store s;
  REQUIRE(ems::add_or_update(s.manager, body_of("BINANCE/main", "CANARY-pub-31f", "CANARY-priv-8e2")));
  REQUIRE(ems::add_or_update(
      s.manager,
      R"({"exchange_id": "HYPERLIQUID", "parameters": [{"key": "walletAddress", "value": "0xabc123"},
          {"key": "privateKey", "value": "CANARY-pk-55d"}]})"));
  const std::string body = ems::accounts_body(s.manager);
  CHECK_FALSE(mentions(body, "CANARY"));
  for (const auto& record : s.records()) CHECK_FALSE(mentions(record.value, "CANARY"));
  const auto listing = json::parse(body).as_array();
  REQUIRE(listing.size() == 2);
  CHECK(member(listing[0], "exchange_id") == "BINANCE/main");
  const auto& parameters = member(listing[0], "parameters").as_array();
  REQUIRE(parameters.size() == 2);
  CHECK(member(parameters[0], "key") == "PublicApiKey");
  CHECK(member(parameters[0], "value").is_null());
  CHECK(member(parameters[0], "redacted") == true);
  CHECK(member(parameters[1], "key") == "PrivateApiKey");

  const auto& wallet = member(listing[1], "parameters").as_array();
  CHECK(member(wallet[0], "key") == "privateKey");
  CHECK(member(wallet[0], "value").is_null());
  CHECK(member(wallet[1], "key") == "walletAddress");
  CHECK(member(wallet[1], "value") == "0xabc123");

  SECTION("a redacted listing cannot be stored back") {
    const auto before = s.records();
    auto again = ems::add_or_update(s.manager, body);
    REQUIRE_FALSE(again);
    CHECK(again.error().code() == errc::validation_failed);
    CHECK(same(s.records(), before));
  }
}

TEST_CASE("the EMS accounts listing filters by account id") {
  Store s;
  REQUIRE(ems::add_or_update(s.manager, body_of("BINANCE/a", "k", "s")));
  REQUIRE(ems::add_or_update(s.manager, body_of("BINANCE/b", "k", "s")));
  REQUIRE(ems::add_or_update(s.manager, body_of("KRAKEN", "k", "s")));
  const std::vector<std::string_view> filter{"binance:b", "KRAKEN", "BINANCE/absent"};
  auto response = ems::get_accounts(s.manager, filter);
  REQUIRE(response.status == 200);
  const auto listing = json::parse(response.body).as_array();
  REQUIRE(listing.size() == 2);
  CHECK(member(listing[0], "exchange_id") == "BINANCE/b");
  CHECK(member(listing[1], "exchange_id") == "KRAKEN");

  const std::vector<std::string_view> bad{"NOSUCHX/a"};
  auto rejected = ems::get_accounts(s.manager, bad);
  CHECK(rejected.status == 400);
  CHECK(mentions(rejected.body, "filter_exchange_id 1"));
}

TEST_CASE("a revealed EMS listing round-trips into another store") {
  Store from;
  REQUIRE(ems::add_or_update(from.manager, body_of("BITSTAMP/7c177641-74bd-4dbe-9b01-2497c12a5f70", "k\"1", "s\\2")));
  REQUIRE(ems::add_or_update(from.manager, R"({"exchange_id": "OKX", "parameters": [
      {"key": "apiKey", "value": "ok"}, {"key": "secret", "value": "os"}, {"key": "password", "value": "op"}]})"));
  const SecretString revealed = ems::revealed_accounts_body(from.manager).value();

  Store to;
  auto stored = ems::add_or_update(to.manager, revealed.reveal()).value();
  CHECK(stored.size() == 2);
  for (const auto& summary : from.manager.list()) {
    INFO(summary.id.spelling());
    auto original = from.manager.get(summary.id).value();
    auto copy = to.manager.get(summary.id).value();
    CHECK(copy->id.spelling() == original->id.spelling());
    CHECK(copy->credentials == original->credentials);
  }
}

TEST_CASE("a revealed listing longer than a SecretString holds is refused, and fits when asked for in parts") {
  Store s;
  std::vector<keyfolio::AccountUpdate> many;
  const std::string long_secret(12 * 1024, 'x');  // e.g. a PEM key
  for (int i = 0; i < 1500; ++i) {
    keyfolio::Credentials c;
    c.add("apiKey", SecretString("k" + std::to_string(i))).value();
    c.add("secret", SecretString(long_secret)).value();
    many.push_back({keyfolio::AccountId::parse("BINANCE/" + std::to_string(i)).value(), std::move(c)});
  }
  s.manager.upsert(std::move(many)).value();
  auto whole = ems::revealed_accounts_body(s.manager);
  REQUIRE_FALSE(whole);
  CHECK(whole.error().code() == errc::invalid_argument);
  CHECK(mentions(whole.error().message(), "ask for fewer accounts at a time"));
  CHECK_FALSE(mentions(whole.error().message(), "xxxx"));

  std::vector<std::string> ids;
  for (const auto& summary : s.manager.list()) ids.push_back(summary.id.spelling());
  std::size_t listed = 0;
  for (std::size_t first = 0; first < ids.size(); first += 750) {
    const std::vector<std::string_view> filter(ids.begin() + static_cast<std::ptrdiff_t>(first),
                                               ids.begin() + static_cast<std::ptrdiff_t>(first + 750));
    auto part = ems::revealed_accounts_body(s.manager, filter).value();
    listed += json::parse(part.reveal()).as_array().size();
  }
  CHECK(listed == 1500);
}

TEST_CASE("a corrupt account is marked in the listing and stops a revealed export") {
  Store s;
  REQUIRE(ems::add_or_update(s.manager, body_of("BINANCE/a", "k", "s")));
  auto record = s.backend->get("accounts", "binance/a").value().value();
  record.value.back() ^= 1;
  keyfolio::WriteBatch batch;
  batch.put("accounts", "binance/a", record.value, record.version);
  REQUIRE(s.backend->write(batch));

  const auto listing = json::parse(ems::accounts_body(s.manager)).as_array();
  REQUIRE(listing.size() == 1);
  CHECK(member(listing[0], "corrupt") == true);
  auto revealed = ems::revealed_accounts_body(s.manager);
  REQUIRE_FALSE(revealed);
  CHECK(revealed.error().code() == errc::corrupt_data);
}

TEST_CASE("the EMS exchanges list names each exchange's required parameters in EMS spelling") {
  const auto& catalog = keyfolio::ExchangeCatalog::builtin();
  auto response = ems::get_exchanges(catalog);
  REQUIRE(response.status == 200);
  const auto list = json::parse(response.body).as_array();
  CHECK(list.size() == catalog.exchanges().size());
  bool saw_okx = false;
  for (const auto& entry : list) {
    const auto id = member(entry, "exchange_id").as_string();
    const auto* info = catalog.find(std::string_view(id.data(), id.size()));
    REQUIRE(info != nullptr);
    CHECK(member(entry, "required_parameters").as_array().size() == info->required.size());
    if (info->id == "okx") {
      saw_okx = true;
      CHECK(id == "OKX");
      CHECK(member(entry, "required_parameters") == json::array{"PublicApiKey", "PrivateApiKey", "PassPhrase"});
    }
  }
  CHECK(saw_okx);
}

TEST_CASE("EMS deletes remove one or several accounts atomically, 404 when one is absent") {
  Store s;
  for (auto id : {"BINANCE/a", "BINANCE/b", "KRAKEN/c"}) REQUIRE(ems::add_or_update(s.manager, body_of(id, "k", "s")));

  const std::vector<std::string_view> with_absent{"BINANCE/a", "BINANCE/nope"};
  const auto before = s.records();
  auto missing = ems::delete_accounts(s.manager, with_absent);
  CHECK(missing.status == 404);
  CHECK(mentions(missing.body, "BINANCE/nope"));
  CHECK(same(s.records(), before));

  const std::vector<std::string_view> malformed{"BINANCE/"};
  CHECK(ems::delete_accounts(s.manager, malformed).status == 400);
  CHECK(ems::delete_accounts(s.manager, {}).status == 400);
  CHECK(same(s.records(), before));

  const std::vector<std::string_view> two{"binance:a", "BINANCE/b"};
  auto removed = ems::delete_accounts(s.manager, two);
  CHECK(removed.status == 200);
  CHECK(member(json::parse(removed.body), "removed") == 2);
  CHECK(s.manager.size() == 1);

  auto all = ems::delete_all_accounts(s.manager);
  CHECK(all.status == 200);
  CHECK(member(json::parse(all.body), "removed") == 1);
  CHECK(s.manager.size() == 0);
}

TEST_CASE("keyfolio errors map onto the HTTP statuses EMS uses") {
  CHECK(ems::http_status(errc::invalid_exchange_id) == 400);
  CHECK(ems::http_status(errc::validation_failed) == 405);
  CHECK(ems::http_status(errc::not_found) == 404);
  CHECK(ems::http_status(errc::invalid_argument) == 400);
  CHECK(ems::http_status(errc::conflict) == 409);
  CHECK(ems::http_status(errc::unavailable) == 503);
  CHECK(ems::http_status(errc::storage_error) == 500);
  CHECK(ems::http_status(errc::corrupt_data) == 500);
  const auto body = json::parse(ems::error_body(keyfolio::Error(errc::not_found, "no account \"X\"")));
  CHECK(body == json::parse(R"({"status": 404, "error": "not_found", "message": "no account \"X\""})"));
}
