#include "detail/text.hpp"

#include "catch.hpp"

using namespace keyfolio::detail;

TEST_CASE("quote escapes control, non-ASCII and quote characters and cuts long input") {
  CHECK(quote("abc") == "\"abc\"");
  CHECK(quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote(std::string("a\0\n\xff", 4)) == "\"a\\x00\\x0a\\xff\"");
  CHECK(quote(std::string(100, 'x'), 10) == "\"xxxxxxxxxx\"...");
}

TEST_CASE("UTF-8 decoding accepts well-formed sequences and rejects the rest") {
  const auto decode_all = [](std::string_view s) {
    std::size_t pos = 0;
    while (pos < s.size()) {
      if (!decode_utf8(s, pos)) return false;
    }
    return true;
  };
  CHECK(decode_all("plain"));
  CHECK(decode_all("\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x98\x80"));  // é 東 😀
  CHECK(decode_all("\xf4\x8f\xbf\xbf"));                      // U+10FFFF
  CHECK_FALSE(decode_all("\xc3"));                            // truncated
  CHECK_FALSE(decode_all("\xc0\x80"));                        // overlong NUL
  CHECK_FALSE(decode_all("\xe0\x80\xaf"));                    // overlong '/'
  CHECK_FALSE(decode_all("\xed\xa0\x80"));                    // surrogate
  CHECK_FALSE(decode_all("\xf4\x90\x80\x80"));                // beyond U+10FFFF
  CHECK_FALSE(decode_all("\xf8\x88\x80\x80\x80"));            // 5-byte form
  CHECK_FALSE(decode_all("\xc3\x28"));                        // bad continuation
}

TEST_CASE("edit distance counts insertions, deletions and substitutions") {
  CHECK(edit_distance("kraken", "kraken", 3) == 0);
  CHECK(edit_distance("KRAKEN", "kraken", 3) == 0);
  CHECK(edit_distance("krakn", "kraken", 3) == 1);
  CHECK(edit_distance("binanse", "binance", 3) == 1);
  CHECK(edit_distance("abc", "xyz", 3) == 3);
  CHECK(edit_distance("a", "abcdefgh", 3) == 4);
}

TEST_CASE("a field name is quoted only when it looks like an identifier, else described by its length") {
  for (const char* name : {"apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "api_key",
                           "passphrase", "PassPhrase", "PublicApiKey", "API_KEY", "apikey2", "key.v10"}) {
    INFO(name);
    CHECK(shown_field_name(name) == quote(name));
  }
  for (const char* value : {"hunter2!x9Q", "q7GzR2mKp9XwLb4T", "aBcDeFgHiJkLmNoP", "sk-9c3e77f1distinct",
                            "dGhpcyBpcyBzZWNyZXQ=", "deadbeef00112233", "k3y", "x123", ""}) {
    const std::string name = value;
    // Compared without printing either side: the inputs stand for secrets.
    const bool described = shown_field_name(name) == "a field name of " + std::to_string(name.size()) + " bytes";
    CHECK(described);
  }
}
