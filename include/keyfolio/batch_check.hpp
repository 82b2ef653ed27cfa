// keyfolio/batch_check.hpp: the version checks every StorageBackend applies
// to a WriteBatch, for hosts that write a backend of their own.
//
// A backend applies a batch under its own lock or transaction; check_batch
// walks the batch in order against the versions stored before it (through
// the backend's `lookup`), tracking what the batch's own earlier operations
// leave each key at, and says which operation's expectation fails. The
// backend then writes the batch only when it succeeds. The errors are those
// the conformance suite (keyfolio/testing/storage_conformance.hpp) expects.
//
// Free functions; thread safety is that of `lookup`.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/storage.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace keyfolio {

// The version `key` of `collection` has before the batch, or nullopt when
// it is absent; an error ends the check with that error.
using VersionLookup =
    std::function<Result<std::optional<std::uint64_t>>(const std::string& collection, const std::string& key)>;

// `invalid_argument` when `op` has an empty collection, or an empty key
// where it needs one.
KEYFOLIO_EXPORT Result<void> check_names(const WriteBatch::Operation& op);

// The `conflict` error of an operation whose expectation failed on finding
// `found` (nullopt: absent); it names the key, what was expected and what
// was found.
KEYFOLIO_EXPORT Error conflict_error(const WriteBatch::Operation& op, std::optional<std::uint64_t> found);

// Checks every operation of `batch` in order, `lookup` asked at most once
// per key and never for a collection the batch has cleared with erase_all:
// `conflict` (see conflict_error) at the first operation whose expectation
// fails, `invalid_argument` for an empty collection or key. On success, the
// version each operation leaves its key at, in order (0 for erase,
// erase_all and expect).
KEYFOLIO_EXPORT Result<std::vector<std::uint64_t>> check_batch(const WriteBatch& batch, const VersionLookup& lookup);

}  // namespace keyfolio
