#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/portfolio_connector.hpp>

#include "catch.hpp"
#include "credentials.hpp"
#include "heard.hpp"
#include "read_counting.hpp"
#include "keys.hpp"
#include "stored.hpp"
#include "tampering.hpp"

#include "storage/subscribers.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

using keyfolio::AccountId;
using keyfolio::AccountManager;
using keyfolio::Credentials;
using keyfolio::KdfCost;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::WriteBatch;
using keyfolio::errc;

namespace {

using keyfolio::test::passphrase;
using keyfolio::test::raw;
using keyfolio::test::recovering;

Credentials binance_keys(std::string_view key, std::string_view secret) { return keyfolio::test::api_keys(key, secret); }

AccountId id(std::string_view text) { return AccountId::parse(text).value(); }

using keyfolio::test::mentions;

// Everything stored, for proving that a rejected call changed nothing.
std::vector<keyfolio::Record> snapshot(keyfolio::StorageBackend& b) { return keyfolio::test::everything(b); }

using keyfolio::test::same;

// Serves stored records with a change applied, as a tampered store would.
class TamperingBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::function<void(keyfolio::Record&)> tamper = [](keyfolio::Record&) {};

  keyfolio::Result<std::optional<keyfolio::Record>> get(std::string_view c, std::string_view k) override {
    auto r = StorageBackendWrapper::get(c, k);
    if (r && *r && c == "accounts") tamper(**r);
    return r;
  }
  keyfolio::Result<std::vector<keyfolio::Record>> scan(std::string_view c, std::string_view p) override {
    auto r = StorageBackendWrapper::scan(c, p);
    if (r && c == "accounts") {
      for (auto& record : *r) tamper(record);
    }
    return r;
  }
};

// That a plain open refuses the store, naming `what`.
void check_refused(const keyfolio::Result<AccountManager>& opened, std::string_view what) {
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code() == errc::corrupt_data);
  CHECK(mentions(opened.error().message(), what));
}

}  // namespace

TEST_CASE("a store is created on first open and reopened with the same passphrase") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, passphrase("correct horse")).value();
    CHECK(m.has_change_feed());
    auto r = m.upsert(id("BINANCE/main"), binance_keys("key-1", "secret-1")).value();
    CHECK(r.created);
    CHECK(r.version == 1);
  }
  auto again = AccountManager::open(backend, passphrase("correct horse")).value();
  auto account = again.get(id("binance:main")).value();
  CHECK(keyfolio::test::reveals(*account->credentials.find("secret"), "secret-1"));
  CHECK(account->id.spelling() == "BINANCE/main");
}

TEST_CASE("with create off, a backend without a store is not_found and nothing is written, and exists says which") {
  auto backend = keyfolio::make_memory_backend();
  CHECK_FALSE(AccountManager::exists(*backend).value());
  AccountManager::Options options;
  options.create = false;
  auto refused = AccountManager::open(backend, passphrase("any passphrase"), options);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::not_found);
  CHECK(mentions(refused.error().message(), "no keyfolio store in memory"));
  CHECK(snapshot(*backend).empty());
  CHECK_FALSE(AccountManager::exists(*backend).value());

  AccountManager::open(backend, passphrase("right")).value();
  CHECK(AccountManager::exists(*backend).value());
  CHECK(AccountManager::open(backend, passphrase("right"), options));
  CHECK(AccountManager::open(backend, passphrase("wrong"), options).error().code() == errc::wrong_key);
}

TEST_CASE("a wrong passphrase or key is reported as such, without touching any record") {
  auto backend = keyfolio::make_memory_backend();
  AccountManager::open(backend, passphrase("right")).value().upsert(id("kraken"), binance_keys("k", "s")).value();
  const auto before = snapshot(*backend);
  auto wrong = AccountManager::open(backend, passphrase("wrong"));
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().code() == errc::wrong_key);
  CHECK(mentions(wrong.error().message(), "passphrase does not open this store"));
  auto other_kind = AccountManager::open(backend, raw('k'));
  CHECK(other_kind.error().code() == errc::wrong_key);
  CHECK(mentions(other_kind.error().message(), "protected by a passphrase, not by a raw key"));
  CHECK(same(before, snapshot(*backend)));
}

TEST_CASE("a damaged keyring is corrupt_data, not a wrong key") {
  auto backend = keyfolio::make_memory_backend();
  AccountManager::open(backend, raw('a')).value();
  auto keyring = backend->get("keyfolio", "keyring").value().value();
  std::string damaged = keyring.value;
  const auto at = damaged.find("wrapped_key\":\"") + 20;
  damaged[at] = damaged[at] == '0' ? '1' : '0';
  backend->write(WriteBatch().put("keyfolio", "keyring", damaged, keyring.version)).value();
  auto opened = AccountManager::open(backend, raw('a'));
  REQUIRE_FALSE(opened.has_value());
  CHECK(opened.error().code() == errc::corrupt_data);
  backend->write(WriteBatch().put("keyfolio", "keyring", "not json", keyring.version + 1)).value();
  CHECK(AccountManager::open(backend, raw('a')).error().code() == errc::corrupt_data);
}

TEST_CASE("bad key sources are refused with a clear error") {
  auto backend = keyfolio::make_memory_backend();
  CHECK(AccountManager::open(backend, KeySource::raw_key(SecretString("short"))).error().code() ==
        errc::invalid_argument);
  CHECK(AccountManager::open(backend, passphrase("")).error().code() == errc::invalid_argument);
  auto missing = AccountManager::open(backend, KeySource::key_file("/nonexistent/keyfolio.key"));
  CHECK(missing.error().code() == errc::invalid_argument);
  CHECK(mentions(missing.error().message(), "cannot open key file"));
  CHECK(backend->scan("keyfolio").value().empty());
}

