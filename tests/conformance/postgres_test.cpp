#include <keyfolio/backends/postgres.hpp>

#include "catch.hpp"
#include "postgres.hpp"

#include <keyfolio/testing/storage_conformance.hpp>

#include <list>
#include <map>
#include <mutex>

TEST_CASE("the PostgreSQL backend keeps the StorageBackend contract") {
  std::mutex mutex;
  std::list<keyfolio::test::TestSchema> schemas;
  std::map<const keyfolio::StorageBackend*, keyfolio::PostgresOptions> stores;
  keyfolio::testing::StorageConformance suite;
  suite.open_fresh = [&] {
    std::lock_guard lock(mutex);
    const auto options = schemas.emplace_back().options();
    auto backend = keyfolio::make_postgres_backend(keyfolio::test::postgres_conninfo(), options).value();
    stores[backend.get()] = options;
    return backend;
  };
  suite.open_another = [&](const std::shared_ptr<keyfolio::StorageBackend>& first) {
    std::lock_guard lock(mutex);
    return keyfolio::make_postgres_backend(keyfolio::test::postgres_conninfo(), stores.at(first.get())).value();
  };
  keyfolio::testing::check_storage_backend(suite);
}

TEST_CASE("the PostgreSQL backend keeps the contract with relaxed durability") {
  std::mutex mutex;
  std::list<keyfolio::test::TestSchema> schemas;
  keyfolio::testing::StorageConformance suite;
  suite.open_fresh = [&] {
    std::lock_guard lock(mutex);
    auto options = schemas.emplace_back().options();
    options.durability = keyfolio::PostgresOptions::Durability::relaxed;
    return keyfolio::make_postgres_backend(keyfolio::test::postgres_conninfo(), options).value();
  };
  keyfolio::testing::check_storage_backend(suite);
}
