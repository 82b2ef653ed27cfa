// keyfolio/account.hpp: Account (an exchange account with its credentials)
// and AccountSummary (the same without secrets).
//
// Value types; safe for concurrent const use.
#pragma once

#include <keyfolio/account_id.hpp>
#include <keyfolio/credentials.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace keyfolio {

using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

struct Account {
  AccountId id;
  Credentials credentials{};
  std::uint64_t version = 0;  // 1 when created, +1 on every update
  Timestamp created{};
  Timestamp updated{};
};

// What list() shows: no secret values.
struct AccountSummary {
  AccountId id;
  std::uint64_t version = 0;
  Timestamp created{};
  Timestamp updated{};
  std::vector<std::string> fields{};  // canonical keys of the stored credentials
  // A keyed, non-reversible fingerprint of the exchange and its identifying
  // credential (the API key, or the wallet address for wallet-style
  // exchanges): equal for the same exchange account within one store, useless
  // to anyone without the store's key. Empty when the record is corrupt.
  std::string fingerprint{};
  // The stored record failed to authenticate; `get` returns corrupt_data.
  bool corrupt = false;
};

// A change to an account, as AccountManager::subscribe reports it, or news
// of the store itself (`id` empty, `version` 0):
// - resync: the change feed may have missed changes, so the manager reads
//   every account again; the events of what it finds changed follow.
// - retired: another handle rotated the store's data key, and the manager
//   serves nothing more (every read of credentials and every write is
//   `wrong_key`): open the store again to go on. The manager's last event.
struct AccountEvent {
  enum class Kind { created, updated, removed, resync, retired };
  Kind kind = Kind::created;
  AccountId id;
  std::uint64_t version = 0;  // the new version; 0 for removed
};

}  // namespace keyfolio
