// What someone with write access to a store (but not its key) does to it in
// tests, and how a test then opens it.
#pragma once

#include <keyfolio/account_manager.hpp>
#include <keyfolio/storage.hpp>

#include "credentials.hpp"

#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace keyfolio::test {

// Puts `record`'s exact bytes back under its key at its version, whatever is
// stored there now: erasing, then putting again from version 1 upwards.
inline void put_back(StorageBackend& backend, std::string_view collection, const Record& record) {
  if (auto now = backend.get(collection, record.key).value()) {
    backend.write(WriteBatch().erase(collection, record.key, now->version)).value();
  }
  for (std::uint64_t v = 0; v < record.version; ++v) {
    backend.write(WriteBatch().put(collection, record.key, record.value, v)).value();
  }
  const auto now = backend.get(collection, record.key).value();
  if (!now || now->version != record.version) throw std::logic_error("put_back: the record is not at its version");
}

// Opening past the store-wide integrity check (Options::recover).
inline AccountManager::Options recovering() {
  AccountManager::Options options;
  options.recover = true;
  return options;
}

// Whether account `id` reads back with `secret` as its "secret" field.
inline bool reveals_secret(const AccountManager& m, std::string_view id, std::string_view secret) {
  auto account = m.get(id);
  if (!account) return false;
  const SecretString* field = (*account)->credentials.find("secret");
  return field != nullptr && reveals(*field, secret);
}

}  // namespace keyfolio::test
