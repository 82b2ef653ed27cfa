#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/portfolio_connector.hpp>
#include <keyfolio/testing/static_sources.hpp>

#include "catch.hpp"
#include "damage.hpp"
#include "keys.hpp"
#include "read_counting.hpp"
#include "stored.hpp"
#include "temp_dir.hpp"

#include <keyfolio/backends/sqlite.hpp>

#include <cmath>
#include <filesystem>
#include <set>
#include <thread>

using keyfolio::AccountManager;
using keyfolio::ConnectRequest;
using keyfolio::ConnectResult;
using keyfolio::Credentials;
using keyfolio::KeySource;
using keyfolio::PortfolioConnector;
using keyfolio::SecretString;
using keyfolio::errc;
using keyfolio::test::reveals;

namespace {

using keyfolio::test::raw;

using keyfolio::test::mentions;

Credentials fields(std::initializer_list<std::pair<const char*, std::string>> list) {
  Credentials c;
  for (const auto& [k, v] : list) c.add(k, SecretString(v)).value();
  return c;
}

ConnectRequest binance(std::string key, std::string secret, std::string name = {}) {
  return {"binance", fields({{"apiKey", key}, {"apiSecret", secret}}), std::move(name)};
}

// Each test using it runs twice: on the memory backend and on SQLite.
std::shared_ptr<keyfolio::StorageBackend> backend_for_test(keyfolio::test::TempDir& dir) {
  const bool sqlite = GENERATE(false, true);
  if (!sqlite) return keyfolio::make_memory_backend();
  keyfolio::SqliteOptions options;
  options.poll_interval = std::chrono::milliseconds(10);
  return keyfolio::make_sqlite_backend(dir / "store.db", options).value();
}

struct Fixture {
  keyfolio::test::TempDir dir;
  std::shared_ptr<keyfolio::StorageBackend> backend = backend_for_test(dir);
  AccountManager accounts = AccountManager::open(backend, raw('k')).value();

  // Everything stored, for proving a rejected call changed nothing.
  std::vector<keyfolio::Record> stored() const { return keyfolio::test::everything(*backend); }
};

using keyfolio::test::same;

class RecordingVerifier : public keyfolio::CredentialVerifier {
 public:
  bool accept = true;
  int calls = 0;
  keyfolio::Result<void> verify(const keyfolio::ExchangeInfo&, const Credentials&) override {
    ++calls;
    if (accept) return {};
    return keyfolio::Error(errc::unavailable, "the exchange answered 401 invalid signature");
  }
};

}  // namespace

TEST_CASE("connect stores a new exchange account as a portfolio with a random 128-bit hex id") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto result = connector.connect(binance("key-1", "secret-1", "My Binance Portfolio")).value();
  CHECK(result.status == ConnectResult::Status::connected);
  CHECK(result.connection_id == "binance");
  CHECK_FALSE(result.credentials_updated);
  REQUIRE(result.portfolio_id.size() == 32);
  CHECK(result.portfolio_id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(result.account.exchange() == "binance");
  CHECK(result.account.tag() == result.portfolio_id);

  auto portfolio = connector.get(result.portfolio_id).value();
  CHECK(portfolio.name == "My Binance Portfolio");
  CHECK(portfolio.owns_account);
  CHECK(portfolio.account == result.account);
  auto account = f.accounts.get(result.account).value();
  CHECK(reveals(*account->credentials.find("secret"), "secret-1"));  // apiSecret canonicalised
  CHECK(connector.list().value().size() == 1);

  std::set<std::string> ids{result.portfolio_id};
  for (int i = 0; i < 20; ++i) ids.insert(connector.connect(binance("key-n" + std::to_string(i), "s")).value().portfolio_id);
  CHECK(ids.size() == 21);
}

TEST_CASE("connecting the same exchange account twice is idempotent and says existing") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto first = connector.connect(binance("key-1", "secret-1")).value();
  const auto before = f.stored();
  auto second = connector.connect(binance("key-1", "secret-1", "another name")).value();
  CHECK(second.status == ConnectResult::Status::existing);
  CHECK(second.portfolio_id == first.portfolio_id);
  CHECK_FALSE(second.credentials_updated);
  CHECK(same(f.stored(), before));
  CHECK(connector.get(first.portfolio_id).value().name == "Binance");  // default: the exchange's name
}