TEST_CASE("a key file holds 32 raw bytes or 64 hex digits and must be private") {
  const std::string path = "/tmp/keyfolio-test-" + std::to_string(::getpid()) + ".key";
  {
    std::ofstream(path) << std::string(64, 'a') << '\n';
  }
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto backend = keyfolio::make_memory_backend();
  REQUIRE(AccountManager::open(backend, KeySource::key_file(path)).has_value());
  REQUIRE(AccountManager::open(backend, KeySource::key_file(path)).has_value());
  std::filesystem::permissions(path, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  auto loose = AccountManager::open(backend, KeySource::key_file(path));
  CHECK(mentions(loose.error().message(), "accessible by other users"));
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  {
    std::ofstream(path) << "tooshort";
  }
  CHECK(mentions(AccountManager::open(backend, KeySource::key_file(path)).error().message(), "32 raw bytes"));
  std::filesystem::remove(path);
}

TEST_CASE("upsert creates, then updates with a bumped version and keeps the creation time") {
  auto m = AccountManager::open(keyfolio::make_memory_backend(), raw('x')).value();
  auto first = m.upsert("KRAKEN/JOHN", binance_keys("k1", "s1")).value();
  CHECK(first.created);
  CHECK(first.version == 1);
  const auto created = m.get(id("KRAKEN/JOHN")).value()->created;
  auto second = m.upsert(id("kraken:JOHN"), binance_keys("k2", "s2")).value();
  CHECK_FALSE(second.created);
  CHECK(second.version == 2);
  auto account = m.get(id("KRAKEN/JOHN")).value();
  CHECK(account->version == 2);
  CHECK(account->created == created);
  CHECK(account->updated >= created);
  CHECK(keyfolio::test::reveals(*account->credentials.find("apiKey"), "k2"));
  CHECK(m.size() == 1);
}

TEST_CASE("upsert rejects bad ids and credentials and stores nothing") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  m.upsert(id("okx/a"), [] {
     Credentials c = binance_keys("k", "s");
     c.add("passphrase", SecretString("p")).value();
     return c;
   }()).value();
  const auto before = snapshot(*backend);
  CHECK(m.upsert("NOSUCH/x", binance_keys("k", "s")).error().code() == errc::invalid_exchange_id);
  CHECK(m.upsert("", binance_keys("k", "s")).error().code() == errc::invalid_exchange_id);
  auto missing = m.upsert(id("okx/a"), binance_keys("k2", "s2"));
  CHECK(missing.error().code() == errc::validation_failed);
  CHECK(mentions(missing.error().message(), "missing required field \"password\""));
  Credentials extra = binance_keys("k", "s");
  extra.add("walletAddress", SecretString("0x1")).value();
  CHECK(m.upsert(id("binance"), extra).error().code() == errc::validation_failed);
  // An id from another catalog naming an exchange this manager does not know.
  keyfolio::ExchangeCatalog mine;
  mine.add({.id = "myvenue", .required = {"apiKey"}}).value();
  auto foreign = AccountId::parse("myvenue", mine).value();
  CHECK(m.upsert(foreign, Credentials()).error().code() == errc::invalid_exchange_id);
  CHECK(same(before, snapshot(*backend)));
  CHECK(keyfolio::test::reveals(*m.get(id("okx/a")).value()->credentials.find("apiKey"), "k"));
}

TEST_CASE("a batch upsert stores every account in one write, keeping creation times of updated ones") {
  for (const std::size_t n : {std::size_t{3}, std::size_t{200}}) {  // a few keys read one by one; many by a scan
    INFO(n << " accounts");
    auto backend = keyfolio::make_memory_backend();
    auto m = AccountManager::open(backend, raw('x')).value();
    m.upsert("BINANCE/0", binance_keys("old", "old")).value();
    const auto created = m.get("BINANCE/0").value()->created;
    std::vector<keyfolio::AccountUpdate> batch;
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back({id("BINANCE/" + std::to_string(i)), binance_keys("k" + std::to_string(i), "s")});
    }
    auto results = m.upsert(std::move(batch)).value();
    REQUIRE(results.size() == n);
    CHECK_FALSE(results[0].created);
    CHECK(results[0].version == 2);
    CHECK(results[1].created);
    CHECK(results[1].version == 1);
    CHECK(m.size() == n);
    CHECK(m.get("BINANCE/0").value()->created == created);
    CHECK(keyfolio::test::reveals(*m.get("BINANCE/0").value()->credentials.find("apiKey"), "k0"));
    // A second manager reads what the first wrote: the cache matches storage.
    auto other = AccountManager::open(backend, raw('x')).value();
    CHECK(keyfolio::test::reveals(*other.get("BINANCE/" + std::to_string(n - 1)).value()->credentials.find("apiKey"),
                                  "k" + std::to_string(n - 1)));
  }
}

TEST_CASE("a batch upsert with one bad account, or one id twice, stores nothing") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  m.upsert("BINANCE/kept", binance_keys("k", "s")).value();
  const auto before = snapshot(*backend);

  std::vector<keyfolio::AccountUpdate> invalid;
  invalid.push_back({id("BINANCE/a"), binance_keys("k", "s")});
  invalid.push_back({id("OKX/b"), binance_keys("k", "s")});  // okx needs a password
  auto rejected = m.upsert(std::move(invalid));
  REQUIRE_FALSE(rejected);
  CHECK(rejected.error().code() == errc::validation_failed);
  CHECK(mentions(rejected.error().message(), "OKX/b"));

  std::vector<keyfolio::AccountUpdate> twice;
  twice.push_back({id("BINANCE/a"), binance_keys("k", "s")});
  twice.push_back({id("binance:a"), binance_keys("k", "s")});
  auto repeated = m.upsert(std::move(twice));
  REQUIRE_FALSE(repeated);
  CHECK(repeated.error().code() == errc::validation_failed);
  CHECK(mentions(repeated.error().message(), "given twice"));

  CHECK(same(before, snapshot(*backend)));
  CHECK(m.size() == 1);
  CHECK(m.upsert(std::vector<keyfolio::AccountUpdate>{}).value().empty());
}

