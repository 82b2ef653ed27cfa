#include "backends/sqlite/schema.hpp"

#include "backends/sqlite/errors.hpp"
#include "backends/sqlite/statement.hpp"
#include "detail/text.hpp"

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::detail::sqlite {
namespace {

// 'KFS1': marks a SQLite file as a keyfolio store.
constexpr int application_id = 0x4B465331;

// Schema steps: entry i brings a store from version i to i + 1.
constexpr const char* migrations[] = {
    // 0 -> 1: records, and the change log behind the change feed.
    "CREATE TABLE records ("
    "  collection BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  value BLOB NOT NULL,"
    "  PRIMARY KEY (collection, key)) WITHOUT ROWID;"
    // Sequence numbers come from the rowid (the largest plus one): the log
    // is trimmed from its oldest end only, and never past its newest entry,
    // so they keep increasing without AUTOINCREMENT's sequence table (one
    // more page written by every commit).
    "CREATE TABLE changes ("
    "  seq INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  collection BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  version INTEGER NOT NULL);",
};
static_assert(std::size(migrations) == sqlite_schema_version);

// Stores created before the change log lost AUTOINCREMENT have the same
// schema version: both layouts read and write alike, so a store stays open
// to every keyfolio that knows version 1. Such a log is rebuilt in place,
// keeping its entries; should the sequence table be ahead of the newest one,
// a resync entry takes the next number, so that no subscriber's position
// is handed out again.
constexpr const char* plain_change_log =
    "CREATE TABLE changes_plain ("
    "  seq INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  collection BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  version INTEGER NOT NULL);"
    "INSERT INTO changes_plain SELECT seq, kind, collection, key, version FROM changes;"
    "INSERT INTO changes_plain (seq, kind, collection, key, version)"
    "  SELECT seq + 1, 3, x'', x'', 0 FROM sqlite_sequence"
    "  WHERE name = 'changes' AND seq > (SELECT ifnull(max(seq), 0) FROM changes);"
    "DROP TABLE changes;"
    "ALTER TABLE changes_plain RENAME TO changes;";
static_assert(static_cast<int>(LoggedKind::resync) == 3);  // the kind plain_change_log inserts

std::int64_t read_scalar(Connection& c, const char* sql, int& rc) {
  Statement s;
  rc = s.prepare(c.db.get(), sql);
  if (rc != SQLITE_OK) return 0;
  Use use(s);
  rc = use.step();
  if (rc != SQLITE_ROW) return 0;
  rc = SQLITE_OK;
  return use.int64(0);
}

// Rebuilds a change log created with AUTOINCREMENT as a plain one.
Result<void> rebuild_change_log(Connection& c) {
  int rc = SQLITE_OK;
  const bool autoincrement =
      read_scalar(c, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'changes' "
                     "AND sql LIKE '%AUTOINCREMENT%'", rc) != 0;
  if (rc != SQLITE_OK) return c.fail("reading the schema", rc);
  if (!autoincrement) return {};
  return c.exec(plain_change_log, "rebuilding the change log");
}

// The schema steps, inside prepare_schema's transaction.
Result<void> migrate(Connection& c) {
  // Again under the lock: another process may have created it meanwhile.
  auto version = identify(c);
  if (!version) return version.error();
  for (auto v = *version; v < sqlite_schema_version; ++v) {
    if (auto r = c.exec(migrations[v], "migrating the schema"); !r) return r;
  }
  if (auto r = rebuild_change_log(c); !r) return r;
  if (*version < sqlite_schema_version) {
    const std::string stamp = "PRAGMA application_id = " + std::to_string(application_id) +
                              "; PRAGMA user_version = " + std::to_string(sqlite_schema_version);
    if (auto r = c.exec(stamp.c_str(), "recording the schema version"); !r) return r;
  }
  return {};
}

// keyfolio's own tables: what migrations[] create.
constexpr std::string_view own_tables[] = {"records", "changes"};

bool is_own_table(std::string_view name) {
  return std::find(std::begin(own_tables), std::end(own_tables), name) != std::end(own_tables);
}

// Whether a row of sqlite_schema is an object keyfolio's schema steps
// create, or one SQLite creates for them: the index of a table's PRIMARY KEY
// or UNIQUE constraint (named sqlite_autoindex_<table>_<n>, without SQL of
// its own), and sqlite_sequence, which AUTOINCREMENT in an older change log
// created and which SQLite never drops.
bool is_own_object(std::string_view type, std::string_view name, std::string_view table, bool has_sql) {
  if (type == "table") return name == table && (is_own_table(name) || name == "sqlite_sequence");
  if (type == "index") {
    return !has_sql && is_own_table(table) && name.starts_with("sqlite_autoindex_" + std::string(table) + "_");
  }
  return false;
}

// Refuses a store whose schema is not exactly what keyfolio makes of it
// (see is_own_object). keyfolio reads and writes its tables only through its
// own statements, but SQLite runs whatever the schema holds along with them:
// a planted trigger could keep a copy of every replaced or erased record,
// an index holds copies of the values it indexes, and a view or another
// table has no place in a store. At schema version 1 and later, each of
// keyfolio's tables must be there.
Result<void> check_objects(Connection& c, std::int64_t version) {
  Statement s;
  if (const int rc = s.prepare(c.db.get(), "SELECT type, name, tbl_name, sql IS NOT NULL FROM sqlite_schema");
      rc != SQLITE_OK) {
    return c.fail("reading the schema", rc);
  }
  Use use(s);
  std::vector<std::string> tables;
  for (;;) {
    const int rc = use.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return c.fail("reading the schema", rc);
    const std::string type = use.text(0);
    const std::string name = use.text(1);
    const std::string table = use.text(2);
    if (!is_own_object(type, name, table, use.int64(3) != 0)) {
      const std::string what = (type == "table" || type == "index" || type == "view" || type == "trigger")
                                   ? type
                                   : "schema object of type " + detail::quote(type);
      const std::string on = type == "index" || type == "trigger" ? " on " + detail::quote(table) : "";
      return Error(errc::corrupt_data,
                   store_label(c.path) + " holds " + (type == "index" ? "an " : "a ") + what + " " +
                       detail::quote(name) + on +
                       " that keyfolio did not create, and which could copy or change its records; the store "
                       "was not opened and nothing was changed: if you added it, drop it, else restore the "
                       "store from a backup");
    }
    if (type == "table") tables.push_back(name);
  }
  if (version < 1) return {};
  for (const std::string_view own : own_tables) {
    if (std::find(tables.begin(), tables.end(), own) == tables.end()) {
      return Error(errc::corrupt_data, store_label(c.path) + " has schema version " + std::to_string(version) +
                                           " but no table " + detail::quote(own) +
                                           "; restore the store from a backup");
    }
  }
  return {};
}

}  // namespace

Result<std::int64_t> identify(Connection& c) {
  int rc = SQLITE_OK;
  const std::int64_t app = read_scalar(c, "PRAGMA application_id", rc);
  if (rc != SQLITE_OK) return c.fail("reading the file header", rc);
  const std::int64_t version = read_scalar(c, "PRAGMA user_version", rc);
  if (rc != SQLITE_OK) return c.fail("reading the file header", rc);
  const std::int64_t objects = read_scalar(c, "SELECT count(*) FROM sqlite_schema", rc);
  if (rc != SQLITE_OK) return c.fail("reading the schema", rc);
  if (app != application_id && (app != 0 || version != 0 || objects != 0)) {
    return Error(errc::invalid_argument, store_label(c.path) +
                                             ": the file is a SQLite database but not a keyfolio store; "
                                             "nothing was changed");
  }
  if (version < 0) {
    return Error(errc::corrupt_data,
                 store_label(c.path) + " has an invalid schema version " + std::to_string(version));
  }
  if (version > sqlite_schema_version) {
    return Error(errc::not_supported, store_label(c.path) + " has schema version " + std::to_string(version) +
                                          ", newer than this keyfolio supports (" +
                                          std::to_string(sqlite_schema_version) + "); open it with a newer keyfolio");
  }
  if (auto own = check_objects(c, version); !own) return own.error();
  return version;
}

Result<void> prepare_schema(Connection& c) {
  if (auto r = c.exec("BEGIN IMMEDIATE", "locking the store to check its schema"); !r) return r.error();
  auto result = migrate(c);
  if (!result) {
    (void)c.exec("ROLLBACK", "rolling back");
    return result;
  }
  return c.exec("COMMIT", "committing the schema");
}

}  // namespace keyfolio::detail::sqlite
