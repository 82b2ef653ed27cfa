#include <keyfolio/account_id.hpp>

#include "catch.hpp"

#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

using keyfolio::AccountId;
using keyfolio::errc;

namespace {

// The message of the error `text` is rejected with; fails the test if accepted.
std::string rejection(std::string_view text) {
  auto id = AccountId::parse(text);
  REQUIRE_FALSE(id.has_value());
  CHECK(id.error().code() == errc::invalid_exchange_id);
  return id.error().message();
}

using keyfolio::test::mentions;

}  // namespace

TEST_CASE("an exchange id without a tag names the exchange's untagged account") {
  auto id = AccountId::parse("BITSTAMP").value();
  CHECK(id.exchange() == "bitstamp");
  CHECK(id.tag().empty());
  CHECK_FALSE(id.has_tag());
  CHECK(id.spelling() == "BITSTAMP");
  CHECK(id.canonical() == "bitstamp");
}

TEST_CASE("every allowed separator splits the exchange from the tag") {
  for (const char sep : AccountId::separators) {
    const std::string text = std::string("KRAKEN") + sep + "JOHN";
    INFO("input " << text);
    auto id = AccountId::parse(text);
    REQUIRE(id.has_value());
    CHECK(id->exchange() == "kraken");
    CHECK(id->tag() == "JOHN");
    CHECK(id->spelling() == text);
    CHECK(id->canonical() == "kraken/JOHN");
  }
  CHECK(AccountId::separators.size() == 18);
}

TEST_CASE("the first separator splits and the tag keeps further separators") {
  auto uuid = AccountId::parse("BITSTAMP/7c177641-74bd-4dbe-9b01-2497c12a5f70").value();
  CHECK(uuid.exchange() == "bitstamp");
  CHECK(uuid.tag() == "7c177641-74bd-4dbe-9b01-2497c12a5f70");

  auto mixed = AccountId::parse("kraken~a/b.c,d:e;f!g@h#i$j%k^l&m*n-o_p+q=r").value();
  CHECK(mixed.exchange() == "kraken");
  CHECK(mixed.tag() == "a/b.c,d:e;f!g@h#i$j%k^l&m*n-o_p+q=r");

  auto doubled = AccountId::parse("KRAKEN//x").value();
  CHECK(doubled.tag() == "/x");
  auto only_separators = AccountId::parse("KRAKEN/-").value();
  CHECK(only_separators.tag() == "-");
}

TEST_CASE("exchange ids match case-insensitively and tags case-sensitively") {
  const auto upper = AccountId::parse("BITSTAMP/2574").value();
  const auto lower = AccountId::parse("bitstamp:2574").value();
  const auto mixed = AccountId::parse("BitStamp#2574").value();
  CHECK(upper == lower);
  CHECK(lower == mixed);
  CHECK(std::hash<AccountId>{}(upper) == std::hash<AccountId>{}(lower));
  CHECK(upper.spelling() == "BITSTAMP/2574");
  CHECK(lower.spelling() == "bitstamp:2574");

  const auto john = AccountId::parse("KRAKEN/JOHN").value();
  const auto john_lower = AccountId::parse("KRAKEN/john").value();
  CHECK(john != john_lower);
  CHECK(AccountId::parse("KRAKEN").value() != john);

  std::unordered_set<AccountId> set{upper, lower, mixed, john, john_lower};
  CHECK(set.size() == 3);
}

TEST_CASE("exchange aliases resolve to the canonical exchange") {
  CHECK(AccountId::parse("OKEX/main").value().exchange() == "okx");
  CHECK(AccountId::parse("HUOBI").value().exchange() == "htx");
  CHECK(AccountId::parse("huobipro/x").value().exchange() == "htx");
  CHECK(AccountId::parse("COINBASE").value().exchange() == "coinbase");
  CHECK(AccountId::parse("GATEIO").value().exchange() == "gate");
  CHECK(AccountId::parse("OKEX/a").value() == AccountId::parse("okx:a").value());
}

TEST_CASE("ids order by exchange, then tag") {
  const auto a = AccountId::parse("binance").value();
  const auto b = AccountId::parse("binance/a").value();
  const auto c = AccountId::parse("kraken").value();
  CHECK(a < b);
  CHECK(b < c);
}

TEST_CASE("an empty account id is rejected") { CHECK(mentions(rejection(""), "empty")); }

TEST_CASE("an account id with an empty exchange part is rejected") {
  CHECK(mentions(rejection("/JOHN"), "exchange part"));
  CHECK(mentions(rejection("-"), "exchange part"));
}

