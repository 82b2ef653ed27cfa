// The account store on its own: the cache over the sealed store, its
// fingerprint index, and how a commit and the change feed keep it current.
#include <keyfolio/backends/memory.hpp>
#include <keyfolio/exchange_catalog.hpp>

#include "catch.hpp"
#include "credentials.hpp"
#include "heard.hpp"
#include "keys.hpp"
#include "read_counting.hpp"

#include "accounts/account_store.hpp"

#include <memory>
#include <string>

using keyfolio::Account;
using keyfolio::AccountEvent;
using keyfolio::AccountId;
using keyfolio::Credentials;
using keyfolio::ExchangeCatalog;
using keyfolio::Record;
using keyfolio::SecretString;
using keyfolio::StorageBackend;
using keyfolio::errc;
using keyfolio::must_not_exist;
using keyfolio::detail::AccountStore;
using keyfolio::detail::Fingerprint;
using keyfolio::detail::SealedStore;
namespace collections = keyfolio::detail::collections;

namespace {

using keyfolio::test::raw;

Credentials keys(std::string_view key, std::string_view secret) { return keyfolio::test::api_keys(key, secret); }

AccountId id(std::string_view text) { return AccountId::parse(text).value(); }

std::shared_ptr<AccountStore> open_store(std::shared_ptr<StorageBackend> backend, SealedStore::Options options = {}) {
  return AccountStore::open(SealedStore::open(std::move(backend), raw('a'), options).value(), ExchangeCatalog::builtin(),
                            32)
      .value();
}

// An account at version `expected` + 1, as a writer stages it.
std::shared_ptr<const Account> account(std::string_view spelling, const Credentials& credentials,
                                       std::uint64_t expected = must_not_exist) {
  const auto stamp = keyfolio::detail::now();
  return std::make_shared<const Account>(Account{id(spelling), credentials, expected + 1, stamp, stamp});
}

// Writes one account through `store`; the account as staged.
std::shared_ptr<const Account> put(AccountStore& store, std::string_view spelling, const Credentials& credentials,
                                   std::uint64_t expected = must_not_exist) {
  auto staged = account(spelling, credentials, expected);
  const std::string key = staged->id.canonical();
  auto write = store.write();
  write.put(key, staged, store.fingerprint(staged->id, staged->credentials), expected);
  REQUIRE(store.commit(write));
  return staged;
}

// A change feed that is there but never reports anything, so that what a
// commit does to the cache can be seen on its own; reads are counted.
class SilentFeedBackend : public keyfolio::test::ReadCountingBackend {
 public:
  using ReadCountingBackend::ReadCountingBackend;
  keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler) override {
    return keyfolio::Subscription([] {});
  }
};

// No change feed at all; reads are counted.
class NoFeedBackend : public keyfolio::test::ReadCountingBackend {
 public:
  using ReadCountingBackend::ReadCountingBackend;
  keyfolio::Result<keyfolio::Subscription> subscribe(keyfolio::ChangeHandler) override {
    return keyfolio::Error(errc::not_supported, "no feed");
  }
};

}  // namespace

TEST_CASE("a commit with a change feed takes what it wrote into the cache without reading it back",
          "[account_store]") {
  auto backend = std::make_shared<SilentFeedBackend>(keyfolio::make_memory_backend());
  auto store = open_store(backend);
  REQUIRE(store->has_change_feed());
  const int reads = backend->reads;
  auto staged = put(*store, "binance/main", keys("key-1", "secret-1"));
  CHECK(backend->reads == reads);
  auto got = store->get(id("binance/main"));
  REQUIRE(got);
  CHECK(got->get() == staged.get());  // the very account staged: no decryption, no copy
}

TEST_CASE("a commit without a change feed reads back what it wrote, so that a later write elsewhere wins",
          "[account_store]") {
  auto shared = keyfolio::make_memory_backend();
  auto backend = std::make_shared<NoFeedBackend>(shared);
  auto store = open_store(backend);
  REQUIRE_FALSE(store->has_change_feed());
  const int reads = backend->reads;
  put(*store, "binance/main", keys("key-1", "secret-1"));
  CHECK(backend->reads > reads);
  auto got = store->get(id("binance/main")).value();
  CHECK(got->version == 1);
  CHECK(keyfolio::test::reveals(*got->credentials.find("apiKey"), "key-1"));
}

TEST_CASE("a commit that loses its compare-and-set leaves the cache as it was", "[account_store]") {
  auto store = open_store(keyfolio::make_memory_backend());
  put(*store, "binance/main", keys("key-1", "secret-1"));
  auto stale = account("binance/main", keys("key-2", "secret-2"), 5);  // stored: version 1
  auto write = store->write();
  write.put("binance/main", stale, store->fingerprint(stale->id, stale->credentials), 5);
  auto written = store->commit(write);
  REQUIRE_FALSE(written);
  CHECK(written.error().code() == errc::conflict);
  auto got = store->get(id("binance/main")).value();
  CHECK(got->version == 1);
  CHECK(keyfolio::test::reveals(*got->credentials.find("apiKey"), "key-1"));
}

