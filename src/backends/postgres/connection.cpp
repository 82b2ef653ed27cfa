#include "backends/postgres/connection.hpp"

#include "detail/text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string>

namespace keyfolio::detail::postgres {
namespace {

// A schema name keyfolio accepts: an unquoted-style identifier, so that the
// same name works in psql without quoting, and none of PostgreSQL's own.
bool valid_schema(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (std::isdigit(static_cast<unsigned char>(s.front()))) return false;
  if (s.size() >= 3 && std::tolower(static_cast<unsigned char>(s[0])) == 'p' &&
      std::tolower(static_cast<unsigned char>(s[1])) == 'g' && s[2] == '_') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// `text` with every occurrence of `secret` replaced.
std::string redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "[redacted]");
    at += 10;
  }
  return text;
}

// libpq's message for a conninfo it could not parse, without what it quoted
// of the conninfo (which may be a password).
std::string parse_message(const char* raw) {
  std::string out;
  bool quoted = false;
  for (const char* p = raw; p && *p; ++p) {
    if (*p == '"') {
      if (!quoted) out += "\"...\"";
      quoted = !quoted;
      continue;
    }
    if (!quoted) out += *p;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// One line: libpq's messages end in a newline and may hold several lines.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string millis(std::chrono::milliseconds ms) { return std::to_string(ms.count()); }

}  // namespace

Result<std::shared_ptr<const Target>> make_target(std::string_view conninfo, PostgresOptions options) {
  if (!valid_schema(options.schema)) {
    return Error(errc::invalid_argument, "postgres store: the schema name " + quote(options.schema, 80) +
                                             " is not 1 to 63 letters, digits and underscores starting with a "
                                             "letter or underscore (and not with pg_)");
  }
  if (options.lock_timeout.count() < 0 || options.statement_timeout.count() < 0 ||
      options.connect_timeout.count() < 0 || options.poll_interval.count() <= 0 || options.pool_size < 1 ||
      options.change_log_size < 1) {
    return Error(errc::invalid_argument,
                 "postgres store: lock_timeout, statement_timeout and connect_timeout must be >= 0, "
                 "poll_interval > 0, pool_size and change_log_size >= 1");
  }
  if (conninfo.find('\0') != std::string_view::npos) {
    return Error(errc::invalid_argument, "postgres store: the connection string holds a NUL byte");
  }
  auto target = std::make_shared<Target>();
  target->conninfo = SecretString(conninfo);
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(target->conninfo.reveal().data(), &error);
  if (parsed == nullptr) {
    std::string message = error ? parse_message(error) : "out of memory";
    PQfreemem(error);
    return Error(errc::invalid_argument, "postgres store: the connection string is not valid: " + message);
  }
  std::string host, hostaddr, port, dbname, user;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "host") host = o->val;
    else if (key == "hostaddr") hostaddr = o->val;
    else if (key == "port") port = o->val;
    else if (key == "dbname") dbname = o->val;
    else if (key == "user") user = o->val;
    else if (key == "password") target->password = SecretString(o->val);
  }
  PQconninfoFree(parsed);
  const std::string_view password = target->password.reveal();
  std::string server = !host.empty() ? host : !hostaddr.empty() ? hostaddr : "the default server";
  if (!port.empty()) server += ":" + port;
  server = redact(server, password);
  dbname = redact(dbname, password);
  target->label = "postgres store " + (dbname.empty() ? std::string("in the default database") : quote(dbname, 80)) +
                  " on " + quote(server, 200) + " (" +
                  (user.empty() ? std::string() : "user " + quote(redact(user, password), 80) + ", ") + "schema " +
                  options.schema + ")";
  target->description = "postgres:" + server + "/" + dbname + "/" + options.schema;
  target->schema_sql = "\"" + options.schema + "\"";
  target->channel = ("kf_" + options.schema).substr(0, 63);
  target->options = std::move(options);
  return std::shared_ptr<const Target>(std::move(target));
}

std::string_view sqlstate(const PGresult* r) noexcept {
  const char* s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  return s ? std::string_view(s) : std::string_view();
}

bool connection_lost(PGconn* c) noexcept { return c == nullptr || PQstatus(c) != CONNECTION_OK; }

