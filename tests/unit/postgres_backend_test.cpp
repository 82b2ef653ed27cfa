// What only the PostgreSQL backend has: its schema checks, its errors, its
// pipeline, lost connections and the catch-up of its change feed. The
// contract itself is checked by the conformance suite.
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/postgres.hpp>
#include <keyfolio/key_source.hpp>

#include "catch.hpp"
#include "heard.hpp"
#include "postgres.hpp"
#include "credentials.hpp"
#include "temp_dir.hpp"

#include <fstream>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

using keyfolio::errc;
using keyfolio::make_postgres_backend;
using keyfolio::PostgresOptions;
using keyfolio::WriteBatch;
using keyfolio::test::postgres_conninfo;
using keyfolio::test::postgres_exec;
using keyfolio::test::postgres_value;
using keyfolio::test::TestSchema;

namespace {

std::string quoted(const std::string& schema) { return "\"" + schema + "\""; }

// The conninfo of the test server with an application name of the test's
// own, so that it can end exactly the sessions of one handle.
std::string tagged_conninfo(const std::string& application) {
  return postgres_conninfo() + " application_name=" + application;
}

// Ends every session of the test server whose application name is `application`.
int terminate_sessions(const std::string& application) {
  return std::stoi(postgres_value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                  "application_name = '" + application + "'"));
}

// A conninfo for the test server's role that needs a password.
std::string password_conninfo(const std::string& password) {
  auto c = keyfolio::test::postgres_connect();
  return std::string("host=") + PQhost(c.get()) + " port=" + PQport(c.get()) + " dbname=" + PQdb(c.get()) +
         " user=keyfolio_password password=" + password;
}

using Heard = keyfolio::test::Heard<keyfolio::ChangeEvent>;

// Waits for an event of `key`.
bool heard_key(Heard& heard, const std::string& key) {
  return heard.wait_for([&](const keyfolio::ChangeEvent& e) { return e.key == key; });
}

}  // namespace

TEST_CASE("postgres: a connection string libpq cannot parse is invalid_argument, without the password") {
  const char* inputs[] = {"postgresql://trader:pa%ZZ-SECRET-77@localhost/db", "host=x password='SECRET-77",
                          "postgresql://trader:SECRET-77@[::1/db", "postgresql://trader:SECRET-77@h/db?foo=bar"};
  for (const char* input : inputs) {
    auto backend = make_postgres_backend(input);
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::invalid_argument);
    CHECK_THAT(backend.error().message(), Catch::Contains("connection string is not valid"));
    CHECK_THAT(backend.error().message(), !Catch::Contains("SECRET-77"));
  }
}

TEST_CASE("postgres: an unreachable server is unavailable, naming the server") {
  auto backend = make_postgres_backend("host=/nonexistent-keyfolio-socket-dir dbname=ledger user=trader");
  REQUIRE_FALSE(backend);
  CHECK(backend.error().code() == errc::unavailable);
  CHECK_THAT(backend.error().message(), Catch::Contains("/nonexistent-keyfolio-socket-dir"));
  CHECK_THAT(backend.error().message(), Catch::Contains("\"ledger\""));
  CHECK_THAT(backend.error().message(), Catch::Contains("cannot connect"));
}

TEST_CASE("postgres: a wrong password is a clear error that never shows the password") {
  TestSchema schema;
  auto wrong = make_postgres_backend(password_conninfo("WRONG-SECRET-123"), schema.options());
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code() == errc::unavailable);
  CHECK_THAT(wrong.error().message(), Catch::Contains("password authentication failed"));
  CHECK_THAT(wrong.error().message(), Catch::Contains("keyfolio_password"));
  CHECK_THAT(wrong.error().message(), !Catch::Contains("WRONG-SECRET-123"));

  // The right one opens the store, and describe() shows no password either.
  postgres_exec("CREATE SCHEMA " + quoted(schema.name()) + " AUTHORIZATION keyfolio_password");
  auto right = make_postgres_backend(password_conninfo("keyfolio-test-password"), schema.options());
  REQUIRE(right);
  CHECK_THAT((*right)->describe(), !Catch::Contains("keyfolio-test-password"));
  CHECK_THAT((*right)->describe(), Catch::Contains(schema.name()));
}

