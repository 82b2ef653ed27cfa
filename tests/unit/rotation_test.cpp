// Data-key rotation: a new data key and store id, every record re-sealed,
// in one atomic write; other managers fail closed.
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/portfolio_connector.hpp>

#include "catch.hpp"
#include "credentials.hpp"
#include "heard.hpp"
#include "keys.hpp"
#include "stored.hpp"
#include "tampering.hpp"
#include "temp_dir.hpp"

#include "crypto/vault.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

using keyfolio::AccountManager;
using keyfolio::errc;
using keyfolio::PortfolioConnector;
using keyfolio::Record;
using keyfolio::WriteBatch;
using keyfolio::test::mentions;
using keyfolio::test::raw;
using keyfolio::test::recovering;
using keyfolio::test::reveals_secret;

namespace {

keyfolio::Credentials keys(std::string_view key, std::string_view secret) {
  return keyfolio::test::api_keys(key, secret);
}

std::string store_id_of(keyfolio::StorageBackend& backend) {
  const auto keyring = backend.get("keyfolio", "keyring").value().value();
  return keyfolio::detail::Vault::keyring_store_id(keyring.value).value();
}

// A store with accounts, a portfolio and a snapshot of it.
struct Filled {
  std::shared_ptr<keyfolio::StorageBackend> backend = keyfolio::make_memory_backend();
  std::string portfolio;
  Filled() {
    auto m = AccountManager::open(backend, raw('x')).value();
    for (int i = 0; i < 50; ++i) m.upsert("BINANCE/" + std::to_string(i), keys("k" + std::to_string(i), "s" + std::to_string(i))).value();
    PortfolioConnector connector(m);
    portfolio = connector.connect({"kraken", keys("kraken-key", "c2VjcmV0"), "Kraken"}).value().portfolio_id;
  }
};

}  // namespace

TEST_CASE("rotating the data key re-seals every record under a new store id, and every account reads back",
          "[rotation]") {
  Filled store;
  const auto before = keyfolio::test::everything(*store.backend);
  const auto old_id = store_id_of(*store.backend);
  auto m = AccountManager::open(store.backend, raw('x')).value();
  const auto generation = m.generation();

  std::vector<std::pair<std::size_t, std::size_t>> progress;
  auto rotated = m.rotate_data_key(raw('x'), [&](std::size_t done, std::size_t total) {
    progress.emplace_back(done, total);
  });
  REQUIRE(rotated);
  CHECK(rotated->dropped == 0);
  CHECK(rotated->resealed == before.size() - 2);  // all but the keyring and the integrity record
  REQUIRE_FALSE(progress.empty());
  CHECK(progress.back().first == progress.back().second);
  CHECK(progress.back().second == rotated->resealed);

  CHECK(store_id_of(*store.backend) != old_id);
  CHECK(m.generation() == generation + 1);
  // No record is left as it was: each was re-sealed, or moved to a new key.
  const auto after = keyfolio::test::everything(*store.backend);
  CHECK(after.size() == before.size());
  std::map<std::string, std::string> old_values;
  for (const auto& r : before) old_values[r.key] = r.value;
  for (const auto& r : after) {
    INFO(r.key);
    auto it = old_values.find(r.key);
    if (it != old_values.end()) CHECK(it->second != r.value);
  }
  // This manager follows it, and so does a manager opened afterwards.
  CHECK(reveals_secret(m, "binance/7", "s7"));
  auto reopened = AccountManager::open(store.backend, raw('x')).value();
  CHECK(reopened.integrity().intact());
  CHECK(reopened.size() == 51);
  for (int i = 0; i < 50; ++i) CHECK(reveals_secret(reopened, "binance/" + std::to_string(i), "s" + std::to_string(i)));
  // The portfolio, its index and its account's fingerprint moved together:
  // connecting the same exchange account finds the same portfolio.
  PortfolioConnector connector(reopened);
  auto again = connector.connect({"kraken", keys("kraken-key", "c2VjcmV0"), ""}).value();
  CHECK(again.portfolio_id == store.portfolio);
  CHECK(again.status == keyfolio::ConnectResult::Status::existing);
  CHECK(connector.get(store.portfolio).value().name == "Kraken");
  CHECK(AccountManager::open(store.backend, raw('x')).value().integrity().intact());
}

