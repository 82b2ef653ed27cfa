// keyfolio/testing/storage_conformance.hpp: the StorageBackend contract as a
// Catch2 suite, for keyfolio's own backends and for a host's.
//
// Call `check_storage_backend` from a Catch2 test case of your own:
//
//   #include <catch2/catch.hpp>   // or <catch2/catch_all.hpp> for Catch2 3
//   #include <keyfolio/testing/storage_conformance.hpp>
//
//   TEST_CASE("my backend keeps the StorageBackend contract") {
//     keyfolio::testing::StorageConformance suite;
//     suite.open_fresh = [] { return make_my_backend(fresh_path()); };
//     suite.open_another = [](const auto& first) { return make_my_backend(path_of(first)); };  // optional
//     keyfolio::testing::check_storage_backend(suite);
//   }
//
// Include Catch2 before this header. The suite runs as sections of the
// calling test case; Catch2 re-enters the test case once per section, and
// each run calls `open_fresh` for a new, empty store. It checks get, scan and
// prefix scan (bytewise order, keys with any byte, prefixes ending in 0xff),
// compare-and-set on put and erase, atomicity of batches, erase-all,
// versions, empty and large values, concurrent writers from several threads
// and handles, and the change feed when the backend offers one.
#pragma once

#include <keyfolio/storage.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace keyfolio::testing {

struct StorageConformance {
  // A handle on a new, empty store. Required.
  std::function<std::shared_ptr<StorageBackend>()> open_fresh;
  // Another handle on the store `first` is a handle of (another connection,
  // as another process would have). Optional: without it the suite uses
  // `first` for both roles.
  std::function<std::shared_ptr<StorageBackend>(const std::shared_ptr<StorageBackend>& first)> open_another;
  // Size of the large value written and read back.
  std::size_t large_value_size = std::size_t{4} << 20;
  // Concurrent compare-and-set increments: threads x increments each.
  int writer_threads = 4;
  int increments_per_thread = 100;
  // How long to wait for a change to reach a subscriber.
  std::chrono::milliseconds feed_timeout{10'000};
  // Whether a `resync` event may stand in for the exact changes (a feed that
  // only says "something changed"). keyfolio's own backends report exactly.
  bool feed_may_resync = false;
};

namespace detail {

// Collects change events and waits for them.
class FeedRecorder {
 public:
  void operator()(const ChangeEvent& e) {
    std::lock_guard lock(mutex_);
    events_.push_back(e);
    changed_.notify_all();
  }
  // Waits until `pred(events)` holds or the timeout passes; returns whether it held.
  bool wait_for(std::chrono::milliseconds timeout, const std::function<bool(const std::vector<ChangeEvent>&)>& pred) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return pred(events_); });
  }
  std::vector<ChangeEvent> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<ChangeEvent> events_;
};

inline bool saw(const std::vector<ChangeEvent>& events, ChangeEvent::Kind kind, const std::string& collection,
                const std::string& key, std::uint64_t version, bool may_resync) {
  return std::any_of(events.begin(), events.end(), [&](const ChangeEvent& e) {
    return (e.kind == kind && e.collection == collection && e.key == key && e.version == version) ||
           (may_resync && e.kind == ChangeEvent::Kind::resync &&
            (e.collection.empty() || e.collection == collection));
  });
}

}  // namespace detail

