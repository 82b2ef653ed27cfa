// One connection to a keyfolio SQLite store, with the statements keyfolio
// prepares on it. Each backend handle has one for its calls, and its change
// feed one more; a connection is used by one thread at a time.
#pragma once

#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/error.hpp>

#include "backends/sqlite/errors.hpp"
#include "backends/sqlite/statement.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace keyfolio::detail::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

struct Connection {
  Db db;
  std::string path;
  Statement begin, commit, rollback, get, scan, scan_from, scan_range, insert_new, update_at, erase_at, erase_all, log,
      trim;
  Statement data_version, changes_since, log_bounds;

  // The error of result code `rc` while doing `what` on this connection.
  Error fail(std::string_view what, int rc) const { return result_error(path, db.get(), what, rc); }

  // Runs `sql` (one or more statements without parameters).
  Result<void> exec(const char* sql, std::string_view what);

  // Prepares the statements above; the schema must exist.
  Result<void> prepare_all();
};

// The busy timeout of `options`, as SQLite takes it.
int busy_timeout_ms(const SqliteOptions& options);

// Opens a connection on a keyfolio store (or an empty file), in WAL mode.
Result<Connection> connect(const std::filesystem::path& path, const SqliteOptions& options);

}  // namespace keyfolio::detail::sqlite