TEST_CASE("postgres: a schema of another application is refused and left untouched") {
  TestSchema schema;
  const std::string s = quoted(schema.name());
  SECTION("tables and no meta table") {
    postgres_exec("CREATE SCHEMA " + s + "; CREATE TABLE " + s + ".orders (id int); INSERT INTO " + s +
                  ".orders VALUES (7)");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::invalid_argument);
    CHECK_THAT(backend.error().message(), Catch::Contains("another application"));
    CHECK_THAT(backend.error().message(), Catch::Contains("orders"));
    CHECK(postgres_value("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema.name() + "'") == "1");
    CHECK(postgres_value("SELECT id FROM " + s + ".orders") == "7");
  }
  SECTION("a meta table of its own") {
    postgres_exec("CREATE SCHEMA " + s + "; CREATE TABLE " + s + ".meta (name text, value text)");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::invalid_argument);
    CHECK(postgres_value("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema.name() + "'") == "1");
  }
  SECTION("keyfolio's layout with another application id") {
    REQUIRE(make_postgres_backend(postgres_conninfo(), schema.options()));
    postgres_exec("UPDATE " + s + ".meta SET application_id = 42");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::invalid_argument);
    CHECK_THAT(backend.error().message(), Catch::Contains("another application"));
  }
}

TEST_CASE("postgres: a store of a newer schema version is not_supported") {
  TestSchema schema;
  REQUIRE(make_postgres_backend(postgres_conninfo(), schema.options()));
  postgres_exec("UPDATE " + quoted(schema.name()) + ".meta SET schema_version = 2");
  auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
  REQUIRE_FALSE(backend);
  CHECK(backend.error().code() == errc::not_supported);
  CHECK_THAT(backend.error().message(), Catch::Contains("schema version 2"));
}

TEST_CASE("postgres: objects keyfolio did not create in its schema are refused, naming them") {
  TestSchema schema;
  const std::string s = quoted(schema.name());
  REQUIRE(make_postgres_backend(postgres_conninfo(), schema.options()));
  SECTION("a trigger that keeps every old value") {
    postgres_exec("CREATE TABLE public.kf_stolen_" + schema.name() + " (value bytea);"
                  "CREATE FUNCTION " + s + ".keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  "INSERT INTO public.kf_stolen_" + schema.name() + " VALUES (OLD.value); RETURN NEW; END $$;"
                  "CREATE TRIGGER keep_old BEFORE UPDATE ON " + s + ".records FOR EACH ROW EXECUTE FUNCTION " + s +
                  ".keep()");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    postgres_exec("DROP TABLE public.kf_stolen_" + schema.name());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::corrupt_data);
    CHECK_THAT(backend.error().message(), Catch::Contains("keep_old"));
    CHECK_THAT(backend.error().message(), Catch::Contains("trigger"));
  }
  SECTION("a rule") {
    postgres_exec("CREATE RULE no_delete AS ON DELETE TO " + s + ".records DO INSTEAD NOTHING");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::corrupt_data);
    CHECK_THAT(backend.error().message(), Catch::Contains("no_delete"));
  }
  SECTION("a table") {
    postgres_exec("CREATE TABLE " + s + ".copies AS SELECT * FROM " + s + ".records");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::corrupt_data);
    CHECK_THAT(backend.error().message(), Catch::Contains("copies"));
  }
  SECTION("a missing table") {
    postgres_exec("DROP TABLE " + s + ".changes");
    auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::corrupt_data);
    CHECK_THAT(backend.error().message(), Catch::Contains("changes"));
  }
}

TEST_CASE("postgres: an empty schema made for the store is used, and a missing one without create is not_found") {
  TestSchema schema;
  auto options = schema.options();
  options.create = false;
  auto missing = make_postgres_backend(postgres_conninfo(), options);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == errc::not_found);
  CHECK(postgres_value("SELECT count(*) FROM pg_namespace WHERE nspname = '" + schema.name() + "'") == "0");

  postgres_exec("CREATE SCHEMA " + quoted(schema.name()));
  auto backend = make_postgres_backend(postgres_conninfo(), schema.options());
  REQUIRE(backend);
  REQUIRE((*backend)->write(WriteBatch().put("c", "k", "v", 0)));
  CHECK((*backend)->get("c", "k").value()->value == "v");
}

TEST_CASE("postgres: bad schema names and options are invalid_argument") {
  for (const char* name : {"", "1abc", "pg_catalog", "a-b", "a\"b", "x;DROP TABLE y",
                           "a_name_that_is_far_too_long_for_postgresql_identifiers_0123456789"}) {
    PostgresOptions options;
    options.schema = name;
    auto backend = make_postgres_backend(postgres_conninfo(), options);
    REQUIRE_FALSE(backend);
    CHECK(backend.error().code() == errc::invalid_argument);
  }
  PostgresOptions options;
  options.pool_size = 0;
  CHECK(make_postgres_backend(postgres_conninfo(), options).error().code() == errc::invalid_argument);
  options = {};
  options.poll_interval = std::chrono::milliseconds(0);
  CHECK(make_postgres_backend(postgres_conninfo(), options).error().code() == errc::invalid_argument);
}