TEST_CASE("a rotation of 12,000 accounts and their portfolios keeps every account and portfolio, reporting progress",
          "[rotation]") {
  auto backend = keyfolio::make_memory_backend();
  constexpr int n = 12'000;
  std::vector<std::string> portfolios;
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    std::vector<keyfolio::AccountUpdate> batch;
    for (int i = 0; i < n; ++i) {
      batch.push_back({keyfolio::AccountId::parse("BINANCE/" + std::to_string(i)).value(),
                       keys("k" + std::to_string(i), "s" + std::to_string(i))});
    }
    m.upsert(std::move(batch)).value();
    // Portfolios whose accounts sort among the others and after them, so
    // that their fingerprints are re-made in different parts of the work.
    PortfolioConnector connector(m);
    for (const char* exchange : {"binance", "kraken"}) {
      for (int i = 0; i < 3; ++i) {
        const std::string key = std::string(exchange) + "-key-" + std::to_string(i);
        portfolios.push_back(connector.connect({exchange, keys(key, "c2VjcmV0"), key}).value().portfolio_id);
      }
    }
  }
  auto m = AccountManager::open(backend, raw('x')).value();
  std::vector<std::size_t> done;
  auto rotated = m.rotate_data_key(raw('x'), [&](std::size_t d, std::size_t total) {
    CHECK(total == static_cast<std::size_t>(n) + 6 * 3);  // accounts, portfolios and their index entries
    done.push_back(d);
  });
  REQUIRE(rotated);
  CHECK(rotated->dropped == 0);
  REQUIRE(done.size() > 1);
  CHECK(std::is_sorted(done.begin(), done.end()));
  CHECK(done.back() == rotated->resealed);

  auto reopened = AccountManager::open(backend, raw('x')).value();
  CHECK(reopened.integrity().intact());
  CHECK(reopened.size() == static_cast<std::size_t>(n) + 6);
  for (int i = 0; i < n; i += 997) CHECK(reveals_secret(reopened, "binance/" + std::to_string(i), "s" + std::to_string(i)));
  CHECK(reveals_secret(reopened, "binance/" + std::to_string(n - 1), "s" + std::to_string(n - 1)));
  PortfolioConnector connector(reopened);
  std::size_t p = 0;
  for (const char* exchange : {"binance", "kraken"}) {
    for (int i = 0; i < 3; ++i, ++p) {
      const std::string key = std::string(exchange) + "-key-" + std::to_string(i);
      INFO(key);
      auto again = connector.connect({exchange, keys(key, "c2VjcmV0"), ""}).value();
      CHECK(again.portfolio_id == portfolios[p]);
      CHECK(again.status == keyfolio::ConnectResult::Status::existing);
    }
  }
}

TEST_CASE("after a rotation, the old keyring and the old key open no current record", "[rotation]") {
  Filled store;
  const Record old_keyring = store.backend->get("keyfolio", "keyring").value().value();
  AccountManager::open(store.backend, raw('x')).value().rotate_data_key(raw('x')).value();
  // A backup of the keyring put back: it opens, but nothing under it does.
  const Record now = store.backend->get("keyfolio", "keyring").value().value();
  store.backend->write(WriteBatch().put("keyfolio", "keyring", old_keyring.value, now.version)).value();
  auto plain = AccountManager::open(store.backend, raw('x'));
  REQUIRE_FALSE(plain);
  CHECK(plain.error().code() == errc::corrupt_data);
  auto m = AccountManager::open(store.backend, raw('x'), recovering()).value();
  REQUIRE(m.size() == 51);
  for (const auto& summary : m.list()) CHECK(summary.corrupt);
  CHECK(m.get("binance/3").error().code() == errc::corrupt_data);
}

TEST_CASE("rotating with a new key changes the passphrase and the data key together", "[rotation]") {
  Filled store;
  auto m = AccountManager::open(store.backend, raw('x')).value();
  REQUIRE(m.rotate_data_key(raw('y')));
  CHECK(AccountManager::open(store.backend, raw('x')).error().code() == errc::wrong_key);
  CHECK(reveals_secret(AccountManager::open(store.backend, raw('y')).value(), "binance/1", "s1"));
}

