// The change feed of one SQLite handle.
//
// Every write batch appends its changes to the `changes` table in its own
// transaction, so the log holds what was committed, in commit order, by any
// process. The poller reads it on a thread with its own connection every
// poll interval and delivers what was committed since its last read.
#pragma once

#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/storage.hpp>

#include "backends/sqlite/connection.hpp"
#include "backends/sqlite/wal_frames.hpp"
#include "storage/subscribers.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

namespace keyfolio::detail::sqlite {

// A thread with its own read connection. It lives apart from the backend,
// because a handler may drop the last reference to the backend from the
// poller's own thread.
//
// It also checkpoints the write-ahead log when the handle has left one due
// and stayed idle (see WalFrames).
class Poller {
 public:
  // A poller with its own connection to the store at `path`, which delivers
  // what is committed from now on.
  static Result<std::shared_ptr<Poller>> open(const std::filesystem::path& path, const SqliteOptions& options,
                                              std::shared_ptr<Subscribers<ChangeEvent>> subscribers,
                                              std::shared_ptr<WalFrames> wal);

  Poller(Connection watcher, std::int64_t last_seq, std::int64_t data_version, std::chrono::milliseconds interval,
         std::shared_ptr<Subscribers<ChangeEvent>> subscribers, std::shared_ptr<WalFrames> wal);

  // The thread's body: polls every interval until stopped.
  static void run(const std::shared_ptr<Poller>& self);

  // Makes run() return, at once if it is waiting.
  void stop();

 private:
  std::vector<ChangeEvent> poll_once();
  void checkpoint();

  Connection watcher_;
  std::int64_t last_seq_;
  std::int64_t data_version_;
  std::chrono::milliseconds interval_;
  std::shared_ptr<Subscribers<ChangeEvent>> subscribers_;
  std::shared_ptr<WalFrames> wal_;
  int frames_seen_ = -1;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace keyfolio::detail::sqlite
