// When the write-ahead log of a subscribed handle is checkpointed.
//
// Without a subscription, SQLite's automatic checkpoint runs at the end of a
// commit that leaves the log past 1,000 pages, as SQLite does by default. A
// subscribed handle installs the WAL hook below, which replaces that
// checkpoint: the one a commit leaves due runs at the start of the handle's
// next write instead, or on the poller's thread once the handle has been idle
// for a poll interval. A commit then returns as soon as it is durable rather
// than after copying the log (so that the poller seldom reports it before the
// writer has taken it in), at no extra cost to a stream of writes.
#pragma once

#include <sqlite3.h>

#include <atomic>

namespace keyfolio::detail::sqlite {

// The size of the write-ahead log after a handle's last commit, as SQLite's
// WAL hook reports it. Shared by the handle's writes and its poller.
struct WalFrames {
  static constexpr int threshold = 1000;  // SQLite's default automatic checkpoint
  std::atomic<int> frames{0};

  // The WAL hook, installed with `this` as its argument.
  static int hook(void* self, sqlite3*, const char*, int frames);

  bool due() const noexcept { return frames.load(std::memory_order_relaxed) >= threshold; }

  // A passive checkpoint on `db`: copies what no reader still needs and
  // never waits for writers or readers. A busy or partial one is tried
  // again next time.
  void checkpoint(sqlite3* db);
};

}  // namespace keyfolio::detail::sqlite