inline void check_storage_backend(const StorageConformance& suite) {
  REQUIRE(suite.open_fresh);
  const std::shared_ptr<StorageBackend> b = suite.open_fresh();
  REQUIRE(b != nullptr);

  SECTION("a fresh store is empty and get of an absent key is empty, not an error") {
    auto got = b->get("c", "absent");
    REQUIRE(got.has_value());
    CHECK_FALSE(got->has_value());
    auto all = b->scan("c");
    REQUIRE(all.has_value());
    CHECK(all->empty());
  }

  SECTION("put with must_not_exist creates at version 1; each put bumps the version by one") {
    REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    auto got = b->get("c", "k");
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->key == "k");
    CHECK((*got)->version == 1);
    CHECK((*got)->value == "v1");
    for (std::uint64_t v = 1; v < 50; ++v) {
      REQUIRE(b->write(WriteBatch().put("c", "k", "v" + std::to_string(v + 1), v)).has_value());
    }
    got = b->get("c", "k");
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->version == 50);
    CHECK((*got)->value == "v50");
  }

  SECTION("a put or erase expecting the wrong version fails with conflict and changes nothing") {
    REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    REQUIRE(b->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
    for (const std::uint64_t wrong : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{3}}) {
      auto put = b->write(WriteBatch().put("c", "k", "bad", wrong));
      REQUIRE_FALSE(put.has_value());
      CHECK(put.error().code() == errc::conflict);
      if (wrong != 0) {
        auto erase = b->write(WriteBatch().erase("c", "k", wrong));
        REQUIRE_FALSE(erase.has_value());
        CHECK(erase.error().code() == errc::conflict);
      }
    }
    auto erase_existing = b->write(WriteBatch().erase("c", "k", must_not_exist));
    REQUIRE_FALSE(erase_existing.has_value());
    CHECK(erase_existing.error().code() == errc::conflict);
    auto erase_absent = b->write(WriteBatch().erase("c", "absent", 1));
    REQUIRE_FALSE(erase_absent.has_value());
    CHECK(erase_absent.error().code() == errc::conflict);
    // Erasing a key expected absent only checks that it is.
    CHECK(b->write(WriteBatch().erase("c", "absent", must_not_exist)).has_value());
    auto put_absent = b->write(WriteBatch().put("c", "absent", "x", 1));
    REQUIRE_FALSE(put_absent.has_value());
    CHECK(put_absent.error().code() == errc::conflict);
    // The conflict names the key whose expectation failed.
    auto named = b->write(WriteBatch().put("c", "k", "v3", 2).put("c", "no-such-key", "x", 1));
    REQUIRE_FALSE(named.has_value());
    CHECK(named.error().message().find("no-such-key") != std::string::npos);
    auto got = b->get("c", "k");
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->version == 2);
    CHECK((*got)->value == "v2");
    CHECK_FALSE(b->get("c", "absent")->has_value());
  }

  SECTION("erase at the right version removes the key, which then starts again at version 1") {
    REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    REQUIRE(b->write(WriteBatch().erase("c", "k", 1)).has_value());
    CHECK_FALSE(b->get("c", "k")->has_value());
    REQUIRE(b->write(WriteBatch().put("c", "k", "again", must_not_exist)).has_value());
    CHECK(b->get("c", "k")->value().version == 1);
  }

  SECTION("a batch with one failed expectation changes nothing") {
    REQUIRE(b->write(WriteBatch().put("c", "a", "a1", must_not_exist).put("c", "b", "b1", must_not_exist))
                .has_value());
    WriteBatch batch;
    batch.put("c", "a", "a2", 1).erase("c", "b", 1).put("c", "new", "n", must_not_exist).erase_all("other");
    batch.put("c", "b", "late", 7);  // fails: b is at 1 (and erased earlier in this batch)
    auto r = b->write(batch);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::conflict);
    CHECK(b->get("c", "a")->value().value == "a1");
    CHECK(b->get("c", "b")->value().version == 1);
    CHECK_FALSE(b->get("c", "new")->has_value());
  }

  SECTION("later operations of a batch see the versions earlier ones produced") {
    WriteBatch batch;
    batch.put("c", "k", "1", must_not_exist).put("c", "k", "2", 1).put("c", "k", "3", 2);
    batch.put("c", "gone", "x", must_not_exist).erase("c", "gone", 1).put("c", "gone", "back", must_not_exist);
    REQUIRE(b->write(batch).has_value());
    CHECK(b->get("c", "k")->value().version == 3);
    CHECK(b->get("c", "k")->value().value == "3");
    CHECK(b->get("c", "gone")->value().version == 1);
    CHECK(b->get("c", "gone")->value().value == "back");
  }

  SECTION("expect checks a version without writing, and a failed expect fails the whole batch") {
    REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    REQUIRE(b->write(WriteBatch().expect("c", "k", 1).expect("c", "absent", must_not_exist).put("c", "other", "o",
                                                                                               must_not_exist))
                .has_value());
    CHECK(b->get("c", "k")->value().version == 1);
    CHECK(b->get("c", "k")->value().value == "v1");
    CHECK_FALSE(b->get("c", "absent")->has_value());
    CHECK(b->get("c", "other")->value().version == 1);
    for (const std::uint64_t wrong : {std::uint64_t{0}, std::uint64_t{2}}) {
      auto r = b->write(WriteBatch().put("c", "other", "changed", 1).expect("c", "k", wrong));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code() == errc::conflict);
    }
    auto absent = b->write(WriteBatch().put("c", "other", "changed", 1).expect("c", "absent", 1));
    REQUIRE_FALSE(absent.has_value());
    CHECK(b->get("c", "other")->value().value == "o");
  }

  SECTION("an empty batch succeeds and changes nothing") {
    REQUIRE(b->write(WriteBatch()).has_value());
    CHECK(b->scan("c")->empty());
  }

  SECTION("erase_all empties one collection only, and later puts of the batch start afresh") {
    WriteBatch fill;
    for (int i = 0; i < 20; ++i) fill.put("c", "k" + std::to_string(i), "v", must_not_exist);
    fill.put("keep", "k", "kept", must_not_exist);
    REQUIRE(b->write(fill).has_value());
    REQUIRE(b->write(WriteBatch().erase_all("c").put("c", "k3", "fresh", must_not_exist)).has_value());
    auto left = b->scan("c");
    REQUIRE(left.has_value());
    REQUIRE(left->size() == 1);
    CHECK(left->front().key == "k3");
    CHECK(left->front().version == 1);
    CHECK(b->get("keep", "k")->value().value == "kept");
    REQUIRE(b->write(WriteBatch().erase_all("never-written")).has_value());
  }

  SECTION("collections are separate namespaces") {
    REQUIRE(b->write(WriteBatch().put("a", "k", "in a", must_not_exist).put("b", "k", "in b", must_not_exist))
                .has_value());
    CHECK(b->get("a", "k")->value().value == "in a");
    CHECK(b->get("b", "k")->value().value == "in b");
    CHECK(b->scan("a")->size() == 1);
    CHECK(b->scan("ab")->empty());
  }

  SECTION("scan returns records ordered bytewise; prefix scans match bytes, not patterns") {
    const std::vector<std::string> keys{std::string("a\0b", 3), "a%", "a_", "ab", "abc", "b", "a\xff",
                                        "a\xff\xff", std::string("\0", 1), "\xff", "A", "a b", "a\n", "\xc3\xa9"};
    WriteBatch batch;
    for (const auto& k : keys) batch.put("c", k, "value of " + k, must_not_exist);
    REQUIRE(b->write(batch).has_value());

    auto all = b->scan("c");
    REQUIRE(all.has_value());
    std::vector<std::string> expected = keys;
    std::sort(expected.begin(), expected.end(), [](const std::string& x, const std::string& y) {
      return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(), [](char p, char q) {
        return static_cast<unsigned char>(p) < static_cast<unsigned char>(q);
      });
    });
    std::vector<std::string> got;
    for (const auto& r : *all) {
      got.push_back(r.key);
      CHECK(r.value == "value of " + r.key);
      CHECK(r.version == 1);
    }
    CHECK(got == expected);

    const auto prefixed = [&](const std::string& prefix) {
      std::vector<std::string> out;
      auto r = b->scan("c", prefix);
      REQUIRE(r.has_value());
      for (const auto& rec : *r) out.push_back(rec.key);
      return out;
    };
    const auto starting = [&](const std::string& prefix) {
      std::vector<std::string> out;
      for (const auto& k : expected) {
        if (k.compare(0, prefix.size(), prefix) == 0) out.push_back(k);
      }
      return out;
    };
    for (const std::string& prefix : {std::string("a"), std::string("a%"), std::string("a_"), std::string("ab"),
                                     std::string("a\xff"), std::string("\xff"), std::string("\0", 1),
                                     std::string("zz"), std::string("a\xff\xff\xff")}) {
      CHECK(prefixed(prefix) == starting(prefix));
    }
    CHECK(b->get("c", std::string("a\0b", 3))->value().value == std::string("value of a\0b", 12));
  }

  SECTION("empty, binary and large values are stored exactly") {
    std::string binary;
    for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
    std::string large(suite.large_value_size, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 7919) >> 3);
    REQUIRE(b->write(WriteBatch()
                         .put("c", "empty", "", must_not_exist)
                         .put("c", "binary", binary, must_not_exist)
                         .put("c", "large", large, must_not_exist))
                .has_value());
    CHECK(b->get("c", "empty")->value().value.empty());
    CHECK(b->get("c", "empty")->value().version == 1);
    CHECK(b->get("c", "binary")->value().value == binary);
    CHECK(b->get("c", "large")->value().value == large);
  }

  SECTION("empty collection names and keys are refused with invalid_argument") {
    auto no_collection = b->write(WriteBatch().put("", "k", "v", must_not_exist));
    REQUIRE_FALSE(no_collection.has_value());
    CHECK(no_collection.error().code() == errc::invalid_argument);
    auto no_key = b->write(WriteBatch().put("c", "", "v", must_not_exist));
    REQUIRE_FALSE(no_key.has_value());
    CHECK(no_key.error().code() == errc::invalid_argument);
    CHECK(b->scan("c")->empty());
  }

  SECTION("a write is visible to another handle as soon as it returns") {
    auto other = suite.open_another ? suite.open_another(b) : b;
    REQUIRE(other != nullptr);
    REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    CHECK(other->get("c", "k")->value().value == "v1");
    REQUIRE(other->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
    CHECK(b->get("c", "k")->value().version == 2);
    auto stale = b->write(WriteBatch().put("c", "k", "stale", 1));
    REQUIRE_FALSE(stale.has_value());
    CHECK(stale.error().code() == errc::conflict);
  }

  SECTION("concurrent compare-and-set increments from several threads and handles lose nothing") {
    auto other = suite.open_another ? suite.open_another(b) : b;
    REQUIRE(other != nullptr);
    constexpr int counters = 3;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < suite.writer_threads; ++t) {
      threads.emplace_back([&, t] {
        auto handle = (t % 2 == 0) ? b : other;
        for (int i = 0; i < suite.increments_per_thread; ++i) {
          const std::string key = "n" + std::to_string((t + i) % counters);
          for (;;) {
            auto current = handle->get("counters", key);
            if (!current) {
              ++failures;
              return;
            }
            const std::uint64_t version = *current ? (*current)->version : must_not_exist;
            const long long n = *current ? std::stoll((*current)->value) : 0;
            auto written = handle->write(WriteBatch().put("counters", key, std::to_string(n + 1), version));
            if (written) break;
            if (written.error().code() != errc::conflict && written.error().code() != errc::unavailable) {
              ++failures;
              return;
            }
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(failures.load() == 0);
    long long total = 0;
    std::uint64_t versions = 0;
    for (int c = 0; c < counters; ++c) {
      auto r = b->get("counters", "n" + std::to_string(c));
      REQUIRE(r.has_value());
      if (*r) {
        total += std::stoll((*r)->value);
        versions += (*r)->version;
      }
    }
    CHECK(total == static_cast<long long>(suite.writer_threads) * suite.increments_per_thread);
    CHECK(versions == static_cast<std::uint64_t>(total));
  }

  SECTION("the change feed reports puts, erases and erase-alls of every handle, or says not_supported") {
    auto other = suite.open_another ? suite.open_another(b) : b;
    REQUIRE(other != nullptr);
    auto recorder = std::make_shared<detail::FeedRecorder>();
    auto subscription = b->subscribe([recorder](const ChangeEvent& e) { (*recorder)(e); });
    if (!subscription) {
      CHECK(subscription.error().code() == errc::not_supported);
      return;
    }
    // Erasing a key expected absent changes nothing, so reports nothing.
    REQUIRE(other->write(WriteBatch().erase("c", "ghost", must_not_exist)).has_value());
    REQUIRE(other->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    REQUIRE(other->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
    REQUIRE(b->write(WriteBatch().put("c", "mine", "m", must_not_exist)).has_value());
    REQUIRE(other->write(WriteBatch().erase("c", "k", 2)).has_value());
    REQUIRE(other->write(WriteBatch().erase_all("c")).has_value());
    const bool r = suite.feed_may_resync;
    const bool heard = recorder->wait_for(suite.feed_timeout, [r](const std::vector<ChangeEvent>& events) {
      return detail::saw(events, ChangeEvent::Kind::put, "c", "k", 1, r) &&
             detail::saw(events, ChangeEvent::Kind::put, "c", "k", 2, r) &&
             detail::saw(events, ChangeEvent::Kind::put, "c", "mine", 1, r) &&
             detail::saw(events, ChangeEvent::Kind::erase, "c", "k", 0, r) &&
             detail::saw(events, ChangeEvent::Kind::erase_all, "c", "", 0, r);
    });
    CHECK(heard);
    const auto all = recorder->events();
    CHECK(std::none_of(all.begin(), all.end(), [](const ChangeEvent& e) { return e.key == "ghost"; }));
    if (!suite.feed_may_resync) {
      const auto events = recorder->events();
      CHECK(std::none_of(events.begin(), events.end(),
                         [](const ChangeEvent& e) { return e.kind == ChangeEvent::Kind::resync; }));
    }

    // After the subscription ends, nothing more arrives.
    subscription->reset();
    const std::size_t seen = recorder->events().size();
    REQUIRE(other->write(WriteBatch().put("c", "after", "x", must_not_exist)).has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(recorder->events().size() == seen);
  }
}

}  // namespace keyfolio::testing
