// Several processes on one SQLite store: crashes at random moments, and
// concurrent compare-and-set writers.
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/sqlite.hpp>

#include "catch.hpp"
#include "heard.hpp"
#include "child_process.hpp"
#include "temp_dir.hpp"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

using keyfolio::AccountManager;
using keyfolio::Credentials;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::WriteBatch;
using keyfolio::errc;
using keyfolio::make_sqlite_backend;
using keyfolio::must_not_exist;

namespace {

KeySource raw_key() { return KeySource::raw_key(SecretString(std::string(32, 'k'))); }

constexpr int crash_accounts = 16;

std::string account_of(long seq) { return "BINANCE/acct" + std::to_string(seq % crash_accounts); }

// The child of the crash test: upserts forever, telling the parent the
// sequence number of every acknowledged upsert, until it is killed.
[[noreturn]] void upsert_until_killed(const std::filesystem::path& path, long first_seq, int out) {
  auto backend = make_sqlite_backend(path);
  if (!backend) ::_exit(3);
  auto manager = AccountManager::open(*backend, raw_key());
  if (!manager) ::_exit(4);
  for (long seq = first_seq;; ++seq) {
    Credentials c;
    (void)c.add("apiKey", SecretString("key-" + std::to_string(seq)));
    (void)c.add("secret", SecretString("secret-" + std::to_string(seq)));
    if (!manager->upsert(account_of(seq), std::move(c))) ::_exit(5);
    const std::string line = std::to_string(seq) + "\n";
    if (::write(out, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(6);
  }
}

long seq_of(const keyfolio::Account& account) {
  const std::string key(account.credentials.find("apiKey")->reveal());
  return std::stol(key.substr(key.find('-') + 1));
}

}  // namespace

TEST_CASE("after 200 SIGKILLs at random moments every acknowledged upsert is in the SQLite store") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "crash.db";
  std::mt19937 random(20261121);
  std::uniform_int_distribution<int> delay_us(0, 40'000);

  // What each account must hold: its last acknowledged sequence number, or
  // (for the one upsert in flight at the kill) possibly the next one.
  std::map<std::string, long> confirmed;
  long next_seq = 0;
  int kills_during_writes = 0;
  for (int round = 0; round < 200; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      upsert_until_killed(path, next_seq, fds[1]);
    }
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    INFO("round " << round << ", child status " << status);
    REQUIRE(WIFSIGNALED(status));
    std::string said;
    char buffer[4096];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) said.append(buffer, static_cast<std::size_t>(n));
    ::close(fds[0]);

    std::istringstream lines(said);
    long acknowledged = next_seq - 1;
    std::map<std::string, long> acked;
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      acknowledged = std::stol(line);
      acked[account_of(acknowledged)] = acknowledged;
    }
    if (acknowledged >= next_seq) ++kills_during_writes;
    const long in_flight = acknowledged + 1;

    {
      auto manager = AccountManager::open(make_sqlite_backend(path).value(), raw_key());
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
  CHECK(kills_during_writes > 50);
}

TEST_CASE("two processes doing compare-and-set increments on the same SQLite records lose no increment") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "counters.db";
  { REQUIRE(make_sqlite_backend(path).has_value()); }
  constexpr int per_process = 500;
  constexpr int counters = 4;
  // Both children start at the same moment, so that their writes interleave.
  const auto start = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);

  auto increments = [&] {
    return [&](const std::function<void(const std::string&)>& say) {
      auto b = make_sqlite_backend(path);
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
  const auto one = keyfolio::test::spawn_child(increments());
  const auto two = keyfolio::test::spawn_child(increments());
  REQUIRE(one.pid > 0);
  REQUIRE(two.pid > 0);
  const auto first_outcome = keyfolio::test::collect(one);
  const auto second = keyfolio::test::collect(two);
  const auto* first = &first_outcome;
  INFO("first: " << first->said << "; second: " << second.said);
  REQUIRE(first->status == 0);
  REQUIRE(second.status == 0);

  auto b = make_sqlite_backend(path).value();
  long total = 0;
  std::uint64_t versions = 0;
  for (const auto& r : b->scan("counters").value()) {
    total += std::stol(r.value);
    versions += r.version;
  }
  CHECK(total == 2 * per_process);
  CHECK(versions == 2 * per_process);
  // The writers did contend: some compare-and-sets lost and were retried.
  CHECK(std::stol(first->said) + std::stol(second.said) > 0);
}

TEST_CASE("a change made by another process reaches this process's change feed") {
  keyfolio::test::TempDir dir;
  const auto path = dir / "feed.db";
  { REQUIRE(make_sqlite_backend(path).has_value()); }
  // The child is forked before this process starts any thread (the change
  // feed's poller), and writes once told to through a pipe.
  int go[2];
  REQUIRE(::pipe(go) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(go[1]);
    char byte = 0;
    if (::read(go[0], &byte, 1) != 1) ::_exit(2);
    auto b = make_sqlite_backend(path);
    if (!b) ::_exit(3);
    auto other = AccountManager::open(*b, raw_key());
    if (!other) ::_exit(4);
    Credentials c;
    (void)c.add("apiKey", SecretString("from-child"));
    (void)c.add("secret", SecretString("s"));
    ::_exit(other->upsert("KRAKEN/child", std::move(c)) ? 0 : 5);
  }
  ::close(go[0]);

  keyfolio::SqliteOptions options;
  options.poll_interval = std::chrono::milliseconds(10);
  auto manager = AccountManager::open(make_sqlite_backend(path, options).value(), raw_key()).value();
  keyfolio::test::Heard<keyfolio::AccountEvent> heard;
  auto subscription = manager.subscribe(heard.handler());
  REQUIRE(::write(go[1], "g", 1) == 1);
  ::close(go[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(heard.wait_for([](const auto& e) {
    return e.kind == keyfolio::AccountEvent::Kind::created && e.id.spelling() == "KRAKEN/child";
  }));
  CHECK(keyfolio::test::reveals(*manager.get("KRAKEN/child").value()->credentials.find("apiKey"), "from-child"));
}
