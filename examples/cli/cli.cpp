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

keyfolio::Error no_store(const fs::path& path) {
  return keyfolio::Error(keyfolio::errc::not_found, "no store at " + path.string() + "; create one with `keyfolio init`");
}

}  // namespace

int fail(const keyfolio::Error& error) {
  std::cerr << "keyfolio: " << error.message() << '\n';
  return exit_code(error.code());
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

keyfolio::Result<keyfolio::AccountManager> open_store(const Options& o, bool create,
                                                      std::optional<keyfolio::KeySource>* key) {
  const fs::path path = store_path(o);
  if (create && path.has_parent_path()) {
    std::error_code ec;
    if (fs::create_directories(path.parent_path(), ec)) {
      fs::permissions(path.parent_path(), fs::perms::owner_all, ec);
    }
  }
  if (!create && !fs::exists(path)) {
    return no_store(path);
  }
  // A new store's passphrase is asked twice on a terminal, and before the
  // file exists, so that a failed or interrupted prompt leaves nothing behind.
  auto secret = store_passphrase(o, create && !fs::exists(path));
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
    if (backend.error().code() == keyfolio::errc::not_found) {
      return no_store(path);
    }
    return backend.error();
  }
  auto source = keyfolio::KeySource::passphrase(std::move(*secret));
  keyfolio::AccountManager::Options open_options;
  open_options.recover = o.recover;
  open_options.minimum_generation = o.minimum_generation;
  auto manager = keyfolio::AccountManager::open(*backend, source, open_options);
  if (manager && o.recover && o.warn_when_recovering && !manager->integrity().intact()) {
    std::cerr << "keyfolio: opened to recover; the store fails its integrity check:\n";
    for (const auto& finding : manager->integrity().findings) std::cerr << "  " << finding.message << '\n';
  }
  if (manager && key != nullptr) key->emplace(std::move(source));
  // Even a store this process created may have been opened by another one
  // meanwhile: a keyring that does not open with this passphrase, or one
  // being written as this one was, is that process's, and so is the store.
  if (!manager && manager.error().code() != keyfolio::errc::wrong_key &&
      manager.error().code() != keyfolio::errc::conflict) {
    backend->reset();
    created.remove();
  }
  if (!manager && manager.error().code() == keyfolio::errc::corrupt_data && !o.recover) {
    return keyfolio::Error(manager.error().code(),
                           manager.error().message() +
                               "\n`keyfolio verify` says what differs; `keyfolio --recover export FILE` saves what survives");
  }
  return manager;
}

}  // namespace keyfolio::cli
