// keyfolio/integrity.hpp: what the store's integrity check found.
//
// Every write to a keyfolio store also rewrites, in the same atomic batch, a
// sealed integrity record: a keyed commitment to the set of live records of
// every collection (their keys, versions and exact ciphertexts), and the
// store's generation, which grows by one with every write. Opening a store,
// and every full reload, checks the records against it, so that a record put
// back at an older version, a record deleted, and a record re-inserted after
// its removal (or after its account was removed and created again) are
// `corrupt_data`, not a quiet change. The check names the key when the change
// concerns one of the store's most recent writes, and the collection and the
// number of records otherwise.
//
// What it cannot see from inside: the whole store replaced by an older copy of
// itself. For that, a host keeps the generation somewhere the store's
// attacker cannot write (another machine, a hardware counter) and opens with
// `AccountManager::Options::minimum_generation`, which refuses an older
// store.
#pragma once

#include <keyfolio/export.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace keyfolio {

struct IntegrityFinding {
  enum class Kind {
    missing,       // a record the store should hold is gone
    older,         // a record is at an older version than the store wrote last
    unexpected,    // a record the store did not write, or removed, is present
    replaced,      // a record differs from what the store wrote (another copy)
    manifest_damaged,  // the integrity record is missing or does not authenticate
    rolled_back,   // the store's generation is older than the one required
  };
  Kind kind = Kind::missing;
  std::string collection{};  // empty when the finding is about the whole store
  std::string key{};         // empty when the key cannot be told
  std::string message{};     // for a person; never holds a secret
};

// "missing", "older", ...
KEYFOLIO_EXPORT const char* to_string(IntegrityFinding::Kind kind) noexcept;

struct IntegrityReport {
  std::uint64_t generation = 0;  // of the integrity record; 0 when unknown
  std::vector<IntegrityFinding> findings{};

  bool intact() const noexcept { return findings.empty(); }
  // One line per finding (empty when intact).
  KEYFOLIO_EXPORT std::string describe() const;
};

}  // namespace keyfolio