TEST_CASE("a batch upsert reports its progress in steps that never go back, the last when the write begins") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  std::vector<keyfolio::AccountUpdate> batch;
  for (int i = 0; i < 10'000; ++i) batch.push_back({id("BINANCE/" + std::to_string(i)), binance_keys("k", "s")});
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  std::size_t stored_at_last_call = 0;
  auto results = m.upsert(std::move(batch), [&](std::size_t done, std::size_t total) {
    calls.emplace_back(done, total);
    stored_at_last_call = backend->scan("accounts").value().size();
  });
  REQUIRE(results);
  const std::vector<std::pair<std::size_t, std::size_t>> expected{{4096, 10'000}, {8192, 10'000}, {10'000, 10'000}};
  CHECK(calls == expected);
  CHECK(stored_at_last_call == 0);  // reported before the write
  CHECK(m.size() == 10'000);

  // A rejected batch reports nothing.
  std::vector<keyfolio::AccountUpdate> invalid;
  invalid.push_back({id("OKX/b"), binance_keys("k", "s")});
  calls.clear();
  CHECK_FALSE(m.upsert(std::move(invalid), [&](std::size_t done, std::size_t total) { calls.emplace_back(done, total); }));
  CHECK(calls.empty());
}

TEST_CASE("list shows summaries without secrets, filtered by exchange") {
  auto m = AccountManager::open(keyfolio::make_memory_backend(), raw('x')).value();
  m.upsert("BINANCE/b", binance_keys("key-b", "s")).value();
  m.upsert("BINANCE/a", binance_keys("key-a", "s")).value();
  m.upsert("KRAKEN", binance_keys("key-a", "s")).value();
  const auto all = m.list();
  REQUIRE(all.size() == 3);
  CHECK(all[0].id == id("binance/a"));
  CHECK(all[1].id == id("binance/b"));
  CHECK(all[0].fields == std::vector<std::string>{"apiKey", "secret"});
  CHECK(all[0].version == 1);
  CHECK(all[0].fingerprint.size() == 32);
  CHECK(all[0].fingerprint != all[1].fingerprint);
  CHECK(all[0].fingerprint != all[2].fingerprint);  // same key, other exchange
  CHECK(all[0].fingerprint.find("key-a") == std::string::npos);
  CHECK(m.list("binance").value().size() == 2);
  CHECK(m.list("KRAKEN").value().size() == 1);
  CHECK(m.list("okx").value().empty());
  CHECK(m.list("nosuch").error().code() == errc::invalid_exchange_id);
}

TEST_CASE("the fingerprint is stable for the same key and store and differs across stores") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  m.upsert("BINANCE/a", binance_keys("key-a", "s1")).value();
  const auto before = m.list()[0].fingerprint;
  m.upsert("BINANCE/a", binance_keys("key-a", "s2")).value();
  CHECK(m.list()[0].fingerprint == before);
  CHECK(AccountManager::open(backend, raw('x')).value().list()[0].fingerprint == before);
  auto other = AccountManager::open(keyfolio::make_memory_backend(), raw('x')).value();
  other.upsert("BINANCE/a", binance_keys("key-a", "s1")).value();
  CHECK(other.list()[0].fingerprint != before);
}

TEST_CASE("remove deletes one account, several at once, or all") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, raw('x')).value();
  for (const char* a : {"binance/1", "binance/2", "binance/3", "kraken/1"}) m.upsert(a, binance_keys("k", "s")).value();
  REQUIRE(m.remove(id("BINANCE/1")).has_value());
  CHECK(m.get(id("binance/1")).error().code() == errc::not_found);
  auto gone = m.remove(id("binance/1"));
  CHECK(gone.error().code() == errc::not_found);
  CHECK(mentions(gone.error().message(), "no account \"binance/1\""));

  const auto before = snapshot(*backend);
  const std::vector<AccountId> some_missing{id("binance/2"), id("binance/9")};
  auto partial = m.remove(some_missing);
  CHECK(partial.error().code() == errc::not_found);
  CHECK(mentions(partial.error().message(), "nothing was removed"));
  CHECK(same(before, snapshot(*backend)));
  CHECK(m.size() == 3);

  const std::vector<AccountId> two{id("binance/2"), id("binance:3"), id("BINANCE/2")};
  CHECK(m.remove(two).value() == 2);
  CHECK(m.size() == 1);
  CHECK(m.remove_all().value() == 1);
  CHECK(m.size() == 0);
  CHECK(m.remove_all().value() == 0);
  CHECK(backend->scan("accounts").value().empty());
}

TEST_CASE("flipping any single byte of a stored record makes get fail with corrupt_data") {
  auto memory = keyfolio::make_memory_backend();
  AccountManager::open(memory, raw('x')).value().upsert("BINANCE/main", binance_keys("key", "secret")).value();
  const auto size = memory->get("accounts", "binance/main").value()->value.size();
  std::size_t refused_at_open = 0;
  for (std::size_t i = 0; i < size; ++i) {
    INFO("byte " << i);
    auto tampering = std::make_shared<TamperingBackend>(memory);
    tampering->tamper = [i](keyfolio::Record& r) { r.value[i] = static_cast<char>(r.value[i] ^ 0x01); };
    // The store's integrity record pins each record's format, nonce and
    // tag: a change to those is seen at open, naming the record.
    if (auto plain = AccountManager::open(tampering, raw('x')); !plain) {
      check_refused(plain, "accounts \"binance/main\"");
      ++refused_at_open;
    } else {
      CHECK(plain->get(id("binance/main")).error().code() == errc::corrupt_data);
    }
    // Past that check, the record does not authenticate either.
    auto m = AccountManager::open(tampering, raw('x'), recovering()).value();
    auto got = m.get(id("binance/main"));
    REQUIRE_FALSE(got.has_value());
    CHECK(got.error().code() == errc::corrupt_data);
    CHECK(mentions(got.error().message(), "account \"binance/main\""));
    CHECK(m.list().at(0).corrupt);
  }
  CHECK(refused_at_open >= 3 + 24 + 16);  // the format, the nonce, the tag
  // A truncated record too.
  auto truncating = std::make_shared<TamperingBackend>(memory);
  truncating->tamper = [](keyfolio::Record& r) { r.value.resize(r.value.size() / 2); };
  check_refused(AccountManager::open(truncating, raw('x')), "accounts \"binance/main\"");
  CHECK(AccountManager::open(truncating, raw('x'), recovering()).value().get(id("binance/main")).error().code() ==
        errc::corrupt_data);
}

TEST_CASE("a record copied over another account's is detected") {
  auto memory = keyfolio::make_memory_backend();
  auto m = AccountManager::open(memory, raw('x')).value();
  m.upsert("BINANCE/a", binance_keys("ka", "sa")).value();
  m.upsert("BINANCE/b", binance_keys("kb", "sb")).value();
  const auto a = memory->get("accounts", "binance/a").value().value();
  auto copying = std::make_shared<TamperingBackend>(memory);
  copying->tamper = [a](keyfolio::Record& r) {
    if (r.key == "binance/b") r.value = a.value;
  };
  check_refused(AccountManager::open(copying, raw('x')), "accounts \"binance/b\"");
  auto reopened = AccountManager::open(copying, raw('x'), recovering()).value();
  CHECK(reopened.get(id("binance/a")).has_value());
  CHECK(reopened.get(id("binance/b")).error().code() == errc::corrupt_data);
  // Upserting over a corrupt record is refused rather than hiding the damage.
  CHECK(reopened.upsert("BINANCE/b", binance_keys("kb", "sb")).error().code() == errc::corrupt_data);
}

