// Credentials for tests: an API key and secret, the fields most exchanges
// require.
#pragma once

#include <keyfolio/credentials.hpp>
#include <keyfolio/secret.hpp>

#include <string_view>

namespace keyfolio::test {

inline Credentials api_keys(std::string_view key, std::string_view secret) {
  Credentials c;
  c.add("apiKey", SecretString(key)).value();
  c.add("secret", SecretString(secret)).value();
  return c;
}

}  // namespace keyfolio::test
