// What the files of the keyfolio command-line tool share: its exit codes, the
// error that ends a command, opening the store, and the commands themselves.
// Each command takes the global options and the arguments after its name,
// returns the process's exit code, and throws Usage for a bad command line
// and Failure for an error found midway (main() reports both).
#pragma once

#include "arguments.hpp"

#include <keyfolio/keyfolio.hpp>

#include <string>
#include <vector>

namespace keyfolio::cli {

inline constexpr int exit_other = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_not_found = 3;
inline constexpr int exit_validation = 4;
inline constexpr int exit_wrong_passphrase = 5;
inline constexpr int exit_unreachable = 6;  // a PostgreSQL server that cannot be reached or refuses the connection

// An error that ends the command; main() reports it like a library error,
// with `exit_code` when it is not 0 (else the exit code of its code).
struct Failure {
  keyfolio::Error error;
  int exit_code = 0;
};

// Prints `error` on standard error; returns the exit code of its code.
int fail(const keyfolio::Error& error);
// Prints the failure's error; returns its exit code.
int fail(const Failure& failure);

// An invalid_argument error (exit code 4).
keyfolio::Error invalid(std::string message);

// Why `name` is not an exchange of `catalog`, with a suggestion when one is close.
keyfolio::Error unknown_exchange(const std::string& name, const keyfolio::ExchangeCatalog& catalog);

// An open store, with what it was opened with, for a command that opens it
// again or rotates it under the same passphrase.
struct OpenedStore {
  keyfolio::AccountManager manager;
  std::shared_ptr<keyfolio::StorageBackend> backend;
  keyfolio::KeySource key;
  // What to call the store in messages: its SQLite file, or the server,
  // database and schema of a PostgreSQL store (never a password).
  std::string name;
  bool created = false;  // this call created the store
};

// The store at store_location(o), opened with the store passphrase (asked
// twice on a terminal when the store is to be created). With `create`, a
// missing store is created: a SQLite file (and its directory, private to its
// owner), where a failed creation removes the files this process created
// and no others (another process may create the store meanwhile), or a
// PostgreSQL schema, where a failed creation may leave the schema without a
// store in it, which every command but init reports as no store. Without
// `create`, a missing store is not_found and nothing is ever created. Opened
// with --recover, what the integrity check found is printed on standard
// error. Throws Failure with exit_unreachable when a PostgreSQL server
// cannot be reached or refuses the connection.
keyfolio::Result<OpenedStore> open_whole_store(const Options& o, bool create);
// The options of AccountManager::open that the global options ask for.
keyfolio::AccountManager::Options manager_options(const Options& o, bool create);

// open_whole_store(o, create)'s manager.
keyfolio::Result<keyfolio::AccountManager> open_store(const Options& o, bool create);

// Rotates the store's data key, the key that wraps it becoming `key`, with
// a progress bar on a terminal; prints what it did.
int rotate(keyfolio::AccountManager& manager, const keyfolio::KeySource& key, std::string_view done);

// store_commands.cpp
int cmd_init(const Options& o, std::vector<std::string> args);
int cmd_passwd(const Options& o, std::vector<std::string> args);
int cmd_rotate(const Options& o, std::vector<std::string> args);
int cmd_verify(const Options& o, std::vector<std::string> args);

// account_commands.cpp
int cmd_add(const Options& o, std::vector<std::string> args);
int cmd_list(const Options& o, std::vector<std::string> args);
int cmd_show(const Options& o, std::vector<std::string> args);
int cmd_rm(const Options& o, std::vector<std::string> args);
int cmd_exchanges(const Options& o, std::vector<std::string> args);

// portfolio_commands.cpp
int cmd_connect(const Options& o, std::vector<std::string> args);
int cmd_portfolios(const Options& o, std::vector<std::string> args);
int cmd_disconnect(const Options& o, std::vector<std::string> args);

// transfer_commands.cpp
int cmd_export(const Options& o, std::vector<std::string> args);
int cmd_import(const Options& o, std::vector<std::string> args);

// watch_command.cpp
int cmd_watch(const Options& o, std::vector<std::string> args);

}  // namespace keyfolio::cli
