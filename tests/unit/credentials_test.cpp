#include <keyfolio/credentials.hpp>

#include "catch.hpp"

#include <sstream>

using keyfolio::Credentials;
using keyfolio::ExchangeCatalog;
using keyfolio::SecretString;
using keyfolio::errc;

namespace {

using keyfolio::test::mentions;

const keyfolio::ExchangeInfo& exchange(std::string_view id) {
  const auto* info = ExchangeCatalog::builtin().find(id);
  REQUIRE(info != nullptr);
  return *info;
}

}  // namespace

TEST_CASE("fields are stored under their canonical keys") {
  Credentials c;
  REQUIRE(c.add("PublicApiKey", SecretString("key-1")).has_value());
  REQUIRE(c.add("PrivateApiKey", SecretString("secret-1")).has_value());
  REQUIRE(c.add("PassPhrase", SecretString("phrase-1")).has_value());
  CHECK(c.field_names() == std::vector<std::string>{"apiKey", "password", "secret"});
  CHECK(keyfolio::test::reveals(*c.find("apiKey"), "key-1"));
  CHECK(keyfolio::test::reveals(*c.find("secret"), "secret-1"));
  CHECK(keyfolio::test::reveals(*c.find("password"), "phrase-1"));
  CHECK(c.find("PublicApiKey") == nullptr);
  CHECK(c.size() == 3);
  CHECK(c.validate(exchange("okx")).has_value());
}

TEST_CASE("credentials a exchange needs validate") {
  Credentials c;
  c.add("apiKey", SecretString("k")).value();
  c.add("apiSecret", SecretString("s")).value();
  CHECK(c.validate(exchange("binance")).has_value());
  CHECK(c.validate(exchange("BINANCE")).has_value());
}

TEST_CASE("validation names every missing and every unknown field at once") {
  Credentials c;
  c.add("apiKey", SecretString("k")).value();
  c.add("walletAddress", SecretString("0xabc")).value();
  c.add("pin", SecretString("1234")).value();
  auto r = c.validate(exchange("okx"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == errc::validation_failed);
  const std::string message = r.error().message();
  CHECK(mentions(message, "OKX (okx)"));
  CHECK(mentions(message, "missing required fields \"secret\", \"password\""));
  CHECK(mentions(message, "unknown fields \"pin\", \"walletAddress\""));
  CHECK(mentions(message, "it takes apiKey, secret, password"));
}

TEST_CASE("an exchange that takes no credentials rejects any") {
  Credentials c;
  CHECK(c.validate(exchange("dydx")).has_value());
  c.add("apiKey", SecretString("k")).value();
  auto r = c.validate(exchange("dydx"));
  REQUIRE_FALSE(r.has_value());
  CHECK(mentions(r.error().message(), "takes no credentials"));
}

TEST_CASE("bad fields are refused when added and nothing changes") {
  Credentials c;
  c.add("apiKey", SecretString("k")).value();
  struct Case {
    std::string name;
    std::string value;
    const char* says;
  };
  const Case cases[] = {
      {"", "v", "name is empty"},
      {std::string(65, 'n'), "v", "at most 64"},
      {"api key", "v", "space"},
      {"secret", "", "is empty"},
      {"secret", std::string(Credentials::max_value_size + 1, 'v'), "at most 16384"},
      {"apiKey", "k2", "given twice"},
      {"PublicApiKey", "k2", "given twice (once as \"PublicApiKey\")"},
  };
  for (const auto& x : cases) {
    INFO("field " << x.name.substr(0, 20));
    auto r = c.add(x.name, SecretString(x.value));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::validation_failed);
    CHECK(mentions(r.error().message(), x.says));
  }
  CHECK(c.size() == 1);
  CHECK(keyfolio::test::reveals(*c.find("apiKey"), "k"));
}

TEST_CASE("fields can be erased") {
  Credentials c;
  c.add("apiKey", SecretString("k")).value();
  CHECK(c.erase("apiKey"));
  CHECK_FALSE(c.erase("apiKey"));
  CHECK(c.empty());
}

TEST_CASE("credentials compare by keys and values") {
  Credentials a, b;
  a.add("apiKey", SecretString("k")).value();
  b.add("PublicApiKey", SecretString("k")).value();
  CHECK(a == b);
  b.erase("apiKey");
  b.add("apiKey", SecretString("other")).value();
  CHECK_FALSE(a == b);
}

TEST_CASE("a host catalog's aliases and fields apply") {
  auto catalog = ExchangeCatalog::from_json(R"({
    "fields": [{"key": "token", "aliases": ["bearer"]}],
    "exchanges": [{"id": "gamma", "required": ["token"]}]})").value();
  Credentials c;
  c.add("Bearer", SecretString("t"), catalog).value();
  CHECK(c.contains("token"));
  CHECK(c.validate(*catalog.find("gamma")).has_value());
}
