// Several processes on one store, whatever its backend: crashes at random
// moments, concurrent compare-and-set writers, and the change feed across
// processes. Each scenario is given how a process opens the store.
#pragma once

#include <keyfolio/account_manager.hpp>
#include <keyfolio/storage.hpp>

#include "catch.hpp"
#include "child_process.hpp"
#include "heard.hpp"

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace keyfolio::test::scenarios {

// Opens a handle on the store of the scenario.
using OpenStore = std::function<Result<std::shared_ptr<StorageBackend>>()>;

inline KeySource raw_key() { return KeySource::raw_key(SecretString(std::string(32, 'k'))); }

inline constexpr int crash_accounts = 16;

inline std::string account_of(long seq) { return "BINANCE/acct" + std::to_string(seq % crash_accounts); }

// The child of the crash test: upserts forever, telling the parent the
// sequence number of every acknowledged upsert, until it is killed.
[[noreturn]] inline void upsert_until_killed(const OpenStore& open, long first_seq, int out) {
  auto backend = open();
  if (!backend) ::_exit(3);
  auto manager = AccountManager::open(*backend, raw_key());
  if (!manager) ::_exit(4);
  const std::string ready = "ready\n";
  if (::write(out, ready.data(), ready.size()) != static_cast<ssize_t>(ready.size())) ::_exit(6);
  for (long seq = first_seq;; ++seq) {
    Credentials c;
    (void)c.add("apiKey", SecretString("key-" + std::to_string(seq)));
    (void)c.add("secret", SecretString("secret-" + std::to_string(seq)));
    if (!manager->upsert(account_of(seq), std::move(c))) ::_exit(5);
    const std::string line = std::to_string(seq) + "\n";
    if (::write(out, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(6);
  }
}

inline long seq_of(const Account& account) {
  const std::string key(account.credentials.find("apiKey")->reveal());
  return std::stol(key.substr(key.find('-') + 1));
}

// `rounds` times: a child upserts through open_child(round) until it is
// SIGKILLed after a random delay; `settled(round)` returns once nothing of
// the killed child can still land (for a server, once its session ended);
// then every upsert the child acknowledged must be in the store, read
// through `open`. Call it from a single-threaded process.
inline void crash_scenario(const std::function<OpenStore(int round)>& open_child, const OpenStore& open,
                           const std::function<void(int round)>& settled, int rounds, std::uint32_t seed,
                           int max_delay_us) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> delay_us(0, max_delay_us);

  // What each account must hold: its last acknowledged sequence number, or
  // (for the one upsert in flight at the kill) possibly the next one.
  std::map<std::string, long> confirmed;
  long next_seq = 0;
  int kills_during_writes = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const OpenStore child_open = open_child(round);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      upsert_until_killed(child_open, next_seq, fds[1]);
    }
    ::close(fds[1]);
    // Most kills come at a random moment after the child has opened the
    // store, however long a loaded machine takes to start it; one round in
    // eight kills a child that may still be opening it.
    std::string said;
    if (round % 8 != 0) {
      char c = 0;
      while (said.find("ready\n") == std::string::npos && ::read(fds[0], &c, 1) == 1) said.push_back(c);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    INFO("round " << round << ", child status " << status);
    REQUIRE(WIFSIGNALED(status));
    char buffer[4096];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) said.append(buffer, static_cast<std::size_t>(n));
    ::close(fds[0]);
    settled(round);

    std::istringstream lines(said);
    long acknowledged = next_seq - 1;
    std::map<std::string, long> acked;
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line == "ready") continue;
      acknowledged = std::stol(line);
      acked[account_of(acknowledged)] = acknowledged;
    }
    if (acknowledged >= next_seq) ++kills_during_writes;
    const long in_flight = acknowledged + 1;

    {
      auto backend = open();
      REQUIRE(backend.has_value());
      auto manager = AccountManager::open(*backend, raw_key());
      REQUIRE(manager.has_value());
      for (int a = 0; a < crash_accounts; ++a) {
        const std::string id = "BINANCE/acct" + std::to_string(a);
        INFO(id);
        std::optional<long> must;  // the acknowledged value, when there is one
        if (auto it = acked.find(id); it != acked.end()) {
          must = it->second;
        } else if (auto c = confirmed.find(id); c != confirmed.end()) {
          must = c->second;
        }
        auto stored = manager->get(id);
        if (!stored) {
          REQUIRE(stored.error().code() == errc::not_found);
          CHECK_FALSE(must.has_value());
          continue;
        }
        const long seq = seq_of(**stored);
        const bool is_in_flight = seq == in_flight && account_of(in_flight) == id;
        CHECK((seq == must || is_in_flight));
        confirmed[id] = seq;
      }
      CHECK(manager->list().size() == confirmed.size());
    }
    next_seq = in_flight + 1;
  }
  // The kills must have hit running writers, not only start-ups.
  CHECK(kills_during_writes > rounds / 4);
}

