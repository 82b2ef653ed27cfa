// keyfolio/backends/postgres.hpp: the PostgreSQL StorageBackend, for several
// trading hosts that share one store and hear each other's changes.
//
// The store is a schema of its own in a PostgreSQL database (`keyfolio` by
// default; several stores can share a database under different schemas):
// a `meta` row, the `records` and the `changes` log. The tables are created
// at the first open, in one transaction that other hosts opening at the
// same moment wait for. An existing schema is checked at every open: one
// that holds tables of another application, or lacks keyfolio's meta row,
// is left untouched and refused with `invalid_argument`; a newer schema
// version with `not_supported`; a trigger or rule on keyfolio's tables, or a
// table, view or sequence keyfolio did not create in its schema (something
// that could keep copies of records) with `corrupt_data`, naming it.
//
// Writes. Every write batch is one transaction sent as one pipeline (one
// round trip to the server): it first takes the writers' lock, the store's
// meta row, then applies its operations in order, each compare-and-set
// checked by the server, appends the changes to the log and commits. Writers
// of every host are thus serialized as SQLite's are; readers never wait for
// them. The log's sequence numbers are taken under the lock, so they have
// no gaps and follow commit order. With the default Durability::full a
// write returns after its commit is flushed to the server's disk
// (synchronous_commit=on). A lock held longer than `lock_timeout` or a
// statement running longer than `statement_timeout` is `unavailable`.
//
// A lost connection is `unavailable` and the next call connects again. When
// the connection is lost after a batch was sent, the outcome is resolved on
// a new connection: once the server has ended the old session, the batch
// counts as written exactly when its entries are in the change log (each
// batch marks them with a random identifier of its own). A batch that
// cannot be resolved that way (the server did not end the old session within
// `lock_timeout`) is `unavailable` with a message saying that the write may
// or may not have been applied.
//
// Change feed: a subscribed handle keeps one connection that LISTENs on the
// store's channel; every write batch that changes something sends an empty
// notification at commit, and the handle then reads the log from the last
// entry it saw, in commit order. It also reads the log every
// `poll_interval` whatever it heard, and after a lost connection it connects
// again (every `poll_interval`) and catches up from the log; a subscriber
// that fell behind what the log keeps (`change_log_size`) gets a `resync`
// event instead of the changes it missed, and a batch of more than 1,024
// operations (an import) reaches every subscriber as one `resync` event.
//
// Connections. `conninfo` is anything libpq accepts: a URI
// (postgresql://user@host:port/db?sslmode=verify-full) or key=value pairs;
// TLS settings, `passfile`, `connect_timeout` and several hosts with
// `target_session_attrs` pass through to libpq unchanged. The handle keeps
// the conninfo in secure memory. No message or describe() shows a password:
// they name the server as host, port, database, user and schema.
//
// Errors by what the server said: connection loss, lock and statement
// timeouts, serialization failures and deadlocks (after one retry) are
// `unavailable`; a full disk and other server failures are
// `storage_error`; data corruption reported by the server is
// `corrupt_data`; a key or value larger than PostgreSQL takes (1 GB) is
// `invalid_argument`.
//
// Safe for concurrent use; never throws. Calls take a connection from the
// handle's pool (`pool_size` connections at most, opened as needed), so
// reads on one handle run in parallel.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/storage.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace keyfolio {

struct PostgresOptions {
  enum class Durability {
    // write() returns after the commit is flushed to the server's disk
    // (synchronous_commit=on): an acknowledged write survives a crash of the
    // server and of its machine.
    full,
    // write() returns once the commit is in the server's memory
    // (synchronous_commit=off): much faster, and a crash of the server
    // process alone loses nothing, but an OS crash or power loss of the
    // server's machine may lose the writes of the last few hundred
    // milliseconds (about three times the server's wal_writer_delay) that
    // were acknowledged. The store stays consistent either way: a lost
    // write is lost whole, with its log entries.
    relaxed,
  };
  // The schema that holds the store's tables: a name of at most 63 bytes of
  // letters, digits and underscores, not starting with a digit or with
  // "pg_".
  std::string schema = "keyfolio";
  Durability durability = Durability::full;
  // How long a statement waits for a lock (the writers' lock of the store)
  // before `unavailable`; zero: no limit.
  std::chrono::milliseconds lock_timeout{5000};
  // How long one statement may run before `unavailable`; zero: no limit.
  std::chrono::milliseconds statement_timeout{0};
  // How long opening a connection may take, when the conninfo sets no
  // connect_timeout of its own.
  std::chrono::seconds connect_timeout{10};
  // Connections for get, scan and write, opened as needed; at least 1. A
  // subscribed handle has one more, for the change feed.
  unsigned pool_size = 4;
  // How often the change feed reads the log when no notification came, and
  // how often it tries to connect again after losing its connection.
  std::chrono::milliseconds poll_interval{500};
  // Changes kept in the log for subscribers that catch up; at least 1.
  std::uint32_t change_log_size = 10'000;
  // Create the schema and its tables when the schema does not exist (else:
  // `not_found`).
  bool create = true;
};

// The current schema version of keyfolio's PostgreSQL stores.
inline constexpr int postgres_schema_version = 1;

// Opens (creating when allowed) the store in `options.schema` of the
// database `conninfo` names, with one connection to check it. Errors name
// the server, never a password: `invalid_argument` for a conninfo libpq
// cannot parse, a bad schema name or bad options, or a schema of another
// application; `unavailable` for a server that cannot be reached, refuses
// the connection (a wrong password included) or does not answer;
// `not_found` for a missing schema with `create` off; `corrupt_data` for
// objects keyfolio did not create; `not_supported` for a newer schema.
KEYFOLIO_EXPORT Result<std::shared_ptr<StorageBackend>> make_postgres_backend(std::string_view conninfo,
                                                                              PostgresOptions options = {});

}  // namespace keyfolio
