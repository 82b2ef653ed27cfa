// What a SQLite store's files keep of replaced values: after a changed key or
// a rotated data key, neither the old keyring (the data key wrapped by the old
// key) nor a record sealed under the old data key can be read back from the
// database file or its -wal and -shm files.
//
// The values searched for are key material: they are only ever compared
// inside a bool, never printed.
#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/sqlite.hpp>

#include "catch.hpp"
#include "credentials.hpp"
#include "keys.hpp"
#include "temp_dir.hpp"

#include <boost/json.hpp>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using keyfolio::AccountManager;
using keyfolio::SqliteOptions;
using keyfolio::StorageBackend;
using keyfolio::WriteBatch;
using keyfolio::errc;
using keyfolio::make_sqlite_backend;
using keyfolio::must_not_exist;
using keyfolio::test::TempDir;
using keyfolio::test::mentions;

namespace {

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Whether `needle` is anywhere in the store's files as they are now.
bool left_in_files(const std::filesystem::path& db, std::string_view needle) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    const std::filesystem::path file = db.string() + suffix;
    if (std::filesystem::exists(file) && mentions(file_bytes(file), needle)) return true;
  }
  return false;
}

// Whether any `piece`-byte stretch of `value` is in the store's files: a
// page image may hold part of a value that spans pages.
bool any_piece_left(const std::filesystem::path& db, std::string_view value, std::size_t piece) {
  for (std::size_t at = 0; at + piece <= value.size(); at += piece) {
    if (left_in_files(db, value.substr(at, piece))) return true;
  }
  return false;
}

std::string keyring_of(StorageBackend& backend) { return backend.get("keyfolio", "keyring").value().value().value; }

std::string wrapped_key_of(std::string_view keyring) {
  return std::string(boost::json::parse(keyring).as_object().at("wrapped_key").as_string());
}

std::vector<std::string> account_records_of(StorageBackend& backend) {
  std::vector<std::string> values;
  for (const auto& r : backend.scan("accounts").value()) values.push_back(r.value);
  return values;
}

// `n` bytes that appear nowhere else (a simple linear congruential sequence).
std::string distinct_bytes(std::size_t n, std::uint32_t seed) {
  std::string out(n, '\0');
  for (auto& c : out) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return out;
}