TEST_CASE("postgres: two stores in one database keep apart by schema") {
  TestSchema a, b;
  auto first = make_postgres_backend(postgres_conninfo(), a.options()).value();
  auto second = make_postgres_backend(postgres_conninfo(), b.options()).value();
  REQUIRE(first->write(WriteBatch().put("c", "k", "one", 0)));
  CHECK_FALSE(second->get("c", "k").value());
  REQUIRE(second->write(WriteBatch().put("c", "k", "two", 0)));
  CHECK(first->get("c", "k").value()->value == "one");
}

TEST_CASE("postgres: prefix scans match bytes, not LIKE patterns") {
  TestSchema schema;
  auto backend = make_postgres_backend(postgres_conninfo(), schema.options()).value();
  WriteBatch batch;
  for (const char* key : {"a_b", "axb", "a%b", "a%%", "ab", std::string_view("a\0b", 3).data()}) batch.put("c", key, "v", 0);
  batch.put("c", std::string("a\0b", 3), "v", 0);
  REQUIRE(backend->write(batch));
  std::vector<std::string> keys;
  for (const auto& r : backend->scan("c", "a_").value()) keys.push_back(r.key);
  CHECK(keys == std::vector<std::string>{"a_b"});
  keys.clear();
  for (const auto& r : backend->scan("c", "a%").value()) keys.push_back(r.key);
  CHECK(keys == std::vector<std::string>{"a%%", "a%b"});
}

TEST_CASE("postgres: a batch larger than the pipeline window applies whole or not at all") {
  TestSchema schema;
  auto backend = make_postgres_backend(postgres_conninfo(), schema.options()).value();
  Heard heard;
  auto subscription = backend->subscribe(heard.handler()).value();
  WriteBatch batch;
  for (int i = 0; i < 3000; ++i) batch.put("c", "key-" + std::to_string(i), "v", 0);
  REQUIRE(backend->write(batch));
  CHECK(backend->scan("c").value().size() == 3000);
  // An import reaches subscribers as one resync.
  CHECK(heard.wait_for([](const keyfolio::ChangeEvent& e) { return e.kind == keyfolio::ChangeEvent::Kind::resync; }));

  SECTION("a conflict far into a large batch names its key and writes nothing") {
    WriteBatch second;
    for (int i = 0; i < 2000; ++i) second.put("d", "new-" + std::to_string(i), "v", 0);
    second.put("c", "key-1700", "w", 7);  // it is at version 1
    for (int i = 2000; i < 2600; ++i) second.put("d", "new-" + std::to_string(i), "v", 0);
    auto r = backend->write(second);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::conflict);
    CHECK_THAT(r.error().message(), Catch::Contains("key-1700"));
    CHECK(backend->scan("d").value().empty());
    CHECK(backend->get("c", "key-1700").value()->version == 1);
    // The handle's connection is fine afterwards.
    REQUIRE(backend->write(WriteBatch().put("d", "after", "v", 0)));
  }
}

TEST_CASE("postgres: the change log keeps change_log_size entries and a subscriber that fell behind gets a resync") {
  TestSchema schema;
  auto options = schema.options();
  options.change_log_size = 10;
  auto writer = make_postgres_backend(postgres_conninfo(), options).value();
  for (int i = 0; i < 600; ++i) REQUIRE(writer->write(WriteBatch().put("c", "k" + std::to_string(i), "v", 0)));
  const int kept = std::stoi(postgres_value("SELECT count(*) FROM " + quoted(schema.name()) + ".changes"));
  CHECK(kept >= 10);
  CHECK(kept <= 10 + 256);
  CHECK(postgres_value("SELECT last_seq FROM " + quoted(schema.name()) + ".meta") == "600");
}

