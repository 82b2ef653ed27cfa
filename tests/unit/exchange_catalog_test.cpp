#include <keyfolio/exchange_catalog.hpp>

#include "catch.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

using keyfolio::ExchangeCatalog;
using keyfolio::ExchangeInfo;
using keyfolio::errc;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string catalog_error(std::string_view json) {
  auto catalog = ExchangeCatalog::from_json(json);
  REQUIRE_FALSE(catalog.has_value());
  CHECK(catalog.error().code() == errc::invalid_argument);
  return catalog.error().message();
}

using keyfolio::test::mentions;

}  // namespace

TEST_CASE("the built-in catalog holds exactly ccxt's exchanges with ccxt's required credentials") {
  // tests/data/ccxt_required_credentials.json is ccxt's requiredCredentials,
  // verbatim, as src/catalog/regenerate.mjs read it from the npm package.
  const auto reference = boost::json::parse(read_file(KEYFOLIO_TEST_DATA_DIR "/ccxt_required_credentials.json"));
  const auto& expected = reference.at("requiredCredentials").as_object();
  const auto& catalog = ExchangeCatalog::builtin();

  CHECK(catalog.source() == "ccxt " + std::string(reference.at("ccxt").as_string()));
  REQUIRE(catalog.exchanges().size() == expected.size());
  CHECK(expected.size() >= 100);
  for (const auto& [id, credentials] : expected) {
    INFO("exchange " << std::string(id));
    const ExchangeInfo* info = catalog.find(id);
    REQUIRE(info != nullptr);
    CHECK(info->id == std::string(id));
    std::set<std::string> required;
    for (const auto& [field, needed] : credentials.as_object()) {
      if (needed.as_bool()) required.insert(std::string(field));
      CHECK(catalog.find_field(field) != nullptr);
    }
    CHECK(std::set<std::string>(info->required.begin(), info->required.end()) == required);
    CHECK(info->required.size() == required.size());
    CHECK(info->optional.empty());
  }
}

TEST_CASE("well-known exchanges need what their venues ask for") {
  const auto& catalog = ExchangeCatalog::builtin();
  using List = std::vector<std::string>;
  CHECK(catalog.find("binance")->required == List{"apiKey", "secret"});
  CHECK(catalog.find("okx")->required == List{"apiKey", "secret", "password"});
  CHECK(catalog.find("kucoin")->required == List{"apiKey", "secret", "password"});
  CHECK(catalog.find("bitget")->required == List{"apiKey", "secret", "password"});
  CHECK(catalog.find("coinbaseexchange")->required == List{"apiKey", "secret", "password"});
  CHECK(catalog.find("hyperliquid")->required == List{"privateKey", "walletAddress"});
  CHECK(catalog.find("kraken")->name == "Kraken");
}

TEST_CASE("exchange ids and aliases match case-insensitively") {
  const auto& catalog = ExchangeCatalog::builtin();
  CHECK(catalog.find("BINANCE")->id == "binance");
  CHECK(catalog.find("BiNaNcE")->id == "binance");
  CHECK(catalog.find("OKEX")->id == "okx");
  CHECK(catalog.find("okex")->id == "okx");
  CHECK(catalog.find("HUOBI")->id == "htx");
  CHECK(catalog.find("HUOBIPRO")->id == "htx");
  CHECK(catalog.find("COINBASE")->id == "coinbase");
  CHECK(catalog.find("nosuchexchange") == nullptr);
  CHECK(catalog.find("") == nullptr);
  CHECK(catalog.find(std::string(100, 'a')) == nullptr);
}

TEST_CASE("field aliases of other ecosystems resolve to ccxt's field keys") {
  const auto& catalog = ExchangeCatalog::builtin();
  const std::pair<const char*, const char*> aliases[] = {
      {"apiSecret", "secret"},       {"PrivateApiKey", "secret"}, {"passphrase", "password"},
      {"PassPhrase", "password"},    {"PublicApiKey", "apiKey"},  {"APIKEY", "apiKey"},
      {"wallet_address", "walletAddress"}, {"secret", "secret"}};
  for (auto [alias, key] : aliases) {
    INFO(alias);
    REQUIRE(catalog.find_field(alias) != nullptr);
    CHECK(catalog.find_field(alias)->key == key);
  }
  CHECK(catalog.find_field("nosuchfield") == nullptr);
  CHECK_FALSE(catalog.find_field("walletAddress")->secret);
  CHECK(catalog.find_field("secret")->secret);
}