TEST_CASE("the same API key with a new secret updates the stored secret and says so") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto first = connector.connect(binance("key-1", "secret-1")).value();
  auto rotated = connector.connect(binance("key-1", "secret-2")).value();
  CHECK(rotated.status == ConnectResult::Status::existing);
  CHECK(rotated.portfolio_id == first.portfolio_id);
  CHECK(rotated.credentials_updated);
  auto account = f.accounts.get(first.account).value();
  CHECK(reveals(*account->credentials.find("secret"), "secret-2"));
  CHECK(account->version == 2);
  CHECK(connector.list().value().size() == 1);
  // A different API key on the same exchange is another account.
  CHECK(connector.connect(binance("key-2", "secret-1")).value().status == ConnectResult::Status::connected);
}

TEST_CASE("connect links an account stored before through the AccountManager instead of duplicating it") {
  Fixture f;
  f.accounts.upsert("BINANCE/main", fields({{"apiKey", "shared-key"}, {"secret", "shared-secret"}})).value();
  PortfolioConnector connector(f.accounts);
  auto result = connector.connect(binance("shared-key", "shared-secret")).value();
  CHECK(result.status == ConnectResult::Status::connected);
  CHECK(result.account.spelling() == "BINANCE/main");
  CHECK_FALSE(connector.get(result.portfolio_id).value().owns_account);
  CHECK(f.accounts.size() == 1);

  SECTION("disconnecting keeps an account other code stored") {
    connector.disconnect(result.portfolio_id).value();
    CHECK(f.accounts.size() == 1);
    CHECK(connector.list().value().empty());
    CHECK(connector.get(result.portfolio_id).error().code() == errc::not_found);
  }
  SECTION("unless asked to remove it") {
    connector.disconnect(result.portfolio_id, PortfolioConnector::AccountPolicy::remove).value();
    CHECK(f.accounts.size() == 0);
  }
}

TEST_CASE("the same API key stored under two tags links the first by id, and connecting again says existing") {
  Fixture f;
  f.accounts.upsert("BINANCE/b", fields({{"apiKey", "shared-key"}, {"secret", "s"}})).value();
  f.accounts.upsert("BINANCE/a", fields({{"apiKey", "shared-key"}, {"secret", "s"}})).value();
  f.accounts.upsert("KRAKEN/a", fields({{"apiKey", "shared-key"}, {"secret", "s"}})).value();
  PortfolioConnector connector(f.accounts);
  auto first = connector.connect(binance("shared-key", "s")).value();
  CHECK(first.status == ConnectResult::Status::connected);
  CHECK(first.account.spelling() == "BINANCE/a");
  auto again = connector.connect(binance("shared-key", "s")).value();
  CHECK(again.status == ConnectResult::Status::existing);
  CHECK(again.portfolio_id == first.portfolio_id);
  // The same key on another exchange is another exchange account.
  auto kraken = connector.connect({"kraken", fields({{"apiKey", "shared-key"}, {"secret", "s"}}), ""}).value();
  CHECK(kraken.status == ConnectResult::Status::connected);
  CHECK(kraken.account.spelling() == "KRAKEN/a");
  CHECK(f.accounts.size() == 3);
}

TEST_CASE("disconnect removes an account connect created, unless asked to keep it") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto a = connector.connect(binance("key-a", "s")).value();
  auto b = connector.connect(binance("key-b", "s")).value();
  connector.disconnect(a.portfolio_id).value();
  CHECK(f.accounts.get(a.account).error().code() == errc::not_found);
  connector.disconnect(b.portfolio_id, PortfolioConnector::AccountPolicy::keep).value();
  CHECK(f.accounts.get(b.account).has_value());
  // Connecting again after a disconnect makes a new portfolio.
  auto again = connector.connect(binance("key-a", "s")).value();
  CHECK(again.status == ConnectResult::Status::connected);
  CHECK(again.portfolio_id != a.portfolio_id);
  CHECK(connector.disconnect(a.portfolio_id).error().code() == errc::not_found);
}

