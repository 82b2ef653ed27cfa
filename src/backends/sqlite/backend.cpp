// SqliteBackend: the StorageBackend over one connection to a SQLite store,
// and make_sqlite_backend, which creates the file and its schema.
#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/batch_check.hpp>

#include "backends/sqlite/connection.hpp"
#include "backends/sqlite/errors.hpp"
#include "backends/sqlite/poller.hpp"
#include "backends/sqlite/schema.hpp"
#include "backends/sqlite/statement.hpp"
#include "backends/sqlite/transaction.hpp"
#include "backends/sqlite/wal_frames.hpp"
#include "detail/text.hpp"
#include "storage/subscribers.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace keyfolio::detail::sqlite {
namespace {

// A batch larger than this is logged as one `resync` entry instead of one
// entry per operation: an import of many accounts then costs subscribers one
// re-read instead of a flood of events, and the writer half the inserts.
constexpr std::size_t max_logged_operations = 1024;

// The upper bound of keys starting with `prefix`: the prefix with its last
// non-0xff byte incremented; empty when there is none (no upper bound).
std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

// A lock held by another connection (SQLite's busy handler gave up, or was
// not called).
bool is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

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
      if (auto r = log_change(LoggedKind::resync, "", "", 0); !r) return r;
    }
    // Operations apply in order inside the transaction, so that a later one
    // sees what an earlier one left; any failure rolls the whole batch back.
    for (const auto& op : ops) {
      if (auto r = apply(op, log_each); !r) return r;
    }
    if (auto r = trim_log(); !r) return r;
    return tx.commit();
  }

  Result<Subscription> subscribe(ChangeHandler handler) override {
    std::lock_guard lock(subscribe_mutex_);
    if (!poller_) {
      auto poller = Poller::open(path_, options_, subscribers_, wal_);
      if (!poller) return poller.error();
      poller_ = std::move(*poller);
      thread_ = std::thread([p = poller_] { Poller::run(p); });
      std::lock_guard connection(mutex_);
      sqlite3_wal_hook(c_.db.get(), &WalFrames::hook, wal_.get());
    }
    return subscribers_->add(std::move(handler));
  }

  // A checkpoint that copies the whole log into the database file and
  // truncates the log to nothing. It must wait for every reader to leave the
  // log (this handle's feed polls in short read transactions; another
  // connection may read for longer) and for any writer, and SQLite fails it
  // at once, without its busy handler, while another connection checkpoints
  // (this handle's feed does, now and then): so it is tried again until the
  // busy timeout has passed, the busy handler bounded by what is left of it.
  // It runs on the handle's own connection under its lock, so that no write
  // of this handle comes between.
  Result<void> scrub() override {
    using clock = std::chrono::steady_clock;
    std::lock_guard lock(mutex_);
    sqlite3* db = c_.db.get();
    const auto deadline = clock::now() + options_.busy_timeout;
    int rc = SQLITE_OK;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      sqlite3_busy_timeout(db, static_cast<int>(std::clamp<std::int64_t>(left, 0, INT32_MAX)));
      rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
      if (!is_busy(rc) || clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    sqlite3_busy_timeout(db, busy_timeout_ms(options_));
    if (rc == SQLITE_OK) {
      wal_->frames.store(0, std::memory_order_relaxed);  // no checkpoint left due
      return {};
    }
    if (is_busy(rc)) {
      return Error(errc::unavailable,
                   store_label(c_.path) + ": cannot empty its write-ahead log " + detail::quote(c_.path + "-wal", 200) +
                       ": another connection (another process with the store open) kept reading, writing or "
                       "checkpointing longer than the busy timeout; old page images stay in that file until a "
                       "later scrub, or the close of the store's last connection, removes them");
    }
    return c_.fail("emptying the write-ahead log", rc);
  }

  std::string describe() const override { return "sqlite:" + path_.string(); }

 private:
  // Applies one operation of a batch inside its write transaction, and logs
  // it when `log_each`. A put or erase states the version it expects in its
  // statement; one that changes no row found another version.
  Result<void> apply(const WriteBatch::Operation& op, bool log_each) {
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
          return {};
        }
        rc = Use(c_.erase_at).blob(1, op.collection).blob(2, op.key).integer(3, expected).step();
        matched = sqlite3_changes(c_.db.get()) == 1;
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
        return {};  // nothing to write or log
      }
    }
    if (rc != SQLITE_DONE) return c_.fail("writing", rc);
    if (!matched) {
      auto current = version_of(op);
      if (!current) return current.error();
      return conflict_error(op, *current);
    }
    if (!log_each) return {};
    return log_change(kind, op.collection, op.key, version);
  }

  // Appends one entry to the change log, in the write transaction.
  Result<void> log_change(LoggedKind kind, std::string_view collection, std::string_view key, std::uint64_t version) {
    const int rc = Use(c_.log)
                       .integer(1, static_cast<int>(kind))
                       .blob(2, collection)
                       .blob(3, key)
                       .integer(4, static_cast<std::int64_t>(version))
                       .step();
    if (rc != SQLITE_DONE) return c_.fail("logging the change", rc);
    return {};
  }

  // The log is trimmed to change_log_size entries now and then, not on
  // every write.
  Result<void> trim_log() {
    const std::int64_t last = sqlite3_last_insert_rowid(c_.db.get());
    const std::int64_t horizon = last - static_cast<std::int64_t>(options_.change_log_size);
    if (horizon > trimmed_through_ + 256) {
      if (const int rc = Use(c_.trim).integer(1, horizon).step(); rc != SQLITE_DONE) {
        return c_.fail("trimming the change log", rc);
      }
      trimmed_through_ = horizon;
    }
    return {};
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
  std::shared_ptr<Subscribers<ChangeEvent>> subscribers_ = std::make_shared<Subscribers<ChangeEvent>>();
};

Error path_error(const std::filesystem::path& path, const std::string& problem) {
  return Error(errc::storage_error, store_label(path.string()) + ": " + problem);
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
  if (!options.create) return Error(errc::not_found, store_label(path.string()) + " does not exist");
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
}  // namespace keyfolio::detail::sqlite

namespace keyfolio {

Result<std::shared_ptr<StorageBackend>> make_sqlite_backend(const std::filesystem::path& path,
                                                            const SqliteOptions& options) {
  namespace sqlite = detail::sqlite;
  if (path.empty()) return Error(errc::invalid_argument, "sqlite store: the path is empty");
  if (options.busy_timeout.count() < 0 || options.poll_interval.count() <= 0 || options.change_log_size < 1) {
    return Error(errc::invalid_argument,
                 "sqlite store: busy_timeout must be >= 0, poll_interval > 0 and change_log_size >= 1");
  }
  if (auto created = sqlite::create_private_file(path, options); !created) return created.error();
  auto connection = sqlite::connect(path, options);
  if (!connection) return connection.error();
  if (auto schema = sqlite::prepare_schema(*connection); !schema) return schema.error();
  if (auto prepared = connection->prepare_all(); !prepared) return prepared.error();
  return std::shared_ptr<StorageBackend>(
      std::make_shared<sqlite::SqliteBackend>(std::move(*connection), path, options));
}

}  // namespace keyfolio