Error server_error(const Target& target, PGconn* c, const PGresult* r, std::string_view what) {
  const std::string_view state = sqlstate(r);
  std::string message;
  if (const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr) {
    message = primary;
  } else if (c != nullptr) {
    message = PQerrorMessage(c);
  }
  message = redact(one_line(message), target.password.reveal());
  if (message.empty()) message = "no answer from the server";
  errc code = errc::storage_error;
  const auto is = [&](std::string_view prefix) { return state.substr(0, prefix.size()) == prefix; };
  if (state.empty() || is("08") || is("57P0") || state == "55P03" || state == "57014" || state == "40001" ||
      state == "40P01" || state == "53300") {
    code = errc::unavailable;
    if (state == "55P03") message = "the store's writers' lock was held longer than the lock timeout (" + message + ")";
    if (state == "57014") message = "the statement ran longer than the statement timeout or was cancelled (" + message + ")";
    if (state.empty() && connection_lost(c)) message = "the connection to the server failed: " + message;
  } else if (state == "XX001" || state == "XX002") {
    code = errc::corrupt_data;
  } else if (is("54")) {
    code = errc::invalid_argument;
    message = "a key or value is larger than PostgreSQL accepts (" + message + ")";
  } else if (state == "53100") {
    message = "the server's disk is full (" + message + ")";
  }
  if (!state.empty()) message += " [SQLSTATE " + std::string(state) + "]";
  return Error(code, target.label + ": " + std::string(what) + ": " + message);
}

Params& Params::bytes(std::string_view v) {
  values_.push_back(v.data() != nullptr ? v.data() : "");
  lengths_.push_back(static_cast<int>(v.size()));
  formats_.push_back(1);
  return *this;
}

Params& Params::int64(std::int64_t v) {
  auto buffer = std::make_unique<char[]>(8);
  const auto u = static_cast<std::uint64_t>(v);
  for (int i = 0; i < 8; ++i) buffer[i] = static_cast<char>((u >> (56 - 8 * i)) & 0xff);
  values_.push_back(buffer.get());
  lengths_.push_back(8);
  formats_.push_back(1);
  owned_.push_back(std::move(buffer));
  return *this;
}

std::string_view column_bytes(const PGresult* r, int row, int col) noexcept {
  return {PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col))};
}

std::int64_t column_int64(const PGresult* r, int row, int col) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, col));
  if (PQgetlength(r, row, col) != 8) return 0;
  std::uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];
  return static_cast<std::int64_t>(u);
}

Result<std::unique_ptr<PGconn, ConnDeleter>> connect_raw(const Target& target) {
  const std::string timeout = std::to_string(target.options.connect_timeout.count());
  // Later keywords override earlier ones, and the expanded conninfo counts
  // where `dbname` stands: the conninfo's own connect_timeout wins.
  const std::array<const char*, 4> keys{"connect_timeout", "dbname", "fallback_application_name", nullptr};
  const std::array<const char*, 4> values{timeout.c_str(), target.conninfo.reveal().data(), "keyfolio", nullptr};
  std::unique_ptr<PGconn, ConnDeleter> c(PQconnectdbParams(keys.data(), values.data(), 1));
  if (!c) return Error(errc::unavailable, target.label + ": cannot connect: out of memory");
  // libpq prints the server's notices to stderr unless told otherwise; a
  // library keeps quiet.
  PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    return Error(errc::unavailable, target.label + ": cannot connect: " +
                                        redact(one_line(PQerrorMessage(c.get())), target.password.reveal()));
  }
  return c;
}

Result<std::unique_ptr<Connection>> Connection::open(std::shared_ptr<const Target> target) {
  auto raw = connect_raw(*target);
  if (!raw) return raw.error();
  std::unique_ptr<Connection> c(new Connection(std::move(target), raw->release()));
  const auto& o = c->target().options;
  const std::string settings =
      std::string("SET synchronous_commit TO ") +
      (o.durability == PostgresOptions::Durability::full ? "on" : "off") + "; SET lock_timeout TO " +
      millis(o.lock_timeout) + "; SET statement_timeout TO " + millis(o.statement_timeout) +
      "; SET idle_in_transaction_session_timeout TO 0";
  if (ResultPtr r = c->exec(settings.c_str()); PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return c->fail(r.get(), "applying the session settings");
  }
  c->pid_ = PQbackendPID(c->get());
  if (auto prepared = c->prepare_all(); !prepared) return prepared.error();
  return c;
}