TEST_CASE("list reports a portfolio whose stored record does not authenticate as corrupt, beside the others") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto a = connector.connect(binance("key-a", "s", "Alpha")).value();
  auto b = connector.connect(binance("key-b", "s", "Beta")).value();
  auto c = connector.connect(binance("key-c", "s", "Gamma")).value();
  keyfolio::test::damage(*f.backend, "portfolios", b.portfolio_id);
  const auto stored_version = f.backend->get("portfolios", b.portfolio_id).value()->version;

  auto list = connector.list();
  REQUIRE(list);
  REQUIRE(list->size() == 3);
  // The healthy ones by name, then the corrupt one, of which only the id and
  // the stored version are known.
  CHECK((*list)[0].id == a.portfolio_id);
  CHECK((*list)[0].name == "Alpha");
  CHECK_FALSE((*list)[0].corrupt);
  CHECK((*list)[1].id == c.portfolio_id);
  CHECK((*list)[1].name == "Gamma");
  CHECK((*list)[1].account == c.account);
  CHECK_FALSE((*list)[1].corrupt);
  const keyfolio::Portfolio& damaged = (*list)[2];
  CHECK(damaged.id == b.portfolio_id);
  CHECK(damaged.corrupt);
  CHECK(damaged.version == stored_version);
  CHECK(damaged.name.empty());
  CHECK(damaged.account.exchange().empty());
  CHECK_FALSE(damaged.owns_account);
  CHECK(damaged.created == keyfolio::Timestamp{});

  auto got = connector.get(b.portfolio_id);
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == errc::corrupt_data);
  CHECK(connector.get(a.portfolio_id).value().name == "Alpha");
}

TEST_CASE("disconnect removes a portfolio whose stored record does not authenticate, with its snapshots and index entry") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto a = connector.connect(binance("key-a", "s", "Alpha")).value();
  auto b = connector.connect(binance("key-b", "s", "Beta")).value();
  keyfolio::testing::StaticBalanceSource balances;
  balances.set("binance", {{"BTC", 1}});
  connector.sync(a.portfolio_id, balances).value();
  connector.sync(b.portfolio_id, balances).value();
  const auto b_snapshots = f.backend->scan("snapshots", b.portfolio_id + "/").value();
  REQUIRE(b_snapshots.size() == 1);
  const auto b_index = f.backend->scan("portfolio_index").value();
  REQUIRE(b_index.size() == 2);
  keyfolio::test::damage(*f.backend, "portfolios", a.portfolio_id);

  // Its account cannot be known: removing it as asked is refused, and
  // nothing changes.
  const auto before = f.stored();
  auto refused = connector.disconnect(a.portfolio_id, PortfolioConnector::AccountPolicy::remove);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::corrupt_data);
  CHECK(mentions(refused.error().message(), a.portfolio_id));
  CHECK(mentions(refused.error().message(), "account"));
  CHECK(same(f.stored(), before));

  REQUIRE(connector.disconnect(a.portfolio_id));
  auto list = connector.list().value();
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == b.portfolio_id);
  CHECK_FALSE(list[0].corrupt);
  CHECK_FALSE(f.backend->get("portfolios", a.portfolio_id).value().has_value());
  CHECK(f.backend->scan("snapshots", a.portfolio_id + "/").value().empty());
  CHECK(same(f.backend->scan("snapshots").value(), b_snapshots));  // the other's, untouched
  CHECK(f.backend->scan("portfolio_index").value().size() == 1);
  CHECK(connector.snapshots(b.portfolio_id).value().size() == 1);
  CHECK(connector.get(a.portfolio_id).error().code() == errc::not_found);
  CHECK(connector.disconnect(a.portfolio_id).error().code() == errc::not_found);
  // Whether the portfolio owned its account cannot be known either: the
  // account stays, to be removed through the AccountManager.
  CHECK(f.accounts.get(a.account).has_value());

  // No index entry is left naming the removed portfolio: connecting the same
  // exchange account again makes a new portfolio, linked to the account kept.
  auto again = connector.connect(binance("key-a", "s")).value();
  CHECK(again.status == ConnectResult::Status::connected);
  CHECK(again.portfolio_id != a.portfolio_id);
  CHECK(again.account == a.account);
}

TEST_CASE("disconnect keeping the account removes a portfolio whose stored record does not authenticate") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto a = connector.connect(binance("key-a", "s")).value();
  auto b = connector.connect(binance("key-b", "s")).value();
  keyfolio::test::damage(*f.backend, "portfolios", a.portfolio_id);
  REQUIRE(connector.disconnect(a.portfolio_id, PortfolioConnector::AccountPolicy::keep));
  CHECK_FALSE(f.backend->get("portfolios", a.portfolio_id).value().has_value());
  CHECK(f.accounts.get(a.account).has_value());
  CHECK(connector.get(b.portfolio_id).has_value());
}