TEST_CASE("the identifying field is the API key, else the wallet address") {
  const auto& catalog = ExchangeCatalog::builtin();
  CHECK(catalog.find("binance")->identifying_field() == "apiKey");
  CHECK(catalog.find("hyperliquid")->identifying_field() == "walletAddress");
  CHECK(catalog.find("aster")->identifying_field() == "privateKey");
  CHECK(catalog.find("dydx")->identifying_field().empty());
}

TEST_CASE("suggestions name close exchange ids") {
  const auto& catalog = ExchangeCatalog::builtin();
  const auto close = catalog.suggest("krakn");
  REQUIRE_FALSE(close.empty());
  CHECK(close.front() == "kraken");
  CHECK(catalog.suggest("zzzzzzzzzzzz").empty());
}

TEST_CASE("a host registers its own exchange on a copy of the built-in catalog") {
  ExchangeCatalog catalog = ExchangeCatalog::builtin();
  const auto before = ExchangeCatalog::builtin().exchanges().size();
  auto added = catalog.add({.id = "myvenue",
                            .name = "My Venue",
                            .required = {"PublicApiKey", "apiSecret"},
                            .optional = {"passphrase"},
                            .aliases = {"MYV"}});
  REQUIRE(added.has_value());
  CHECK(catalog.exchanges().size() == before + 1);
  CHECK(ExchangeCatalog::builtin().exchanges().size() == before);
  const ExchangeInfo* venue = catalog.find("myv");
  REQUIRE(venue != nullptr);
  CHECK(venue->required == std::vector<std::string>{"apiKey", "secret"});
  CHECK(venue->optional == std::vector<std::string>{"password"});
  CHECK(venue->accepts_field("password"));
  CHECK_FALSE(venue->requires_field("password"));
}

TEST_CASE("registering a malformed or clashing exchange fails and changes nothing") {
  ExchangeCatalog catalog = ExchangeCatalog::builtin();
  const auto before = catalog.exchanges().size();
  struct Case {
    ExchangeInfo info;
    errc code;
    const char* says;
  };
  const Case cases[] = {
      {{.id = ""}, errc::invalid_argument, "is empty"},
      {{.id = "my/venue"}, errc::invalid_argument, "separator"},
      {{.id = "my venue"}, errc::invalid_argument, "space"},
      {{.id = std::string(65, 'v')}, errc::invalid_argument, "at most 64"},
      {{.id = "v1", .required = {"nosuchfield"}}, errc::invalid_argument, "unknown credential field"},
      {{.id = "v2", .required = {"apiKey", "PublicApiKey"}}, errc::invalid_argument, "twice"},
      {{.id = "v3", .required = {"apiKey"}, .optional = {"apiKey"}}, errc::invalid_argument, "both"},
      {{.id = "v4", .aliases = {"V4"}}, errc::invalid_argument, "repeats"},
      {{.id = "v5", .aliases = {"x y"}}, errc::invalid_argument, "alias"},
      {{.id = "v6", .name = "bad\nname"}, errc::invalid_argument, "control"},
      {{.id = "BINANCE"}, errc::conflict, "already taken by exchange \"binance\""},
      {{.id = "v7", .aliases = {"okex"}}, errc::conflict, "already taken by exchange \"okx\""},
  };
  for (const auto& c : cases) {
    INFO("id " << c.info.id);
    auto r = catalog.add(c.info);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == c.code);
    CHECK(mentions(r.error().message(), c.says));
  }
  CHECK(catalog.exchanges().size() == before);
  CHECK(catalog.find("v7") == nullptr);
}

