// The store-wide integrity check: what someone with write access to the
// store (but not its key) can do to it, and what keyfolio says about it.
// Every attack here writes to the backend directly, as such a person would.
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/portfolio_connector.hpp>

#include "catch.hpp"
#include "credentials.hpp"
#include "keys.hpp"
#include "stored.hpp"
#include "tampering.hpp"
#include "temp_dir.hpp"

#include <boost/json.hpp>

#include <filesystem>
#include <thread>

using keyfolio::AccountManager;
using keyfolio::errc;
using keyfolio::IntegrityFinding;
using keyfolio::KeySource;
using keyfolio::Record;
using keyfolio::SecretString;
using keyfolio::WriteBatch;
using keyfolio::must_not_exist;
using keyfolio::test::mentions;
using keyfolio::test::put_back;
using keyfolio::test::raw;
using keyfolio::test::recovering;
using keyfolio::test::reveals_secret;

namespace {

keyfolio::Credentials keys(std::string_view key, std::string_view secret) {
  return keyfolio::test::api_keys(key, secret);
}

Record stored(keyfolio::StorageBackend& backend, std::string_view collection, std::string_view key) {
  return backend.get(collection, key).value().value();
}

AccountManager::Options at_least(std::uint64_t generation) {
  AccountManager::Options options;
  options.minimum_generation = generation;
  return options;
}

// A plain open is corrupt_data and says each of `words`; opened to recover,
// the report names the same.
void check_refused(const std::shared_ptr<keyfolio::StorageBackend>& backend, IntegrityFinding::Kind kind,
                   std::string_view collection, std::string_view key, std::vector<std::string_view> words) {
  auto opened = AccountManager::open(backend, raw('x'));
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code() == errc::corrupt_data);
  for (auto word : words) CHECK(mentions(opened.error().message(), word));
  auto recovered = AccountManager::open(backend, raw('x'), recovering());
  REQUIRE(recovered);
  const auto report = recovered->integrity();
  REQUIRE_FALSE(report.intact());
  CHECK(report.findings[0].kind == kind);
  CHECK(report.findings[0].collection == collection);
  CHECK(report.findings[0].key == key);
}

}  // namespace

TEST_CASE("an account's older record put back is corrupt_data at open, naming it as older", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    m.upsert("BINANCE/a", keys("k", "old-secret")).value();
    m.upsert("BINANCE/other", keys("k2", "s2")).value();
  }
  const Record v1 = stored(*backend, "accounts", "binance/a");
  AccountManager::open(backend, raw('x')).value().upsert("BINANCE/a", keys("k", "new-secret")).value();
  // The exact version-1 record, at version 1: it authenticates on its own.
  put_back(*backend, "accounts", v1);
  check_refused(backend, IntegrityFinding::Kind::older, "accounts", "binance/a",
                {"accounts \"binance/a\"", "older", "version 1", "version 2"});
  // Recovering shows what is there, marked, and nothing else is lost.
  auto m = AccountManager::open(backend, raw('x'), recovering()).value();
  CHECK(reveals_secret(m, "binance/other", "s2"));
}

TEST_CASE("a deleted account is corrupt_data at open, naming it as missing", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    m.upsert("BINANCE/a", keys("k", "s")).value();
    m.upsert("BINANCE/b", keys("k2", "s2")).value();
  }
  backend->write(WriteBatch().erase("accounts", "binance/a", 1)).value();
  check_refused(backend, IntegrityFinding::Kind::missing, "accounts", "binance/a",
                {"accounts \"binance/a\"", "missing"});
}

TEST_CASE("a removed account put back is corrupt_data at open, naming it as unexpected", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  m.upsert("BINANCE/a", keys("k", "s")).value();
  const Record before = stored(*backend, "accounts", "binance/a");
  m.remove(keyfolio::AccountId::parse("binance/a").value()).value();
  put_back(*backend, "accounts", before);
  check_refused(backend, IntegrityFinding::Kind::unexpected, "accounts", "binance/a",
                {"accounts \"binance/a\"", "removed"});
}

TEST_CASE("after an account is removed and created again, its first life's record does not replay", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  m.upsert("BINANCE/a", keys("k", "first-life")).value();
  const Record first = stored(*backend, "accounts", "binance/a");
  m.remove(keyfolio::AccountId::parse("binance/a").value()).value();
  m.upsert("BINANCE/a", keys("k", "second-life")).value();
  // Both lives are at version 1: the old record authenticates where it lies.
  REQUIRE(stored(*backend, "accounts", "binance/a").version == first.version);
  put_back(*backend, "accounts", first);
  check_refused(backend, IntegrityFinding::Kind::replaced, "accounts", "binance/a",
                {"accounts \"binance/a\"", "another copy"});
}