TEST_CASE("another manager of the store fails closed once the data key is rotated", "[rotation]") {
  SECTION("memory backend: told by the change feed") {
    Filled store;
    auto one = AccountManager::open(store.backend, raw('x')).value();
    auto two = AccountManager::open(store.backend, raw('x')).value();
    REQUIRE(reveals_secret(two, "binance/1", "s1"));  // opened and cached
    one.rotate_data_key(raw('x')).value();
    auto got = two.get("binance/1");
    REQUIRE_FALSE(got);
    CHECK(got.error().code() == errc::wrong_key);
    CHECK(mentions(got.error().message(), "rotated by another handle"));
    CHECK(two.upsert("BINANCE/new", keys("k", "s")).error().code() == errc::wrong_key);
    CHECK(two.refresh().error().code() == errc::wrong_key);
    CHECK(reveals_secret(one, "binance/1", "s1"));
  }
  SECTION("SQLite: learnt at its next write or refresh") {
    keyfolio::test::TempDir dir;
    const auto path = dir / "store.db";
    auto one = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
    one.upsert("BINANCE/a", keys("k", "s")).value();
    auto two = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
    auto three = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
    one.rotate_data_key(raw('x')).value();
    auto written = two.upsert("BINANCE/b", keys("k2", "s2"));
    REQUIRE_FALSE(written);
    CHECK(written.error().code() == errc::wrong_key);
    CHECK(two.get("binance/a").error().code() == errc::wrong_key);
    CHECK(three.refresh().error().code() == errc::wrong_key);
    CHECK(three.get("binance/a").error().code() == errc::wrong_key);
    CHECK_FALSE(keyfolio::make_sqlite_backend(path).value()->get("accounts", "binance/b").value());
  }
}

TEST_CASE("another manager's subscribers hear that it is retired by a rotation, once, and nothing else", "[rotation]") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "store.db";
  auto one = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  one.upsert("BINANCE/a", keys("k", "s")).value();
  auto two = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  keyfolio::test::Heard<keyfolio::AccountEvent> heard;
  auto subscription = two.subscribe(heard.handler());
  const auto retired = [](const keyfolio::AccountEvent& e) { return e.kind == keyfolio::AccountEvent::Kind::retired; };
  one.rotate_data_key(raw('x')).value();
  REQUIRE(heard.wait_for(retired));
  one.upsert("BINANCE/b", keys("k2", "s2")).value();
  CHECK(two.refresh().error().code() == errc::wrong_key);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several poll intervals
  // Nothing of the re-sealed BINANCE/a (no account changed), nor of BINANCE/b.
  const auto events = heard.events();
  REQUIRE(events.size() == 1);
  CHECK(retired(events.front()));
  CHECK(events.front().id.spelling().empty());
}

TEST_CASE("a subscriber hears of a resync of the change feed before the changes the re-reading found") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "store.db";
  auto writer = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  auto reader = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  keyfolio::test::Heard<keyfolio::AccountEvent> heard;
  auto subscription = reader.subscribe(heard.handler());
  // A batch of more than 1,024 operations reaches the feed as one resync.
  std::vector<keyfolio::AccountUpdate> many;
  for (int i = 0; i < 1100; ++i) {
    many.push_back({keyfolio::AccountId::parse("BINANCE/" + std::to_string(i)).value(),
                    keys("k" + std::to_string(i), "s" + std::to_string(i))});
  }
  writer.upsert(std::move(many)).value();
  REQUIRE(heard.wait_for([](const keyfolio::AccountEvent& e) { return e.id.spelling() == "BINANCE/999"; }));  // the last in key order
  const auto events = heard.events();
  REQUIRE(events.size() == 1101);
  CHECK(events.front().kind == keyfolio::AccountEvent::Kind::resync);
  CHECK(events.front().id.spelling().empty());
  CHECK(std::all_of(events.begin() + 1, events.end(),
                    [](const keyfolio::AccountEvent& e) { return e.kind == keyfolio::AccountEvent::Kind::created; }));
}

namespace {

// Runs `after_write` once, right after the next write of more than a few
// records (a rotation's) has landed.
class AfterLargeWrite : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::function<void()> after_write;
  keyfolio::Result<void> write(const WriteBatch& batch) override {
    auto r = StorageBackendWrapper::write(batch);
    if (r && batch.operations().size() > 10 && after_write) std::exchange(after_write, nullptr)();
    return r;
  }
};

}  // namespace

