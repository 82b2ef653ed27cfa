// The change feed of one PostgreSQL handle.
//
// Every write batch that changes something appends its changes to the
// `changes` table and sends an empty notification on the store's channel,
// both delivered at its commit. The listener waits on its own connection
// for a notification (or for the poll interval), then reads the log from
// the last entry it saw. Notifications only wake it: they are folded and
// lost while it is disconnected, the log is not.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/storage.hpp>

#include "backends/postgres/connection.hpp"
#include "storage/subscribers.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace keyfolio::detail::postgres {

// A thread with its own connection. It lives apart from the backend,
// because a handler may drop the last reference to the backend from the
// listener's own thread.
class Listener {
 public:
  // A listener that delivers what is committed from now on; connects and
  // listens before it returns.
  static Result<std::shared_ptr<Listener>> open(std::shared_ptr<const Target> target,
                                                std::shared_ptr<Subscribers<ChangeEvent>> subscribers);

  Listener(std::shared_ptr<const Target> target, std::unique_ptr<Connection> c, std::int64_t last_seq,
           std::shared_ptr<Subscribers<ChangeEvent>> subscribers, int wake_fd);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The thread's body: waits, reads and delivers until stopped.
  static void run(const std::shared_ptr<Listener>& self);

  // Makes run() return, at once if it is waiting.
  void stop();

 private:
  static Result<std::unique_ptr<Connection>> connect_and_listen(const std::shared_ptr<const Target>& target);
  // What the log holds after the last entry seen; a lost connection drops c_.
  std::vector<ChangeEvent> read_log();
  // Waits for a notification, the wake-up or the poll interval; false when
  // the connection was lost.
  bool wait();

  std::shared_ptr<const Target> target_;
  std::unique_ptr<Connection> c_;
  std::int64_t last_seq_;
  std::shared_ptr<Subscribers<ChangeEvent>> subscribers_;
  int wake_fd_;
  std::atomic<bool> stopping_{false};
};

}  // namespace keyfolio::detail::postgres
