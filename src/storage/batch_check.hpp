// Checking a WriteBatch's expectations against a backend's current state,
// shared by backends that apply a batch under one lock or transaction.
#pragma once

#include <keyfolio/storage.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace keyfolio::detail {

// The version `key` has before the batch, or nullopt when absent.
using VersionLookup =
    std::function<Result<std::optional<std::uint64_t>>(const std::string& collection, const std::string& key)>;

// `invalid_argument` when `op` has an empty collection, or an empty key
// where it needs one.
Result<void> check_names(const WriteBatch::Operation& op);

// The `conflict` of an operation whose expectation failed on finding
// `found` (nullopt: absent).
Error conflict(const WriteBatch::Operation& op, std::optional<std::uint64_t> found);

// Walks the batch in order, tracking the versions its own operations produce,
// and returns `conflict` (or `invalid_argument` for an empty collection or
// key) at the first operation whose expectation fails. On success, returns
// the version each operation leaves its key at (0 for erases, erase_all and
// expect).
Result<std::vector<std::uint64_t>> check_batch(const WriteBatch& batch, const VersionLookup& lookup);

}  // namespace keyfolio::detail