TEST_CASE("an exchange the catalog does not know is rejected, with a hint when one is close") {
  const auto message = rejection("BINANSE/main");
  CHECK(mentions(message, "unknown exchange \"BINANSE\""));
  CHECK(mentions(message, "did you mean \"binance\""));
  CHECK_FALSE(mentions(rejection("QQQQQQQQQQ"), "did you mean"));
}

TEST_CASE("a separator without a tag is rejected") {
  for (const char sep : AccountId::separators) {
    const std::string text = std::string("KRAKEN") + sep;
    INFO("input " << text);
    CHECK(mentions(rejection(text), "not followed by a tag"));
  }
}

TEST_CASE("whitespace and control characters are rejected anywhere") {
  for (const std::string& text : std::vector<std::string>{" KRAKEN", "KRAKEN ", "KRA KEN", "KRAKEN/JO HN", "KRAKEN/JOHN ", "KRAKEN\t",
                                 "KRAKEN/\n", std::string("KRAKEN/a\0b", 10), "KRAKEN/\x7f", "\x01KRAKEN"}) {
    INFO("input " << keyfolio::test::printed(text));
    CHECK(mentions(rejection(text), "control"));
  }
}

TEST_CASE("Unicode whitespace and invisible characters are rejected in the tag") {
  for (const std::string tag : {"\u00a0", "a\u2003b", "\u200b", "x\u200d", "\u202e", "\ufeffx", "\u3000",
                                "\u0085", "john\U000E0041", "a\ufe0f", "\u3164"}) {
    INFO("tag " << keyfolio::test::printed(tag));
    CHECK(mentions(rejection("KRAKEN/" + tag), "invisible"));
  }
}

TEST_CASE("a tag may hold non-ASCII letters but must be valid UTF-8") {
  auto id = AccountId::parse("KRAKEN/Jürgen-東京").value();
  CHECK(id.tag() == "Jürgen-東京");
  for (const std::string tag : {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80"}) {
    INFO("tag bytes " << keyfolio::test::printed(tag));
    CHECK(mentions(rejection("KRAKEN/" + tag), "UTF-8"));
  }
}

TEST_CASE("characters outside printable ASCII are rejected in the exchange part") {
  const auto message = rejection("KRAKÉN/JOHN");
  CHECK(mentions(message, "printable ASCII"));
  CHECK(mentions(message, "position 4"));
  // The message escapes what it quotes rather than echoing raw bytes.
  CHECK(mentions(message, "\\xc3\\x89"));
}

TEST_CASE("parts beyond the documented lengths are rejected") {
  const std::string long_exchange(AccountId::max_exchange_length + 1, 'k');
  CHECK(mentions(rejection(long_exchange), "at most 64"));
  const std::string long_tag(AccountId::max_tag_length + 1, 't');
  CHECK(mentions(rejection("KRAKEN/" + long_tag), "at most 128"));
  CHECK(AccountId::parse("KRAKEN/" + std::string(AccountId::max_tag_length, 't')).has_value());
  // A huge input is reported without being copied whole into the message.
  const std::string huge(1 << 20, 'x');
  CHECK(rejection(huge).size() < 300);
}

TEST_CASE("ids built from parts follow the same rules") {
  auto plain = AccountId::from_parts("binance").value();
  CHECK(plain == AccountId::parse("BINANCE").value());
  CHECK(plain.spelling() == "binance");
  auto tagged = AccountId::from_parts("OKEX", "desk-1").value();
  CHECK(tagged.exchange() == "okx");
  CHECK(tagged.tag() == "desk-1");
  CHECK(tagged.spelling() == "OKEX/desk-1");
  CHECK(tagged == AccountId::parse("okx:desk-1").value());

  for (auto [exchange, tag] : {std::pair{"", "x"}, std::pair{"bin/ance", ""}, std::pair{"nosuch", ""},
                               std::pair{"binance", "a b"}, std::pair{"binance", "\xff"}}) {
    INFO(exchange << " / " << tag);
    auto id = AccountId::from_parts(exchange, tag);
    REQUIRE_FALSE(id.has_value());
    CHECK(id.error().code() == errc::invalid_exchange_id);
  }
}

TEST_CASE("a host catalog decides which exchanges an id may name") {
  keyfolio::ExchangeCatalog catalog;
  REQUIRE(catalog.add({.id = "myvenue", .name = "My Venue", .required = {"apiKey"}}).has_value());
  CHECK(AccountId::parse("MYVENUE/desk", catalog).value().exchange() == "myvenue");
  CHECK(AccountId::parse("binance", catalog).error().code() == errc::invalid_exchange_id);
  CHECK(AccountId::parse("myvenue").error().code() == errc::invalid_exchange_id);
}

TEST_CASE("an id streams as its spelling") {
  std::ostringstream out;
  out << AccountId::parse("KRAKEN/JOHN").value();
  CHECK(out.str() == "KRAKEN/JOHN");
}
