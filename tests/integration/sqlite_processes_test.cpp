// Several processes on one SQLite store: crashes at random moments, and
// concurrent compare-and-set writers.
#include <keyfolio/backends/sqlite.hpp>

#include "process_scenarios.hpp"
#include "temp_dir.hpp"

namespace scenarios = keyfolio::test::scenarios;
using keyfolio::make_sqlite_backend;

TEST_CASE("after 200 SIGKILLs at random moments every acknowledged upsert is in the SQLite store") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "crash.db";
  const scenarios::OpenStore open = [&] { return make_sqlite_backend(path); };
  scenarios::crash_scenario([&](int) { return open; }, open, [](int) {}, 200, 20261121, 40'000);
}

TEST_CASE("two processes doing compare-and-set increments on the same SQLite records lose no increment") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "counters.db";
  scenarios::increments_scenario([&] { return make_sqlite_backend(path); });
}

TEST_CASE("a change made by another process reaches this process's change feed") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "feed.db";
  keyfolio::SqliteOptions options;
  options.poll_interval = std::chrono::milliseconds(10);
  scenarios::feed_scenario([&] { return make_sqlite_backend(path); },
                           [&] { return make_sqlite_backend(path, options); });
}
