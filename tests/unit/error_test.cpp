#include <keyfolio/error.hpp>

#include "catch.hpp"

#include <sstream>
#include <system_error>

using keyfolio::Error;
using keyfolio::Result;
using keyfolio::errc;

namespace {

Result<int> half(int n) {
  if (n % 2 != 0) return Error(errc::invalid_argument, std::to_string(n) + " is odd");
  return n / 2;
}

}  // namespace

TEST_CASE("a result holds either a value or an error") {
  auto ok = half(4);
  REQUIRE(ok.has_value());
  CHECK(*ok == 2);
  auto bad = half(3);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == errc::invalid_argument);
  CHECK(bad.error() == errc::invalid_argument);
  CHECK(bad.error().message() == "3 is odd");
}

TEST_CASE("value() of an error throws keyfolio::Exception with the message") {
  try {
    (void)half(5).value();
    FAIL("value() did not throw");
  } catch (const keyfolio::Exception& e) {
    CHECK(e.code() == errc::invalid_argument);
    CHECK(std::string(e.what()) == "5 is odd");
    CHECK(e.error() == Error(errc::invalid_argument, "5 is odd"));
  }
  Result<void> failed = Error(errc::not_found, "no such account");
  CHECK_THROWS_AS(failed.value(), keyfolio::Exception);
  CHECK_THROWS_AS(failed.value(), std::runtime_error);
}

TEST_CASE("error codes live in keyfolio's category with readable names") {
  const auto code = keyfolio::make_error_code(errc::wrong_key);
  CHECK(std::string(code.category().name()) == "keyfolio");
  CHECK(code.message() == "wrong passphrase or key");
  CHECK(code == errc::wrong_key);
  const std::error_code standard = code;
  CHECK(standard.value() == static_cast<int>(errc::wrong_key));
  CHECK(keyfolio::to_string(errc::corrupt_data) == "corrupt_data");
  for (int v = 1; v <= 11; ++v) {
    INFO("code " << v);
    CHECK(keyfolio::to_string(static_cast<errc>(v)) != "unknown");
    CHECK(keyfolio::error_category().message(v).find("unknown") == std::string::npos);
  }
  CHECK(keyfolio::to_string(static_cast<errc>(99)) == "unknown");
}

TEST_CASE("an error streams as its code name and message") {
  std::ostringstream out;
  out << Error(errc::conflict, "version 3 expected, found 4");
  CHECK(out.str() == "conflict: version 3 expected, found 4");
}
