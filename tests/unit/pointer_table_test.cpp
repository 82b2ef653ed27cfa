#include "detail/pointer_table.hpp"

#include "catch.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace {

using keyfolio::detail::PointerTable;

// Every value filed under `hash`, in ascending order.
std::vector<int> values_under(const PointerTable<int>& table, std::uint64_t hash) {
  std::vector<int> out;
  table.for_each(hash, [&](int& v) { out.push_back(v); });
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("pointer table: finds what was filed, by hash and predicate") {
  PointerTable<int> table;
  int a = 1, b = 2, c = 3;
  CHECK(table.find(7, [](int&) { return true; }) == nullptr);  // empty: no slots at all
  CHECK_FALSE(table.erase(7, &a));
  table.insert(7, &a);
  table.insert(7, &b);  // the same hash twice: told apart by the predicate
  table.insert(9, &c);
  CHECK(table.size() == 3);
  CHECK(table.find(7, [](int& v) { return v == 2; }) == &b);
  CHECK(table.find(7, [](int& v) { return v == 3; }) == nullptr);  // 3 is under another hash
  CHECK(table.find(9, [](int&) { return true; }) == &c);
  CHECK(values_under(table, 7) == std::vector<int>{1, 2});
  CHECK(table.erase(7, &a));
  CHECK_FALSE(table.erase(7, &a));
  CHECK(table.find(7, [](int& v) { return v == 1; }) == nullptr);
  CHECK(table.find(7, [](int& v) { return v == 2; }) == &b);
  CHECK(table.size() == 2);
}

// Random inserts and erases checked against a multimap after every step,
// with hashes drawn from a small set (long runs, many equal hashes) and from
// the full range (runs that wrap around the end of the slots).
TEST_CASE("pointer table: agrees with a multimap through random inserts and erases") {
  for (const bool crowded : {true, false}) {
    std::mt19937_64 random(crowded ? 1 : 2);
    std::vector<int> values(2000);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<int>(i);
    PointerTable<int> table;
    std::map<int*, std::uint64_t> filed;  // value -> its hash
    std::multimap<std::uint64_t, int*> model;
    for (int step = 0; step < 20000; ++step) {
      int* value = &values[random() % values.size()];
      if (auto it = filed.find(value); it != filed.end()) {
        const std::uint64_t hash = it->second;
        REQUIRE(table.erase(hash, value));
        auto [from, to] = model.equal_range(hash);
        model.erase(std::find_if(from, to, [&](const auto& p) { return p.second == value; }));
        filed.erase(it);
      } else {
        const std::uint64_t hash = crowded ? random() % 37 : random();
        table.insert(hash, value);
        model.emplace(hash, value);
        filed.emplace(value, hash);
      }
      REQUIRE(table.size() == model.size());
      if (step % 97 == 0) {
        // Every value is still reachable under its hash, and nothing else is.
        for (const auto& [v, hash] : filed) {
          REQUIRE(table.find(hash, [&](int& x) { return &x == v; }) == v);
        }
        std::set<std::uint64_t> hashes;
        for (const auto& [hash, v] : model) hashes.insert(hash);
        for (const std::uint64_t hash : hashes) {
          std::vector<int> expected;
          auto [from, to] = model.equal_range(hash);
          for (auto i = from; i != to; ++i) expected.push_back(*i->second);
          std::sort(expected.begin(), expected.end());
          REQUIRE(values_under(table, hash) == expected);
        }
        std::size_t visited = 0;
        table.for_each([&](int&) { ++visited; });
        REQUIRE(visited == model.size());
      }
    }
  }
}

TEST_CASE("pointer table: reserve keeps what is there, clear empties it") {
  PointerTable<int> table;
  std::vector<int> values(100);
  for (std::size_t i = 0; i < values.size(); ++i) table.insert(i * 0x9e3779b97f4a7c15ULL, &values[i]);
  table.reserve(100000);
  for (std::size_t i = 0; i < values.size(); ++i) {
    CHECK(table.find(i * 0x9e3779b97f4a7c15ULL, [&](int& v) { return &v == &values[i]; }) == &values[i]);
  }
  table.clear();
  CHECK(table.empty());
  CHECK(table.find(0, [](int&) { return true; }) == nullptr);
  table.insert(5, &values[0]);  // usable again after clear
  CHECK(table.size() == 1);
}