TEST_CASE("a change older than the journal is still found, by collection and count", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  m.upsert("BINANCE/early", keys("k", "s")).value();
  for (int i = 0; i < 100; ++i) m.upsert("KRAKEN/" + std::to_string(i), keys("k", "c2VjcmV0")).value();
  backend->write(WriteBatch().erase("accounts", "binance/early", 1)).value();
  check_refused(backend, IntegrityFinding::Kind::missing, "accounts", "",
                {"accounts", "1 record is missing", "holds 100 of the 101"});
}

TEST_CASE("portfolios, their index and their snapshots are covered as accounts are", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  std::string id;
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    keyfolio::PortfolioConnector connector(m);
    id = connector.connect({"binance", keys("k", "s"), "Main"}).value().portfolio_id;
  }
  const Record portfolio = stored(*backend, "portfolios", id);
  backend->write(WriteBatch().erase("portfolios", id, portfolio.version)).value();
  check_refused(backend, IntegrityFinding::Kind::missing, "portfolios", id, {"portfolios", "missing"});
  backend->write(WriteBatch().put("portfolios", id, portfolio.value, must_not_exist)).value();
  CHECK(AccountManager::open(backend, raw('x')));  // as it was

  const auto index = backend->scan("portfolio_index").value();
  REQUIRE(index.size() == 1);
  backend->write(WriteBatch().erase("portfolio_index", index[0].key, index[0].version)).value();
  check_refused(backend, IntegrityFinding::Kind::missing, "portfolio_index", index[0].key,
                {"portfolio_index", "missing"});
}

TEST_CASE("the integrity record missing or damaged is corrupt_data, never a wrong key", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  AccountManager::open(backend, raw('x')).value().upsert("BINANCE/a", keys("k", "s")).value();
  const Record manifest = stored(*backend, "keyfolio", "manifest");

  SECTION("damaged") {
    Record flipped = manifest;
    flipped.value[flipped.value.size() / 2] ^= 1;
    backend->write(WriteBatch().put("keyfolio", "manifest", flipped.value, manifest.version)).value();
    auto opened = AccountManager::open(backend, raw('x'));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
    CHECK(mentions(opened.error().message(), "integrity record does not authenticate"));
  }
  SECTION("deleted") {
    backend->write(WriteBatch().erase("keyfolio", "manifest", manifest.version)).value();
    auto opened = AccountManager::open(backend, raw('x'));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
    CHECK(mentions(opened.error().message(), "integrity record is missing"));
    // Opened to recover, every account still reads, and a write is refused
    // rather than made to look intact.
    auto m = AccountManager::open(backend, raw('x'), recovering()).value();
    CHECK(m.integrity().findings.at(0).kind == IntegrityFinding::Kind::manifest_damaged);
    CHECK(reveals_secret(m, "binance/a", "s"));
    CHECK(m.upsert("BINANCE/b", keys("k", "s")).error().code() == errc::corrupt_data);
    CHECK_FALSE(backend->get("keyfolio", "manifest").value());
  }
  SECTION("an older integrity record put back") {
    AccountManager::open(backend, raw('x')).value().upsert("BINANCE/b", keys("k", "s")).value();
    put_back(*backend, "keyfolio", manifest);
    auto opened = AccountManager::open(backend, raw('x'));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
  }
}

TEST_CASE("a keyring stripped of its integrity marker does not open as an older store", "[integrity]") {
  auto backend = keyfolio::make_memory_backend();
  AccountManager::open(backend, raw('x')).value().upsert("BINANCE/a", keys("k", "s")).value();
  const Record keyring = stored(*backend, "keyfolio", "keyring");
  const Record manifest = stored(*backend, "keyfolio", "manifest");
  auto document = boost::json::parse(keyring.value).as_object();
  REQUIRE(document.contains("integrity"));
  document.erase("integrity");
  backend->write(WriteBatch().put("keyfolio", "keyring", boost::json::serialize(document), keyring.version)).value();
  auto opened = AccountManager::open(backend, raw('x'));
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code() == errc::corrupt_data);
  // Nothing was rewritten from the records as they are.
  CHECK(keyfolio::test::same({manifest}, {stored(*backend, "keyfolio", "manifest")}));
  CHECK_FALSE(boost::json::parse(stored(*backend, "keyfolio", "keyring").value).as_object().contains("integrity"));
}