TEST_CASE("a record that authenticates but does not decode under this manager's catalog is not replaced") {
  // Written through an exchange alias that the second catalog lacks: the
  // record authenticates, but its spelling names no exchange there.
  const auto with_alias = keyfolio::ExchangeCatalog::from_json(R"({
    "exchanges": [{"id": "gamma", "required": ["apiKey"], "aliases": ["GAMMAX"]}]})").value();
  const auto without_alias = keyfolio::ExchangeCatalog::from_json(R"({
    "exchanges": [{"id": "gamma", "required": ["apiKey"]}]})").value();
  const auto keys = [](std::string_view key) {
    Credentials c;
    c.add("apiKey", SecretString(key)).value();
    return c;
  };
  auto memory = keyfolio::make_memory_backend();
  AccountManager::Options a;
  a.catalog = &with_alias;
  AccountManager::open(memory, raw('x'), a).value().upsert("GAMMAX/x", keys("first")).value();
  const auto stored = memory->get("accounts", "gamma/x").value().value();

  AccountManager::Options b;
  b.catalog = &without_alias;
  auto m = AccountManager::open(memory, raw('x'), b).value();
  CHECK(m.get("gamma/x").error().code() == errc::corrupt_data);
  // An upsert refuses it as a read reports it, and leaves it as it was.
  CHECK(m.upsert("gamma/x", keys("second")).error().code() == errc::corrupt_data);
  const auto after = memory->get("accounts", "gamma/x").value().value();
  CHECK(after.version == stored.version);
  CHECK(after.value == stored.value);
}

TEST_CASE("an old version of a record written back under a newer version is detected") {
  auto memory = keyfolio::make_memory_backend();
  auto m = AccountManager::open(memory, raw('x')).value();
  m.upsert("BINANCE/a", binance_keys("k", "old")).value();
  const auto v1 = memory->get("accounts", "binance/a").value().value();
  m.upsert("BINANCE/a", binance_keys("k", "new")).value();
  memory->write(WriteBatch().put("accounts", "binance/a", v1.value, 2)).value();
  // The change feed re-read the record: this manager sees the rollback too.
  CHECK(m.get(id("binance/a")).error().code() == errc::corrupt_data);
  check_refused(AccountManager::open(memory, raw('x')), "accounts \"binance/a\"");
  CHECK(AccountManager::open(memory, raw('x'), recovering()).value().get(id("binance/a")).error().code() ==
        errc::corrupt_data);
}

TEST_CASE("a record from another store does not open") {
  auto one = keyfolio::make_memory_backend();
  auto two = keyfolio::make_memory_backend();
  AccountManager::open(one, raw('x')).value().upsert("BINANCE/a", binance_keys("k", "s")).value();
  auto m2 = AccountManager::open(two, raw('x')).value();
  m2.upsert("BINANCE/a", binance_keys("k", "s2")).value();
  const auto foreign = one->get("accounts", "binance/a").value().value();
  two->write(WriteBatch().put("accounts", "binance/a", foreign.value, 1)).value();
  CHECK(m2.get(id("binance/a")).error().code() == errc::corrupt_data);
}

TEST_CASE("after change_key the old passphrase fails and the new one opens every account") {
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, passphrase("old pass")).value();
  for (int i = 0; i < 20; ++i) m.upsert("binance/" + std::to_string(i), binance_keys("k", std::to_string(i))).value();
  const auto accounts_before = backend->scan("accounts").value();
  REQUIRE(m.change_key(passphrase("new pass")).has_value());
  CHECK(same(accounts_before, backend->scan("accounts").value()));  // only the keyring changed
  CHECK(AccountManager::open(backend, passphrase("old pass")).error().code() == errc::wrong_key);
  auto reopened = AccountManager::open(backend, passphrase("new pass")).value();
  for (int i = 0; i < 20; ++i) {
    CHECK(keyfolio::test::reveals(*reopened.get(id("binance/" + std::to_string(i))).value()->credentials.find("secret"), std::to_string(i)));
  }
  // Changing to another kind of key works the same way.
  REQUIRE(reopened.change_key(raw('z')).has_value());
  CHECK(AccountManager::open(backend, raw('z')).value().size() == 20);
  // A bad new key changes nothing.
  const auto keyring = backend->get("keyfolio", "keyring").value().value();
  CHECK(reopened.change_key(passphrase("")).error().code() == errc::invalid_argument);
  CHECK(backend->get("keyfolio", "keyring").value()->value == keyring.value);
}

TEST_CASE("subscribers hear of changes made by this and other managers") {
  auto backend = keyfolio::make_memory_backend();
  auto a = AccountManager::open(backend, raw('x')).value();
  auto b = AccountManager::open(backend, raw('x')).value();
  std::vector<keyfolio::AccountEvent> seen;
  std::mutex mutex;
  auto sub = b.subscribe([&](const keyfolio::AccountEvent& e) {
    std::lock_guard lock(mutex);
    seen.push_back(e);
  });
  a.upsert("BINANCE/x", binance_keys("k", "s1")).value();
  a.upsert("BINANCE/x", binance_keys("k", "s2")).value();
  CHECK(keyfolio::test::reveals(*b.get(id("binance/x")).value()->credentials.find("secret"), "s2"));
  a.remove(id("binance/x")).value();
  CHECK(b.get(id("binance/x")).error().code() == errc::not_found);
  sub.reset();
  a.upsert("BINANCE/y", binance_keys("k", "s")).value();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].kind == keyfolio::AccountEvent::Kind::created);
  CHECK(seen[0].id == id("binance/x"));
  CHECK(seen[1].kind == keyfolio::AccountEvent::Kind::updated);
  CHECK(seen[1].version == 2);
  CHECK(seen[2].kind == keyfolio::AccountEvent::Kind::removed);
}

TEST_CASE("a manager on a backend without a change feed catches up on refresh") {
  struct NoFeed : keyfolio::StorageBackendWrapper {
    using StorageBackendWrapper::StorageBackendWrapper;
    keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler) override {
      return keyfolio::Error(errc::not_supported, "no feed");
    }
  };
  auto memory = keyfolio::make_memory_backend();
  auto writer = AccountManager::open(memory, raw('x')).value();
  auto reader = AccountManager::open(std::make_shared<NoFeed>(memory), raw('x')).value();
  CHECK_FALSE(reader.has_change_feed());
  writer.upsert("BINANCE/x", binance_keys("k", "s")).value();
  CHECK(reader.get(id("binance/x")).error().code() == errc::not_found);
  reader.refresh().value();
  CHECK(reader.get(id("binance/x")).has_value());
}

