#include <keyfolio/backends/memory.hpp>

#include "catch.hpp"

#include <atomic>
#include <thread>
#include <vector>

using keyfolio::ChangeEvent;
using keyfolio::WriteBatch;
using keyfolio::errc;
using keyfolio::must_not_exist;

namespace {

std::vector<std::pair<std::string, std::uint64_t>> contents(keyfolio::StorageBackend& b, std::string_view c) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const auto& r : b.scan(c).value()) out.emplace_back(r.key, r.version);
  return out;
}

}  // namespace

TEST_CASE("memory backend: a put creates at version 1 and each update adds one") {
  auto b = keyfolio::make_memory_backend();
  CHECK_FALSE(b->get("c", "k").value().has_value());
  REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
  auto r = b->get("c", "k").value();
  REQUIRE(r.has_value());
  CHECK(r->version == 1);
  CHECK(r->value == "v1");
  REQUIRE(b->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
  CHECK(b->get("c", "k").value()->version == 2);
  CHECK(b->get("c", "k").value()->value == "v2");
}

TEST_CASE("memory backend: a stale or wrong expectation fails with conflict and changes nothing") {
  auto b = keyfolio::make_memory_backend();
  b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).value();
  auto stale = b->write(WriteBatch().put("c", "k", "x", 2));
  REQUIRE_FALSE(stale.has_value());
  CHECK(stale.error().code() == errc::conflict);
  auto exists = b->write(WriteBatch().put("c", "k", "x", must_not_exist));
  CHECK(exists.error().code() == errc::conflict);
  auto absent = b->write(WriteBatch().erase("c", "nope", 1));
  CHECK(absent.error().code() == errc::conflict);
  CHECK(b->get("c", "k").value()->value == "v1");
}

TEST_CASE("memory backend: a batch with one failed expectation changes nothing") {
  auto b = keyfolio::make_memory_backend();
  b->write(WriteBatch().put("c", "a", "a1", must_not_exist).put("c", "b", "b1", must_not_exist)).value();
  auto r = b->write(WriteBatch().put("c", "a", "a2", 1).erase("c", "b", 1).put("c", "z", "z", 7));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == errc::conflict);
  CHECK(contents(*b, "c") == std::vector<std::pair<std::string, std::uint64_t>>{{"a", 1}, {"b", 1}});
  CHECK(b->get("c", "a").value()->value == "a1");
}

TEST_CASE("memory backend: later operations of a batch see the earlier ones") {
  auto b = keyfolio::make_memory_backend();
  REQUIRE(b->write(WriteBatch().put("c", "k", "1", must_not_exist).put("c", "k", "2", 1).erase("c", "k", 2).put(
                       "c", "k", "3", must_not_exist))
              .has_value());
  CHECK(b->get("c", "k").value()->version == 1);
  CHECK(b->get("c", "k").value()->value == "3");
}

TEST_CASE("memory backend: scans are ordered and filter by prefix, and erase_all empties one collection") {
  auto b = keyfolio::make_memory_backend();
  WriteBatch batch;
  for (const std::string& k : std::vector<std::string>{"b/2", "a", "b/1", "c", std::string("b\0x", 3)}) {
    batch.put("c", k, "v", must_not_exist);
  }
  batch.put("other", "a", "v", must_not_exist);
  b->write(batch).value();
  std::vector<std::string> keys;
  for (const auto& r : b->scan("c", "b/").value()) keys.push_back(r.key);
  CHECK(keys == std::vector<std::string>{"b/1", "b/2"});
  CHECK(b->scan("c").value().size() == 5);
  b->write(WriteBatch().erase_all("c")).value();
  CHECK(b->scan("c").value().empty());
  CHECK(b->scan("other").value().size() == 1);
}

TEST_CASE("memory backend: keys and values may hold any byte, values may be empty or large") {
  auto b = keyfolio::make_memory_backend();
  const std::string key("\0\xff/\n", 4);
  const std::string big(1 << 20, '\x7f');
  b->write(WriteBatch().put("c", key, "", must_not_exist).put("c", "big", big, must_not_exist)).value();
  CHECK(b->get("c", key).value()->value.empty());
  CHECK(b->get("c", "big").value()->value == big);
}

TEST_CASE("memory backend: empty collection names and keys are refused") {
  auto b = keyfolio::make_memory_backend();
  CHECK(b->write(WriteBatch().put("", "k", "v", must_not_exist)).error().code() == errc::invalid_argument);
  CHECK(b->write(WriteBatch().put("c", "", "v", must_not_exist)).error().code() == errc::invalid_argument);
  CHECK(b->scan("c").value().empty());
}

TEST_CASE("memory backend: the change feed reports committed changes until cancelled") {
  auto b = keyfolio::make_memory_backend();
  std::vector<ChangeEvent> seen;
  auto sub = b->subscribe([&](const ChangeEvent& e) { seen.push_back(e); }).value();
  b->write(WriteBatch().put("c", "k", "v", must_not_exist)).value();
  b->write(WriteBatch().erase("c", "k", 1)).value();
  (void)b->write(WriteBatch().erase("c", "k", 1));  // fails: no event
  b->write(WriteBatch().erase_all("c")).value();
  sub.reset();
  b->write(WriteBatch().put("c", "k", "v", must_not_exist)).value();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].kind == ChangeEvent::Kind::put);
  CHECK(seen[0].key == "k");
  CHECK(seen[0].version == 1);
  CHECK(seen[1].kind == ChangeEvent::Kind::erase);
  CHECK(seen[2].kind == ChangeEvent::Kind::erase_all);
}

TEST_CASE("memory backend: concurrent compare-and-set increments lose nothing") {
  auto b = keyfolio::make_memory_backend();
  b->write(WriteBatch().put("c", "n", "0", must_not_exist)).value();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        while (true) {
          auto r = b->get("c", "n").value();
          const int n = std::stoi(r->value);
          if (b->write(WriteBatch().put("c", "n", std::to_string(n + 1), r->version))) break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(b->get("c", "n").value()->value == "2000");
  CHECK(b->get("c", "n").value()->version == 2001);
}
