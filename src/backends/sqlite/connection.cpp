#include "backends/sqlite/connection.hpp"

#include "backends/sqlite/schema.hpp"
#include "detail/text.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <thread>

namespace keyfolio::detail::sqlite {

Result<void> Connection::exec(const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(what, rc);
  return {};
}

Result<void> Connection::prepare_all() {
  struct Item {
    Statement* s;
    const char* sql;
  };
  const Item items[] = {
      // A write takes the write lock at its start, so that the versions it
      // checks cannot change before it commits, in any process.
      {&begin, "BEGIN IMMEDIATE"},
      {&commit, "COMMIT"},
      {&rollback, "ROLLBACK"},
      {&get, "SELECT version, value FROM records WHERE collection = ?1 AND key = ?2"},
      {&scan, "SELECT key, version, value FROM records WHERE collection = ?1 ORDER BY key"},
      {&scan_from, "SELECT key, version, value FROM records WHERE collection = ?1 AND key >= ?2 ORDER BY key"},
      {&scan_range,
       "SELECT key, version, value FROM records WHERE collection = ?1 AND key >= ?2 AND key < ?3 ORDER BY key"},
      // Each write states its expectation, so that a change count of
      // zero is a conflict: no separate read of the version.
      {&insert_new,
       "INSERT INTO records (collection, key, version, value) VALUES (?1, ?2, 1, ?3) "
       "ON CONFLICT (collection, key) DO NOTHING"},
      {&update_at, "UPDATE records SET version = ?4, value = ?5 WHERE collection = ?1 AND key = ?2 AND version = ?3"},
      {&erase_at, "DELETE FROM records WHERE collection = ?1 AND key = ?2 AND version = ?3"},
      {&erase_all, "DELETE FROM records WHERE collection = ?1"},
      {&log, "INSERT INTO changes (kind, collection, key, version) VALUES (?1, ?2, ?3, ?4)"},
      {&trim, "DELETE FROM changes WHERE seq <= ?1"},
      {&data_version, "PRAGMA data_version"},
      {&changes_since, "SELECT seq, kind, collection, key, version FROM changes WHERE seq > ?1 ORDER BY seq"},
      {&log_bounds, "SELECT ifnull(min(seq), 0), ifnull(max(seq), 0) FROM changes"},
  };
  for (const auto& item : items) {
    if (const int rc = item.s->prepare(db.get(), item.sql); rc != SQLITE_OK) return fail("preparing statements", rc);
  }
  return {};
}

namespace {

// Switches `c` to WAL mode, which the file then keeps; fails on a file
// system that cannot have it. Only a new store's first switch takes a lock:
// when several handles race to make that switch, SQLite reports the loser
// busy at once rather than through the busy handler (waiting there while
// holding its read lock could deadlock), so the switch is retried until the
// busy timeout.
Result<void> enter_wal_mode(Connection& c, std::chrono::milliseconds busy_timeout) {
  Statement s;
  if (const int rc = s.prepare(c.db.get(), "PRAGMA journal_mode = WAL"); rc != SQLITE_OK) {
    return c.fail("switching to WAL mode", rc);
  }
  const auto deadline = std::chrono::steady_clock::now() + busy_timeout;
  for (;;) {
    Use use(s);
    const int step = use.step();
    if ((step & 0xff) == SQLITE_BUSY && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (step != SQLITE_ROW) return c.fail("switching to WAL mode", step);
    if (const std::string mode = use.text(0); mode != "wal") {
      return Error(errc::storage_error, store_label(c.path) +
                                            ": the file system does not support WAL mode (journal mode stays " +
                                            detail::quote(mode) + ")");
    }
    return {};
  }
}

// Refuses a store whose file, or -wal or -shm file, other users may read or
// write. The records are sealed, but their ciphertext, sizes and keys are the
// owner's alone, and a file others can write can be rolled back or tampered
// with. keyfolio creates the file 0600 and SQLite gives its -wal and -shm
// files the same mode; a looser one was set by someone else.
Result<void> check_private(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      if (errno == ENOENT && *suffix != '\0') continue;
      return Error(errc::storage_error, store_label(path) + ": cannot read the mode of " +
                                            detail::quote(file, 200) + ": " + std::strerror(errno));
    }
    if ((st.st_mode & 077) == 0) continue;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    const std::string which = *suffix == '\0' ? "the file" : "its file " + detail::quote(file, 200);
    return Error(errc::storage_error, store_label(path) + ": " + which + " is accessible by other users (mode " +
                                          mode + "); nothing was changed: run chmod 600 " +
                                          detail::quote(file, 200) + " to open it");
  }
  return {};
}

// Has SQLite overwrite what a write removes (an erased record, the old value
// of an updated one) with zeros, in the pages it leaves behind, instead of
// leaving those bytes in the file's free space. Builds differ in the default
// (Debian's is on, SQLite's own is off), so it is set on every connection;
// a build that cannot do it is refused rather than quietly leaving old
// ciphertext behind.
Result<void> overwrite_erased_content(Connection& c) {
  Statement s;
  if (const int rc = s.prepare(c.db.get(), "PRAGMA secure_delete = ON"); rc != SQLITE_OK) {
    return c.fail("turning on secure delete", rc);
  }
  Use use(s);
  const int step = use.step();
  if (step != SQLITE_ROW && step != SQLITE_DONE) return c.fail("turning on secure delete", step);
  if (step == SQLITE_DONE || use.int64(0) != 1) {
    return Error(errc::storage_error, store_label(c.path) +
                                          ": this SQLite build cannot overwrite erased records "
                                          "(PRAGMA secure_delete)");
  }
  return {};
}

}  // namespace

