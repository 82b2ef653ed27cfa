#include "cli.hpp"

#include "prompts.hpp"

#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <string>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace keyfolio::cli {

namespace fs = std::filesystem;

namespace {

int exit_code(keyfolio::errc code) {
  switch (code) {
    case keyfolio::errc::not_found: return exit_not_found;
    case keyfolio::errc::invalid_exchange_id:
    case keyfolio::errc::validation_failed:
    case keyfolio::errc::invalid_argument: return exit_validation;
    case keyfolio::errc::wrong_key: return exit_wrong_passphrase;
    default: return exit_other;
  }
}

keyfolio::Result<keyfolio::SecretString> store_passphrase(const Options& o, bool confirm) {
  return read_passphrase({"passphrase", "--passphrase-fd", o.passphrase_fd, "KEYFOLIO_PASSPHRASE_FILE", confirm});
}

// The files of a store that this process created, to remove if creating the
// store fails: none unless it claimed the store's name.
struct CreatedFiles {
  std::vector<std::string> paths;

  void remove() const {
    for (const auto& p : paths) ::unlink(p.c_str());
  }
};

// Creates `path` empty and private to its owner unless it exists (then it is
// another process's store, and nothing is this process's to remove). The
// -wal and -shm files SQLite makes beside it are this process's too, unless
// they were there before.
CreatedFiles claim_new_store(const fs::path& path) {
  CreatedFiles created;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return created;  // EEXIST, or an error the backend reports
  ::fchmod(fd, 0600);           // the umask may have taken bits away
  ::close(fd);
  created.paths.push_back(path.string());
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string beside = path.string() + suffix;
    std::error_code ec;
    if (!fs::exists(beside, ec) && !ec) created.paths.push_back(std::move(beside));
  }
  return created;
}

keyfolio::Error no_store(const std::string& name) {
  return keyfolio::Error(keyfolio::errc::not_found, "no store at " + name + "; create one with `keyfolio init`");
}

// What every open does once the backend is there: the manager, the report
// of a store opened to recover, and a clearer message for a damaged store.
keyfolio::Result<OpenedStore> open_manager(const Options& o, bool create, std::shared_ptr<keyfolio::StorageBackend> backend,
                                           keyfolio::KeySource key, std::string name) {
  auto manager = keyfolio::AccountManager::open(backend, key, manager_options(o, create));
  if (!manager) {
    if (manager.error().code() == keyfolio::errc::not_found) return no_store(name);
    if (manager.error().code() == keyfolio::errc::corrupt_data && !o.recover) {
      return keyfolio::Error(manager.error().code(),
                             manager.error().message() +
                                 "\n`keyfolio verify` says what differs; `keyfolio --recover export FILE` saves what survives");
    }
    return manager.error();
  }
  if (o.recover && o.warn_when_recovering && !manager->integrity().intact()) {
    std::cerr << "keyfolio: opened to recover; the store fails its integrity check:\n";
    for (const auto& finding : manager->integrity().findings) std::cerr << "  " << finding.message << '\n';
  }
  return OpenedStore{std::move(*manager), std::move(backend), std::move(key), std::move(name), false};
}

keyfolio::Result<OpenedStore> open_sqlite(const Options& o, const fs::path& path, bool create) {
  if (create && path.has_parent_path()) {
    std::error_code ec;
    if (fs::create_directories(path.parent_path(), ec)) {
      fs::permissions(path.parent_path(), fs::perms::owner_all, ec);
    }
  }
  const bool existed = fs::exists(path);
  if (!create && !existed) return no_store(path.string());
  // A new store's passphrase is asked twice on a terminal, and before the
  // file exists, so that a failed or interrupted prompt leaves nothing behind.
  auto secret = store_passphrase(o, create && !existed);
  if (!secret) return secret.error();
  // Another process may have created the store while the passphrase was
  // asked for: whether it is this process's to clean up after a failure is
  // settled by creating it exclusively, not by the look above.
  auto created = create ? claim_new_store(path) : CreatedFiles{};
  keyfolio::SqliteOptions options;
  options.create = create;
  auto backend = keyfolio::make_sqlite_backend(path, options);
  if (!backend) {
    created.remove();
    if (backend.error().code() == keyfolio::errc::not_found) return no_store(path.string());
    return backend.error();
  }
  auto held = keyfolio::AccountManager::exists(**backend);
  if (!held) {
    backend->reset();
    created.remove();
    return held.error();
  }
  auto opened = open_manager(o, create, *backend, keyfolio::KeySource::passphrase(std::move(*secret)), path.string());
  // Even a store this process created may have been opened by another one
  // meanwhile: a keyring that does not open with this passphrase, or one
  // being written as this one was, is that process's, and so is the store.
  if (!opened && opened.error().code() != keyfolio::errc::wrong_key &&
      opened.error().code() != keyfolio::errc::conflict) {
    backend->reset();
    created.remove();
  }
  if (opened) opened->created = !*held;
  return opened;
}

