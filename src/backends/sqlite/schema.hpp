// The schema of keyfolio's SQLite stores: telling a keyfolio store from
// other SQLite files, creating it, and migrating older ones.
//
// A store is marked by its application id and carries its schema version in
// `PRAGMA user_version`; sqlite_schema_version is the one this keyfolio
// writes.
#pragma once

#include <keyfolio/error.hpp>

#include "backends/sqlite/connection.hpp"

#include <cstdint>

namespace keyfolio::detail::sqlite {

// The `kind` column of the change log.
enum class LoggedKind : int { put = 0, erase = 1, erase_all = 2, resync = 3 };

// Whether the file is a keyfolio store (or still empty), read without
// changing anything. Returns its schema version: `invalid_argument` for
// another application's database, `not_supported` for a newer schema,
// `corrupt_data` for a schema with objects keyfolio did not create or
// without one of its tables.
Result<std::int64_t> identify(Connection& c);

// Creates or migrates the schema, under the write lock, in one transaction.
Result<void> prepare_schema(Connection& c);

}  // namespace keyfolio::detail::sqlite
