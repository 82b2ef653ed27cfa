// A process killed at random moments while it rotates the data key of a
// SQLite store: every time, the store opens with the key of the state before
// the rotation in flight or after it, intact, and every account reads back.
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/portfolio_connector.hpp>

#include "catch.hpp"
#include "child_process.hpp"
#include "credentials.hpp"
#include "temp_dir.hpp"

#include <chrono>
#include <functional>
#include <csignal>
#include <random>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using keyfolio::AccountManager;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::errc;
using keyfolio::make_sqlite_backend;

namespace {

// The two keys the rotations alternate between: rotation n wraps the new
// data key with key (n % 2).
KeySource key(int which) { return KeySource::raw_key(SecretString(std::string(32, which == 0 ? 'a' : 'b'))); }

constexpr int accounts = 300;

std::string secret_of(int i) { return "secret-" + std::to_string(i); }

// The child: opens the store with key `current`, then rotates it to the
// other key, and back, until it is killed; says "opened" once open and
// "rotated" after each rotation that returned.
int rotate_until_killed(const std::filesystem::path& path, int current,
                        const std::function<void(const std::string&)>& say) {
  auto backend = make_sqlite_backend(path);
  if (!backend) return 3;
  auto manager = AccountManager::open(*backend, key(current));
  if (!manager) return 4;
  say("opened\n");
  for (;;) {
    current = 1 - current;
    if (!manager->rotate_data_key(key(current))) return 5;
    say("rotated\n");
  }
}

}  // namespace

TEST_CASE("after 200 SIGKILLs during data-key rotations the store opens with the old key or the new one, and every "
          "account reads back") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "rotating.db";
  std::string portfolio;
  {
    auto m = AccountManager::open(make_sqlite_backend(path).value(), key(0)).value();
    std::vector<keyfolio::AccountUpdate> batch;
    for (int i = 0; i < accounts; ++i) {
      batch.push_back({keyfolio::AccountId::parse("BINANCE/" + std::to_string(i)).value(),
                       keyfolio::test::api_keys("key-" + std::to_string(i), secret_of(i))});
    }
    m.upsert(std::move(batch)).value();
    keyfolio::PortfolioConnector connector(m);
    portfolio = connector.connect({"kraken", keyfolio::test::api_keys("kraken-key", "c2VjcmV0"), "K"}).value().portfolio_id;
  }
  std::mt19937 random(20261203);
  std::uniform_int_distribution<int> delay_us(0, 60'000);
  int current = 0;  // the key of the last state known to be stored
  int kills_while_rotating = 0;
  int rotations = 0;
  for (int round = 0; round < 200; ++round) {
    const auto child = keyfolio::test::spawn_child(
        [&](const std::function<void(const std::string&)>& say) { return rotate_until_killed(path, current, say); });
    REQUIRE(child.pid > 0);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    ::kill(child.pid, SIGKILL);
    const auto outcome = keyfolio::test::collect(child);
    INFO("round " << round << ", child exited " << outcome.exited << " with " << outcome.status);
    REQUIRE_FALSE(outcome.exited);  // killed, not failed
    const std::string& said = outcome.said;
    std::istringstream lines(said);
    bool opened = false;
    int returned = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line == "opened") opened = true;
      if (line == "rotated") ++returned;
    }
    if (opened) ++kills_while_rotating;
    rotations += returned;

    // The state after the last rotation that returned, or the one after it
    // (in flight at the kill): exactly one of the two keys opens it.
    const int acknowledged = (current + returned) % 2;
    auto with_acknowledged = AccountManager::open(make_sqlite_backend(path).value(), key(acknowledged));
    auto with_other = AccountManager::open(make_sqlite_backend(path).value(), key(1 - acknowledged));
    REQUIRE(with_acknowledged.has_value() != with_other.has_value());
    auto& manager = with_acknowledged ? *with_acknowledged : *with_other;
    const auto& failed = with_acknowledged ? with_other : with_acknowledged;
    CHECK(failed.error().code() == errc::wrong_key);
    current = with_acknowledged ? acknowledged : 1 - acknowledged;
    CHECK(manager.integrity().intact());
    REQUIRE(manager.size() == accounts + 1);
    int readable = 0;
    for (int i = 0; i < accounts; ++i) {
      auto account = manager.get("BINANCE/" + std::to_string(i));
      if (account && keyfolio::test::reveals(*(*account)->credentials.find("secret"), secret_of(i))) ++readable;
    }
    CHECK(readable == accounts);
    keyfolio::PortfolioConnector connector(manager);
    CHECK(connector.get(portfolio).value().name == "K");
  }
  // The kills must have hit rotations, not only start-ups.
  CHECK(kills_while_rotating > 100);
  CHECK(rotations > 0);
}
