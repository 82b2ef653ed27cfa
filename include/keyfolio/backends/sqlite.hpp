// keyfolio/backends/sqlite.hpp: the SQLite StorageBackend, keyfolio's
// embedded default: one file that survives crashes and that several
// processes (a trading host and an admin tool) can use at once.
//
// The file is in WAL mode and created with mode 0600 (SQLite gives its -wal
// and -shm files the same mode). Every write batch is one `BEGIN IMMEDIATE`
// transaction: compare-and-set holds across handles and processes, because
// the versions are checked under SQLite's write lock. With the default
// Durability::full, write() returns only after the commit is on disk (fsync).
// A lock held by another connection is waited for up to `busy_timeout`, then
// the call fails with `unavailable`.
//
// Change feed: each batch also appends its changes to a log table in the same
// transaction. A subscribed handle polls the file (`PRAGMA data_version`, a
// read of shared memory, no disk I/O) every `poll_interval` on a thread of its
// own connection and delivers what others — or it — committed since; a
// subscriber that fell behind the log's retained window (`change_log_size`)
// gets a `resync` event, and so does every subscriber for a batch of more
// than 1,024 operations (an import), which is logged as one entry. Reads
// never wait for the poller. A subscribed handle also takes over SQLite's
// automatic checkpoint: the one a commit leaves due (past 1,000 pages of
// log) runs at the start of the handle's next write, or on the poller's
// thread once the handle has been idle for a poll interval, so that a commit
// returns as soon as it is durable rather than after copying the log.
//
// The schema carries a version (`PRAGMA user_version`) and an application id;
// opening a keyfolio file of a newer schema fails with `not_supported`, a
// SQLite file that is not a keyfolio store with `invalid_argument`, and older
// schemas are migrated in one transaction.
//
// Safe for concurrent use; never throws. Each handle has its own connection;
// calls on one handle are serialized.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/storage.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace keyfolio {

struct SqliteOptions {
  enum class Durability {
    // Every acknowledged write is on disk before write() returns
    // (synchronous=FULL): it survives a process crash, an OS crash and a
    // power loss.
    full,
    // Faster writes (synchronous=NORMAL): an acknowledged write survives a
    // process crash, but an OS crash or a power loss may lose the last
    // writes acknowledged before it. The store stays consistent either way.
    relaxed,
  };
  Durability durability = Durability::full;
  // How long a call waits for another connection's lock before `unavailable`.
  std::chrono::milliseconds busy_timeout{5000};
  // How often a subscribed handle looks for changes made elsewhere.
  std::chrono::milliseconds poll_interval{50};
  // Changes kept in the log for subscribers that poll; at least 1.
  std::uint32_t change_log_size = 10'000;
  // Create the file when it does not exist (else: `not_found`).
  bool create = true;
};

// The current schema version of keyfolio's SQLite stores.
inline constexpr int sqlite_schema_version = 1;

// Opens (creating when allowed) the store at `path`. Errors name the path and
// say what is wrong: `storage_error` for a directory, a missing parent
// directory, a location without write permission, a file that is not a
// SQLite database, or an I/O failure; `invalid_argument` for a SQLite
// database that is not a keyfolio store; `not_supported` for a newer schema;
// `unavailable` when the file stays locked longer than the busy timeout.
KEYFOLIO_EXPORT Result<std::shared_ptr<StorageBackend>> make_sqlite_backend(const std::filesystem::path& path,
                                                                            const SqliteOptions& options = {});

}  // namespace keyfolio