TEST_CASE("concurrent mixed operations on one manager and on two sharing a backend stay consistent",
          "[concurrency]") {
  auto backend = keyfolio::make_memory_backend();
  auto one = AccountManager::open(backend, raw('x')).value();
  auto two = AccountManager::open(backend, raw('x')).value();
  constexpr int threads = 8;
  constexpr int operations = 10000;
  constexpr int accounts_per_thread = 16;
  // Each thread owns its accounts, so the expected end state is known; all
  // threads also contend on one shared account.
  std::vector<std::map<std::string, std::string>> expected(threads);
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      AccountManager& m = (t % 2 == 0) ? one : two;
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < operations; ++i) {
        const std::string name = "binance/t" + std::to_string(t) + "-" + std::to_string(rng() % accounts_per_thread);
        const auto account = id(name);
        switch (rng() % 4) {
          case 0:
          case 1: {
            const std::string secret = "s" + std::to_string(i);
            if (m.upsert(account, binance_keys("k", secret))) {
              expected[t][name] = secret;
            } else {
              ++failures;
            }
            break;
          }
          case 2: {
            auto r = m.remove(account);
            if (r || r.error().code() == errc::not_found) {
              expected[t].erase(name);
            } else {
              ++failures;
            }
            break;
          }
          default: {
            auto got = m.get(account);
            if (got && (*got)->credentials.find("secret") == nullptr) ++failures;
            if (i % 10 == 0 && !m.upsert("kraken/shared", binance_keys("k", std::to_string(t)))) ++failures;
            break;
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  CHECK(failures == 0);
  auto fresh = AccountManager::open(backend, raw('x')).value();
  for (const AccountManager* m : {&one, &two, &fresh}) {
    std::size_t total = 0;
    for (int t = 0; t < threads; ++t) {
      for (int k = 0; k < accounts_per_thread; ++k) {
        const std::string name = "binance/t" + std::to_string(t) + "-" + std::to_string(k);
        auto got = m->get(id(name));
        auto want = expected[t].find(name);
        if (want == expected[t].end()) {
          CHECK(got.error().code() == errc::not_found);
        } else {
          REQUIRE(got.has_value());
          CHECK(keyfolio::test::reveals(*(*got)->credentials.find("secret"), want->second));
          ++total;
        }
      }
    }
    CHECK(m->size() == total + 1);
    CHECK(m->get(id("kraken/shared")).has_value());
  }
}

TEST_CASE("canary secrets never appear in messages, exceptions, stream output or stored bytes") {
  const std::vector<std::string> canaries = {"CANARY-api-key-5e1d", "CANARY-secret-77aa", "CANARY-pass-0c3f",
                                             "CANARY-passphrase-one", "CANARY-passphrase-two"};
  std::vector<std::string> texts;
  const auto record = [&](const auto& result) {
    if (result) return;
    texts.push_back(result.error().message());
    std::ostringstream out;
    out << result.error();
    texts.push_back(out.str());
    try {
      (void)result.value();
    } catch (const std::exception& e) {
      texts.push_back(e.what());
    }
  };
  auto backend = keyfolio::make_memory_backend();
  auto m = AccountManager::open(backend, passphrase(canaries[3])).value();
  Credentials okx = binance_keys(canaries[0], canaries[1]);
  record(m.upsert("OKX/desk", okx));                      // missing password
  okx.add("passphrase", SecretString(canaries[2])).value();
  record(m.upsert("OKX/desk", okx));                      // stored
  record(m.upsert("BINANCE/desk", okx));                  // unknown field password
  record(m.upsert("NOSUCH/desk", okx));
  record(m.get("OKX/none"));
  record(m.remove(id("okx/none")));
  record(AccountManager::open(backend, passphrase(canaries[4])));  // wrong passphrase
  record(m.change_key(passphrase(canaries[4])));
  record(AccountManager::open(backend, passphrase(canaries[3])));  // now the wrong one
  auto account = AccountManager::open(backend, passphrase(canaries[4])).value().get("okx/desk").value();
  std::ostringstream streamed;
  streamed << account->credentials << account->id;
  texts.push_back(streamed.str());
  texts.push_back(keyfolio::test::printed(account->credentials));
  for (const auto& s : m.list()) texts.push_back(s.fingerprint + s.id.spelling());
  for (const char* collection : {"accounts", "keyfolio"}) {
    for (const auto& r : backend->scan(collection).value()) texts.push_back(r.key + r.value);
  }
  REQUIRE(texts.size() > 20);
  for (const auto& text : texts) {
    for (const auto& canary : canaries) {
      const bool leaked = text.find(canary) != std::string::npos;
      CHECK_FALSE(leaked);
    }
  }
}

namespace {

using keyfolio::test::ReadCountingBackend;

}  // namespace

TEST_CASE("reading credentials out of 100,000 accounts touches neither the backend nor, after the first read, secure memory") {
  auto counting = std::make_shared<ReadCountingBackend>(keyfolio::make_memory_backend());
  auto m = AccountManager::open(counting, raw('x')).value();
  constexpr std::size_t n = 100'000;
  std::vector<keyfolio::AccountUpdate> batch;
  batch.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    batch.push_back({id("BINANCE/" + std::to_string(i)), binance_keys("key-" + std::to_string(i), "secret")});
  }
  m.upsert(std::move(batch)).value();
  REQUIRE(m.size() == n);

  const int reads_before = counting->reads.load();
  const AccountId wanted = id("BINANCE/73521");
  REQUIRE(m.get(wanted));  // the first read may decrypt the record
  const auto memory_before = keyfolio::secure_memory_stats();
  for (int i = 0; i < 10'000; ++i) {
    auto account = m.get(wanted).value();
    REQUIRE(account->credentials.find("apiKey") != nullptr);
  }
  CHECK(keyfolio::test::reveals(*m.get(wanted).value()->credentials.find("apiKey"), "key-73521"));
  const auto memory_after = keyfolio::secure_memory_stats();
  CHECK(counting->reads.load() == reads_before);
  CHECK(memory_after.reserved_bytes == memory_before.reserved_bytes);
  CHECK(memory_after.live_secrets == memory_before.live_secrets);
}

namespace {

// Accounts BINANCE/0 to BINANCE/<n-1>, all with the API key "ours-<n>".
std::vector<keyfolio::AccountUpdate> ours(std::size_t n) {
  std::vector<keyfolio::AccountUpdate> batch;
  for (std::size_t i = 0; i < n; ++i) {
    batch.push_back({id("BINANCE/" + std::to_string(i)), binance_keys("ours-" + std::to_string(n), "s")});
  }
  return batch;
}

bool api_key_is(const AccountManager& m, std::string_view account, const std::string& key) {
  return keyfolio::test::reveals(*m.get(account).value()->credentials.find("apiKey"), key);
}

// A backend without a change feed that runs `after_write` once, right after
// the next successful write: another writer getting in before the manager
// takes its own write into its cache.
class RacingBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::function<void()> after_write;
  keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler) override {
    return keyfolio::Error(keyfolio::errc::not_supported, "no feed");
  }
  keyfolio::Result<void> write(const WriteBatch& batch) override {
    auto r = StorageBackendWrapper::write(batch);
    if (r && after_write) std::exchange(after_write, nullptr)();
    return r;
  }
};

}  // namespace

