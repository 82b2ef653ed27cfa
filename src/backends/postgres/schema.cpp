#include "backends/postgres/schema.hpp"

#include "detail/text.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace keyfolio::detail::postgres {
namespace {

// keyfolio's tables and the indexes PostgreSQL makes for their keys.
constexpr std::array<std::string_view, 6> own_relations{"changes", "changes_pkey", "meta",
                                                        "meta_pkey", "records", "records_pkey"};

// Runs `sql` with text parameters; the result, or null on a failure of the
// connection.
ResultPtr query(PGconn* c, const std::string& sql, const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return ResultPtr(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                nullptr, 0));
}

bool ok(const ResultPtr& r) {
  const auto status = PQresultStatus(r.get());
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

std::string create_sql(const std::string& s) {
  return "CREATE SCHEMA IF NOT EXISTS " + s + ";" +
         "CREATE TABLE " + s + ".meta ("
         "  id integer PRIMARY KEY CHECK (id = 1),"
         "  application_id bigint NOT NULL,"
         "  schema_version integer NOT NULL,"
         "  last_seq bigint NOT NULL);"
         "INSERT INTO " + s + ".meta VALUES (1, " + std::to_string(application_id) + ", " +
         std::to_string(postgres_schema_version) + ", 0);"
         "CREATE TABLE " + s + ".records ("
         "  collection bytea NOT NULL,"
         "  key bytea NOT NULL,"
         "  version bigint NOT NULL CHECK (version >= 1),"
         "  value bytea NOT NULL,"
         "  PRIMARY KEY (collection, key));"
         // seq: taken under the writers' lock (the meta row), so gapless and
         // in commit order; batch: a random identifier of the write batch
         // that made the entry, by which a writer whose connection was lost
         // at commit learns whether its batch landed.
         "CREATE TABLE " + s + ".changes ("
         "  seq bigint PRIMARY KEY,"
         "  kind smallint NOT NULL,"
         "  collection bytea NOT NULL,"
         "  key bytea NOT NULL,"
         "  version bigint NOT NULL,"
         "  batch bytea NOT NULL);";
}

class Check {
 public:
  Check(PGconn* c, const Target& target) : c_(c), t_(target) {}

  Result<void> run() {
    if (auto r = exec("BEGIN"); !r) return r;
    auto done = checked();
    if (!done) {
      query(c_, "ROLLBACK");
      return done;
    }
    return exec("COMMIT");
  }

 private:
  Result<void> checked() {
    const std::string& name = t_.options.schema;
    // Hosts opening the same store at once take turns here.
    if (auto r = query(c_, "SELECT pg_advisory_xact_lock(hashtext($1)::bigint << 32 | 1263948593)",
                       {"keyfolio schema " + name});
        !ok(r)) {
      return server_error(t_, c_, r.get(), "waiting for the other hosts that open the store");
    }
    auto ns = query(c_, "SELECT oid FROM pg_namespace WHERE nspname = $1", {name});
    if (!ok(ns)) return server_error(t_, c_, ns.get(), "reading the database's schemas");
    if (PQntuples(ns.get()) == 0) return create();
    const std::string oid = PQgetvalue(ns.get(), 0, 0);
    auto rels = query(c_, "SELECT relname, relkind FROM pg_class WHERE relnamespace = $1::oid ORDER BY relname", {oid});
    if (!ok(rels)) return server_error(t_, c_, rels.get(), "reading the schema's tables");
    std::vector<std::string> names;
    std::vector<std::string> foreign;
    for (int i = 0; i < PQntuples(rels.get()); ++i) {
      std::string relname = PQgetvalue(rels.get(), i, 0);
      if (std::find(own_relations.begin(), own_relations.end(), relname) == own_relations.end()) {
        foreign.push_back(relname + " (" + kind_name(PQgetvalue(rels.get(), i, 1)) + ")");
      }
      names.push_back(std::move(relname));
    }
    if (names.empty()) return create();  // an empty schema, made for the store
    const auto has = [&](std::string_view n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    if (!has("meta")) {
      return Error(errc::invalid_argument,
                   t_.label + ": the schema holds tables of another application (" + std::to_string(names.size()) +
                       " relations, such as " + quote(names.front(), 80) +
                       ") and no keyfolio meta table; keyfolio leaves it untouched: choose another schema");
    }
    auto meta = query(c_, "SELECT application_id, schema_version FROM " + t_.schema_sql + ".meta WHERE id = 1");
    if (!ok(meta) || PQntuples(meta.get()) != 1) {
      return Error(errc::invalid_argument, t_.label +
                                               ": the schema's meta table is not keyfolio's; keyfolio leaves the "
                                               "schema untouched: choose another schema");
    }
    if (std::string(PQgetvalue(meta.get(), 0, 0)) != std::to_string(application_id)) {
      return Error(errc::invalid_argument, t_.label +
                                               ": the schema belongs to another application (its meta table has "
                                               "another application id); keyfolio leaves it untouched");
    }
    const int version = std::atoi(PQgetvalue(meta.get(), 0, 1));
    if (version > postgres_schema_version) {
      return Error(errc::not_supported, t_.label + ": the store has schema version " + std::to_string(version) +
                                            ", newer than this keyfolio knows (" +
                                            std::to_string(postgres_schema_version) + "): upgrade keyfolio");
    }
    if (version < 1) {
      return Error(errc::corrupt_data, t_.label + ": the store's schema version " + std::to_string(version) +
                                           " is not one keyfolio ever wrote");
    }
    if (!foreign.empty()) {
      return Error(errc::corrupt_data, t_.label + ": the store's schema holds " + quote(foreign.front(), 120) +
                                           ", which keyfolio did not create (it could keep copies of records); "
                                           "remove it or move the store");
    }
    for (std::string_view table : {"records", "changes"}) {
      if (!has(table)) {
        return Error(errc::corrupt_data, t_.label + ": the store lacks its table " + std::string(table));
      }
    }
    // A trigger or rule on keyfolio's tables could copy what they hold.
    auto hooks = query(c_,
                       "SELECT c.relname, t.tgname, 'trigger' FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                       "WHERE c.relnamespace = $1::oid AND NOT t.tgisinternal "
                       "UNION ALL SELECT c.relname, r.rulename, 'rule' FROM pg_rewrite r JOIN pg_class c "
                       "ON c.oid = r.ev_class WHERE c.relnamespace = $1::oid "
                       "UNION ALL SELECT c.relname, p.polname, 'row security policy' FROM pg_policy p JOIN pg_class c "
                       "ON c.oid = p.polrelid WHERE c.relnamespace = $1::oid",
                       {oid});
    if (!ok(hooks)) return server_error(t_, c_, hooks.get(), "reading the triggers of the store's tables");
    if (PQntuples(hooks.get()) > 0) {
      return Error(errc::corrupt_data, t_.label + ": the store's table " + std::string(PQgetvalue(hooks.get(), 0, 0)) +
                                           " has a " + PQgetvalue(hooks.get(), 0, 2) + " " +
                                           quote(PQgetvalue(hooks.get(), 0, 1), 80) +
                                           " that keyfolio did not create (it could keep copies of records); "
                                           "remove it");
    }
    return {};
  }

  Result<void> create() {
    if (!t_.options.create) {
      return Error(errc::not_found, t_.label + ": the store does not exist (no schema " + t_.options.schema + ")");
    }
    ResultPtr r(PQexec(c_, create_sql(t_.schema_sql).c_str()));
    if (!ok(r)) return server_error(t_, c_, r.get(), "creating the store's tables");
    return {};
  }

  Result<void> exec(const char* sql) {
    auto r = query(c_, sql);
    if (!ok(r)) return server_error(t_, c_, r.get(), "opening the store");
    return {};
  }

  static std::string kind_name(std::string_view kind) {
    if (kind == "r" || kind == "p") return "table";
    if (kind == "i" || kind == "I") return "index";
    if (kind == "S") return "sequence";
    if (kind == "v") return "view";
    if (kind == "m") return "materialized view";
    if (kind == "f") return "foreign table";
    return "relation";
  }

  PGconn* c_;
  const Target& t_;
};

}  // namespace

Result<void> prepare_schema(PGconn* c, const Target& target) { return Check(c, target).run(); }

}  // namespace keyfolio::detail::postgres
