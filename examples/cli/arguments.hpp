// The keyfolio tool's command line: the global options, and the flags and
// valued options each command takes out of its arguments as it recognises
// them, so that what remains is its operands (and any option it does not
// know, which reject_options refuses).
#pragma once

#include <keyfolio/keyfolio.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace keyfolio::cli {

// A mistake in the command line; main() prints it with a pointer to --help
// and exits with 2.
struct Usage {
  std::string message;
};

// The global options, and the command with the arguments after it.
struct Options {
  std::optional<std::string> store;
  std::optional<std::string> schema;  // --schema NAME
  std::optional<int> passphrase_fd;
  // Open a store that fails its integrity check anyway (--recover).
  bool recover = false;
  // Whether opening with `recover` prints what the check found.
  bool warn_when_recovering = true;
  // Refuse a store older than this generation (--min-generation N).
  std::uint64_t minimum_generation = 0;
  std::string command;
  std::vector<std::string> args;  // after the command
};

// Where the store is: --store, else $KEYFOLIO_STORE, else
// $XDG_DATA_HOME/keyfolio/keyfolio.db (or under ~/.local/share). A
// postgresql:// or postgres:// URI names a PostgreSQL store, in the schema
// --schema NAME, else $KEYFOLIO_SCHEMA, else the backend's default; anything
// else is the path of a SQLite file. Throws Usage for --schema with a SQLite
// store.
struct StoreLocation {
  std::string uri;  // a PostgreSQL store's URI; may hold a password, so it is never printed
  std::string schema;  // empty: the backend's default
  std::filesystem::path path;  // a SQLite store's file
  bool postgres() const noexcept { return !uri.empty(); }
};
StoreLocation store_location(const Options& o);

// Removes `name` from `args`; whether it was there.
bool flag(std::vector<std::string>& args, const std::string& name);

// Removes `name VALUE` from `args` and returns VALUE.
std::optional<std::string> take_value(std::vector<std::string>& args, const std::string& name);

// Removes `name N` from `args` and returns the file descriptor N.
std::optional<int> take_fd(std::vector<std::string>& args, const std::string& name);

// Splits `--field KEY` / `--field KEY=VALUE` out of `args` and refuses
// inline values of secret fields before anything is asked for.
std::vector<std::string> take_fields(std::vector<std::string>& args, const keyfolio::ExchangeCatalog& catalog);

// Throws Usage for the first argument that looks like an option.
void reject_options(const std::vector<std::string>& args);

}  // namespace keyfolio::cli