ResultPtr Connection::run(const char* name, const Params& params) {
  return ResultPtr(PQexecPrepared(c_.get(), name, params.count(), params.values(), params.lengths(),
                                  params.formats(), 1));
}

ResultPtr Connection::exec(const char* sql) { return ResultPtr(PQexec(c_.get(), sql)); }

Result<void> Connection::prepare_all() {
  const std::string& s = target_->schema_sql;
  const std::string seq = "(SELECT last_seq FROM " + s + ".meta WHERE id = 1)";
  const std::string statements[][2] = {
      {statement::get, "SELECT version, value FROM " + s + ".records WHERE collection = $1::bytea AND key = $2::bytea"},
      {statement::scan, "SELECT key, version, value FROM " + s + ".records WHERE collection = $1::bytea ORDER BY key"},
      {statement::scan_from, "SELECT key, version, value FROM " + s +
                                 ".records WHERE collection = $1::bytea AND key >= $2::bytea ORDER BY key"},
      {statement::scan_range,
       "SELECT key, version, value FROM " + s +
           ".records WHERE collection = $1::bytea AND key >= $2::bytea AND key < $3::bytea ORDER BY key"},
      // The writers' lock, and the log's sequence numbers for the batch;
      // with the change feed's wake-up, which the server sends at commit.
      {statement::lock, "UPDATE " + s + ".meta SET last_seq = last_seq + $1::bigint WHERE id = 1 RETURNING last_seq"},
      {statement::lock_notify, "UPDATE " + s +
                                   ".meta SET last_seq = last_seq + $1::bigint WHERE id = 1 "
                                   "RETURNING last_seq, pg_notify($2::text, '') IS NULL"},
      // Each write below fails in the server when its expectation does not
      // hold: a duplicate key (23505) or a division by zero (22012); the
      // pipeline stops there, and the transaction is rolled back.
      {statement::insert, "INSERT INTO " + s +
                              ".records (collection, key, version, value) VALUES ($1::bytea, $2::bytea, 1, $3::bytea)"},
      {statement::update, "WITH w AS (UPDATE " + s +
                              ".records SET version = $3::bigint + 1, value = $4::bytea WHERE collection = $1::bytea "
                              "AND key = $2::bytea AND version = $3 RETURNING 1) SELECT 1 / count(*) FROM w"},
      {statement::erase, "WITH w AS (DELETE FROM " + s +
                             ".records WHERE collection = $1::bytea AND key = $2::bytea AND version = $3::bigint "
                             "RETURNING 1) SELECT 1 / count(*) FROM w"},
      {statement::erase_all, "DELETE FROM " + s + ".records WHERE collection = $1::bytea"},
      {statement::expect_version, "SELECT 1 / count(*) FROM " + s +
                                      ".records WHERE collection = $1::bytea AND key = $2::bytea AND version = "
                                      "$3::bigint"},
      {statement::expect_absent,
       "SELECT 1 / (1 - count(*)) FROM " + s + ".records WHERE collection = $1::bytea AND key = $2::bytea"},
      // A change-log entry: $1 counts back from the batch's last number.
      {statement::log, "INSERT INTO " + s + ".changes (seq, kind, collection, key, version, batch) VALUES (" + seq +
                           " - $1::bigint, $2::bigint::smallint, $3::bytea, $4::bytea, $5::bigint, $6::bytea)"},
      {statement::trim, "DELETE FROM " + s + ".changes WHERE seq <= " + seq + " - $1::bigint"},
      {statement::changes_since,
       "SELECT seq, kind::bigint, collection, key, version FROM " + s + ".changes WHERE seq > $1::bigint ORDER BY seq"},
      {statement::last_seq, "SELECT last_seq FROM " + s + ".meta WHERE id = 1"},
      {statement::batch_logged, "SELECT count(*) FROM " + s + ".changes WHERE batch = $1::bytea"},
      {statement::session_alive, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::bigint::integer"},
  };
  for (const auto& [name, sql] : statements) {
    ResultPtr r(PQprepare(c_.get(), name.c_str(), sql.c_str(), 0, nullptr));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return fail(r.get(), "preparing the statements");
  }
  return {};
}

}  // namespace keyfolio::detail::postgres