TEST_CASE("a catalog loads from JSON with the built-in fields by default") {
  auto catalog = ExchangeCatalog::from_json(R"({
    "source": "desk config",
    "exchanges": [
      {"id": "alpha", "name": "Alpha", "required": ["apiKey", "apiSecret"], "aliases": ["ALPHAX"]},
      {"id": "beta", "required": ["walletAddress"], "optional": ["passphrase"], "icon": "https://x/beta.png"}
    ]})");
  REQUIRE(catalog.has_value());
  CHECK(catalog->source() == "desk config");
  CHECK(catalog->exchanges().size() == 2);
  CHECK(catalog->find("alphax")->required == std::vector<std::string>{"apiKey", "secret"});
  CHECK(catalog->find("beta")->name == "beta");
  CHECK(catalog->find("beta")->icon == "https://x/beta.png");
  CHECK(catalog->find("binance") == nullptr);
  CHECK(catalog->find_field("PassPhrase")->key == "password");
}

TEST_CASE("a catalog JSON may define its own credential fields") {
  auto catalog = ExchangeCatalog::from_json(R"({
    "fields": [{"key": "token", "name": "Token", "aliases": ["bearer"]}],
    "exchanges": [{"id": "gamma", "required": ["bearer"]}]})");
  REQUIRE(catalog.has_value());
  CHECK(catalog->fields().size() == 1);
  CHECK(catalog->find("gamma")->required == std::vector<std::string>{"token"});
  CHECK(catalog->find_field("apiKey") == nullptr);
}

TEST_CASE("malformed catalog JSON gets an error that says where") {
  CHECK(mentions(catalog_error(""), "line 1, column 1"));
  CHECK(mentions(catalog_error("{\n  \"exchanges\": [\n    {\"id\": \"a\",,}\n  ]\n}"), "line 3, column 16"));
  CHECK(mentions(catalog_error(R"({"exchanges": []} x)"), "column 19"));
  CHECK(mentions(catalog_error(R"({"exchanges": [)"), "malformed"));
  CHECK(mentions(catalog_error("[]"), "$: expected an object"));
  CHECK(mentions(catalog_error("{}"), "missing member \"exchanges\""));
  CHECK(mentions(catalog_error(R"({"exchanges": {}})"), "$.exchanges: expected an array"));
  CHECK(mentions(catalog_error(R"({"format": 2, "exchanges": []})"), "$.format: unsupported format"));
  CHECK(mentions(catalog_error(R"({"exchanges": [], "extra": 1})"), "$.extra: unknown member"));
  CHECK(mentions(catalog_error(R"({"exchanges": [{"name": "x"}]})"), "$.exchanges[0]: missing member \"id\""));
  CHECK(mentions(catalog_error(R"({"exchanges": [{"id": 7}]})"), "$.exchanges[0].id: expected a string"));
  CHECK(mentions(catalog_error(R"({"exchanges": [{"id": "a", "requierd": []}]})"),
                 "$.exchanges[0].requierd: unknown member"));
  CHECK(mentions(catalog_error(R"({"exchanges": [{"id": "a", "required": "apiKey"}]})"),
                 "$.exchanges[0].required: expected an array of strings"));
  CHECK(mentions(catalog_error(R"({"exchanges": [{"id": "a", "required": [1]}]})"),
                 "$.exchanges[0].required[0]: expected a string"));
  CHECK(mentions(catalog_error(R"({"exchanges": [{"id": "a", "required": ["pin"]}]})"),
                 "unknown credential field \"pin\""));
  CHECK(mentions(catalog_error(R"({"fields": [{"key": "a"}, {"key": "A"}], "exchanges": []})"),
                 "used twice"));
  CHECK(mentions(catalog_error(R"({"fields": [{"key": "a", "secret": "yes"}], "exchanges": []})"),
                 "$.fields[0].secret: expected true or false"));
  // A clash inside the document is a malformed document, reported with its place.
  CHECK(mentions(catalog_error(R"({"exchanges": [{"id": "a"}, {"id": "A"}]})"),
                 "$.exchanges[1]: exchange id \"A\" is already taken"));
}