TEST_CASE("connect validates through the catalog, canonicalising aliases, and stores nothing on error") {
  Fixture f;
  RecordingVerifier verifier;
  PortfolioConnector connector(f.accounts, {.verifier = &verifier});
  connector.connect(binance("kept", "kept")).value();
  const int calls = verifier.calls;
  const auto before = f.stored();

  auto unknown = connector.connect({"binanse", fields({{"apiKey", "k"}, {"secret", "s"}}), ""});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code() == errc::invalid_exchange_id);
  CHECK(mentions(unknown.error().message(), "did you mean \"binance\""));

  auto pasted = connector.connect({"CANARY-secret-0123456789abcdef", fields({{"apiKey", "k"}}), ""});
  REQUIRE_FALSE(pasted);
  CHECK_FALSE(mentions(pasted.error().message(), "CANARY"));

  auto missing = connector.connect({"okx", fields({{"apiKey", "k"}, {"apiSecret", "s"}}), ""});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == errc::validation_failed);
  CHECK(mentions(missing.error().message(), "\"password\""));

  auto extra = connector.connect({"binance", fields({{"apiKey", "k"}, {"secret", "s"}, {"walletAddress", "0x1"}}), ""});
  REQUIRE_FALSE(extra);
  CHECK(extra.error().code() == errc::validation_failed);
  CHECK(mentions(extra.error().message(), "walletAddress"));

  auto bad_name = connector.connect(binance("k", "s", std::string("tab\there")));
  REQUIRE_FALSE(bad_name);
  CHECK(bad_name.error().code() == errc::validation_failed);
  auto long_name = connector.connect(binance("k", "s", std::string(PortfolioConnector::max_name_length + 1, 'n')));
  CHECK(long_name.error().code() == errc::validation_failed);

  CHECK(verifier.calls == calls);  // invalid input never reaches the verifier
  CHECK(same(f.stored(), before));

  auto okx = connector.connect({"OKEX", fields({{"apiKey", "k"}, {"apiSecret", "s"}, {"passphrase", "p"}}), ""});
  REQUIRE(okx);
  CHECK(okx->connection_id == "okx");
  CHECK(f.accounts.get(okx->account).value()->credentials.field_names() ==
        std::vector<std::string>{"apiKey", "password", "secret"});
}

TEST_CASE("a verifier that refuses the credentials stops connect before anything is stored") {
  Fixture f;
  RecordingVerifier verifier;
  PortfolioConnector connector(f.accounts, {.verifier = &verifier});
  auto first = connector.connect(binance("key-1", "secret-1")).value();
  CHECK(verifier.calls == 1);
  // Idempotent repeats store nothing and so need no verification.
  connector.connect(binance("key-1", "secret-1")).value();
  CHECK(verifier.calls == 1);

  verifier.accept = false;
  const auto before = f.stored();
  auto refused = connector.connect(binance("key-2", "CANARY-refused-secret"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::verification_failed);
  CHECK(mentions(refused.error().message(), "401 invalid signature"));
  CHECK_FALSE(mentions(refused.error().message(), "CANARY"));
  auto rotation = connector.connect(binance("key-1", "secret-2"));
  CHECK(rotation.error().code() == errc::verification_failed);
  CHECK(same(f.stored(), before));
  CHECK(reveals(*f.accounts.get(first.account).value()->credentials.find("secret"), "secret-1"));
}

namespace {

// Fails every write that touches the portfolios collection.
class FailingBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  keyfolio::Result<void> write(const keyfolio::WriteBatch& batch) override {
    for (const auto& op : batch.operations()) {
      if (op.collection == "portfolios") return keyfolio::Error(errc::storage_error, "injected failure");
    }
    return StorageBackendWrapper::write(batch);
  }
};

}  // namespace

namespace {

// Records the collections each batch touches.
class RecordingBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::vector<std::set<std::string>> batches;
  keyfolio::Result<void> write(const keyfolio::WriteBatch& batch) override {
    std::set<std::string> touched;
    for (const auto& op : batch.operations()) touched.insert(op.collection);
    batches.push_back(touched);
    return StorageBackendWrapper::write(batch);
  }
};

}  // namespace

TEST_CASE("connect writes the account, the portfolio, its index entry and the store's integrity record in a single batch") {
  auto recording = std::make_shared<RecordingBackend>(keyfolio::make_memory_backend());
  auto accounts = AccountManager::open(recording, raw('k')).value();
  PortfolioConnector connector(accounts);
  recording->batches.clear();
  connector.connect(binance("k", "s")).value();
  REQUIRE(recording->batches.size() == 1);
  CHECK(recording->batches[0] == std::set<std::string>{"accounts", "keyfolio", "portfolio_index", "portfolios"});
  recording->batches.clear();
  connector.connect(binance("k", "s2")).value();  // a rotated secret: the account and its portfolio together
  REQUIRE(recording->batches.size() == 1);
  CHECK(recording->batches[0] == std::set<std::string>{"accounts", "keyfolio", "portfolios"});
}

