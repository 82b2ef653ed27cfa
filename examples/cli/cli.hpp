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

// An error that ends the command; main() reports it like a library error.
struct Failure {
  keyfolio::Error error;
};

// Prints `error` on standard error; returns the exit code of its code.
int fail(const keyfolio::Error& error);

// An invalid_argument error (exit code 4).
keyfolio::Error invalid(std::string message);

// Why `name` is not an exchange of `catalog`, with a suggestion when one is close.
keyfolio::Error unknown_exchange(const std::string& name, const keyfolio::ExchangeCatalog& catalog);

// The store at store_path(o), opened with the store passphrase. With
// `create`, a missing store (and its directory, private to its owner) is
// created, and a failed creation removes the files this process created and
// no others (another process may create the store meanwhile); without it, a
// missing store is not_found. With `key`, the key the store was opened with
// is kept there (for a rotation under the same passphrase). Opened with
// --recover, what the integrity check found is printed on standard error.
keyfolio::Result<keyfolio::AccountManager> open_store(const Options& o, bool create,
                                                      std::optional<keyfolio::KeySource>* key = nullptr);

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

}  // namespace keyfolio::cli
