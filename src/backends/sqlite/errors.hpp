// The SQLite backend's errors: every message names the store it is about,
// and SQLite's result codes map onto keyfolio's error codes in one place.
#pragma once

#include <keyfolio/error.hpp>

#include <sqlite3.h>

#include <string>
#include <string_view>

namespace keyfolio::detail::sqlite {

// `sqlite store "<path>"`, the start of every message about the store.
std::string store_label(std::string_view path);

// The error of SQLite result code `rc` while doing `what` on the store at
// `path`, with the message and OS error of `db` (null: none was opened).
// Busy and locked map to `unavailable`, corruption to `corrupt_data`, a value
// too big to `invalid_argument`, all else to `storage_error`.
Error result_error(std::string_view path, sqlite3* db, std::string_view what, int rc);

}  // namespace keyfolio::detail::sqlite
