// The PostgreSQL server of the tests: the one KEYFOLIO_TEST_POSTGRES names,
// else the throwaway server the `postgres` ctest fixture started. Each test
// store gets a schema of its own, dropped at the end.
#pragma once

#include <keyfolio/backends/postgres.hpp>

#include <libpq-fe.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>

namespace keyfolio::test {

// The conninfo of the test server; throws (failing the test, never skipping
// it) when there is none.
inline std::string postgres_conninfo() {
  if (const char* env = std::getenv("KEYFOLIO_TEST_POSTGRES"); env != nullptr && *env != '\0') return env;
#ifdef KEYFOLIO_TEST_POSTGRES_FILE
  std::ifstream in(KEYFOLIO_TEST_POSTGRES_FILE);
  std::string line;
  if (in && std::getline(in, line) && !line.empty()) return line;
#endif
  throw std::runtime_error(
      "no PostgreSQL server for the tests: run them through ctest (its `postgres` fixture starts one) or set "
      "KEYFOLIO_TEST_POSTGRES to a conninfo");
}

// The test server as a postgresql:// URI, as the command-line tool takes a
// store: every parameter of postgres_conninfo() in the query, with `user`
// and `password` (percent-encoded) in the URI's user part when given.
inline std::string postgres_uri(const std::string& user = {}, const std::string& password = {}) {
  const auto encoded = [](std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += static_cast<char>(c);
      } else {
        char hex[4];
        std::snprintf(hex, sizeof hex, "%%%02X", c);
        out += hex;
      }
    }
    return out;
  };
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(postgres_conninfo().c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    throw std::runtime_error("the test server's conninfo does not parse");
  }
  std::string query;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const std::string_view key = o->keyword;
    if ((key == "user" && !user.empty()) || (key == "password" && !user.empty())) continue;
    query += (query.empty() ? "?" : "&") + std::string(key) + "=" + encoded(o->val);
  }
  PQconninfoFree(options);
  std::string who;
  if (!user.empty()) who = encoded(user) + (password.empty() ? "" : ":" + encoded(password)) + "@";
  return "postgresql://" + who + "/" + query;
}

using PostgresConnection = std::unique_ptr<PGconn, decltype(&PQfinish)>;

// A connection of the tests' own to the test server; throws on failure.
inline PostgresConnection postgres_connect(const std::string& conninfo = postgres_conninfo()) {
  PostgresConnection c(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error(std::string("test server: ") + PQerrorMessage(c.get()));
  PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);
  return c;
}

// Runs `sql` on the test server as the tests' own client; throws on failure.
inline void postgres_exec(const std::string& sql, const std::string& conninfo = postgres_conninfo()) {
  auto c = postgres_connect(conninfo);
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  const auto status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("test server: " + sql + ": " + PQresultErrorMessage(r.get()));
  }
}

// The first column of the first row of `sql`'s result, as text.
inline std::string postgres_value(const std::string& sql, const std::string& conninfo = postgres_conninfo()) {
  auto c = postgres_connect(conninfo);
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1) {
    throw std::runtime_error("test server: " + sql + ": " + PQresultErrorMessage(r.get()));
  }
  return PQgetvalue(r.get(), 0, 0);
}

// A schema name no other test (or test process) uses, dropped with
// everything in it when the object goes.
class TestSchema {
 public:
  TestSchema() {
    static std::atomic<int> counter{0};
    name_ = "kf_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  ~TestSchema() {
    try {
      postgres_exec("DROP SCHEMA IF EXISTS \"" + name_ + "\" CASCADE");
    } catch (...) {
    }
  }
  TestSchema(const TestSchema&) = delete;
  TestSchema& operator=(const TestSchema&) = delete;

  const std::string& name() const noexcept { return name_; }
  // Options for a store in this schema.
  PostgresOptions options() const {
    PostgresOptions o;
    o.schema = name_;
    o.poll_interval = std::chrono::milliseconds(50);
    return o;
  }

 private:
  std::string name_;
};

}  // namespace keyfolio::test