// A server that cannot be reached, or refuses the connection, has an exit
// code of its own: trying again later, or fixing the URI, is the remedy.
[[noreturn]] void throw_unreachable(const keyfolio::Error& error) { throw Failure{error, exit_unreachable}; }

keyfolio::Result<OpenedStore> open_postgres(const Options& o, const StoreLocation& where, bool create) {
  keyfolio::PostgresOptions options;
  if (!where.schema.empty()) options.schema = where.schema;
  // The schema is created only once the passphrase is known, so that a
  // failed or interrupted prompt leaves nothing behind.
  options.create = false;
  auto backend = keyfolio::make_postgres_backend(where.uri, options);
  if (!backend && backend.error().code() == keyfolio::errc::unavailable) throw_unreachable(backend.error());
  const bool schema_exists = static_cast<bool>(backend);
  if (!backend && backend.error().code() != keyfolio::errc::not_found) return backend.error();
  if (!backend && !create) {
    return keyfolio::Error(keyfolio::errc::not_found,
                           backend.error().message() + "; create it with `keyfolio init`");
  }
  bool holds_store = false;
  if (schema_exists) {
    auto exists = keyfolio::AccountManager::exists(**backend);
    if (!exists) {
      if (exists.error().code() == keyfolio::errc::unavailable) throw_unreachable(exists.error());
      return exists.error();
    }
    holds_store = *exists;
    if (!holds_store && !create) return no_store((*backend)->describe());
  }
  auto secret = store_passphrase(o, create && !holds_store);
  if (!secret) return secret.error();
  if (!schema_exists) {
    options.create = true;
    backend = keyfolio::make_postgres_backend(where.uri, options);
    if (!backend && backend.error().code() == keyfolio::errc::unavailable) throw_unreachable(backend.error());
    if (!backend) return backend.error();
  }
  std::string name = (*backend)->describe();
  auto opened = open_manager(o, create, *backend, keyfolio::KeySource::passphrase(std::move(*secret)), std::move(name));
  if (opened) opened->created = !holds_store;
  return opened;
}

}  // namespace

keyfolio::AccountManager::Options manager_options(const Options& o, bool create) {
  keyfolio::AccountManager::Options options;
  options.recover = o.recover;
  options.minimum_generation = o.minimum_generation;
  options.create = create;
  return options;
}

int fail(const keyfolio::Error& error) {
  std::cerr << "keyfolio: " << error.message() << '\n';
  return exit_code(error.code());
}

int fail(const Failure& failure) {
  const int code = fail(failure.error);
  return failure.exit_code != 0 ? failure.exit_code : code;
}

keyfolio::Error invalid(std::string message) {
  return keyfolio::Error(keyfolio::errc::invalid_argument, std::move(message));
}

keyfolio::Error unknown_exchange(const std::string& name, const keyfolio::ExchangeCatalog& catalog) {
  auto parsed = keyfolio::AccountId::parse(name, catalog);
  if (!parsed) return parsed.error();
  return keyfolio::Error(keyfolio::errc::invalid_exchange_id,
                         "expected an exchange such as BINANCE, not the account id " + parsed->spelling());
}

keyfolio::Result<OpenedStore> open_whole_store(const Options& o, bool create) {
  const StoreLocation where = store_location(o);
  return where.postgres() ? open_postgres(o, where, create) : open_sqlite(o, where.path, create);
}

keyfolio::Result<keyfolio::AccountManager> open_store(const Options& o, bool create) {
  auto opened = open_whole_store(o, create);
  if (!opened) return opened.error();
  return std::move(opened->manager);
}

}  // namespace keyfolio::cli