TEST_CASE("a write that lands right after this manager's rotation reaches its cache", "[rotation]") {
  Filled store;
  auto racing = std::make_shared<AfterLargeWrite>(store.backend);
  auto m = AccountManager::open(racing, raw('x')).value();
  racing->after_write = [&] {
    // Another host, under the new key, before this manager takes in what it
    // rotated: its feed event comes while the rotation holds events back.
    auto other = AccountManager::open(store.backend, raw('x')).value();
    other.upsert("BINANCE/3", keys("k3", "theirs")).value();
  };
  REQUIRE(m.rotate_data_key(raw('x')));
  CHECK(reveals_secret(m, "binance/3", "theirs"));
  CHECK(reveals_secret(m, "binance/4", "s4"));
  CHECK(m.get("BINANCE/3").value()->version == store.backend->get("accounts", "binance/3").value()->version);
}

TEST_CASE("opened to recover, a rotation leaves behind the records that do not authenticate",
          "[rotation]") {
  Filled store;
  Record damaged = store.backend->get("accounts", "binance/9").value().value();
  damaged.value[damaged.value.size() - 20] ^= 1;  // inside the ciphertext: past the store-wide check
  store.backend->write(WriteBatch().put("accounts", "binance/9", damaged.value, damaged.version)).value();
  // Written behind the store's back at a new version: refused at open...
  CHECK(AccountManager::open(store.backend, raw('x')).error().code() == errc::corrupt_data);
  auto m = AccountManager::open(store.backend, raw('x'), recovering()).value();
  const auto before = keyfolio::test::everything(*store.backend);
  // ...and opened to recover, the rotation leaves the damaged record behind.
  AccountManager::Options plain;
  auto rotated = m.rotate_data_key(raw('x'));
  REQUIRE(rotated);
  CHECK(rotated->dropped == 1);
  CHECK_FALSE(store.backend->get("accounts", "binance/9").value());
  auto sealed_anew = AccountManager::open(store.backend, raw('x'), plain).value();
  CHECK(sealed_anew.integrity().intact());
  CHECK(sealed_anew.size() == 50);
  CHECK(reveals_secret(sealed_anew, "binance/8", "s8"));
  CHECK(before.size() == keyfolio::test::everything(*store.backend).size() + 1);
}

TEST_CASE("a rotation of a damaged store not opened to recover changes nothing", "[rotation]") {
  Filled store;
  auto m = AccountManager::open(store.backend, raw('x')).value();
  Record damaged = store.backend->get("accounts", "binance/9").value().value();
  damaged.value[damaged.value.size() - 20] ^= 1;
  // The same version and nonce and tag: the store-wide check passes it.
  keyfolio::test::put_back(*store.backend, "accounts", damaged);
  const auto before = keyfolio::test::everything(*store.backend);
  auto rotated = m.rotate_data_key(raw('x'));
  REQUIRE_FALSE(rotated);
  CHECK(rotated.error().code() == errc::corrupt_data);
  CHECK(mentions(rotated.error().message(), "accounts \"binance/9\" does not authenticate"));
  CHECK(keyfolio::test::same(before, keyfolio::test::everything(*store.backend)));
}

TEST_CASE("during a rotation this manager's readers find every account, and its subscribers hear nothing",
          "[rotation]") {
  Filled store;
  auto m = AccountManager::open(store.backend, raw('x')).value();
  std::atomic<int> events{0};
  auto subscription = m.subscribe([&](const keyfolio::AccountEvent&) { ++events; });
  std::atomic<bool> done{false};
  std::atomic<int> misses{0}, reads{0};
  std::thread reader([&] {
    while (!done) {
      for (int i = 0; i < 50; ++i) {
        if (!reveals_secret(m, "binance/" + std::to_string(i), "s" + std::to_string(i))) ++misses;
        ++reads;
      }
    }
  });
  while (reads == 0) std::this_thread::yield();
  for (int round = 0; round < 20; ++round) REQUIRE(m.rotate_data_key(raw('x')));
  done = true;
  reader.join();
  CHECK(misses == 0);
  CHECK(events == 0);
  CHECK(AccountManager::open(store.backend, raw('x')).value().integrity().intact());
}
