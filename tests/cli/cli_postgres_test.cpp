// Drives the real `keyfolio` binary on PostgreSQL stores of the tests'
// server: URIs, schemas, unreachable servers, a failed init, and watch.
#include "catch.hpp"
#include "cli_runner.hpp"
#include "postgres.hpp"

#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace keyfolio::test::cli;
using keyfolio::test::mentions;
using keyfolio::test::postgres_uri;
using keyfolio::test::postgres_value;
using keyfolio::test::TestSchema;

const std::string test_password = "keyfolio-test-password";  // the test server's role keyfolio_password

// A Cli on a store in `schema` of the test server.
void on_postgres(Cli& cli, const TestSchema& schema, const std::string& uri = postgres_uri()) {
  cli.store = uri;
  cli.more_env = {"KEYFOLIO_SCHEMA=" + schema.name()};
}

bool schema_exists(const std::string& name) {
  return postgres_value("SELECT count(*) FROM pg_namespace WHERE nspname = '" + name + "'") == "1";
}

std::string rows(const std::string& schema, const std::string& table) {
  return postgres_value("SELECT count(*) FROM \"" + schema + "\"." + table);
}

}  // namespace

TEST_CASE("keyfolio keeps a store in PostgreSQL for a postgresql:// or postgres:// URI, in the schema --schema or "
          "KEYFOLIO_SCHEMA names") {
  Cli cli;
  TestSchema schema, other;
  on_postgres(cli, schema);
  auto missing = cli({"list"});
  CHECK(missing.status == 3);
  CHECK(mentions(missing.err, "no schema " + schema.name()));
  CHECK(mentions(missing.err, "keyfolio init"));
  CHECK_FALSE(schema_exists(schema.name()));

  auto init = cli({"init"});
  INFO(init.err);
  REQUIRE(init.status == 0);
  CHECK(init.out.starts_with("created store postgres:"));
  CHECK(mentions(init.out, "/" + schema.name() + "\n"));
  CHECK(schema_exists(schema.name()));
  CHECK(cli({"init"}).out.starts_with("store already exists: postgres:"));
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n").status == 0);
  CHECK(rows(schema.name(), "records") != "0");
  CHECK(mentions(cli({"list"}).out, "BINANCE/main  version 1"));

  // postgres:// is the same store; --schema wins over KEYFOLIO_SCHEMA.
  Cli short_scheme;
  on_postgres(short_scheme, schema, "postgres://" + postgres_uri().substr(std::string("postgresql://").size()));
  CHECK(mentions(short_scheme({"list"}).out, "BINANCE/main"));
  auto elsewhere = cli({"--schema", other.name(), "list"});
  CHECK(elsewhere.status == 3);
  CHECK(mentions(elsewhere.err, "no schema " + other.name()));
  REQUIRE(cli({"--schema", other.name(), "init"}).status == 0);
  CHECK(cli({"--schema", other.name(), "list"}).out.empty());
  CHECK(mentions(cli({"list"}).out, "BINANCE/main"));

  auto bad = cli({"--schema", "no-dashes", "list"});
  CHECK(bad.status == 4);
  CHECK(mentions(bad.err, "schema name"));
  CHECK_FALSE(mentions(cli({"list"}).out + cli({"list"}).err, "CANARY"));
}

TEST_CASE("keyfolio exits 6 naming the server, never the password, when the server cannot be reached or refuses "
          "the connection") {
  Cli cli;
  TestSchema schema;
  const auto check_unreachable = [&](const std::string& uri, const std::string& why) {
    on_postgres(cli, schema, uri);
    for (const std::vector<std::string>& command : {std::vector<std::string>{"init"}, {"list"}, {"watch"}}) {
      INFO(joined(command));
      auto r = cli(command);
      CHECK(r.status == 6);
      CHECK(mentions(r.err, "keyfolio_test"));  // the database, on the server it names
      CHECK(mentions(r.err, why));
      CHECK(r.out.empty());
      CHECK_FALSE(mentions(r.err, test_password));
      CHECK_FALSE(mentions(r.err, "not-the-password"));
    }
  };
  SECTION("a wrong password in the URI") {
    check_unreachable(postgres_uri("keyfolio_password", "not-the-password"), "password authentication failed");
  }
  SECTION("no server where the URI points") {
    check_unreachable("postgresql://keyfolio_password:" + test_password +
                          "@/keyfolio_test?host=/nonexistent-keyfolio-socket-dir&connect_timeout=5",
                      "/nonexistent-keyfolio-socket-dir");
  }
  CHECK_FALSE(schema_exists(schema.name()));
}