namespace {

// Counts the reads made before each write reaches the backend: what a write
// costs in round trips to a store on another host, beyond the write itself.
class ReadsBeforeWrite : public ReadCountingBackend {
 public:
  using ReadCountingBackend::ReadCountingBackend;
  int reads_at_write = 0;
  keyfolio::Result<void> write(const WriteBatch& batch) override {
    reads_at_write = reads.load();
    return ReadCountingBackend::write(batch);
  }
};

}  // namespace

TEST_CASE("replacing or removing an account reads its stored record once before writing, and the store still checks") {
  auto inner = keyfolio::make_memory_backend();
  auto counting = std::make_shared<ReadsBeforeWrite>(inner);
  auto m = AccountManager::open(counting, raw('x')).value();
  m.upsert("BINANCE/1", binance_keys("first", "s")).value();
  m.upsert("BINANCE/2", binance_keys("first", "s")).value();

  // The record read to learn its version is the one the integrity record's
  // update needs: one read.
  int before = counting->reads.load();
  m.upsert("BINANCE/1", binance_keys("second", "s")).value();
  CHECK(counting->reads_at_write - before == 1);

  before = counting->reads.load();
  m.remove(id("BINANCE/2")).value();
  CHECK(counting->reads_at_write - before == 1);

  // Another handle checks the whole store against its integrity record.
  auto reopened = AccountManager::open(inner, raw('x'));
  REQUIRE(reopened.has_value());
  CHECK(api_key_is(*reopened, "BINANCE/1", "second"));
  CHECK(reopened->size() == 1);
}

TEST_CASE("without a change feed, an upsert caches what it wrote unless another writer came after it") {
  auto inner = keyfolio::make_memory_backend();
  auto racing = std::make_shared<RacingBackend>(inner);
  auto m = AccountManager::open(racing, raw('x')).value();
  REQUIRE_FALSE(m.has_change_feed());
  auto other = AccountManager::open(inner, raw('x')).value();

  for (const std::size_t n : {std::size_t{2}, std::size_t{100}}) {  // read back one by one, and by a scan
    INFO(n << " accounts");
    racing->after_write = [&] { other.upsert("BINANCE/1", binance_keys("theirs-" + std::to_string(n), "s")).value(); };
    m.upsert(ours(n)).value();
    CHECK(m.size() == n);
    CHECK(api_key_is(m, "BINANCE/0", "ours-" + std::to_string(n)));
    CHECK(api_key_is(m, "BINANCE/1", "theirs-" + std::to_string(n)));
    CHECK(m.get("BINANCE/1").value()->version == inner->get("accounts", "binance/1").value()->version);
  }
}

namespace {

// A change feed that delivers only when the test says so, as a feed on
// another thread would deliver some time after the commit. Counts the reads
// made after a write has committed.
class DeferredFeedBackend : public ReadCountingBackend {
 public:
  using ReadCountingBackend::ReadCountingBackend;
  std::function<void()> after_write;

  keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler handler) override {
    handler_ = std::move(handler);
    return target()->subscribe([this](const keyfolio::ChangeEvent& e) {
      std::lock_guard lock(mutex_);
      pending_.push_back(e);
    });
  }
  void deliver() {
    std::vector<keyfolio::ChangeEvent> events;
    {
      std::lock_guard lock(mutex_);
      events.swap(pending_);
    }
    for (const auto& e : events) handler_(e);
  }
  keyfolio::Result<void> write(const WriteBatch& batch) override {
    auto r = StorageBackendWrapper::write(batch);
    reads = 0;  // from here on, the reads made after the write
    if (r && after_write) std::exchange(after_write, nullptr)();
    return r;
  }

 private:
  keyfolio::ChangeHandler handler_;
  std::mutex mutex_;
  std::vector<keyfolio::ChangeEvent> pending_;
};

}  // namespace

TEST_CASE("with a change feed, an upsert caches what it wrote without reading it back, and a later writer arrives by the feed") {
  auto inner = keyfolio::make_memory_backend();
  auto deferred = std::make_shared<DeferredFeedBackend>(inner);
  auto m = AccountManager::open(deferred, raw('x')).value();
  REQUIRE(m.has_change_feed());
  auto other = AccountManager::open(inner, raw('x')).value();

  for (const std::size_t n : {std::size_t{2}, std::size_t{100}}) {
    INFO(n << " accounts");
    deferred->after_write = [&] { other.upsert("BINANCE/1", binance_keys("theirs-" + std::to_string(n), "s")).value(); };
    m.upsert(ours(n)).value();
    CHECK(deferred->reads == 0);
    CHECK(m.size() == n);
    CHECK(api_key_is(m, "BINANCE/0", "ours-" + std::to_string(n)));
    CHECK(deferred->reads == 0);  // read from the cache, as written

    deferred->deliver();  // the feed catches up with both writes
    CHECK(api_key_is(m, "BINANCE/1", "theirs-" + std::to_string(n)));
    CHECK(m.get("BINANCE/1").value()->version == inner->get("accounts", "binance/1").value()->version);
    CHECK(api_key_is(m, "BINANCE/0", "ours-" + std::to_string(n)));
  }
}