TEST_CASE("postgres: lost connections are reopened, and a write whose session ended before it landed is retried") {
  TestSchema schema;
  const std::string application = "kf_lost_" + schema.name();
  auto backend = make_postgres_backend(tagged_conninfo(application), schema.options()).value();
  REQUIRE(backend->write(WriteBatch().put("c", "k", "v1", 0)));
  REQUIRE(terminate_sessions(application) >= 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // Reads and writes on the pool's dead connections go through on new ones.
  CHECK(backend->get("c", "k").value()->value == "v1");
  REQUIRE(terminate_sessions(application) >= 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(backend->write(WriteBatch().put("c", "k", "v2", 1)));
  CHECK(backend->get("c", "k").value()->version == 2);

  SECTION("a session ended while its batch waits for the writers' lock") {
    // Another client holds the writers' lock; the handle's batch, sent whole
    // with its commit, waits for it; its session is ended; the lock is let go.
    auto holder = keyfolio::test::postgres_connect();
    postgres_exec("SELECT 1");
    PQclear(PQexec(holder.get(), ("BEGIN; UPDATE " + quoted(schema.name()) + ".meta SET last_seq = last_seq").c_str()));
    keyfolio::Result<void> result;
    std::thread writer([&] { result = backend->write(WriteBatch().put("c", "k", "v3", 2)); });
    // Wait for the batch to block on the lock, then end its session.
    for (int i = 0; i < 500; ++i) {
      if (postgres_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + application +
                         "' AND wait_event_type = 'Lock'") == "1") {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(terminate_sessions(application) >= 1);
    PQclear(PQexec(holder.get(), "COMMIT"));
    writer.join();
    // The ended session did not apply it; the retry did, once.
    REQUIRE(result);
    auto record = backend->get("c", "k").value();
    CHECK(record->version == 3);
    CHECK(record->value == "v3");
  }
}

TEST_CASE("postgres: the change feed catches up after its connection is ended") {
  TestSchema schema;
  const std::string listener_app = "kf_feed_" + schema.name();
  auto subscriber = make_postgres_backend(tagged_conninfo(listener_app), schema.options()).value();
  auto writer = make_postgres_backend(postgres_conninfo(), schema.options()).value();
  Heard heard;
  auto subscription = subscriber->subscribe(heard.handler()).value();
  REQUIRE(writer->write(WriteBatch().put("c", "before", "v", 0)));
  REQUIRE(heard_key(heard, "before"));
  REQUIRE(terminate_sessions(listener_app) >= 1);
  // Changes made while the feed is disconnected: no notification reaches it.
  for (int i = 0; i < 5; ++i) REQUIRE(writer->write(WriteBatch().put("c", "during-" + std::to_string(i), "v", 0)));
  for (int i = 0; i < 5; ++i) CHECK(heard_key(heard, "during-" + std::to_string(i)));
  REQUIRE(writer->write(WriteBatch().put("c", "after", "v", 0)));
  CHECK(heard_key(heard, "after"));
  // In commit order, each once.
  std::vector<std::string> keys;
  for (const auto& e : heard.events()) keys.push_back(e.key);
  CHECK(keys == std::vector<std::string>{"before", "during-0", "during-1", "during-2", "during-3", "during-4", "after"});
}

TEST_CASE("postgres: a server restart: writes fail with unavailable meanwhile, then succeed, and the feed misses nothing") {
  // A server of this test's own, so that stopping it disturbs no other test.
  keyfolio::test::TempDir dir;
  const std::string server = (dir / "server").string();
  const std::string script = KEYFOLIO_TEST_POSTGRES_SCRIPT;
  const auto run = [&](const std::string& action) {
    return std::system(("KEYFOLIO_TEST_POSTGRES= bash '" + script + "' " + action + " '" + server + "' 2>/dev/null").c_str());
  };
  REQUIRE(run("start") == 0);
  std::ifstream in(server + "/conninfo");
  std::string conninfo;
  std::getline(in, conninfo);
  PostgresOptions options;
  options.poll_interval = std::chrono::milliseconds(50);
  {
    auto subscriber = make_postgres_backend(conninfo, options).value();
    auto writer = make_postgres_backend(conninfo, options).value();
    Heard heard;
    auto subscription = subscriber->subscribe(heard.handler()).value();
    REQUIRE(writer->write(WriteBatch().put("c", "before", "v", 0)));
    REQUIRE(heard_key(heard, "before"));

    REQUIRE(run("pause") == 0);
    auto during = writer->write(WriteBatch().put("c", "during", "v", 0));
    REQUIRE_FALSE(during);
    CHECK(during.error().code() == errc::unavailable);
    CHECK_THAT(during.error().message(), Catch::Contains("cannot connect"));
    auto read = writer->get("c", "before");
    REQUIRE_FALSE(read);
    CHECK(read.error().code() == errc::unavailable);

    REQUIRE(run("resume") == 0);
    REQUIRE(writer->write(WriteBatch().put("c", "after", "v", 0)));
    CHECK_FALSE(writer->get("c", "during").value());
    CHECK(heard_key(heard, "after"));
  }
  run("stop");
}

TEST_CASE("postgres: two account managers on one store hear each other's accounts") {
  TestSchema schema;
  const auto key = keyfolio::KeySource::raw_key(keyfolio::SecretString(std::string(32, '\x11')));
  auto first =
      keyfolio::AccountManager::open(make_postgres_backend(postgres_conninfo(), schema.options()).value(), key).value();
  auto second =
      keyfolio::AccountManager::open(make_postgres_backend(postgres_conninfo(), schema.options()).value(), key).value();
  keyfolio::test::Heard<keyfolio::AccountEvent> heard;
  auto subscription = second.subscribe(heard.handler());
  REQUIRE(first.upsert("binance:main", keyfolio::test::api_keys("k-123", "s-456")));
  REQUIRE(heard.wait_for([](const keyfolio::AccountEvent& e) { return e.kind == keyfolio::AccountEvent::Kind::created; }));
  auto account = second.get("binance:main").value();
  CHECK(account->credentials.find("apiKey")->reveal() == "k-123");
}
