// PostgresBackend: the StorageBackend over a pool of libpq connections to
// one store, and make_postgres_backend, which checks or creates its schema.
#include <keyfolio/backends/postgres.hpp>
#include <keyfolio/batch_check.hpp>

#include "backends/postgres/connection.hpp"
#include "backends/postgres/listener.hpp"
#include "backends/postgres/schema.hpp"
#include "crypto/random.hpp"
#include "storage/subscribers.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace keyfolio::detail::postgres {
namespace {

// A batch larger than this is logged as one `resync` entry, as in SQLite
// stores: an import costs subscribers one re-read.
constexpr std::size_t max_logged_operations = 1024;
// Statements sent before the writer waits for their results: bounds what
// the server holds for the writer to read, so that neither side blocks on a
// full socket.
constexpr std::size_t pipeline_window = 512;
// The log is trimmed by one write in this many of a handle.
constexpr std::uint32_t trim_every = 256;

// The upper bound of keys starting with `prefix`: the prefix with its last
// non-0xff byte incremented; empty when there is none (no upper bound).
std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

// The change-log entry an operation makes: a put (at its new version), an
// erase of a record that was there, an erase_all; nothing for a check.
struct LoggedChange {
  LoggedKind kind;
  std::int64_t version;
};
std::optional<LoggedChange> logged_change(const WriteBatch::Operation& op) {
  const auto expected = static_cast<std::int64_t>(op.expected_version);
  switch (op.kind) {
    case WriteBatch::Kind::put:
      return LoggedChange{LoggedKind::put, op.expected_version == must_not_exist ? 1 : expected + 1};
    case WriteBatch::Kind::erase:
      if (op.expected_version == must_not_exist) return std::nullopt;
      return LoggedChange{LoggedKind::erase, 0};
    case WriteBatch::Kind::erase_all: return LoggedChange{LoggedKind::erase_all, 0};
    case WriteBatch::Kind::expect: return std::nullopt;
  }
  return std::nullopt;
}

// Connections for get, scan and write, opened as needed up to the pool size.
class Pool {
 public:
  explicit Pool(std::shared_ptr<const Target> target) : target_(std::move(target)) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), c_(std::move(other.c_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (c_) pool_->release(std::move(c_));
    }
    Connection& operator*() const noexcept { return *c_; }
    Connection* operator->() const noexcept { return c_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> c_;
  };

  Result<Lease> acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < target_->options.pool_size; });
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(c));
    }
    ++open_;
    lock.unlock();
    auto c = Connection::open(target_);
    if (!c) {
      lock.lock();
      --open_;
      available_.notify_one();
      return c.error();
    }
    return Lease(this, std::move(*c));
  }

 private:
  void release(std::unique_ptr<Connection> c) {
    std::vector<std::unique_ptr<Connection>> dropped;
    {
      std::lock_guard lock(mutex_);
      if (c->broken()) {
        // The server went away or dropped this session: the idle ones are
        // most likely gone too, so the next call connects afresh.
        --open_;
        open_ -= static_cast<unsigned>(idle_.size());
        dropped = std::move(idle_);
        idle_.clear();
        dropped.push_back(std::move(c));
      } else {
        idle_.push_back(std::move(c));
      }
    }
    available_.notify_all();
  }

  std::shared_ptr<const Target> target_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  unsigned open_ = 0;
};

// What became of a batch sent to the server.
struct Outcome {
  enum class Kind {
    done,       // committed
    failed,     // the server refused it; nothing was written
    lost,       // the connection failed before the commit was sent: nothing was written
    unknown,    // the connection failed after the commit was sent
  };
  Kind kind = Kind::done;
  Error error{};
  std::string state{};               // SQLSTATE of a refusal
  std::size_t failed_op = SIZE_MAX;  // the operation the server refused, if one was
  std::string batch_id{};            // what marks the batch's log entries
  int backend_pid = 0;               // the session that ran it
};

class PostgresBackend final : public StorageBackend {
 public:
  explicit PostgresBackend(std::shared_ptr<const Target> target) : target_(std::move(target)), pool_(target_) {}