TEST_CASE("keyfolio on a URI with the right password works and prints the password nowhere") {
  Cli cli;
  TestSchema schema;
  on_postgres(cli, schema, postgres_uri("keyfolio_password", test_password));
  std::vector<Run> runs;
  runs.push_back(cli({"init"}));
  CHECK(runs.back().status == 0);
  runs.push_back(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n"));
  CHECK(runs.back().status == 0);
  runs.push_back(cli({"list"}));
  runs.push_back(cli({"verify"}));
  runs.push_back(cli({"rotate"}));
  runs.push_back(cli({"show", "BINANCE/nothing"}));
  CHECK(runs.back().status == 3);
  {
    auto watch = watching(cli);
    REQUIRE(cli({"rm", "BINANCE/main"}).status == 0);
    REQUIRE(watch->wait_for("removed BINANCE/main\n"));
    runs.push_back(watch->stop(SIGINT));
    CHECK(runs.back().status == 0);
  }
  CHECK(mentions(runs.front().out, "created store postgres:"));
  for (const auto& r : runs) {
    CHECK_FALSE(mentions(r.out + r.err, test_password));
    CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
  }
}

TEST_CASE("keyfolio init on PostgreSQL that fails leaves no store that a later command would create under its own "
          "passphrase") {
  Cli cli;
  TestSchema schema;
  on_postgres(cli, schema);
  SECTION("the two passphrases typed at the prompts differ: nothing is created") {
    OnTerminal tool({"init"}, {"KEYFOLIO_STORE=" + cli.store, "KEYFOLIO_SCHEMA=" + schema.name(),
                               "HOME=" + cli.dir.path().string()});
    REQUIRE(tool.wait_for("Passphrase: "));
    REQUIRE(tool.echo_goes_off());
    REQUIRE(::write(tool.master, "one passphrase\n", 15) == 15);
    REQUIRE(tool.wait_for("Again: "));
    REQUIRE(tool.echo_goes_off());
    REQUIRE(::write(tool.master, "another one\n", 12) == 12);
    REQUIRE(tool.wait_for("differ"));
    CHECK(tool.end_signal() == 0);
    CHECK_FALSE(schema_exists(schema.name()));
  }
#if !defined(__SANITIZE_ADDRESS__)
  SECTION("the open fails after the schema was created") {
    // Too little memory for Argon2id (256 MiB): the schema exists by then.
    Launch launch{{"init"}, "", cli.env(), cli.dir.path().string()};
    launch.address_space = rlim_t{128} << 20;
    auto failed = keyfolio_cli(launch);
    CHECK(failed.status == 1);
    CHECK(mentions(failed.err, "Argon2id could not get"));
    REQUIRE(schema_exists(schema.name()));
    CHECK(rows(schema.name(), "records") == "0");
  }
#endif
  // Whatever is left, no command but init makes it a store.
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"list"}, {"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"},
        {"rotate"}}) {
    INFO(joined(command));
    auto r = cli(command, "k\n" + canary_secret + "\n");
    CHECK(r.status == 3);
    CHECK(mentions(r.err, "keyfolio init"));
    if (schema_exists(schema.name())) CHECK(rows(schema.name(), "records") == "0");
  }
  auto init = cli({"init"});
  CHECK(init.status == 0);
  CHECK(init.out.starts_with("created store postgres:"));
  CHECK(cli({"list"}).status == 0);
}