TEST_CASE("accounts load sealed: a record that does not authenticate is found only when read", "[account_store]") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto writer = open_store(backend);
    put(*writer, "binance/main", keys("key-1", "secret-1"));
    put(*writer, "kraken/main", keys("key-2", "c2VjcmV0LTI="));
  }
  // Flip the last ciphertext byte of one record, leaving its clear header.
  Record record = backend->get(collections::accounts, "binance/main").value().value();
  record.value.back() = static_cast<char>(record.value.back() ^ 1);
  keyfolio::WriteBatch tamper;
  tamper.erase(collections::accounts, record.key, record.version);
  REQUIRE(backend->write(tamper));
  keyfolio::WriteBatch reinsert;
  reinsert.put(collections::accounts, record.key, record.value, must_not_exist);
  REQUIRE(backend->write(reinsert));

  // The store-wide check sees the record is not the one written; opened to
  // recover, the record's own authentication is what is left.
  auto refused = AccountStore::open(SealedStore::open(backend, raw('a')).value(), ExchangeCatalog::builtin(), 32);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::corrupt_data);
  auto store = open_store(backend, {.recover = true});
  CHECK(store->size() == 2);  // opening did not decrypt it
  auto got = store->get(id("binance/main"));
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == errc::corrupt_data);
  CHECK(store->get(id("kraken/main")));
  auto stored = store->read_stored("binance/main").value();
  REQUIRE(stored);
  CHECK_FALSE(stored->account);
  CHECK_FALSE(store->read_stored("okx/none").value());
}

TEST_CASE("an account is found by the fingerprint of its API key, and no longer once re-keyed", "[account_store]") {
  auto store = open_store(keyfolio::make_memory_backend());
  put(*store, "binance/main", keys("key-1", "secret-1"));
  const Fingerprint first = store->fingerprint(id("binance"), keys("key-1", "other secret"));
  const Fingerprint other = store->fingerprint(id("binance"), keys("key-9", "secret-1"));
  REQUIRE_FALSE(first.empty());
  CHECK(store->find_by_fingerprint(first) == std::optional<AccountId>(id("binance/main")));
  CHECK_FALSE(store->find_by_fingerprint(other));
  CHECK_FALSE(store->find_by_fingerprint(Fingerprint()));

  put(*store, "binance/main", keys("key-9", "secret-9"), 1);
  CHECK_FALSE(store->find_by_fingerprint(first));
  CHECK(store->find_by_fingerprint(other) == std::optional<AccountId>(id("binance/main")));
}

TEST_CASE("a write through one account store reaches another on the same backend through the feed",
          "[account_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto one = open_store(backend);
  auto two = open_store(backend);
  keyfolio::test::Heard<AccountEvent> heard;
  auto subscription = two->subscribe(heard.handler());
  put(*one, "binance/main", keys("key-1", "secret-1"));
  CHECK(heard.wait_for([](const AccountEvent& e) { return e.kind == AccountEvent::Kind::created; }));
  CHECK(two->get(id("binance/main")));

  auto write = one->write();
  write.erase("binance/main", 1);
  REQUIRE(one->commit(write));
  CHECK(heard.wait_for([](const AccountEvent& e) { return e.kind == AccountEvent::Kind::removed; }));
  CHECK(two->get(id("binance/main")).error().code() == errc::not_found);
  CHECK(one->get(id("binance/main")).error().code() == errc::not_found);
}

TEST_CASE("records of other collections commit with accounts in one atomic write", "[account_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = open_store(backend);
  auto staged = account("binance/main", keys("key-1", "secret-1"));
  auto write = store->write();
  write.put("binance/main", staged, store->fingerprint(staged->id, staged->credentials), must_not_exist);
  write.batch().put(collections::portfolios, "p1", 3, "{}");  // fails: p1 does not exist
  REQUIRE_FALSE(store->commit(write));
  CHECK(backend->scan(collections::accounts).value().empty());
  CHECK(store->get(id("binance/main")).error().code() == errc::not_found);
}

TEST_CASE("erase_all removes every account from the store and the cache", "[account_store]") {
  auto store = open_store(std::make_shared<NoFeedBackend>(keyfolio::make_memory_backend()));
  put(*store, "binance/main", keys("key-1", "secret-1"));
  put(*store, "binance/second", keys("key-2", "secret-2"));
  auto records = store->scan().value();
  REQUIRE(records.size() == 2);
  auto write = store->write();
  write.erase_all(records);
  REQUIRE(store->commit(write));
  CHECK(store->size() == 0);
  CHECK(store->scan().value().empty());
}
