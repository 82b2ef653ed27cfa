#include "cli.hpp"

#include "prompts.hpp"

#include <filesystem>
#include <iostream>
#include <system_error>

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
  const bool is_new = create && !fs::exists(path);
  if (!create && !fs::exists(path)) {
    return no_store(path);
  }
  // A new store's passphrase is asked twice on a terminal, and before the
  // file exists, so that a failed init leaves nothing behind.
  auto secret = store_passphrase(o, is_new);
  if (!secret) return secret.error();
  keyfolio::SqliteOptions options;
  options.create = create;
  auto backend = keyfolio::make_sqlite_backend(path, options);
  if (!backend) {
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
  if (!manager && !is_new && manager.error().code() == keyfolio::errc::corrupt_data && !o.recover) {
    return keyfolio::Error(manager.error().code(),
                           manager.error().message() +
                               "\n`keyfolio verify` says what differs; `keyfolio --recover export FILE` saves what survives");
  }
  // Clean up after a failed init, unless another process created the store
  // meanwhile (then it opened with its own passphrase, and this one is wrong).
  if (!manager && is_new && manager.error().code() != keyfolio::errc::wrong_key) {
    backend->reset();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix, ec);
  }
  return manager;
}

}  // namespace keyfolio::cli