TEST_CASE("keyfolio watch on PostgreSQL hears another host's changes and rotations") {
  Cli host_a, host_b;
  TestSchema schema;
  on_postgres(host_a, schema);
  on_postgres(host_b, schema);
  REQUIRE(host_a({"init"}).status == 0);
  auto watch = watching(host_b, {"--json"});
  REQUIRE(host_a({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n").status == 0);
  REQUIRE(watch->wait_for("\"event\":\"created\",\"exchange_id\":\"BINANCE/main\",\"version\":1}\n"));
  REQUIRE(host_a({"rotate"}).status == 0);
  REQUIRE(watch->wait_for("\"event\":\"rotated\"}\n"));
  REQUIRE(host_a({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\nCANARY-2\n").status == 0);
  REQUIRE(watch->wait_for("\"event\":\"updated\",\"exchange_id\":\"BINANCE/main\",\"version\":3}\n"));
  const Run r = watch->stop(SIGTERM);
  CHECK(r.status == 0);
  CHECK(lines_of(r.out).size() == 3);
  CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
}

TEST_CASE("every command of the README's PostgreSQL walkthrough runs, in order, on two hosts, and does what it says") {
  TestSchema schema;
  Cli host_a, host_b;
  std::unique_ptr<Background> watch;
  const auto watched = [&](const std::string& text) {
    REQUIRE(watch);
    INFO(watch->out());
    CHECK(watch->wait_for(text));
  };
  struct Step {
    std::string line;  // as the README has it, comment dropped
    std::function<void(const std::string& line)> run;
  };
  const auto on_host_a = [&](const std::string& input, std::function<void(const Run&)> check) {
    return [&host_a, input, check](const std::string& line) {
      auto words = words_of(line);
      words.erase(words.begin());
      const Run r = host_a(words, input);
      INFO(r.err);
      REQUIRE(r.status == 0);
      check(r);
      CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
    };
  };
  const std::vector<Step> steps{
      {"export KEYFOLIO_STORE='postgresql://trader@db.internal/trading?sslmode=verify-full'",
       [&](const std::string&) {
         host_a.store = host_b.store = postgres_uri();  // the tests' server in place of db.internal
       }},
      {"export KEYFOLIO_SCHEMA=keyfolio",
       [&](const std::string&) { host_a.more_env = host_b.more_env = {"KEYFOLIO_SCHEMA=" + schema.name()}; }},
      {"keyfolio init", on_host_a("", [](const Run& r) { CHECK(r.out.starts_with("created store postgres:")); })},
      {"keyfolio watch &", [&](const std::string&) { watch = watching(host_b); }},
      {"keyfolio add BINANCE/main --field apiKey --field secret",
       on_host_a(canary_key + "\n" + canary_secret + "\n",
                 [&](const Run& r) {
                   CHECK(r.out == "added BINANCE/main (version 1)\n");
                   watched(" created BINANCE/main version 1\n");
                 })},
      {"keyfolio rotate",
       on_host_a("",
                 [&](const Run& r) {
                   CHECK(r.out.starts_with("data key replaced: 1 record re-sealed under a new data key"));
                   watched(" rotated: the store's data key was replaced; watching under the new one\n");
                 })},
      {"keyfolio add BINANCE/main --field apiKey --field secret",
       on_host_a(canary_key + "\nCANARY-second-secret\n",
                 [&](const Run& r) {
                   CHECK(r.out == "updated BINANCE/main (version 3)\n");
                   watched(" updated BINANCE/main version 3\n");
                 })},
      {"kill %1",
       [&](const std::string&) {
         const Run r = watch->stop(SIGTERM);
         CHECK(r.status == 0);
         CHECK(lines_of(r.out).size() == 3);
         CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
       }},
  };

  std::vector<std::string> documented = readme_block("<!-- cli postgres walkthrough -->"), tested;
  for (const auto& step : steps) tested.push_back(step.line);
  REQUIRE(documented == tested);
  for (const auto& step : steps) {
    INFO(step.line);
    step.run(step.line);
  }
}
