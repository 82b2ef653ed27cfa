// Several processes, as several hosts, on one PostgreSQL store: crashes at
// random moments, concurrent compare-and-set writers, and the change feed
// across processes.
#include <keyfolio/backends/postgres.hpp>

#include "postgres.hpp"
#include "process_scenarios.hpp"

namespace scenarios = keyfolio::test::scenarios;
using keyfolio::make_postgres_backend;
using keyfolio::test::postgres_conninfo;
using keyfolio::test::TestSchema;

TEST_CASE("postgres: after 200 SIGKILLs at random moments every acknowledged upsert is in the store") {
  TestSchema schema;
  const std::string conninfo = postgres_conninfo();
  const auto options = schema.options();
  const auto application = [&](int round) { return "kf_crash_" + schema.name() + "_" + std::to_string(round); };
  const scenarios::OpenStore open = [&] { return make_postgres_backend(conninfo, options); };
  // Each child's sessions carry a name of their own, so that the check waits
  // until the server has ended them: a commit the child sent before it died
  // lands before the store is read, or never.
  const auto open_child = [&](int round) -> scenarios::OpenStore {
    const std::string tagged = conninfo + " application_name=" + application(round);
    return [tagged, options] { return make_postgres_backend(tagged, options); };
  };
  const auto settled = [&](int round) {
    for (int i = 0; i < 1000; ++i) {
      if (keyfolio::test::postgres_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                                         application(round) + "'") == "0") {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL("the server kept the killed child's session");
  };
  scenarios::crash_scenario(open_child, open, settled, 200, 20261203, 60'000);
}

TEST_CASE("postgres: two processes doing compare-and-set increments on the same records lose no increment") {
  TestSchema schema;
  const std::string conninfo = postgres_conninfo();
  const auto options = schema.options();
  scenarios::increments_scenario([&] { return make_postgres_backend(conninfo, options); });
}

TEST_CASE("postgres: a change made by another process reaches this process's change feed") {
  TestSchema schema;
  const std::string conninfo = postgres_conninfo();
  const auto options = schema.options();
  scenarios::feed_scenario([&] { return make_postgres_backend(conninfo, options); },
                           [&] { return make_postgres_backend(conninfo, options); });
}