TEST_CASE("the generation grows with every write from any handle, and an older store is refused", "[integrity]") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "store.db";
  std::uint64_t anchored = 0;
  {
    auto m = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
    CHECK(m.generation() == 1);
    m.upsert("BINANCE/a", keys("k", "s1")).value();
    CHECK(m.generation() == 2);
  }
  // The whole store, as an older copy of it.
  std::filesystem::copy_file(path, dir / "old.db");
  {
    auto m = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
    CHECK(m.generation() == 2);
    m.upsert("BINANCE/a", keys("k", "s2")).value();
    m.upsert("BINANCE/b", keys("k", "s3")).value();
    anchored = m.generation();
    CHECK(anchored == 4);
  }
  CHECK(AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x'), at_least(anchored)));
  std::filesystem::remove(path);
  std::filesystem::copy_file(dir / "old.db", path);
  // From inside, the older copy is a consistent store...
  CHECK(AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')));
  // ...which the anchored generation refuses.
  auto opened = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x'), at_least(anchored));
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code() == errc::corrupt_data);
  CHECK(mentions(opened.error().message(), "generation 2, older than the generation 4 required"));
}

TEST_CASE("writers on two managers of one store never make it look damaged", "[integrity]") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "store.db";
  auto one = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  auto two = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  constexpr int each = 60;
  const auto writer = [](AccountManager& m, std::string exchange) {
    for (int i = 0; i < each; ++i) {
      const std::string id = exchange + "/" + std::to_string(i % 20);
      if (i % 7 == 6) {
        (void)m.remove(keyfolio::AccountId::parse(id).value());
      } else {
        m.upsert(id, keys("k" + std::to_string(i), "c2VjcmV0")).value();
      }
      if (i % 10 == 0) m.refresh().value();  // a full check while the other writes
    }
  };
  std::thread a([&] { writer(one, "KRAKEN"); });
  std::thread b([&] { writer(two, "BINANCE"); });
  a.join();
  b.join();
  auto again = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), raw('x')).value();
  CHECK(again.integrity().intact());
  // One generation per write that changed something, and one for creating.
  CHECK(again.generation() >= 1 + 2 * (each - each / 7));
  one.refresh().value();
  CHECK(again.size() == one.size());
}

TEST_CASE("a store from before integrity records gets its first one, and is checked from then on", "[integrity]") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "store.db";
  std::filesystem::copy_file(KEYFOLIO_TEST_DATA_DIR "/format1-store.db", path);
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto key = KeySource::passphrase(SecretString("keyfolio format 1 fixture"));
  auto backend = keyfolio::make_sqlite_backend(path).value();
  REQUIRE_FALSE(backend->get("keyfolio", "manifest").value());
  {
    auto m = AccountManager::open(backend, key).value();
    CHECK(m.size() == 3);
    CHECK(m.integrity().intact());
    CHECK(m.generation() == 1);
  }
  CHECK(backend->get("keyfolio", "manifest").value());
  CHECK(boost::json::parse(stored(*backend, "keyfolio", "keyring").value).as_object().contains("integrity"));
  backend->write(WriteBatch().erase("accounts", "hyperliquid", stored(*backend, "accounts", "hyperliquid").version))
      .value();
  auto opened = AccountManager::open(backend, key);
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code() == errc::corrupt_data);
}

namespace {

class CountingBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  int gets = 0;
  int scans = 0;
  keyfolio::Result<std::optional<Record>> get(std::string_view c, std::string_view k) override {
    ++gets;
    return StorageBackendWrapper::get(c, k);
  }
  keyfolio::Result<std::vector<Record>> scan(std::string_view c, std::string_view p) override {
    ++scans;
    return StorageBackendWrapper::scan(c, p);
  }
};

}  // namespace

TEST_CASE("keeping the integrity record costs a write no scan, and an update one read of the record it replaces",
          "[integrity]") {
  auto counting = std::make_shared<CountingBackend>(keyfolio::make_memory_backend());
  auto m = AccountManager::open(counting, raw('x')).value();
  for (int i = 0; i < 200; ++i) m.upsert("KRAKEN/" + std::to_string(i), keys("k", "c2VjcmV0")).value();
  counting->gets = counting->scans = 0;
  m.upsert("KRAKEN/new", keys("k", "c2VjcmV0")).value();
  const int insert_gets = counting->gets;
  CHECK(counting->scans == 0);
  counting->gets = 0;
  m.upsert("KRAKEN/5", keys("k2", "c2VjcmV0")).value();
  CHECK(counting->scans == 0);
  CHECK(counting->gets <= insert_gets + 1);
  CHECK(AccountManager::open(counting, raw('x')).value().integrity().intact());
}
