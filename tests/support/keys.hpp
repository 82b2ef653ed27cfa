// Key sources for tests: cheap to derive, never for real stores.
#pragma once

#include <keyfolio/key_source.hpp>
#include <keyfolio/secret.hpp>

#include <string>
#include <string_view>

namespace keyfolio::test {

// A raw 32-byte key of `fill` bytes.
inline KeySource raw(char fill) { return KeySource::raw_key(SecretString(std::string(32, fill))); }

// A passphrase at the least Argon2id cost, so that tests stay fast.
inline KeySource passphrase(std::string_view p) {
  return KeySource::passphrase(SecretString(p), KdfCost::minimum_for_tests());
}

}  // namespace keyfolio::test