TEST_CASE("the account and the portfolio are written in one batch: a failed write leaves neither") {
  auto inner = keyfolio::make_memory_backend();
  auto failing = std::make_shared<FailingBackend>(inner);
  auto accounts = AccountManager::open(failing, raw('k')).value();
  PortfolioConnector connector(accounts);
  auto r = connector.connect(binance("k", "s"));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::storage_error);
  CHECK(inner->scan("accounts").value().empty());
  CHECK(inner->scan("portfolios").value().empty());
  CHECK(inner->scan("portfolio_index").value().empty());
  CHECK(accounts.size() == 0);
}

TEST_CASE("concurrent connects of one exchange account from many threads make one portfolio") {
  Fixture f;
  auto second_manager = AccountManager::open(f.backend, raw('k')).value();
  PortfolioConnector a(f.accounts);
  PortfolioConnector b(second_manager);
  std::vector<std::thread> threads;
  std::vector<keyfolio::Result<ConnectResult>> results(8, keyfolio::Error(errc::conflict, "not run"));
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] { results[static_cast<std::size_t>(t)] = (t % 2 ? a : b).connect(binance("same-key", "same-secret")); });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  int connected = 0;
  for (const auto& r : results) {
    REQUIRE(r.has_value());
    ids.insert(r->portfolio_id);
    connected += r->status == ConnectResult::Status::connected;
  }
  CHECK(ids.size() == 1);
  CHECK(connected == 1);
  CHECK(a.list().value().size() == 1);
  f.accounts.refresh().value();  // the other manager's write may still be on its way through the feed
  CHECK(f.accounts.size() == 1);
}

namespace {

// Counts reads. Its change feed is either missing, like a backend without
// one (the manager then hears nothing of other writers), or slow: it never
// reports within the test, as a feed on another thread reports some time
// after the commit (the memory backend's own reports before write returns).
class QuietFeedBackend : public keyfolio::test::ReadCountingBackend {
 public:
  QuietFeedBackend(std::shared_ptr<keyfolio::StorageBackend> target, bool feed)
      : ReadCountingBackend(std::move(target)), feed_(feed) {}
  keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler) override {
    if (!feed_) return keyfolio::Error(errc::not_supported, "no change feed");
    return StorageBackendWrapper::subscribe([](const keyfolio::ChangeEvent&) {});
  }

 private:
  bool feed_;
};

}  // namespace

TEST_CASE("connecting an exchange account new to the store reads nothing from the store") {
  auto counting = std::make_shared<QuietFeedBackend>(keyfolio::make_memory_backend(), true);
  auto accounts = AccountManager::open(counting, raw('k')).value();
  PortfolioConnector connector(accounts);
  counting->reads = 0;
  auto r = connector.connect(binance("new-key", "s")).value();
  CHECK(r.status == ConnectResult::Status::connected);
  CHECK(counting->reads == 0);
  CHECK(connector.get(r.portfolio_id).value().account == r.account);
  CHECK(reveals(*accounts.get(r.account).value()->credentials.find("apiKey"), "new-key"));
}

TEST_CASE("a portfolio connected through a manager this one has not heard from is found as existing") {
  auto inner = keyfolio::make_memory_backend();
  auto first = AccountManager::open(inner, raw('k')).value();
  auto behind_backend = std::make_shared<QuietFeedBackend>(inner, false);
  auto behind = AccountManager::open(behind_backend, raw('k')).value();
  auto connected = PortfolioConnector(first).connect(binance("k", "s", "Mine")).value();
  REQUIRE(behind.size() == 0);  // no feed: it never heard of that account

  RecordingVerifier verifier;
  SECTION("with the same credentials") {
    // One attempt allowed: the write that finds the portfolio by its index
    // entry does not count as one.
    PortfolioConnector connector(behind, {.max_retries = 1});
    auto again = connector.connect(binance("k", "s")).value();
    CHECK(again.status == ConnectResult::Status::existing);
    CHECK(again.portfolio_id == connected.portfolio_id);
    CHECK(again.account == connected.account);
    CHECK_FALSE(again.credentials_updated);
  }
  SECTION("with a new secret") {
    PortfolioConnector connector(behind, {.max_retries = 1});
    auto again = connector.connect(binance("k", "s2")).value();
    CHECK(again.status == ConnectResult::Status::existing);
    CHECK(again.portfolio_id == connected.portfolio_id);
    CHECK(again.credentials_updated);
    CHECK(reveals(*behind.get(connected.account).value()->credentials.find("secret"), "s2"));
  }
  SECTION("with a verifier, which is not asked about credentials already connected") {
    PortfolioConnector connector(behind, {.verifier = &verifier});
    CHECK(connector.connect(binance("k", "s")).value().status == ConnectResult::Status::existing);
    CHECK(verifier.calls == 0);
  }
  CHECK(PortfolioConnector(first).list().value().size() == 1);
  CHECK(inner->scan("accounts").value().size() == 1);
  CHECK(inner->scan("portfolio_index").value().size() == 1);
}