// A connection of another process, reading: its read transaction keeps the
// snapshot it started on, log frames included.
class Reader {
 public:
  explicit Reader(const std::filesystem::path& db) {
    REQUIRE(sqlite3_open(db.c_str(), &db_) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db_, "BEGIN; SELECT count(*) FROM records;", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  ~Reader() { sqlite3_close(db_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  void end() { sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr); }

 private:
  sqlite3* db_ = nullptr;
};

void add_accounts(AccountManager& m, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string tag = std::to_string(i);
    m.upsert("BINANCE/" + tag, keyfolio::test::api_keys("key-" + tag, "secret-" + tag)).value();
  }
}

}  // namespace

TEST_CASE("after change_key, no copy of the old keyring is left in the SQLite store's files") {
  TempDir dir;
  const auto path = dir / "store.db";
  auto backend = make_sqlite_backend(path).value();
  std::optional<AccountManager> m(AccountManager::open(backend, keyfolio::test::raw('a')).value());
  add_accounts(*m, 3);
  const std::string old_keyring = keyring_of(*backend);
  const std::string old_wrapped = wrapped_key_of(old_keyring);
  REQUIRE(left_in_files(path, old_wrapped));  // the search below can find it

  REQUIRE(m->change_key(keyfolio::test::raw('b')));
  const std::string new_wrapped = wrapped_key_of(keyring_of(*backend));
  CHECK(left_in_files(path, new_wrapped));
  // While the manager (and its change feed) is still open, as in a host.
  CHECK_FALSE(left_in_files(path, old_keyring));
  CHECK_FALSE(left_in_files(path, old_wrapped));

  m.reset();
  backend.reset();
  CHECK_FALSE(left_in_files(path, old_keyring));
  CHECK_FALSE(left_in_files(path, old_wrapped));
  CHECK(AccountManager::open(make_sqlite_backend(path).value(), keyfolio::test::raw('b')).value().size() == 3);
}

TEST_CASE("after rotate_data_key, no copy of the old keyring or of a record sealed under the old data key is left "
          "in the SQLite store's files") {
  TempDir dir;
  const auto path = dir / "store.db";
  auto backend = make_sqlite_backend(path).value();
  std::optional<AccountManager> m(AccountManager::open(backend, keyfolio::test::raw('a')).value());
  add_accounts(*m, 40);  // records on several pages
  const std::string old_keyring = keyring_of(*backend);
  const std::string old_wrapped = wrapped_key_of(old_keyring);
  const std::vector<std::string> old_records = account_records_of(*backend);
  REQUIRE(old_records.size() == 40);
  for (const auto& r : old_records) REQUIRE(left_in_files(path, r));  // the search below can find them

  const auto rotated = m->rotate_data_key(keyfolio::test::raw('a'));
  REQUIRE(rotated);
  CHECK(rotated->resealed >= 40);
  const auto none_left = [&] {
    if (left_in_files(path, old_keyring) || left_in_files(path, old_wrapped)) return false;
    for (const auto& r : old_records) {
      if (left_in_files(path, r)) return false;
    }
    return true;
  };
  CHECK(none_left());  // the manager still open

  m.reset();
  backend.reset();
  CHECK(none_left());
  CHECK(AccountManager::open(make_sqlite_backend(path).value(), keyfolio::test::raw('a')).value().size() == 40);
}

TEST_CASE("SQLite scrub waits for another connection's read to end, up to the busy timeout, then says unavailable") {
  TempDir dir;
  const auto path = dir / "store.db";
  const std::string old_value = distinct_bytes(600, 7);
  SqliteOptions options;
  options.busy_timeout = std::chrono::milliseconds(300);
  auto b = make_sqlite_backend(path, options).value();
  REQUIRE(b->write(WriteBatch().put("c", "other", "kept", must_not_exist)));
  REQUIRE(b->write(WriteBatch().put("c", "k", old_value, must_not_exist)));
  REQUIRE(b->write(WriteBatch().put("c", "k", distinct_bytes(600, 8), 1)));
  REQUIRE(left_in_files(path, old_value));  // in the log, until it is emptied

  SECTION("a read that outlasts the busy timeout: unavailable, saying why, and the next scrub completes") {
    Reader reader(path);
    const auto started = std::chrono::steady_clock::now();
    const auto scrubbed = b->scrub();
    REQUIRE_FALSE(scrubbed);
    CHECK(std::chrono::steady_clock::now() - started >= options.busy_timeout);
    CHECK(scrubbed.error().code() == errc::unavailable);
    CHECK(mentions(scrubbed.error().message(), "another connection"));
    CHECK(mentions(scrubbed.error().message(), (dir / "store.db-wal").string()));
    reader.end();
    REQUIRE(b->scrub());
    CHECK_FALSE(left_in_files(path, old_value));
  }

  SECTION("a read that ends within the busy timeout: scrub completes once it has") {
    options.busy_timeout = std::chrono::seconds(10);
    auto patient = make_sqlite_backend(path, options).value();
    Reader reader(path);
    std::thread ender([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      reader.end();
    });
    const auto scrubbed = patient->scrub();
    ender.join();
    REQUIRE(scrubbed);
    CHECK_FALSE(left_in_files(path, old_value));
  }

  SECTION("the handle's own change feed, polling meanwhile, does not stop it") {
    options.poll_interval = std::chrono::milliseconds(1);
    auto watched = make_sqlite_backend(path, options).value();
    auto subscription = watched->subscribe([](const keyfolio::ChangeEvent&) {}).value();
    for (int i = 0; i < 20; ++i) {
      REQUIRE(watched->write(WriteBatch().put("c", "n" + std::to_string(i), distinct_bytes(500, i), must_not_exist)));
      REQUIRE(watched->scrub());
    }
    CHECK_FALSE(left_in_files(path, old_value));
  }
  CHECK(b->get("c", "other").value()->value == "kept");
}

TEST_CASE("after change_key while another connection reads, the SQLite store says the key changed and what is left") {
  TempDir dir;
  const auto path = dir / "store.db";
  SqliteOptions options;
  options.busy_timeout = std::chrono::milliseconds(200);
  auto m = AccountManager::open(make_sqlite_backend(path, options).value(), keyfolio::test::raw('a')).value();
  add_accounts(m, 1);
  Reader reader(path);
  const auto changed = m.change_key(keyfolio::test::raw('b'));
  REQUIRE_FALSE(changed);
  CHECK(changed.error().code() == errc::unavailable);
  CHECK(mentions(changed.error().message(), "the key was changed"));
  reader.end();
  CHECK(AccountManager::open(make_sqlite_backend(path).value(), keyfolio::test::raw('b')));
}

TEST_CASE("with truncate_log, a SQLite log that a checkpoint reset keeps no old page images past the commits written "
          "since") {
  TempDir dir;
  const auto path = dir / "store.db";
  const std::string old_value = distinct_bytes(40'000, 11);  // many overflow pages
  keyfolio::SqliteOptions options;
  options.truncate_log = true;
  auto b = make_sqlite_backend(path, options).value();
  REQUIRE(b->write(WriteBatch().put("c", "k", old_value, must_not_exist)));
  REQUIRE(b->write(WriteBatch().put("c", "k", distinct_bytes(40'000, 12), 1)));
  REQUIRE(any_piece_left(path, old_value, 512));
  {
    // Another connection copies the whole log into the database file; the
    // next commit then writes the log from its start again.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
    // Reading first opens the log (a checkpoint before that finds none).
    CHECK(sqlite3_exec(other, "SELECT count(*) FROM records", nullptr, nullptr, nullptr) == SQLITE_OK);
    int logged = -1;
    int copied = -2;
    CHECK(sqlite3_wal_checkpoint_v2(other, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logged, &copied) == SQLITE_OK);
    CHECK(logged > 0);
    CHECK(logged == copied);
    sqlite3_close(other);
  }
  REQUIRE(b->write(WriteBatch().put("c", "small", "v", must_not_exist)));
  CHECK_FALSE(any_piece_left(path, old_value, 512));
}