  ~PostgresBackend() override {
    std::lock_guard lock(subscribe_mutex_);
    if (!listener_) return;
    listener_->stop();
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // destroyed from a handler: the thread ends on its own
    } else {
      thread_.join();
    }
  }

  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) override {
    return reading([&](Connection& c) -> Result<std::optional<Record>> {
      ResultPtr r = c.run(statement::get, Params().bytes(collection).bytes(key));
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return c.fail(r.get(), "reading a record");
      if (PQntuples(r.get()) == 0) return std::optional<Record>();
      return std::optional<Record>(Record{std::string(key), static_cast<std::uint64_t>(column_int64(r.get(), 0, 0)),
                                          std::string(column_bytes(r.get(), 0, 1))});
    });
  }

  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix) override {
    const std::string end = prefix_end(prefix);
    return reading([&](Connection& c) -> Result<std::vector<Record>> {
      Params p;
      p.bytes(collection);
      if (!prefix.empty()) p.bytes(prefix);
      if (!end.empty()) p.bytes(end);
      const char* name = prefix.empty() ? statement::scan : end.empty() ? statement::scan_from : statement::scan_range;
      ResultPtr r = c.run(name, p);
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return c.fail(r.get(), "scanning records");
      const int rows = PQntuples(r.get());
      std::vector<Record> out;
      out.reserve(static_cast<std::size_t>(rows));
      for (int i = 0; i < rows; ++i) {
        out.push_back(Record{std::string(column_bytes(r.get(), i, 0)),
                             static_cast<std::uint64_t>(column_int64(r.get(), i, 1)),
                             std::string(column_bytes(r.get(), i, 2))});
      }
      return out;
    });
  }

  Result<void> write(const WriteBatch& batch) override {
    if (batch.empty()) return {};
    for (const auto& op : batch.operations()) {
      if (auto named = check_names(op); !named) return named.error();
    }
    // A batch the server refused for a serialization failure, or that a
    // connection lost before its commit, is tried once more: nothing of it
    // was written.
    for (int attempt = 0;; ++attempt) {
      auto lease = pool_.acquire();
      if (!lease) return lease.error();
      Outcome outcome = send(**lease, batch);
      switch (outcome.kind) {
        case Outcome::Kind::done: return {};
        case Outcome::Kind::failed: {
          if (outcome.failed_op != SIZE_MAX &&
              (outcome.state == "23505" || outcome.state == "22012")) {
            const auto& op = batch.operations()[outcome.failed_op];
            auto found = version_of(**lease, op);
            if (!found) return found.error();
            return conflict_error(op, *found);
          }
          const bool retry = outcome.state == "40001" || outcome.state == "40P01";
          if (retry && attempt == 0) continue;
          return outcome.error;
        }
        case Outcome::Kind::lost:
          if (attempt == 0) continue;
          return outcome.error;
        case Outcome::Kind::unknown: {
          auto landed = resolve(outcome);
          if (!landed) return landed.error();
          if (*landed) return {};
          if (attempt == 0) continue;
          return Error(errc::unavailable, target_->label +
                                              ": the connection to the server was lost while the batch was "
                                              "committed; the server did not apply it, and nothing was written");
        }
      }
    }
  }

  Result<Subscription> subscribe(ChangeHandler handler) override {
    std::lock_guard lock(subscribe_mutex_);
    if (!listener_) {
      auto listener = Listener::open(target_, subscribers_);
      if (!listener) return listener.error();
      listener_ = std::move(*listener);
      thread_ = std::thread([l = listener_] { Listener::run(l); });
    }
    return subscribers_->add(std::move(handler));
  }

  std::string describe() const override { return target_->description; }

 private:
  // Runs a read on a pooled connection; once more on a new connection when
  // the pooled one turns out to be lost (after a server restart).
  template <class F>
  auto reading(F&& f) -> decltype(f(std::declval<Connection&>())) {
    for (int attempt = 0;; ++attempt) {
      auto lease = pool_.acquire();
      if (!lease) return lease.error();
      auto result = f(**lease);
      if (result || attempt > 0 || !(*lease)->broken()) return result;
    }
  }

  // Sends `batch` as one transaction in one pipeline and reads what the
  // server made of it.
  Outcome send(Connection& c, const WriteBatch& batch) {
    PGconn* conn = c.get();
    const auto ops = batch.operations();
    const bool log_each = ops.size() <= max_logged_operations;
    std::int64_t logged = 0;
    if (log_each) {
      for (const auto& op : ops) logged += logged_change(op) ? 1 : 0;
    } else {
      logged = 1;
    }
    Outcome outcome;
    outcome.batch_id = crypto::random_bytes(16);
    outcome.backend_pid = c.backend_pid();
    const std::string& batch_id = outcome.batch_id;
    const bool trim = logged > 0 && writes_.fetch_add(1, std::memory_order_relaxed) % trim_every == trim_every - 1;

    if (PQenterPipelineMode(conn) != 1) {
      outcome.kind = Outcome::Kind::lost;
      outcome.error = c.fail(nullptr, "starting a write");
      return outcome;
    }
    // queries_[i]: the operation query i applies, or SIZE_MAX.
    std::vector<std::size_t> queries_;
    queries_.reserve(2 * ops.size() + 3);
    std::size_t read = 0;  // queries whose results were read
    bool refused = false;
    bool broken = false;
    const auto queue = [&](const char* name, const Params& p, std::size_t op) {
      const int sent = PQsendQueryPrepared(conn, name, p.count(), p.values(), p.lengths(), p.formats(), 1);
      if (sent != 1) {
        broken = true;
        return;
      }
      queries_.push_back(op);
    };
    const auto read_results = [&](std::size_t upto) {
      while (read < upto && !broken) {
        ResultPtr r(PQgetResult(conn));
        if (!r) {
          broken = true;
          break;
        }
        const auto status = PQresultStatus(r.get());
        if (status == PGRES_FATAL_ERROR && !refused) {
          refused = true;
          outcome.kind = Outcome::Kind::failed;
          outcome.failed_op = queries_[read];
          outcome.error = c.fail(r.get(), "writing");
          outcome.state = std::string(sqlstate(r.get()));
        }
        ++read;
        // Each query's results end with a null.
        while (ResultPtr rest{PQgetResult(conn)}) {
        }
      }
    };
    const auto sync_and_drain = [&]() -> bool {
      if (PQpipelineSync(conn) != 1) return false;
      read_results(queries_.size());
      if (broken) return false;
      ResultPtr sync(PQgetResult(conn));
      return sync && PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC;
    };

    // No BEGIN or COMMIT: the statements up to the Sync are one transaction,
    // which the server commits at the Sync, or rolls back there when one of
    // them failed (it skips the rest).
    if (logged > 0) {
      queue(statement::lock_notify, Params().int64(logged).bytes(target_->channel), SIZE_MAX);
    } else {
      queue(statement::lock, Params().int64(0), SIZE_MAX);
    }
    std::int64_t remaining = logged;  // log entries still to make; seq = last_seq - (remaining - 1)
    const auto log = [&](LoggedKind kind, std::string_view collection, std::string_view key, std::int64_t version) {
      queue(statement::log,
            Params().int64(--remaining).int64(static_cast<std::int64_t>(kind)).bytes(collection).bytes(key).int64(
                version).bytes(batch_id),
            SIZE_MAX);
    };
    if (!log_each) log(LoggedKind::resync, {}, {}, 0);
    for (std::size_t i = 0; i < ops.size() && !broken && !refused; ++i) {
      const auto& op = ops[i];
      const auto expected = static_cast<std::int64_t>(op.expected_version);
      Params p;
      const char* name = nullptr;
      switch (op.kind) {
        case WriteBatch::Kind::put:
          p.bytes(op.collection).bytes(op.key);
          if (op.expected_version == must_not_exist) {
            p.bytes(op.value);
            name = statement::insert;
          } else {
            p.int64(expected).bytes(op.value);
            name = statement::update;
          }
          break;
        case WriteBatch::Kind::erase:
          p.bytes(op.collection).bytes(op.key);
          if (op.expected_version == must_not_exist) {
            name = statement::expect_absent;  // a check only, with nothing to log
          } else {
            p.int64(expected);
            name = statement::erase;
          }
          break;
        case WriteBatch::Kind::erase_all:
          p.bytes(op.collection);
          name = statement::erase_all;
          break;
        case WriteBatch::Kind::expect:
          p.bytes(op.collection).bytes(op.key);
          if (op.expected_version == must_not_exist) {
            name = statement::expect_absent;
          } else {
            p.int64(expected);
            name = statement::expect_version;
          }
          break;
      }
      queue(name, p, i);
      if (log_each) {
        if (const auto change = logged_change(op)) {
          log(change->kind, op.collection, op.kind == WriteBatch::Kind::erase_all ? std::string_view() : op.key,
              change->version);
        }
      }
      if (queries_.size() - read >= pipeline_window && !broken) {
        // Make the server send what it has, and read it before going on.
        if (PQsendFlushRequest(conn) != 1 || PQflush(conn) != 0) broken = true;
        read_results(queries_.size());
      }
    }
    if (!refused && !broken && trim) {
      queue(statement::trim, Params().int64(target_->options.change_log_size), SIZE_MAX);
    }
    // The Sync is the commit: once it is sent, the batch may have landed.
    const bool commit_queued = !refused && !broken;
    const bool synced = !broken && sync_and_drain();
    if (!synced || broken) {
      // A statement the server refused rolls the batch back, Sync or not.
      outcome.kind = commit_queued && !refused ? Outcome::Kind::unknown : Outcome::Kind::lost;
      outcome.error = c.fail(nullptr, "writing");
      outcome.failed_op = SIZE_MAX;
      c.poison();
      return outcome;
    }
    if (PQexitPipelineMode(conn) != 1 || PQtransactionStatus(conn) != PQTRANS_IDLE) c.poison();
    return outcome;
  }

  // The version `op`'s key is at now, for the message of a conflict.
  Result<std::optional<std::uint64_t>> version_of(Connection& c, const WriteBatch::Operation& op) {
    ResultPtr r = c.run(statement::get, Params().bytes(op.collection).bytes(op.key));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return c.fail(r.get(), "reading a version");
    if (PQntuples(r.get()) == 0) return std::optional<std::uint64_t>();
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(column_int64(r.get(), 0, 0)));
  }

  // Whether the batch whose commit was sent on a lost connection landed:
  // once the server has ended the old session, its transaction is over, and
  // it landed exactly when its log entries are there.
  Result<bool> resolve(const Outcome& outcome) {
    using clock = std::chrono::steady_clock;
    const auto wait = std::max<std::chrono::milliseconds>(target_->options.lock_timeout, std::chrono::seconds(1));
    const auto deadline = clock::now() + wait;
    const std::string unknown = ": the connection to the server was lost after the batch was sent, and ";
    for (;;) {
      auto fresh = Connection::open(target_);
      if (fresh) {
        ResultPtr alive = (*fresh)->run(statement::session_alive, Params().int64(outcome.backend_pid));
        if (PQresultStatus(alive.get()) == PGRES_TUPLES_OK && column_int64(alive.get(), 0, 0) == 0) {
          ResultPtr found = (*fresh)->run(statement::batch_logged, Params().bytes(outcome.batch_id));
          if (PQresultStatus(found.get()) == PGRES_TUPLES_OK) return column_int64(found.get(), 0, 0) > 0;
        }
      }
      if (clock::now() >= deadline) {
        return Error(errc::unavailable,
                     target_->label + unknown + "whether the server applied it could not be learned (" +
                         (fresh ? "its old session did not end" : fresh.error().message()) +
                         "): the write may or may not have been applied; read it back before trying again");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::shared_ptr<const Target> target_;
  Pool pool_;
  std::atomic<std::uint32_t> writes_{0};

  std::mutex subscribe_mutex_;
  std::shared_ptr<Listener> listener_;
  std::thread thread_;
  std::shared_ptr<Subscribers<ChangeEvent>> subscribers_ = std::make_shared<Subscribers<ChangeEvent>>();
};

}  // namespace
}  // namespace keyfolio::detail::postgres

namespace keyfolio {

Result<std::shared_ptr<StorageBackend>> make_postgres_backend(std::string_view conninfo, PostgresOptions options) {
  namespace pg = detail::postgres;
  auto target = pg::make_target(conninfo, std::move(options));
  if (!target) return target.error();
  auto c = pg::connect_raw(**target);
  if (!c) return c.error();
  if (auto schema = pg::prepare_schema(c->get(), **target); !schema) return schema.error();
  return std::shared_ptr<StorageBackend>(std::make_shared<pg::PostgresBackend>(std::move(*target)));
}

}  // namespace keyfolio
