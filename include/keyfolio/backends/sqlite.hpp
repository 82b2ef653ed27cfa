// keyfolio/backends/sqlite.hpp: the SQLite StorageBackend, keyfolio's
// embedded default: one file that survives crashes and that several
// processes (a trading host and an admin tool) can use at once.
//
// The file is in WAL mode and created with mode 0600 (SQLite gives its -wal
// and -shm files the same mode); an existing store whose file, -wal or -shm
// file the group or others may access is refused until its owner runs
// chmod 600 on it. Every write batch is atomic, and its
// compare-and-set holds across handles and processes: no other write comes
// between the check of a version and the commit of the batch. With the
// default Durability::full, write() returns only after the commit is on disk
// (fsync). A lock held by another connection is waited for up to
// `busy_timeout`, then the call fails with `unavailable`.
//
// What a write removes (an erased record, the value a put replaced) is
// overwritten with zeros in the database file, whatever the default of the
// SQLite build (secure_delete, set on every connection). The -wal file keeps
// the old page images until a checkpoint has copied the log into the
// database file and the log is written again from its start over them; past
// the new end, the frames of the longest log so far stay until the file is
// truncated (SqliteOptions::truncate_log does that at the first commit after
// every checkpoint, at a cost to durable writes). The last connection to
// close removes the -wal file.
//
// scrub() (which keyfolio calls after a changed key and a rotated data key)
// copies the whole log into the database file and truncates the -wal file to
// nothing: afterwards no replaced or erased value is left in the store's
// files (the -shm file holds only the log's index, never a value). It waits
// up to `busy_timeout` for every other connection, in this process or
// another, to end its read or write transaction (this handle's own change
// feed only reads briefly), and says `unavailable` when one lasts longer: the
// old page images then stay in the -wal file until a later scrub() or the
// last connection's close. It removes the bytes from the files only: the
// file system or the storage device may still hold the blocks the log used
// (copy-on-write file systems, SSD wear levelling), as may backups and
// snapshots of the files.
//
// Change feed: a subscribed handle delivers, on a thread of its own, what any
// handle in any process (itself included) committed, in commit order,
// within about `poll_interval` of the commit. A subscriber that fell behind
// the changes kept (`change_log_size`) gets a `resync` event instead of the
// ones it missed, and a batch of more than 1,024 operations (an import)
// reaches every subscriber as one `resync` event. Reads never wait for the
// feed.
//
// Opening a keyfolio file of a newer schema fails with `not_supported`, a
// SQLite file that is not a keyfolio store with `invalid_argument`; older
// schemas are migrated in one transaction. A store whose schema holds a
// table, index, view or trigger that keyfolio did not create (one that could
// keep copies of records), or lacks one of keyfolio's tables, is refused
// with `corrupt_data`, naming the object.
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
  // Cut the -wal file at its end at the first commit after each checkpoint
  // (journal_size_limit = 0), so that no frame of an older, longer log
  // stays past it. Off by default: the file then grows again on every
  // commit, and each durable write waits for the file system to record its
  // new length (about 100 us more per write, 175 to 275 us, on the machine
  // keyfolio's benchmarks ran on). scrub(), which keyfolio runs after a key
  // change or a rotation, empties the log either way.
  bool truncate_log = false;
};

// The current schema version of keyfolio's SQLite stores.
inline constexpr int sqlite_schema_version = 1;

// Opens (creating when allowed) the store at `path`. Errors name the path and
// say what is wrong: `storage_error` for a directory, a missing parent
// directory, a location without write permission, a store file accessible
// by other users (the message says which file to chmod 600), a file that is
// not a SQLite database, or an I/O failure; `invalid_argument` for a SQLite
// database that is not a keyfolio store; `corrupt_data` for a store whose
// schema holds objects keyfolio did not create; `not_supported` for a newer
// schema; `unavailable` when the file stays locked longer than the busy timeout.
KEYFOLIO_EXPORT Result<std::shared_ptr<StorageBackend>> make_sqlite_backend(const std::filesystem::path& path,
                                                                            const SqliteOptions& options = {});

}  // namespace keyfolio