TEST_CASE("a batch taken in as written, chunk by chunk, notifies each account: created, then updated") {
  auto deferred = std::make_shared<DeferredFeedBackend>(keyfolio::make_memory_backend());
  auto m = AccountManager::open(deferred, raw('x')).value();
  keyfolio::test::Heard<keyfolio::AccountEvent> heard;
  auto subscription = m.subscribe(heard.handler());
  constexpr std::size_t n = 2500;  // more than two chunks of the install
  for (const int round : {1, 2}) {
    std::vector<keyfolio::AccountUpdate> batch;
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back({id("BINANCE/" + std::to_string(i)),
                       binance_keys("k" + std::to_string(i) + "-" + std::to_string(round), "s")});
    }
    m.upsert(std::move(batch)).value();
    CHECK(deferred->reads == 0);
  }
  const auto events = heard.events();
  REQUIRE(events.size() == 2 * n);
  CHECK(std::all_of(events.begin(), events.begin() + n, [](const keyfolio::AccountEvent& e) {
    return e.kind == keyfolio::AccountEvent::Kind::created && e.version == 1;
  }));
  CHECK(std::all_of(events.begin() + n, events.end(), [](const keyfolio::AccountEvent& e) {
    return e.kind == keyfolio::AccountEvent::Kind::updated && e.version == 2;
  }));
  CHECK(m.size() == n);
  CHECK(keyfolio::test::reveals(*m.get("BINANCE/2499").value()->credentials.find("apiKey"), "k2499-2"));
}

TEST_CASE("with a change feed, an upsert reads back what it wrote when the feed updated the cache meanwhile") {
  auto inner = keyfolio::make_memory_backend();
  auto deferred = std::make_shared<DeferredFeedBackend>(inner);
  auto m = AccountManager::open(deferred, raw('x')).value();
  auto other = AccountManager::open(inner, raw('x')).value();

  for (const std::size_t n : {std::size_t{2}, std::size_t{100}}) {  // read back one by one, and by a scan
    INFO(n << " accounts");
    // Another writer commits after ours, and the feed delivers it before
    // the upsert has taken its own write into the cache.
    deferred->after_write = [&] {
      other.upsert("BINANCE/1", binance_keys("theirs-" + std::to_string(n), "s")).value();
      deferred->deliver();
    };
    m.upsert(ours(n)).value();
    CHECK(m.size() == n);
    CHECK(api_key_is(m, "BINANCE/0", "ours-" + std::to_string(n)));
    CHECK(api_key_is(m, "BINANCE/1", "theirs-" + std::to_string(n)));
    CHECK(m.get("BINANCE/1").value()->version == inner->get("accounts", "binance/1").value()->version);
  }
}

TEST_CASE("the feed's report of a write already in the cache costs no read, and a key erased and written again elsewhere is read") {
  auto inner = keyfolio::make_memory_backend();
  auto deferred = std::make_shared<DeferredFeedBackend>(inner);
  auto m = AccountManager::open(deferred, raw('x')).value();
  auto other = AccountManager::open(inner, raw('x')).value();

  m.upsert(ours(3)).value();
  m.upsert("BINANCE/1", binance_keys("ours-again", "s")).value();
  deferred->deliver();  // reports of this manager's own writes, all already taken in
  CHECK(deferred->reads == 0);

  // Elsewhere: BINANCE/0 updated; BINANCE/1 (at version 2 here) erased and
  // written twice, back at version 2 with another key.
  other.upsert("BINANCE/0", binance_keys("theirs-0", "s")).value();
  other.remove(id("BINANCE/1")).value();
  other.upsert("BINANCE/1", binance_keys("theirs-1a", "s")).value();
  other.upsert("BINANCE/1", binance_keys("theirs-1b", "s")).value();
  REQUIRE(inner->get("accounts", "binance/1").value()->version == 2);
  CHECK(api_key_is(m, "BINANCE/1", "ours-again"));
  deferred->deliver();
  CHECK(deferred->reads > 0);
  CHECK(api_key_is(m, "BINANCE/0", "theirs-0"));
  CHECK(api_key_is(m, "BINANCE/1", "theirs-1b"));
  CHECK(api_key_is(m, "BINANCE/2", "ours-3"));
}

TEST_CASE("a store opens without decrypting: each account is decrypted on its first read, and a bad one reported then") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    std::vector<keyfolio::AccountUpdate> batch;
    for (int i = 0; i < 100; ++i) batch.push_back({id("BINANCE/Acct" + std::to_string(i)), binance_keys("k" + std::to_string(i), "s")});
    m.upsert(std::move(batch)).value();
  }
  // Tamper with one record's ciphertext, leaving its clear header alone.
  auto record = backend->get("accounts", "binance/Acct7").value().value();
  std::string tampered = record.value;
  tampered.back() = static_cast<char>(tampered.back() ^ 1);
  WriteBatch write;
  write.put("accounts", "binance/Acct7", tampered, record.version);
  backend->write(write).value();

  check_refused(AccountManager::open(backend, raw('x')), "accounts \"binance/Acct7\"");
  const auto before = keyfolio::secure_memory_stats();
  auto m = AccountManager::open(backend, raw('x'), recovering()).value();
  CHECK(m.size() == 100);
  const auto after_open = keyfolio::secure_memory_stats();
  CHECK(after_open.live_secrets < before.live_secrets + 10);  // the store's keys only: 200 secrets stay sealed
  auto first = m.get("BINANCE/Acct42").value();
  CHECK(first->id.spelling() == "BINANCE/Acct42");  // the stored spelling, from the header
  CHECK(keyfolio::test::reveals(*first->credentials.find("apiKey"), "k42"));
  CHECK(keyfolio::secure_memory_stats().live_secrets == after_open.live_secrets + 2);
  CHECK(m.get("BINANCE/Acct42").value() == first);  // decrypted once

  auto bad = m.get("binance/Acct7");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == errc::corrupt_data);
  const auto summaries = m.list();
  REQUIRE(summaries.size() == 100);
  for (const auto& summary : summaries) {
    CHECK(summary.corrupt == (summary.id.spelling() == "BINANCE/Acct7"));
    CHECK(summary.fingerprint.empty() == summary.corrupt);
  }
}

TEST_CASE("a record whose clear header was changed does not open, and keeps its place under its key") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    m.upsert("BINANCE/main", binance_keys("k", "s")).value();
  }
  auto record = backend->get("accounts", "binance/main").value().value();
  // The header's spelling, changed to another spelling of the same id.
  std::string changed = record.value;
  const auto at = changed.find("BINANCE/main");
  REQUIRE(at != std::string::npos);
  changed.replace(at, 7, "binance");
  WriteBatch write;
  write.put("accounts", "binance/main", changed, record.version);
  backend->write(write).value();
  check_refused(AccountManager::open(backend, raw('x')), "accounts \"binance/main\"");
  auto m = AccountManager::open(backend, raw('x'), recovering()).value();
  REQUIRE(m.size() == 1);
  CHECK(m.get("BINANCE/main").error().code() == errc::corrupt_data);
  CHECK(m.list()[0].corrupt);
}

