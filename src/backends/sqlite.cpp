#include <keyfolio/backends/sqlite.hpp>

#include "storage/subscribers.hpp"
#include "detail/text.hpp"
#include <keyfolio/batch_check.hpp>

#include <sqlite3.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace keyfolio {
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

enum class LoggedKind : int { put = 0, erase = 1, erase_all = 2, resync = 3 };

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

// A batch larger than this is logged as one `resync` entry instead of one
// entry per operation: an import of many accounts then costs subscribers one
// re-read instead of a flood of events, and the writer half the inserts.
constexpr std::size_t max_logged_operations = 1024;

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

// A prepared statement, reset and unbound after each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& o) noexcept : stmt_(std::exchange(o.stmt_, nullptr)) {}
  ~Statement() { sqlite3_finalize(stmt_); }

  int prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Binds and steps a statement; resets it when done.
class Use {
 public:
  explicit Use(const Statement& s) : s_(s.get()) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  Use& blob(int i, std::string_view v) {
    // A zero-length blob must still be a blob, not NULL.
    if (sqlite3_bind_blob64(s_, i, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC) != SQLITE_OK) failed_ = true;
    return *this;
  }
  Use& integer(int i, std::int64_t v) {
    if (sqlite3_bind_int64(s_, i, v) != SQLITE_OK) failed_ = true;
    return *this;
  }
  // A failed bind (a value larger than SQLite accepts) fails the step.
  int step() { return failed_ ? SQLITE_TOOBIG : sqlite3_step(s_); }
  std::string text(int col) const {
    const void* p = sqlite3_column_blob(s_, col);
    const int n = sqlite3_column_bytes(s_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_;
  bool failed_ = false;
};

// The upper bound of keys starting with `prefix`: the prefix with its last
// non-0xff byte incremented; empty when there is none (no upper bound).
std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

// One connection with the statements keyfolio uses on it.
struct Connection {
  Db db;
  std::string path;
  Statement begin, commit, rollback, get, scan, scan_from, scan_range, insert_new, update_at, erase_at, erase_all, log,
      trim;
  Statement data_version, changes_since, log_bounds;

  Error fail(std::string_view what, int rc) const {
    const char* message = db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
    const int primary = rc & 0xff;
    const int system_errno = db ? sqlite3_system_errno(db.get()) : 0;
    errc code = errc::storage_error;
    std::string detail = message;
    // The OS error is only meaningful for I/O failures; SQLite keeps an
    // older one otherwise.
    const bool io = primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_FULL;
    const int os_error = io ? system_errno : 0;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      code = errc::unavailable;
      detail = "the store stayed locked by another connection longer than the busy timeout";
    } else if (primary == SQLITE_CORRUPT) {
      code = errc::corrupt_data;
    } else if (primary == SQLITE_TOOBIG) {
      code = errc::invalid_argument;
      detail = "a key or value is larger than SQLite accepts";
    } else if (primary == SQLITE_NOTADB) {
      detail = "the file is not a SQLite database";
    } else if (primary == SQLITE_READONLY) {
      detail = "the store is read-only here (" + detail + ")";
    } else if (primary == SQLITE_FULL || rc == SQLITE_IOERR_WRITE || os_error == ENOSPC || os_error == EFBIG ||
               os_error == EDQUOT) {
      // SQLite reports a full disk as SQLITE_FULL only for short writes; a
      // failed write (ENOSPC, EFBIG, EDQUOT) comes as SQLITE_IOERR_WRITE.
      detail = "could not write to the disk: it is full, the file reached a size limit, or the device failed";
      if (os_error != 0) detail += " (" + std::string(std::strerror(os_error)) + ")";
    } else if (os_error != 0) {
      detail += " (" + std::string(std::strerror(os_error)) + ")";
    }
    return Error(code, "sqlite store " + detail::quote(path, 200) + ": " + std::string(what) + ": " + detail);
  }

  Result<void> exec(const char* sql, std::string_view what) {
    const int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail(what, rc);
    return {};
  }

  Result<void> prepare_all() {
    struct Item {
      Statement* s;
      const char* sql;
    };
    const Item items[] = {
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
};

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Connection& c) : c_(c) {}
  ~Transaction() {
    if (open_) Use(c_.rollback).step();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result<void> begin() {
    const int rc = Use(c_.begin).step();
    if (rc != SQLITE_DONE) return c_.fail("starting a write", rc);
    open_ = true;
    return {};
  }
  Result<void> commit() {
    const int rc = Use(c_.commit).step();
    if (rc != SQLITE_DONE) return c_.fail("committing", rc);
    open_ = false;
    return {};
  }

 private:
  Connection& c_;
  bool open_ = false;
};

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

// Whether the file is a keyfolio store (or still empty), read without
// changing anything. Returns its schema version.
Result<std::int64_t> identify(Connection& c) {
  int rc = SQLITE_OK;
  const std::int64_t app = read_scalar(c, "PRAGMA application_id", rc);
  if (rc != SQLITE_OK) return c.fail("reading the file header", rc);
  const std::int64_t version = read_scalar(c, "PRAGMA user_version", rc);
  if (rc != SQLITE_OK) return c.fail("reading the file header", rc);
  const std::int64_t objects = read_scalar(c, "SELECT count(*) FROM sqlite_schema", rc);
  if (rc != SQLITE_OK) return c.fail("reading the schema", rc);
  if (app != application_id && (app != 0 || version != 0 || objects != 0)) {
    return Error(errc::invalid_argument, "sqlite store " + detail::quote(c.path, 200) +
                                             ": the file is a SQLite database but not a keyfolio store; "
                                             "nothing was changed");
  }
  if (version < 0) {
    return Error(errc::corrupt_data, "sqlite store " + detail::quote(c.path, 200) + " has an invalid schema version " +
                                         std::to_string(version));
  }
  if (version > sqlite_schema_version) {
    return Error(errc::not_supported, "sqlite store " + detail::quote(c.path, 200) + " has schema version " +
                                          std::to_string(version) + ", newer than this keyfolio supports (" +
                                          std::to_string(sqlite_schema_version) + "); open it with a newer keyfolio");
  }
  return version;
}

// Opens a connection on a keyfolio store (or an empty file), in WAL mode.
Result<Connection> connect(const std::filesystem::path& path, const SqliteOptions& options) {
  Connection c;
  c.path = path.string();
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(c.path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  c.db.reset(raw);
  if (rc != SQLITE_OK) return c.fail("opening", rc);
  sqlite3_extended_result_codes(c.db.get(), 1);
  if (sqlite3_db_readonly(c.db.get(), "main") == 1) {
    return Error(errc::storage_error, "sqlite store " + detail::quote(c.path, 200) +
                                          ": the file is not writable by this process");
  }
  sqlite3_busy_timeout(c.db.get(), static_cast<int>(std::min<std::int64_t>(options.busy_timeout.count(), INT32_MAX)));
  // Before anything that writes (the journal mode is stored in the file):
  // leave other applications' databases untouched.
  if (auto known = identify(c); !known) return known.error();
  {
    Statement s;
    if (const int prc = s.prepare(c.db.get(), "PRAGMA journal_mode = WAL"); prc != SQLITE_OK) {
      return c.fail("switching to WAL mode", prc);
    }
    Use use(s);
    const int step = use.step();
    if (step != SQLITE_ROW) return c.fail("switching to WAL mode", step);
    if (const std::string mode = use.text(0); mode != "wal") {
      return Error(errc::storage_error, "sqlite store " + detail::quote(c.path, 200) +
                                            ": the file system does not support WAL mode (journal mode stays " +
                                            detail::quote(mode) + ")");
    }
  }
  const char* sync = options.durability == SqliteOptions::Durability::full ? "PRAGMA synchronous = FULL"
                                                                           : "PRAGMA synchronous = NORMAL";
  if (auto r = c.exec(sync, "setting durability"); !r) return r.error();
  if (auto r = c.exec("PRAGMA foreign_keys = OFF; PRAGMA trusted_schema = OFF", "configuring"); !r) return r.error();
  return c;
}

// Creates or migrates the schema, under the write lock.
Result<void> prepare_schema(Connection& c) {
  if (auto r = c.exec("BEGIN IMMEDIATE", "locking the store to check its schema"); !r) return r.error();
  auto result = [&]() -> Result<void> {
    // Again under the lock: another process may have created it meanwhile.
    auto version = identify(c);
    if (!version) return version.error();
    for (auto v = *version; v < sqlite_schema_version; ++v) {
      if (auto r = c.exec(migrations[v], "migrating the schema"); !r) return r;
    }
    {
      int rc = SQLITE_OK;
      const bool autoincrement =
          read_scalar(c, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'changes' "
                         "AND sql LIKE '%AUTOINCREMENT%'", rc) != 0;
      if (rc != SQLITE_OK) return c.fail("reading the schema", rc);
      if (autoincrement) {
        if (auto r = c.exec(plain_change_log, "rebuilding the change log"); !r) return r;
      }
    }
    if (*version < sqlite_schema_version) {
      const std::string stamp = "PRAGMA application_id = " + std::to_string(application_id) +
                                "; PRAGMA user_version = " + std::to_string(sqlite_schema_version);
      if (auto r = c.exec(stamp.c_str(), "recording the schema version"); !r) return r;
    }
    return {};
  }();
  if (!result) {
    (void)c.exec("ROLLBACK", "rolling back");
    return result;
  }
  return c.exec("COMMIT", "committing the schema");
}

// The size of the write-ahead log after a handle's last commit, as SQLite's
// WAL hook reports it. A subscribed handle installs the hook, which replaces
// SQLite's automatic checkpoint at the end of a commit: the checkpoint a
// commit leaves due runs at the start of the handle's next write instead, or
// on the poller's thread once the handle has been idle for a poll interval.
// A commit then returns as soon as it is durable (so that the poller seldom
// reports it before the writer has taken it in), at no extra cost to a
// stream of writes.
struct WalFrames {
  static constexpr int threshold = 1000;  // SQLite's default automatic checkpoint
  std::atomic<int> frames{0};

  static int hook(void* self, sqlite3*, const char*, int frames) {
    static_cast<WalFrames*>(self)->frames.store(frames, std::memory_order_relaxed);
    return SQLITE_OK;
  }

  bool due() const noexcept { return frames.load(std::memory_order_relaxed) >= threshold; }

  // A passive checkpoint on `db`: copies what no reader still needs and
  // never waits for writers or readers. A busy or partial one is tried
  // again next time.
  void checkpoint(sqlite3* db) {
    int seen = frames.load(std::memory_order_relaxed);
    int logged = 0;
    int copied = 0;
    // Cleared only if no commit reported a newer size meanwhile (one that
    // landed during the checkpoint may not be copied yet).
    if (sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logged, &copied) == SQLITE_OK &&
        copied == logged) {
      frames.compare_exchange_strong(seen, 0, std::memory_order_relaxed);
    }
  }
};

// The change feed of one handle: a thread with its own read connection. It
// lives apart from the backend, because a handler may drop the last
// reference to the backend from the poller's own thread.
//
// It also checkpoints the write-ahead log when the handle has left one due
// and stayed idle (see WalFrames).
class Poller {
 public:
  Poller(Connection watcher, std::int64_t last_seq, std::int64_t data_version, std::chrono::milliseconds interval,
         std::shared_ptr<detail::Subscribers<ChangeEvent>> subscribers, std::shared_ptr<WalFrames> wal)
      : watcher_(std::move(watcher)),
        last_seq_(last_seq),
        data_version_(data_version),
        interval_(interval),
        subscribers_(std::move(subscribers)),
        wal_(std::move(wal)) {}

  static void run(const std::shared_ptr<Poller>& self) {
    std::unique_lock lock(self->mutex_);
    while (!self->stopping_) {
      self->wake_.wait_for(lock, self->interval_, [&] { return self->stopping_; });
      if (self->stopping_) break;
      lock.unlock();
      self->subscribers_->deliver(self->poll_once());
      self->checkpoint();
      lock.lock();
    }
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
  }

 private:
  // What was committed since the last poll. data_version moves for commits
  // of other connections only; the watcher never writes, so every change
  // shows, this handle's own included.
  std::vector<ChangeEvent> poll_once() {
    std::vector<ChangeEvent> events;
    {
      Use version(watcher_.data_version);
      if (version.step() != SQLITE_ROW) return events;
      const std::int64_t now = version.int64(0);
      if (now == data_version_) return events;
      data_version_ = now;
    }
    if (sqlite3_exec(watcher_.db.get(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
      events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});
      return events;
    }
    std::int64_t first = 0;
    {
      Use bounds(watcher_.log_bounds);
      if (bounds.step() == SQLITE_ROW) first = bounds.int64(0);
    }
    if (first > last_seq_ + 1) events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});  // trimmed past us
    {
      Use rows(watcher_.changes_since);
      rows.integer(1, last_seq_);
      for (;;) {
        const int rc = rows.step();
        if (rc != SQLITE_ROW) {
          if (rc != SQLITE_DONE) events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});
          break;
        }
        last_seq_ = rows.int64(0);
        ChangeEvent e;
        switch (static_cast<LoggedKind>(rows.int64(1))) {
          case LoggedKind::put: e.kind = ChangeEvent::Kind::put; break;
          case LoggedKind::erase: e.kind = ChangeEvent::Kind::erase; break;
          case LoggedKind::erase_all: e.kind = ChangeEvent::Kind::erase_all; break;
          case LoggedKind::resync: e.kind = ChangeEvent::Kind::resync; break;
        }
        e.collection = rows.text(2);
        e.key = rows.text(3);
        e.version = static_cast<std::uint64_t>(rows.int64(4));
        events.push_back(std::move(e));
      }
    }
    sqlite3_exec(watcher_.db.get(), "COMMIT", nullptr, nullptr, nullptr);
    return events;
  }

  // The checkpoint a commit left due, once no commit has come for a whole
  // interval; while writes keep coming, each runs it first.
  void checkpoint() {
    const int frames = wal_->frames.load(std::memory_order_relaxed);
    const bool idle = frames == frames_seen_;
    frames_seen_ = frames;
    if (idle && wal_->due()) wal_->checkpoint(watcher_.db.get());
  }

  Connection watcher_;
  std::int64_t last_seq_;
  std::int64_t data_version_;
  std::chrono::milliseconds interval_;
  std::shared_ptr<detail::Subscribers<ChangeEvent>> subscribers_;
  std::shared_ptr<WalFrames> wal_;
  int frames_seen_ = -1;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

