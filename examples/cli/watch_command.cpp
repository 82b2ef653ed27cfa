// keyfolio watch: a line for every account created, updated or removed by
// any host, until SIGINT or SIGTERM. The lines come from the manager's
// notifications (which the backend's change feed drives); when another host
// rotates the data key the manager is retired, and the watch opens the store
// again under the new key and carries on.
#include "cli.hpp"

#include <boost/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <mutex>
#include <poll.h>
#include <string>
#include <unistd.h>

namespace keyfolio::cli {
namespace {

// What wakes the main thread, written to a pipe: by the signal handler (a
// write is all a handler may do) and by the notification handler.
constexpr char stop_requested = 's';
constexpr char manager_retired = 'r';

int wake_write_end = -1;

void on_stop_signal(int) {
  const int saved = errno;
  (void)!::write(wake_write_end, &stop_requested, 1);
  errno = saved;
}

// The pipe, and SIGINT and SIGTERM pointed at it for as long as it lives.
class Wakeup {
 public:
  Wakeup() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw Failure{keyfolio::Error(keyfolio::errc::storage_error, "watch: no pipe for its signals")};
    }
    wake_write_end = fds_[1];
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, &previous_[0]);
    ::sigaction(SIGTERM, &action, &previous_[1]);
  }
  ~Wakeup() {
    ::sigaction(SIGINT, &previous_[0], nullptr);
    ::sigaction(SIGTERM, &previous_[1], nullptr);
    wake_write_end = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  void send(char what) const { (void)!::write(fds_[1], &what, 1); }

  // The next reason to wake (a stop before anything else it finds).
  char wait() const {
    for (;;) {
      pollfd p{fds_[0], POLLIN, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return stop_requested;
      char got[64];
      const ssize_t n = ::read(fds_[0], got, sizeof got);
      if (n <= 0) continue;
      const std::string_view seen(got, static_cast<std::size_t>(n));
      if (seen.find(stop_requested) != std::string_view::npos) return stop_requested;
      return manager_retired;
    }
  }

 private:
  int fds_[2] = {-1, -1};
  struct sigaction previous_[2] {};
};

// Now, in UTC, to the millisecond: 2026-12-03T10:15:00.123Z.
std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
  return std::string(text, n) + fraction;
}

// Prints one line per event, whole and flushed, whichever thread calls;
// keeps each account's last version, for the accounts that change while the
// store is opened again.
class Watcher {
 public:
  explicit Watcher(bool json) : json_(json) {}

  // An account event (never one of the store's own: resync and retired are
  // `resync()` and what the main thread does about them).
  void account(keyfolio::AccountEvent::Kind kind, const keyfolio::AccountId& id, std::uint64_t version) {
    std::lock_guard lock(mutex_);
    if (kind == keyfolio::AccountEvent::Kind::removed) {
      versions_.erase(id);
    } else {
      versions_[id] = version;
    }
    print(kind == keyfolio::AccountEvent::Kind::created   ? "created"
          : kind == keyfolio::AccountEvent::Kind::updated ? "updated"
                                                          : "removed",
          &id, kind == keyfolio::AccountEvent::Kind::removed ? 0 : version,
          kind == keyfolio::AccountEvent::Kind::removed ? "" : " version " + std::to_string(version));
  }

  void resync() {
    std::lock_guard lock(mutex_);
    print("resync", nullptr, 0, ": the change feed may have missed changes; every account is read again");
  }

  // The accounts as a newly opened manager has them: what it holds that
  // differs from the last versions printed.
  void start_from(const std::vector<keyfolio::AccountSummary>& accounts) {
    std::lock_guard lock(mutex_);
    for (const auto& a : accounts) versions_[a.id] = a.version;
  }

  // After a rotation, which re-sealed every account at its next version:
  // the accounts of `accounts` that were added, removed or changed besides.
  void rotated(const std::vector<keyfolio::AccountSummary>& accounts) {
    std::lock_guard lock(mutex_);
    print("rotated", nullptr, 0, ": the store's data key was replaced; watching under the new one");
    std::map<keyfolio::AccountId, std::uint64_t> now;
    for (const auto& a : accounts) now.emplace(a.id, a.version);
    for (const auto& [id, version] : versions_) {
      if (!now.contains(id)) print("removed", &id, 0, "");
    }
    for (const auto& a : accounts) {
      auto before = versions_.find(a.id);
      if (before == versions_.end()) {
        print("created", &a.id, a.version, " version " + std::to_string(a.version));
      } else if (a.version > before->second + 1) {
        print("updated", &a.id, a.version, " version " + std::to_string(a.version));
      }
    }
    versions_ = std::move(now);
  }

 private:
  // Under mutex_.
  void print(std::string_view event, const keyfolio::AccountId* id, std::uint64_t version, std::string_view rest) {
    if (json_) {
      boost::json::object line;
      line["time"] = timestamp();
      line["event"] = event;
      if (id != nullptr) line["exchange_id"] = id->spelling();
      if (version != 0) line["version"] = version;
      std::cout << boost::json::serialize(line) << std::endl;
    } else {
      std::cout << timestamp() << ' ' << event;
      if (id != nullptr) std::cout << ' ' << id->spelling();
      std::cout << rest << std::endl;
    }
  }

  const bool json_;
  std::mutex mutex_;
  std::map<keyfolio::AccountId, std::uint64_t> versions_;
};

keyfolio::Subscription subscribe(keyfolio::AccountManager& manager, Watcher& watcher, const Wakeup& wakeup) {
  return manager.subscribe([&watcher, &wakeup](const keyfolio::AccountEvent& e) {
    switch (e.kind) {
      case keyfolio::AccountEvent::Kind::resync: watcher.resync(); break;
      case keyfolio::AccountEvent::Kind::retired: wakeup.send(manager_retired); break;
      default: watcher.account(e.kind, e.id, e.version);
    }
  });
}

}  // namespace

int cmd_watch(const Options& o, std::vector<std::string> args) {
  const bool json = flag(args, "--json");
  reject_options(args);
  if (!args.empty()) throw Usage{"watch takes no arguments"};
  auto opened = open_whole_store(o, false);
  if (!opened) return fail(opened.error());
  const Wakeup wakeup;
  Watcher watcher(json);
  auto manager = std::move(opened->manager);
  auto subscription = subscribe(manager, watcher, wakeup);
  watcher.start_from(manager.list());
  std::cerr << "keyfolio: watching " << opened->name << " (" << manager.size()
            << (manager.size() == 1 ? " account" : " accounts") << "); stop with Ctrl-C\n";
  while (wakeup.wait() == manager_retired) {
    // Another handle rotated the data key: this manager serves nothing more,
    // and the store opens again under the new key (the same passphrase), or
    // under none when the passphrase changed with it.
    subscription.reset();
    auto again = keyfolio::AccountManager::open(opened->backend, opened->key, manager_options(o, false));
    if (!again) {
      if (again.error().code() == keyfolio::errc::wrong_key) {
        return fail(keyfolio::Error(keyfolio::errc::wrong_key,
                                    "the store's data key was replaced together with its passphrase, which no "
                                    "longer opens it; run `keyfolio watch` again with the new passphrase"));
      }
      return fail(keyfolio::Error(again.error().code(), "the store's data key was replaced, and opening it again failed: " +
                                                            again.error().message()));
    }
    manager = std::move(*again);
    subscription = subscribe(manager, watcher, wakeup);
    watcher.rotated(manager.list());
  }
  return 0;
}

}  // namespace keyfolio::cli