namespace {

// An account record's parts: "KF2" | u8 length | header (u8 16 | fingerprint | spelling) | body.
struct Parts {
  std::string fingerprint, spelling, body;
};
Parts parts_of(const std::string& value) {
  REQUIRE(value.starts_with("KF2"));
  const auto length = static_cast<unsigned char>(value[3]);
  const std::string header = value.substr(4, length);
  REQUIRE(static_cast<unsigned char>(header[0]) == 16);
  return {header.substr(1, 16), header.substr(17), value.substr(4 + length)};
}
std::string record_of(const Parts& p) {
  std::string header = std::string(1, '\x10') + p.fingerprint + p.spelling;
  return "KF2" + std::string(1, static_cast<char>(header.size())) + header + p.body;
}

void put_raw(keyfolio::StorageBackend& backend, const std::string& key, const std::string& value) {
  WriteBatch batch;
  batch.put("accounts", key, value, keyfolio::must_not_exist);
  backend.write(batch).value();
}

}  // namespace

TEST_CASE("a planted record that copies an account's clear fingerprint is never taken for that account") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    m.upsert("BINANCE/main", binance_keys("the-api-key", "s")).value();
  }
  // Sorts before binance/main and claims its fingerprint; its ciphertext is not its own.
  Parts planted = parts_of(backend->get("accounts", "binance/main").value().value().value);
  planted.spelling = "BINANCE/aaa";
  put_raw(*backend, "binance/aaa", record_of(planted));

  check_refused(AccountManager::open(backend, raw('x')), "unexpected");
  auto m = AccountManager::open(backend, raw('x'), recovering()).value();
  keyfolio::PortfolioConnector connector(m);
  auto linked = connector.connect({"binance", binance_keys("the-api-key", "s"), ""}).value();
  CHECK(linked.account.spelling() == "BINANCE/main");
  CHECK(m.get("BINANCE/aaa").error().code() == errc::corrupt_data);
}

TEST_CASE("a stray record under a non-canonical key does not hide the account stored under its canonical key") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    m.upsert("BINANCE/main", binance_keys("k", "s")).value();
  }
  // "BINANCE/main" sorts before "binance/main" in a scan.
  put_raw(*backend, "BINANCE/main", backend->get("accounts", "binance/main").value().value().value);
  check_refused(AccountManager::open(backend, raw('x')), "unexpected");
  auto m = AccountManager::open(backend, raw('x'), recovering()).value();
  CHECK(m.size() == 1);
  CHECK(keyfolio::test::reveals(*m.get("binance:main").value()->credentials.find("apiKey"), "k"));
}

TEST_CASE("first reads of accounts loaded sealed may run from many threads at once") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto m = AccountManager::open(backend, raw('x')).value();
    std::vector<keyfolio::AccountUpdate> batch;
    for (int i = 0; i < 400; ++i) batch.push_back({id("BINANCE/" + std::to_string(i)), binance_keys("k" + std::to_string(i), "s")});
    m.upsert(std::move(batch)).value();
  }
  auto m = AccountManager::open(backend, raw('x')).value();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        const int n = (i * 7 + t * 100) % 400;  // overlapping: some accounts are first read by two threads
        auto account = m.get("BINANCE/" + std::to_string(n));
        if (!account || !keyfolio::test::reveals(*(*account)->credentials.find("apiKey"), "k" + std::to_string(n))) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
  CHECK(m.list().size() == 400);
}

namespace {

// A backend whose change feed is driven by the test, and whose next scan
// can be held until the test lets it go.
class HeldFeedBackend : public keyfolio::StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::shared_ptr<keyfolio::detail::Subscribers<keyfolio::ChangeEvent>> feed =
      std::make_shared<keyfolio::detail::Subscribers<keyfolio::ChangeEvent>>();
  std::mutex mutex;
  std::condition_variable changed;
  bool hold = false, held = false;

  keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler handler) override {
    return feed->add(std::move(handler));
  }
  keyfolio::Result<std::vector<keyfolio::Record>> scan(std::string_view c, std::string_view p) override {
    std::unique_lock lock(mutex);
    if (hold) {
      held = true;
      changed.notify_all();
      changed.wait(lock, [&] { return !hold; });
    }
    lock.unlock();
    return StorageBackendWrapper::scan(c, p);
  }
};

}  // namespace

TEST_CASE("destroying a manager waits for a change-feed delivery in progress, so none runs after it is gone") {
  auto backend = std::make_shared<HeldFeedBackend>(keyfolio::make_memory_backend());
  auto m = std::make_unique<AccountManager>(AccountManager::open(backend, raw('x')).value());
  std::atomic<bool> destroyed{false}, late{false};
  auto events = m->subscribe([&](const keyfolio::AccountEvent&) {
    if (destroyed) late = true;
  });
  // A record the manager has not heard of (so the resync below has an event
  // to deliver), written past its feed.
  WriteBatch batch;
  batch.put("accounts", "binance/other", "not a sealed record", keyfolio::must_not_exist);
  backend->write(batch).value();
  {
    std::lock_guard lock(backend->mutex);
    backend->hold = true;
  }
  std::thread delivery([&] { backend->feed->deliver({{keyfolio::ChangeEvent::Kind::resync, {}, {}, 0}}); });
  {
    std::unique_lock lock(backend->mutex);
    backend->changed.wait(lock, [&] { return backend->held; });
  }
  std::thread destroyer([&] {
    m.reset();
    destroyed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // room for a destructor that does not wait
  CHECK_FALSE(destroyed);
  {
    std::lock_guard lock(backend->mutex);
    backend->hold = false;
  }
  backend->changed.notify_all();
  delivery.join();
  destroyer.join();
  CHECK(destroyed);
  CHECK_FALSE(late);
}

TEST_CASE("opening a store whose keyring was deleted fails with corrupt_data under any passphrase, and writes nothing") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto manager = AccountManager::open(backend, passphrase("right passphrase")).value();
    manager.upsert("binance/main", binance_keys("key-1", "secret-1")).value();
  }
  WriteBatch drop;
  drop.erase("keyfolio", "keyring", 1);
  REQUIRE(backend->write(drop));
  const auto before = snapshot(*backend);
  for (const char* typed : {"right passphrase", "a typo"}) {
    auto opened = AccountManager::open(backend, passphrase(typed));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
    CHECK(same(before, snapshot(*backend)));
  }
}