// Two processes doing compare-and-set increments on the same records: no
// increment is lost, and the two did contend. Call it from a
// single-threaded process.
inline void increments_scenario(const OpenStore& open) {
  constexpr int per_process = 500;
  constexpr int counters = 4;
  // Both children start at the same moment, so that their writes interleave.
  const auto start = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);

  auto increments = [&] {
    return [&](const std::function<void(const std::string&)>& say) {
      auto b = open();
      if (!b) {
        say(b.error().message());
        return 2;
      }
      int conflicts = 0;
      std::this_thread::sleep_until(start);
      for (int i = 0; i < per_process; ++i) {
        const std::string key = "n" + std::to_string(i % counters);
        for (;;) {
          auto current = (*b)->get("counters", key);
          if (!current) return 3;
          const std::uint64_t version = *current ? (*current)->version : must_not_exist;
          const long n = *current ? std::stol((*current)->value) : 0;
          auto w = (*b)->write(WriteBatch().put("counters", key, std::to_string(n + 1), version));
          if (w) {
            // A pause between increments lets the other process take the
            // lock, so that the two interleave instead of taking turns.
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            break;
          }
          if (w.error().code() != errc::conflict) {
            say(w.error().message());
            return 4;
          }
          ++conflicts;
        }
      }
      say(std::to_string(conflicts));
      return 0;
    };
  };
  // Both forked from this single thread, then collected.
  const auto one = spawn_child(increments());
  const auto two = spawn_child(increments());
  REQUIRE(one.pid > 0);
  REQUIRE(two.pid > 0);
  const auto first = collect(one);
  const auto second = collect(two);
  INFO("first: " << first.said << "; second: " << second.said);
  REQUIRE(first.status == 0);
  REQUIRE(second.status == 0);

  auto b = open().value();
  long total = 0;
  std::uint64_t versions = 0;
  for (const auto& r : b->scan("counters").value()) {
    total += std::stol(r.value);
    versions += r.version;
  }
  CHECK(total == 2 * per_process);
  CHECK(versions == 2 * per_process);
  // The writers did contend: some compare-and-sets lost and were retried.
  CHECK(std::stol(first.said) + std::stol(second.said) > 0);
}

// A change made by another process reaches this process's change feed;
// `open_subscriber` opens the handle that listens. Call it from a
// single-threaded process.
inline void feed_scenario(const OpenStore& open, const OpenStore& open_subscriber) {
  { REQUIRE(open().has_value()); }
  // The child is forked before this process starts any thread (the change
  // feed), and writes once told to through a pipe.
  int go[2];
  REQUIRE(::pipe(go) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(go[1]);
    char byte = 0;
    if (::read(go[0], &byte, 1) != 1) ::_exit(2);
    auto b = open();
    if (!b) ::_exit(3);
    auto other = AccountManager::open(*b, raw_key());
    if (!other) ::_exit(4);
    Credentials c;
    (void)c.add("apiKey", SecretString("from-child"));
    (void)c.add("secret", SecretString("s"));
    ::_exit(other->upsert("KRAKEN/child", std::move(c)) ? 0 : 5);
  }
  ::close(go[0]);

  auto manager = AccountManager::open(open_subscriber().value(), raw_key()).value();
  Heard<AccountEvent> heard;
  auto subscription = manager.subscribe(heard.handler());
  REQUIRE(::write(go[1], "g", 1) == 1);
  ::close(go[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(heard.wait_for([](const auto& e) {
    return e.kind == AccountEvent::Kind::created && e.id.spelling() == "KRAKEN/child";
  }));
  CHECK(reveals(*manager.get("KRAKEN/child").value()->credentials.find("apiKey"), "from-child"));
}

}  // namespace keyfolio::test::scenarios