int busy_timeout_ms(const SqliteOptions& options) {
  return static_cast<int>(std::min<std::int64_t>(options.busy_timeout.count(), INT32_MAX));
}

Result<Connection> connect(const std::filesystem::path& path, const SqliteOptions& options) {
  Connection c;
  c.path = path.string();
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(c.path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  c.db.reset(raw);
  if (rc != SQLITE_OK) return c.fail("opening", rc);
  sqlite3_extended_result_codes(c.db.get(), 1);
  if (sqlite3_db_readonly(c.db.get(), "main") == 1) {
    return Error(errc::storage_error, store_label(c.path) + ": the file is not writable by this process");
  }
  sqlite3_busy_timeout(c.db.get(), busy_timeout_ms(options));
  // Before anything that writes (the journal mode is stored in the file):
  // leave other applications' databases untouched.
  // In one read transaction, so that the header and the schema are read in
  // one snapshot: another handle may be creating the store meanwhile, and
  // its tables without its application id is not another application's
  // database.
  if (auto r = c.exec("BEGIN", "reading the file header"); !r) return r.error();
  auto known = identify(c);
  (void)c.exec(known ? "COMMIT" : "ROLLBACK", "ending the read of the file header");
  if (!known) return known.error();
  if (auto private_file = check_private(c.path); !private_file) return private_file.error();
  if (auto wal = enter_wal_mode(c, options.busy_timeout); !wal) return wal.error();
  const char* sync = options.durability == SqliteOptions::Durability::full ? "PRAGMA synchronous = FULL"
                                                                           : "PRAGMA synchronous = NORMAL";
  if (auto r = c.exec(sync, "setting durability"); !r) return r.error();
  if (auto r = c.exec("PRAGMA foreign_keys = OFF; PRAGMA trusted_schema = OFF", "configuring"); !r) return r.error();
  // A log that a checkpoint reset is written again from its start, and
  // SQLite keeps the file's length for speed: the frames past the new end
  // keep old page images (replaced values) until the file is cut. With a
  // limit of zero, the first commit after the reset cuts the file at its
  // own end.
  if (options.truncate_log) {
    if (auto r = c.exec("PRAGMA journal_size_limit = 0", "limiting the write-ahead log"); !r) return r.error();
  }
  if (auto r = overwrite_erased_content(c); !r) return r.error();
  return c;
}

}  // namespace keyfolio::detail::sqlite