class SqliteBackend final : public StorageBackend {
 public:
  SqliteBackend(Connection c, std::filesystem::path path, SqliteOptions options)
      : c_(std::move(c)), path_(std::move(path)), options_(options) {}

  ~SqliteBackend() override {
    std::lock_guard lock(subscribe_mutex_);
    if (!poller_) return;
    poller_->stop();
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // destroyed from a handler: the thread ends on its own
    } else {
      thread_.join();
    }
  }

  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) override {
    std::lock_guard lock(mutex_);
    Use use(c_.get);
    use.blob(1, collection).blob(2, key);
    const int rc = use.step();
    if (rc == SQLITE_DONE) return std::optional<Record>();
    if (rc != SQLITE_ROW) return c_.fail("reading a record", rc);
    return std::optional<Record>(Record{std::string(key), static_cast<std::uint64_t>(use.int64(0)), use.text(1)});
  }

  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix) override {
    std::lock_guard lock(mutex_);
    const std::string end = prefix_end(prefix);
    const Statement& s = prefix.empty() ? c_.scan : end.empty() ? c_.scan_from : c_.scan_range;
    Use use(s);
    use.blob(1, collection);
    if (!prefix.empty()) use.blob(2, prefix);
    if (!end.empty()) use.blob(3, end);
    std::vector<Record> out;
    for (;;) {
      const int rc = use.step();
      if (rc == SQLITE_DONE) return out;
      if (rc != SQLITE_ROW) return c_.fail("scanning records", rc);
      out.push_back(Record{use.text(0), static_cast<std::uint64_t>(use.int64(1)), use.text(2)});
    }
  }

  Result<void> write(const WriteBatch& batch) override {
    if (batch.empty()) return {};
    std::lock_guard lock(mutex_);
    if (wal_->due()) wal_->checkpoint(c_.db.get());  // left due by the last commit
    Transaction tx(c_);
    if (auto r = tx.begin(); !r) return r;
    const auto ops = batch.operations();
    const bool log_each = ops.size() <= max_logged_operations;
    if (!log_each) {
      if (const int rc = Use(c_.log).integer(1, static_cast<int>(LoggedKind::resync)).blob(2, "").blob(3, "").integer(4, 0).step();
          rc != SQLITE_DONE) {
        return c_.fail("logging the change", rc);
      }
    }
    // Operations apply in order inside the transaction, so that a later one
    // sees what an earlier one left; any failure rolls the whole batch back.
    for (const auto& op : ops) {
      if (auto named = check_names(op); !named) return named.error();
      const auto expected = static_cast<std::int64_t>(op.expected_version);
      int rc = SQLITE_DONE;
      bool matched = true;
      std::uint64_t version = 0;
      LoggedKind kind = LoggedKind::put;
      switch (op.kind) {
        case WriteBatch::Kind::put:
          version = op.expected_version + 1;
          rc = op.expected_version == must_not_exist
                   ? Use(c_.insert_new).blob(1, op.collection).blob(2, op.key).blob(3, op.value).step()
                   : Use(c_.update_at)
                         .blob(1, op.collection)
                         .blob(2, op.key)
                         .integer(3, expected)
                         .integer(4, static_cast<std::int64_t>(version))
                         .blob(5, op.value)
                         .step();
          matched = sqlite3_changes(c_.db.get()) == 1;
          break;
        case WriteBatch::Kind::erase:
          kind = LoggedKind::erase;
          if (op.expected_version == must_not_exist) {
            // Erasing what must be absent: a check only, with nothing to log.
            auto current = version_of(op);
            if (!current) return current.error();
            if (*current) return conflict_error(op, *current);
            continue;
          } else {
            rc = Use(c_.erase_at).blob(1, op.collection).blob(2, op.key).integer(3, expected).step();
            matched = sqlite3_changes(c_.db.get()) == 1;
          }
          break;
        case WriteBatch::Kind::erase_all:
          kind = LoggedKind::erase_all;
          rc = Use(c_.erase_all).blob(1, op.collection).step();
          break;
        case WriteBatch::Kind::expect: {
          auto current = version_of(op);
          if (!current) return current.error();
          matched = op.expected_version == must_not_exist ? !*current : *current == op.expected_version;
          if (!matched) return conflict_error(op, *current);
          continue;  // nothing to write or log
        }
      }
      if (rc != SQLITE_DONE) return c_.fail("writing", rc);
      if (!matched) {
        auto current = version_of(op);
        if (!current) return current.error();
        return conflict_error(op, *current);
      }
      if (!log_each) continue;
      rc = Use(c_.log)
               .integer(1, static_cast<int>(kind))
               .blob(2, op.collection)
               .blob(3, op.key)
               .integer(4, static_cast<std::int64_t>(version))
               .step();
      if (rc != SQLITE_DONE) return c_.fail("logging the change", rc);
    }
    // The log is trimmed to change_log_size entries now and then, not on
    // every write.
    const std::int64_t last = sqlite3_last_insert_rowid(c_.db.get());
    const std::int64_t horizon = last - static_cast<std::int64_t>(options_.change_log_size);
    if (horizon > trimmed_through_ + 256) {
      if (const int rc = Use(c_.trim).integer(1, horizon).step(); rc != SQLITE_DONE) {
        return c_.fail("trimming the change log", rc);
      }
      trimmed_through_ = horizon;
    }
    return tx.commit();
  }

  // The version `op`'s key is at now, inside the write transaction.
  Result<std::optional<std::uint64_t>> version_of(const WriteBatch::Operation& op) {
    Use use(c_.get);
    use.blob(1, op.collection).blob(2, op.key);
    const int rc = use.step();
    if (rc == SQLITE_DONE) return std::optional<std::uint64_t>();
    if (rc != SQLITE_ROW) return c_.fail("reading a version", rc);
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(use.int64(0)));
  }

  Result<Subscription> subscribe(ChangeHandler handler) override {
    std::lock_guard lock(subscribe_mutex_);
    if (!poller_) {
      auto watcher = connect(path_, options_);
      if (!watcher) return watcher.error();
      if (auto r = watcher->prepare_all(); !r) return r.error();
      std::int64_t last = 0;
      std::int64_t data_version = 0;
      {
        Use bounds(watcher->log_bounds);
        if (const int rc = bounds.step(); rc != SQLITE_ROW) return watcher->fail("reading the change log", rc);
        last = bounds.int64(1);
      }
      {
        Use version(watcher->data_version);
        if (const int rc = version.step(); rc != SQLITE_ROW) return watcher->fail("polling", rc);
        data_version = version.int64(0);
      }
      poller_ = std::make_shared<Poller>(std::move(*watcher), last, data_version, options_.poll_interval,
                                         subscribers_, wal_);
      thread_ = std::thread([p = poller_] { Poller::run(p); });
      std::lock_guard connection(mutex_);
      sqlite3_wal_hook(c_.db.get(), &WalFrames::hook, wal_.get());
    }
    return subscribers_->add(std::move(handler));
  }

  std::string describe() const override { return "sqlite:" + path_.string(); }

 private:
  // Before c_, whose WAL hook may point at it until c_ closes.
  std::shared_ptr<WalFrames> wal_ = std::make_shared<WalFrames>();
  std::mutex mutex_;  // serializes use of c_
  Connection c_;
  std::filesystem::path path_;
  SqliteOptions options_;
  std::int64_t trimmed_through_ = 0;

  std::mutex subscribe_mutex_;
  std::shared_ptr<Poller> poller_;
  std::thread thread_;
  std::shared_ptr<detail::Subscribers<ChangeEvent>> subscribers_ =
      std::make_shared<detail::Subscribers<ChangeEvent>>();
};

