#include <keyfolio/backends/memory.hpp>
#include <keyfolio/backends/sqlite.hpp>

#include "catch.hpp"
#include "temp_dir.hpp"

#include <keyfolio/testing/storage_conformance.hpp>

#include <atomic>
#include <map>
#include <mutex>

namespace {

keyfolio::SqliteOptions fast_polling() {
  keyfolio::SqliteOptions options;
  options.poll_interval = std::chrono::milliseconds(10);
  return options;
}

}  // namespace

TEST_CASE("the memory backend keeps the StorageBackend contract") {
  keyfolio::testing::StorageConformance suite;
  suite.open_fresh = [] { return keyfolio::make_memory_backend(); };
  keyfolio::testing::check_storage_backend(suite);
}

TEST_CASE("the SQLite backend keeps the StorageBackend contract") {
  keyfolio::test::TempDir dir;
  std::mutex mutex;
  std::map<const keyfolio::StorageBackend*, std::filesystem::path> paths;
  int stores = 0;
  keyfolio::testing::StorageConformance suite;
  suite.open_fresh = [&] {
    std::lock_guard lock(mutex);
    const auto path = dir / ("store-" + std::to_string(++stores) + ".db");
    auto backend = keyfolio::make_sqlite_backend(path, fast_polling()).value();
    paths[backend.get()] = path;
    return backend;
  };
  suite.open_another = [&](const std::shared_ptr<keyfolio::StorageBackend>& first) {
    std::lock_guard lock(mutex);
    return keyfolio::make_sqlite_backend(paths.at(first.get()), fast_polling()).value();
  };
  keyfolio::testing::check_storage_backend(suite);
}

TEST_CASE("the SQLite backend keeps the contract with relaxed durability") {
  keyfolio::test::TempDir dir;
  int stores = 0;
  keyfolio::testing::StorageConformance suite;
  suite.open_fresh = [&] {
    auto options = fast_polling();
    options.durability = keyfolio::SqliteOptions::Durability::relaxed;
    return keyfolio::make_sqlite_backend(dir / ("store-" + std::to_string(++stores) + ".db"), options).value();
  };
  keyfolio::testing::check_storage_backend(suite);
}