TEST_CASE("rename changes the name, and bad names and unknown ids are refused") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto r = connector.connect(binance("k", "s")).value();
  auto renamed = connector.rename(r.portfolio_id, "Trading desk ✓").value();
  CHECK(renamed.name == "Trading desk ✓");
  CHECK(connector.get(r.portfolio_id).value().name == "Trading desk ✓");
  const auto before = f.stored();
  CHECK(connector.rename(r.portfolio_id, "").error().code() == errc::validation_failed);
  CHECK(connector.rename(r.portfolio_id, "\xff").error().code() == errc::validation_failed);
  auto unknown = connector.rename("CANARY-not-an-id", "x");
  CHECK(unknown.error().code() == errc::not_found);
  CHECK_FALSE(mentions(unknown.error().message(), "CANARY"));
  CHECK(connector.rename(std::string(32, 'a'), "x").error().code() == errc::not_found);
  CHECK(same(f.stored(), before));
}

TEST_CASE("sync keeps snapshots of holdings, and coins and value price the latest, reporting unpriced assets") {
  Fixture f;
  PortfolioConnector connector(f.accounts, {.max_snapshots = 3});
  auto r = connector.connect(binance("k", "s")).value();
  keyfolio::testing::StaticBalanceSource balances;
  keyfolio::testing::StaticPriceSource prices("USD");
  prices.set("BTC", 60000).set("ETH", 3000);

  CHECK(connector.coins(r.portfolio_id, prices).error().code() == errc::not_found);  // before any sync
  CHECK(connector.sync(r.portfolio_id, balances).error().code() == errc::not_found);  // nothing set up

  balances.set("binance", {{"BTC", 0.5}, {"ETH", 2}, {"OBSCURE", 1000}});
  auto snapshot = connector.sync(r.portfolio_id, balances).value();
  CHECK(snapshot.holdings.size() == 3);

  auto coins = connector.coins(r.portfolio_id, prices).value();
  REQUIRE(coins.size() == 3);
  CHECK(coins[0].asset == "BTC");
  CHECK(coins[0].value == 30000.0);
  CHECK(coins[2].asset == "OBSCURE");
  CHECK_FALSE(coins[2].price.has_value());
  CHECK_FALSE(coins[2].value.has_value());
  auto value = connector.value(r.portfolio_id, prices).value();
  CHECK(value.quote_currency == "USD");
  CHECK(value.total == 36000.0);
  CHECK(value.unpriced == std::vector<std::string>{"OBSCURE"});
  CHECK(value.as_of == snapshot.taken);

  // A bounded history, oldest first. Snapshots are kept per millisecond:
  // the pause makes each sync its own.
  for (int i = 1; i <= 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    balances.set("binance", {{"BTC", 0.5 + i}});
    connector.sync(r.portfolio_id, balances).value();
  }
  auto history = connector.snapshots(r.portfolio_id).value();
  REQUIRE(history.size() == 3);
  CHECK(history[0].holdings[0].amount == 2.5);
  CHECK(history[2].holdings[0].amount == 4.5);
  CHECK(history[0].taken < history[1].taken);
  auto recent = connector.snapshots(r.portfolio_id, {history[1].taken, history[2].taken}).value();
  CHECK(recent.size() == 2);
  CHECK(connector.value(r.portfolio_id, prices).value().total == 4.5 * 60000);

  connector.disconnect(r.portfolio_id).value();
  CHECK(f.backend->scan("snapshots").value().empty());
}

TEST_CASE("sync refuses bad balances from the source and stores nothing") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto r = connector.connect(binance("k", "s")).value();
  keyfolio::testing::StaticBalanceSource balances;
  const auto before = f.stored();
  for (const auto& bad : std::vector<std::vector<keyfolio::Holding>>{
           {{"", 1}}, {{"BTC", 1}, {"BTC", 2}}, {{"BTC", std::nan("")}}, {{"BTC", INFINITY}}}) {
    balances.set("binance", bad);
    auto synced = connector.sync(r.portfolio_id, balances);
    REQUIRE_FALSE(synced);
    CHECK(synced.error().code() == errc::invalid_argument);
  }
  CHECK(same(f.stored(), before));
  CHECK(connector.sync("0123", balances).error().code() == errc::not_found);
}