Error path_error(const std::filesystem::path& path, const std::string& problem) {
  return Error(errc::storage_error, "sqlite store " + detail::quote(path.string(), 200) + ": " + problem);
}

// Creates the file with mode 0600 unless it exists.
Result<void> create_private_file(const std::filesystem::path& path, const SqliteOptions& options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return path_error(path, "is a directory, not a store file");
    if (!S_ISREG(st.st_mode)) return path_error(path, "is not a regular file");
    return {};
  }
  if (errno != ENOENT) return path_error(path, std::strerror(errno));
  const auto parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  struct stat pst {};
  if (::stat(parent.c_str(), &pst) != 0 || !S_ISDIR(pst.st_mode)) {
    return path_error(path, "the directory " + detail::quote(parent.string(), 200) + " does not exist");
  }
  if (!options.create) return Error(errc::not_found, "sqlite store " + detail::quote(path.string(), 200) +
                                                         " does not exist");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return {};  // created concurrently
    return path_error(path, std::string("cannot create the file: ") + std::strerror(errno));
  }
  const bool ok = ::fchmod(fd, 0600) == 0;  // the umask may have taken bits away; never added any
  ::close(fd);
  if (!ok) return path_error(path, std::string("cannot set mode 0600: ") + std::strerror(errno));
  return {};
}

}  // namespace

Result<std::shared_ptr<StorageBackend>> make_sqlite_backend(const std::filesystem::path& path,
                                                            const SqliteOptions& options) {
  if (path.empty()) return Error(errc::invalid_argument, "sqlite store: the path is empty");
  if (options.busy_timeout.count() < 0 || options.poll_interval.count() <= 0 || options.change_log_size < 1) {
    return Error(errc::invalid_argument,
                 "sqlite store: busy_timeout must be >= 0, poll_interval > 0 and change_log_size >= 1");
  }
  if (auto created = create_private_file(path, options); !created) return created.error();
  auto connection = connect(path, options);
  if (!connection) return connection.error();
  if (auto schema = prepare_schema(*connection); !schema) return schema.error();
  if (auto prepared = connection->prepare_all(); !prepared) return prepared.error();
  return std::shared_ptr<StorageBackend>(std::make_shared<SqliteBackend>(std::move(*connection), path, options));
}

}  // namespace keyfolio
