// One libpq connection to a keyfolio PostgreSQL store, and what the rest of
// the backend says about the server.
//
// A Connection is used by one thread at a time. Its statements are prepared
// once, by name, when it opens; parameters and results travel in binary.
#pragma once

#include <keyfolio/backends/postgres.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/secret.hpp>

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::detail::postgres {

// What a store's handles share: where the server is, and how to say so.
struct Target {
  SecretString conninfo;      // as the host gave it; may hold a password
  PostgresOptions options;
  std::string schema_sql;     // the schema as a quoted SQL identifier
  std::string channel;        // the LISTEN/NOTIFY channel
  std::string label;          // for messages: postgres store "host:port/db" (user u, schema s)
  std::string description;    // for describe(): postgres:host:port/db/schema
  SecretString password;      // the password in the conninfo, to keep out of messages
};

// The Target of a conninfo, or `invalid_argument` when libpq cannot parse it
// or the options are out of range.
Result<std::shared_ptr<const Target>> make_target(std::string_view conninfo, PostgresOptions options);

// A result, freed on destruction.
struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};

// The SQLSTATE of a failed result ("" when there is none).
std::string_view sqlstate(const PGresult* r) noexcept;

// The keyfolio error of a failed result or of a failure of the connection
// (r null), as "<label>: <what>: <the server's message>".
Error server_error(const Target& target, PGconn* c, const PGresult* r, std::string_view what);

// Whether a failure means the connection is gone (or never was).
bool connection_lost(PGconn* c) noexcept;

// Parameters of a prepared statement, in binary.
class Params {
 public:
  Params& bytes(std::string_view v);
  Params& int64(std::int64_t v);
  int count() const noexcept { return static_cast<int>(values_.size()); }
  const char* const* values() const noexcept { return values_.data(); }
  const int* lengths() const noexcept { return lengths_.data(); }
  const int* formats() const noexcept { return formats_.data(); }

 private:
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::vector<std::unique_ptr<char[]>> owned_;
};

// The value of column `col` of row `row` of a binary result.
std::string_view column_bytes(const PGresult* r, int row, int col) noexcept;
std::int64_t column_int64(const PGresult* r, int row, int col) noexcept;

class Connection {
 public:
  // Connects, applies the session settings of the options and prepares
  // every statement.
  static Result<std::unique_ptr<Connection>> open(std::shared_ptr<const Target> target);

  PGconn* get() const noexcept { return c_.get(); }
  const Target& target() const noexcept { return *target_; }
  // The server process serving this connection.
  int backend_pid() const noexcept { return pid_; }
  bool broken() const noexcept { return poisoned_ || PQstatus(c_.get()) != CONNECTION_OK; }
  // Marks the connection as not to be used again (its protocol state is
  // unknown).
  void poison() noexcept { poisoned_ = true; }

  // Runs the prepared statement `name` and waits for its result (binary).
  ResultPtr run(const char* name, const Params& params);
  // Runs `sql` (no parameters, text results).
  ResultPtr exec(const char* sql);

  // A failure of `r` (or of the connection) as a keyfolio error.
  Error fail(const PGresult* r, std::string_view what) const {
    return server_error(*target_, c_.get(), r, what);
  }

 private:
  Connection(std::shared_ptr<const Target> target, PGconn* c) : target_(std::move(target)), c_(c) {}
  Result<void> prepare_all();

  std::shared_ptr<const Target> target_;
  std::unique_ptr<PGconn, ConnDeleter> c_;
  int pid_ = 0;
  bool poisoned_ = false;
};

// Opens a connection (no statements prepared, no settings applied): what
// the schema check at open and the change feed's listener use.
Result<std::unique_ptr<PGconn, ConnDeleter>> connect_raw(const Target& target);

// The statements every Connection prepares, by name.
namespace statement {
inline constexpr const char* get = "kf_get";
inline constexpr const char* scan = "kf_scan";
inline constexpr const char* scan_from = "kf_scan_from";
inline constexpr const char* scan_range = "kf_scan_range";
inline constexpr const char* lock = "kf_lock";
inline constexpr const char* lock_notify = "kf_lock_notify";
inline constexpr const char* insert = "kf_insert";
inline constexpr const char* update = "kf_update";
inline constexpr const char* erase = "kf_erase";
inline constexpr const char* erase_all = "kf_erase_all";
inline constexpr const char* expect_version = "kf_expect_version";
inline constexpr const char* expect_absent = "kf_expect_absent";
inline constexpr const char* log = "kf_log";
inline constexpr const char* trim = "kf_trim";
inline constexpr const char* changes_since = "kf_changes_since";
inline constexpr const char* last_seq = "kf_last_seq";
inline constexpr const char* batch_logged = "kf_batch_logged";
inline constexpr const char* session_alive = "kf_session_alive";
}  // namespace statement

// The kinds of change-log entries, as stored.
enum class LoggedKind : int { put = 0, erase = 1, erase_all = 2, resync = 3 };

}  // namespace keyfolio::detail::postgres