TEST_CASE("supported exchanges list every catalog exchange with its required connection fields") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  const auto supported = connector.supported_exchanges();
  CHECK(supported.size() == f.accounts.catalog().exchanges().size());
  const auto okx = std::find_if(supported.begin(), supported.end(), [](const auto& e) { return e.connection_id == "okx"; });
  REQUIRE(okx != supported.end());
  CHECK(okx->name == "OKX");
  std::vector<std::string> keys;
  for (const auto& field : okx->fields) keys.push_back(field.key);
  CHECK(keys == std::vector<std::string>{"apiKey", "secret", "password"});
}

TEST_CASE("portfolio records and snapshots reach the backend only encrypted") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto r = connector.connect(binance("CANARY-key", "CANARY-secret", "CANARY-name")).value();
  keyfolio::testing::StaticBalanceSource balances;
  balances.set("binance", {{"CANARYCOIN", 1}});
  connector.sync(r.portfolio_id, balances).value();
  for (const auto& record : f.stored()) CHECK_FALSE(mentions(record.value, "CANARY"));
}

TEST_CASE("connect refuses to overwrite an account that was re-keyed since its portfolio was connected") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto r = connector.connect(binance("old-key", "s")).value();
  f.accounts.upsert(r.account, fields({{"apiKey", "new-key"}, {"secret", "s2"}})).value();
  const auto before = f.stored();
  auto stale = connector.connect(binance("old-key", "s3"));
  REQUIRE_FALSE(stale);
  CHECK(stale.error().code() == errc::conflict);
  CHECK(mentions(stale.error().message(), "another API key"));
  CHECK(same(f.stored(), before));
}

TEST_CASE("connect does not bring back a linked account that was removed meanwhile") {
  Fixture f;
  f.accounts.upsert("BINANCE/main", fields({{"apiKey", "k"}, {"secret", "s"}})).value();
  // A second manager that missed the removal (no change feed reached it yet).
  auto behind = AccountManager::open(f.backend, raw('k')).value();
  f.accounts.remove(keyfolio::AccountId::parse("BINANCE/main").value()).value();
  PortfolioConnector connector(behind);
  auto r = connector.connect(binance("k", "s")).value();
  CHECK(r.status == ConnectResult::Status::connected);
  CHECK(r.account.tag() == r.portfolio_id);  // a new account of its own, not BINANCE/main again
  f.accounts.refresh().value();
  CHECK(f.accounts.get("BINANCE/main").error().code() == errc::not_found);
}

namespace {

class BadPrices : public keyfolio::PriceSource {
 public:
  std::string quote_currency() const override { return "USD"; }
  keyfolio::Result<std::optional<double>> price(std::string_view) override { return std::optional<double>(std::nan("")); }
};

}  // namespace

TEST_CASE("value refuses prices that are not finite, and reports the time of the snapshot it priced") {
  Fixture f;
  PortfolioConnector connector(f.accounts);
  auto r = connector.connect(binance("k", "s")).value();
  keyfolio::testing::StaticBalanceSource balances;
  balances.set("binance", {{"BTC", 1}});
  auto first = connector.sync(r.portfolio_id, balances).value();
  BadPrices bad;
  CHECK(connector.value(r.portfolio_id, bad).error().code() == errc::invalid_argument);
  keyfolio::testing::StaticPriceSource prices;
  prices.set("BTC", 2);
  CHECK(connector.value(r.portfolio_id, prices).value().as_of == first.taken);
}

namespace {

// Removes `victim` from the store just before the first batch that writes a
// portfolio: another process deleting the account connect is linking.
class RemovingBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::string victim;
  keyfolio::Result<void> write(const keyfolio::WriteBatch& batch) override {
    const bool portfolio = std::any_of(batch.operations().begin(), batch.operations().end(),
                                       [](const auto& op) { return op.collection == "portfolios"; });
    if (portfolio && !victim.empty()) {
      auto current = StorageBackendWrapper::get("accounts", victim).value();
      if (current) (void)StorageBackendWrapper::write(keyfolio::WriteBatch().erase("accounts", victim, current->version));
      victim.clear();
    }
    return StorageBackendWrapper::write(batch);
  }
};

}  // namespace

