// The sealed store on its own: the seam where plaintext records become
// ciphertext, and the one path by which keyfolio writes to a backend.
#include <keyfolio/backends/memory.hpp>

#include "catch.hpp"
#include "keys.hpp"
#include "stored.hpp"

#include "storage/sealed_store.hpp"

#include <functional>
#include <string>

using keyfolio::Record;
using keyfolio::StorageBackend;
using keyfolio::StorageBackendWrapper;
using keyfolio::WriteBatch;
using keyfolio::errc;
using keyfolio::must_not_exist;
using keyfolio::detail::NonceTag;
using keyfolio::detail::SealedStore;
namespace collections = keyfolio::detail::collections;

namespace {

using keyfolio::test::raw;

const std::string canary = "CANARY-sealed-store-5b1e";

// Counts the writes reaching the backend, and can fail them or run
// something just before one.
class WatchedBackend : public StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  int writes = 0;
  bool fail = false;
  std::function<void()> before_write;

  keyfolio::Result<void> write(const WriteBatch& batch) override {
    ++writes;
    if (before_write) std::exchange(before_write, nullptr)();
    if (fail) return keyfolio::Error(errc::storage_error, "disk full");
    return StorageBackendWrapper::write(batch);
  }
};

bool holds_bytes(StorageBackend& backend, std::string_view bytes) {
  for (const Record& r : keyfolio::test::everything(backend)) {
    if (r.value.find(bytes) != std::string::npos || r.key.find(bytes) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a sealed store created on an empty backend stores only its keyring and its integrity record, and reopens "
          "with its key",
          "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = SealedStore::open(backend, raw('a')).value();
  const auto all = keyfolio::test::everything(*backend);
  REQUIRE(all.size() == 2);
  CHECK(all[0].key == "keyring");
  CHECK(all[1].key == "manifest");
  CHECK(store.generation() == 1);

  auto batch = store.batch();
  batch.put(collections::portfolios, "p1", must_not_exist, canary);
  REQUIRE(store.commit(batch));

  auto again = SealedStore::open(backend, raw('a'));
  REQUIRE(again);
  auto record = again->get(collections::portfolios, "p1").value();
  REQUIRE(record);
  auto plain = again->open(collections::portfolios, *record);
  REQUIRE(plain);
  CHECK(plain->view() == canary);
}

TEST_CASE("a sealed store does not open under another key, and says so", "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  REQUIRE(SealedStore::open(backend, raw('a')));
  auto other = SealedStore::open(backend, raw('b'));
  REQUIRE_FALSE(other);
  CHECK(other.error().code() == errc::wrong_key);
}

TEST_CASE("only ciphertext reaches the backend", "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = SealedStore::open(backend, raw('a')).value();
  auto batch = store.batch();
  batch.put(collections::snapshots, "s1", must_not_exist, canary + " one");
  batch.put(collections::portfolios, "p1", must_not_exist, canary + " two", "clear header");
  REQUIRE(store.commit(batch));
  CHECK_FALSE(holds_bytes(*backend, canary));
  // What is meant to be readable before opening is: the header.
  auto record = store.get(collections::portfolios, "p1").value();
  REQUIRE(record);
  CHECK(SealedStore::header_of(record->value) == std::optional<std::string_view>("clear header"));
}

TEST_CASE("a staged record opens only under the collection, key and version it was staged for", "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = SealedStore::open(backend, raw('a')).value();
  auto batch = store.batch();
  const NonceTag tag = batch.put(collections::portfolios, "p1", must_not_exist, canary);
  REQUIRE(store.commit(batch));
  const Record record = store.get(collections::portfolios, "p1").value().value();
  CHECK(record.version == 1);
  CHECK(tag == NonceTag::of(record.value));
  CHECK_FALSE(tag.empty());
  CHECK(store.open(collections::portfolios, "p1", 1, record.value));
  CHECK_FALSE(store.open(collections::snapshots, "p1", 1, record.value));
  CHECK_FALSE(store.open(collections::portfolios, "p2", 1, record.value));
  CHECK_FALSE(store.open(collections::portfolios, "p1", 2, record.value));

  // Another store's key does not open it either, under the same name.
  auto elsewhere = SealedStore::open(keyfolio::make_memory_backend(), raw('a')).value();
  CHECK_FALSE(elsewhere.open(collections::portfolios, "p1", 1, record.value));
}

TEST_CASE("two stagings of the same plaintext seal to different records", "[sealed_store]") {
  auto store = SealedStore::open(keyfolio::make_memory_backend(), raw('a')).value();
  auto one = store.batch();
  auto two = store.batch();
  const NonceTag a = one.put(collections::portfolios, "p1", must_not_exist, canary);
  const NonceTag b = two.put(collections::portfolios, "p1", must_not_exist, canary);
  CHECK_FALSE(a == b);
  CHECK(one.sealed().operations()[0].value != two.sealed().operations()[0].value);
}

TEST_CASE("a commit is one backend write, and a failed expectation commits nothing", "[sealed_store]") {
  auto backend = std::make_shared<WatchedBackend>(keyfolio::make_memory_backend());
  auto store = SealedStore::open(backend, raw('a')).value();
  const int after_open = backend->writes;
  CHECK(after_open == 1);  // the keyring

  auto batch = store.batch();
  batch.put(collections::portfolios, "p1", must_not_exist, "one");
  batch.put(collections::portfolio_index, "f1", must_not_exist, "p1");
  REQUIRE(store.commit(batch));
  CHECK(backend->writes == after_open + 1);

  const auto before = keyfolio::test::everything(*backend);
  auto stale = store.batch();
  stale.put(collections::snapshots, "p1/1", must_not_exist, "new");
  stale.expect(collections::portfolios, "p1", 7);  // it is at version 1
  auto written = store.commit(stale);
  REQUIRE_FALSE(written);
  CHECK(written.error().code() == errc::conflict);
  CHECK(keyfolio::test::same(before, keyfolio::test::everything(*backend)));
}

TEST_CASE("a commit the backend fails reports the backend's error and changes nothing", "[sealed_store]") {
  auto backend = std::make_shared<WatchedBackend>(keyfolio::make_memory_backend());
  auto store = SealedStore::open(backend, raw('a')).value();
  const auto before = keyfolio::test::everything(*backend);
  backend->fail = true;
  auto batch = store.batch();
  batch.put(collections::portfolios, "p1", must_not_exist, canary);
  auto written = store.commit(batch);
  REQUIRE_FALSE(written);
  CHECK(written.error().code() == errc::storage_error);
  CHECK_FALSE(keyfolio::test::mentions(written.error().message(), "CANARY"));
  CHECK(keyfolio::test::same(before, keyfolio::test::everything(*backend)));
}

TEST_CASE("opening a store that another process creates at the same moment opens theirs", "[sealed_store]") {
  auto shared = keyfolio::make_memory_backend();
  auto backend = std::make_shared<WatchedBackend>(shared);
  std::optional<SealedStore> theirs;
  // Just before this store writes its new keyring, another creates the store.
  backend->before_write = [&] { theirs.emplace(SealedStore::open(shared, raw('a')).value()); };
  auto ours = SealedStore::open(backend, raw('a'));
  REQUIRE(ours);
  REQUIRE(theirs);
  auto batch = theirs->batch();
  batch.put(collections::portfolios, "p1", must_not_exist, canary);
  REQUIRE(theirs->commit(batch));
  const Record record = ours->get(collections::portfolios, "p1").value().value();
  auto plain = ours->open(collections::portfolios, record);
  REQUIRE(plain);
  CHECK(plain->view() == canary);
}

TEST_CASE("change_key re-wraps the data key: only the new key opens the store, and old records still open",
          "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = SealedStore::open(backend, raw('a')).value();
  auto batch = store.batch();
  batch.put(collections::portfolios, "p1", must_not_exist, canary);
  REQUIRE(store.commit(batch));
  REQUIRE(store.change_key(raw('b')));

  auto old_key = SealedStore::open(backend, raw('a'));
  REQUIRE_FALSE(old_key);
  CHECK(old_key.error().code() == errc::wrong_key);
  auto reopened = SealedStore::open(backend, raw('b')).value();
  const Record record = reopened.get(collections::portfolios, "p1").value().value();
  auto plain = reopened.open(collections::portfolios, record);
  REQUIRE(plain);
  CHECK(plain->view() == canary);
}

TEST_CASE("change_key racing another change_key fails with conflict and leaves the other's key", "[sealed_store]") {
  auto shared = keyfolio::make_memory_backend();
  auto backend = std::make_shared<WatchedBackend>(shared);
  auto ours = SealedStore::open(backend, raw('a')).value();
  auto theirs = SealedStore::open(shared, raw('a')).value();
  backend->before_write = [&] { REQUIRE(theirs.change_key(raw('c'))); };
  auto changed = ours.change_key(raw('b'));
  REQUIRE_FALSE(changed);
  CHECK(changed.error().code() == errc::conflict);
  CHECK(SealedStore::open(shared, raw('c')));
  CHECK_FALSE(SealedStore::open(shared, raw('b')));
}

TEST_CASE("a store whose keyring is gone but whose records remain is corrupt_data, and no new keyring is written",
          "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  {
    auto store = SealedStore::open(backend, raw('a')).value();
    auto batch = store.batch();
    batch.put(collections::accounts, "binance/main", must_not_exist, canary);
    batch.put(collections::portfolios, "p1", must_not_exist, canary);
    REQUIRE(store.commit(batch));
  }
  WriteBatch drop;
  drop.erase(collections::meta, "keyring", 1);
  REQUIRE(backend->write(drop));
  const auto before = keyfolio::test::everything(*backend);

  for (char key : {'a', 'b'}) {  // the store's own key, and any other
    auto opened = SealedStore::open(backend, raw(key));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
    CHECK(keyfolio::test::mentions(opened.error().message(), "keyring is missing"));
    CHECK(keyfolio::test::mentions(opened.error().message(), "2 sealed records"));
    CHECK(keyfolio::test::same(before, keyfolio::test::everything(*backend)));
  }
}

TEST_CASE("after a rotation, records read before it open under the previous key until it is forgotten",
          "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = SealedStore::open(backend, raw('a')).value();
  auto batch = store.batch();
  batch.put(collections::portfolios, "p1", must_not_exist, canary);
  REQUIRE(store.commit(batch));
  const auto before = store.get(collections::portfolios, "p1").value().value();
  auto rotated = store.rotate(
      raw('a'),
      [](std::size_t, const keyfolio::Record& r, keyfolio::detail::SecureBuffer plain, const keyfolio::detail::Vault&)
          -> keyfolio::Result<std::optional<SealedStore::Resealed>> {
        return SealedStore::Resealed{r.key, std::move(plain), {}};
      },
      {});
  REQUIRE(rotated);
  CHECK(rotated->resealed == 1);
  const auto after = store.get(collections::portfolios, "p1").value().value();
  CHECK(after.version == before.version + 1);
  CHECK(store.open(collections::portfolios, after));
  // A cache's copy from before the rotation, until the cache has caught up.
  CHECK(store.open(collections::portfolios, before));
  store.forget_previous_key();
  CHECK_FALSE(store.open(collections::portfolios, before));
  CHECK(store.open(collections::portfolios, after));
}

TEST_CASE("the integrity record follows a batch that changes one key several times, in and out of key order",
          "[sealed_store]") {
  auto backend = keyfolio::make_memory_backend();
  auto store = SealedStore::open(backend, raw('a')).value();
  auto batch = store.batch();
  batch.put(collections::portfolios, "a", must_not_exist, canary);
  batch.put(collections::portfolios, "c", must_not_exist, canary);
  batch.put(collections::portfolios, "b", must_not_exist, canary);  // out of order from here on
  batch.put(collections::portfolios, "c", 1, canary);
  batch.erase(collections::portfolios, "a", 1);
  batch.put(collections::snapshots, "x", must_not_exist, canary);
  batch.erase_all(collections::snapshots);
  batch.put(collections::snapshots, "y", must_not_exist, canary);
  REQUIRE(store.commit(batch));
  auto checked = SealedStore::open(backend, raw('a')).value().read_checked();
  REQUIRE(checked);
  CHECK((*checked)[keyfolio::detail::covered_index(collections::portfolios).value()].size() == 2);
  CHECK((*checked)[keyfolio::detail::covered_index(collections::snapshots).value()].size() == 1);
  // A batch that expects what the store does not hold changes nothing.
  auto stale = store.batch();
  stale.put(collections::portfolios, "b", must_not_exist, canary);
  CHECK(store.commit(stale).error().code() == keyfolio::errc::conflict);
  CHECK(SealedStore::open(backend, raw('a')).value().read_checked());
}
