// Checking a WriteBatch's expectations against a backend's current state,
// shared by backends that apply a batch under one lock or transaction.
#pragma once

#include <keyfolio/storage.hpp>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace keyfolio::detail {

// The version `key` has before the batch, or nullopt when absent.
using VersionLookup =
    std::function<Result<std::optional<std::uint64_t>>(const std::string& collection, const std::string& key)>;

// Walks the batch in order, tracking the versions its own operations produce,
// and returns `conflict` (or `invalid_argument` for an empty collection or
// key) at the first operation whose expectation fails. On success, returns
// the version each operation leaves its key at (0 for erases, erase_all and
// expect).
Result<std::vector<std::uint64_t>> check_batch(const WriteBatch& batch, const VersionLookup& lookup);

}  // namespace keyfolio::detail