TEST_CASE("a portfolio never lands linked to an account removed while connecting") {
  auto removing = std::make_shared<RemovingBackend>(keyfolio::make_memory_backend());
  auto accounts = AccountManager::open(removing, raw('k')).value();
  accounts.upsert("BINANCE/main", fields({{"apiKey", "k"}, {"secret", "s"}})).value();
  PortfolioConnector connector(accounts);
  removing->victim = "binance/main";
  auto r = connector.connect(binance("k", "s")).value();
  CHECK(r.status == ConnectResult::Status::connected);
  CHECK(r.account.spelling() != "BINANCE/main");
  CHECK(connector.get(r.portfolio_id).value().owns_account);
  CHECK(accounts.get(r.account).has_value());
}

TEST_CASE("a sync in the same millisecond as the last snapshot replaces it with the newer holdings") {
  // In memory, two syncs fit in one millisecond.
  auto accounts = AccountManager::open(keyfolio::make_memory_backend(), raw('k')).value();
  PortfolioConnector connector(accounts);
  auto r = connector.connect(binance("k", "s")).value();
  keyfolio::testing::StaticBalanceSource balances;
  bool same_millisecond = false;
  for (int attempt = 0; attempt < 1000 && !same_millisecond; ++attempt) {
    balances.set("binance", {{"BTC", 1.0}});
    const auto first = connector.sync(r.portfolio_id, balances).value();
    balances.set("binance", {{"BTC", 2.0}});
    const auto second = connector.sync(r.portfolio_id, balances).value();
    same_millisecond = first.taken == second.taken;
    if (!same_millisecond) continue;
    auto history = connector.snapshots(r.portfolio_id).value();
    REQUIRE_FALSE(history.empty());
    CHECK(history.back().taken == second.taken);
    CHECK(history.back().holdings[0].amount == 2.0);
    CHECK(std::count_if(history.begin(), history.end(), [&](const auto& s) { return s.taken == second.taken; }) == 1);
  }
  CHECK(same_millisecond);
}

TEST_CASE("a store written with format-1 records (no clear header) opens, links and upgrades each record it rewrites") {
  // tests/data/format1-store.db: written by keyfolio before account records
  // carried a header: BINANCE/legacy, HYPERLIQUID (wallet 0xabc) and a KRAKEN
  // account connected as portfolio "Legacy".
  keyfolio::test::TempDir dir;
  const auto path = dir / "store.db";
  std::filesystem::copy_file(KEYFOLIO_TEST_DATA_DIR "/format1-store.db", path);
  // A checkout gives the fixture the umask's mode; a store must be private.
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto key = KeySource::passphrase(SecretString("keyfolio format 1 fixture"));
  {
    auto accounts = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), key).value();
    REQUIRE(accounts.size() == 3);
    for (const auto& summary : accounts.list()) CHECK_FALSE(summary.corrupt);
    auto legacy = accounts.get("BINANCE/legacy").value();
    CHECK(reveals(*legacy->credentials.find("secret"), "legacy-secret"));
    CHECK(reveals(*accounts.get("HYPERLIQUID").value()->credentials.find("walletAddress"), "0xabc"));

    PortfolioConnector connector(accounts);
    auto again = connector.connect({"kraken", fields({{"apiKey", "kraken-key"}, {"secret", "kraken-secret"}}), ""}).value();
    CHECK(again.status == ConnectResult::Status::existing);
    CHECK(connector.get(again.portfolio_id).value().name == "Legacy");
    // Connecting the Binance account links the one stored before, found by fingerprint.
    auto linked = connector.connect(binance("legacy-api-key", "legacy-secret")).value();
    CHECK(linked.account.spelling() == "BINANCE/legacy");
    accounts.upsert("BINANCE/legacy", fields({{"apiKey", "legacy-api-key"}, {"secret", "rotated"}})).value();
  }
  const auto value = [&](std::string_view account) {
    return keyfolio::make_sqlite_backend(path).value()->get("accounts", account).value().value().value;
  };
  CHECK(value("binance/legacy").starts_with("KF2"));  // rewritten: now with a header
  CHECK(value("hyperliquid").starts_with("KF1"));     // untouched
  auto reopened = AccountManager::open(keyfolio::make_sqlite_backend(path).value(), key).value();
  CHECK(reveals(*reopened.get("BINANCE/legacy").value()->credentials.find("secret"), "rotated"));
  CHECK(reveals(*reopened.get("HYPERLIQUID").value()->credentials.find("privateKey"), "legacy-private-key"));
}
