// Everything these types can say — stream output, Catch2's failure printing,
// error messages and exception texts — is collected here and searched for the
// secret values the test used. None may appear.
#include <keyfolio/account_id.hpp>
#include <keyfolio/credentials.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/secret.hpp>

#include "catch.hpp"

#include <sstream>
#include <string>
#include <vector>

using keyfolio::Credentials;
using keyfolio::SecretString;

namespace {

const std::vector<std::string> secret_values = {
    "AKIA-distinctive-api-key-77f1",          "sk-distinctive-secret-value-9c3e",
    "distinctive passphrase with spaces 41",  std::string(Credentials::max_value_size + 1, 'Z'),
    "hunter2!x9Q",                            "q7GzR2mKp9XwLb4T",
};

template <class T>
std::string streamed(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

struct Outputs {
  std::vector<std::string> texts;

  template <class T>
  void add_result(const keyfolio::Result<T>& r) {
    if (r.has_value()) return;
    texts.push_back(r.error().message());
    texts.push_back(streamed(r.error()));
    try {
      (void)r.value();
    } catch (const std::exception& e) {
      texts.push_back(e.what());
    }
  }
};

}  // namespace

TEST_CASE("no output of secrets, credentials or their errors contains a secret value") {
  Outputs out;
  const auto& okx = *keyfolio::ExchangeCatalog::builtin().find("okx");

  for (const auto& value : secret_values) {
    const SecretString secret(value);
    out.texts.push_back(streamed(secret));
    out.texts.push_back(keyfolio::test::printed(secret));
  }

  Credentials c;
  out.add_result(c.add("PublicApiKey", SecretString(secret_values[0])));
  out.add_result(c.add("apiSecret", SecretString(secret_values[1])));
  // Refused adds: duplicates under another spelling, an over-long value, an unknown field.
  out.add_result(c.add("apiKey", SecretString(secret_values[1])));
  out.add_result(c.add("secret_key", SecretString(secret_values[2])));
  out.add_result(c.add("passphrase", SecretString(secret_values[3])));
  out.add_result(c.add("pin", SecretString(secret_values[2])));
  // Values pasted where a field name belongs: as an unknown field, with a
  // trailing newline, and twice.
  out.add_result(c.add(secret_values[1], SecretString("x")));
  out.add_result(c.add(secret_values[1], SecretString("x")));
  out.add_result(c.add(secret_values[0] + "\n", SecretString("x")));
  // Short passphrase-like values as field names.
  out.add_result(c.add(secret_values[4], SecretString("x")));
  out.add_result(c.add(secret_values[5], SecretString("x")));
  out.texts.push_back(streamed(c));
  out.texts.push_back(keyfolio::test::printed(c));
  // Missing password, unknown pin.
  out.add_result(c.validate(okx));

  REQUIRE(out.texts.size() > 15);
  for (const auto& text : out.texts) {
    for (const auto& value : secret_values) {
      // Compare without printing either side: a failure message must not leak.
      // A distinctive piece, so that a message that cuts the value short is
      // still caught.
      const std::string piece = value.size() <= 12 ? value : value.substr(value.size() / 2 - 6, 12);
      const bool leaked = text.find(piece) != std::string::npos;
      CHECK_FALSE(leaked);
    }
  }
  // The outputs still say something useful.
  CHECK(streamed(c) ==
        "{apiKey: [redacted], a field name of 11 bytes: [redacted], \"pin\": [redacted], "
        "a field name of 16 bytes: [redacted], secret: [redacted], a field name of 32 bytes: [redacted]}");
}
