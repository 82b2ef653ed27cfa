#include <keyfolio/account_manager.hpp>
#include <keyfolio/backends/sqlite.hpp>

#include "catch.hpp"
#include "credentials.hpp"
#include "heard.hpp"
#include "child_process.hpp"
#include "temp_dir.hpp"

#include "backends/sqlite/connection.hpp"

#include <sqlite3.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <vector>

using keyfolio::AccountManager;
using keyfolio::Credentials;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::SqliteOptions;
using keyfolio::WriteBatch;
using keyfolio::errc;
using keyfolio::make_sqlite_backend;
using keyfolio::must_not_exist;
using keyfolio::test::TempDir;

namespace {

using keyfolio::test::mentions;

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void sql(const std::filesystem::path& path, const char* statement) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, statement, nullptr, nullptr, nullptr);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

// The first column of each row `query` returns, joined by commas.
std::string rows(const std::filesystem::path& path, const char* query) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  const int prepared = sqlite3_prepare_v2(db, query, -1, &s, nullptr);
  std::string out;
  while (prepared == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    if (!out.empty()) out += ',';
    const auto* text = sqlite3_column_text(s, 0);
    out += text == nullptr ? "NULL" : reinterpret_cast<const char*>(text);
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  REQUIRE(prepared == SQLITE_OK);
  return out;
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// While it lives, every new SQLite connection starts with secure_delete off,
// as in a SQLite built without SQLITE_SECURE_DELETE (Debian's has it on).
class SecureDeleteOffByDefault {
 public:
  SecureDeleteOffByDefault() { REQUIRE(sqlite3_auto_extension(entry()) == SQLITE_OK); }
  ~SecureDeleteOffByDefault() { sqlite3_cancel_auto_extension(entry()); }
  SecureDeleteOffByDefault(const SecureDeleteOffByDefault&) = delete;
  SecureDeleteOffByDefault& operator=(const SecureDeleteOffByDefault&) = delete;

 private:
  static int turn_off(sqlite3* db, char**, const sqlite3_api_routines*) {
    return sqlite3_exec(db, "PRAGMA secure_delete = OFF", nullptr, nullptr, nullptr);
  }
  // SQLite takes every entry point as void (*)(void).
  static void (*entry())() { return reinterpret_cast<void (*)()>(&turn_off); }
};

KeySource raw_key() { return KeySource::raw_key(SecretString(std::string(32, 'k'))); }

Credentials keys(std::string_view key, std::string_view secret) { return keyfolio::test::api_keys(key, secret); }

}  // namespace

TEST_CASE("a SQLite store file and its WAL files are created with mode 0600") {
  TempDir dir;
  const mode_t old = ::umask(0);
  auto backend = make_sqlite_backend(dir / "store.db");
  ::umask(old);
  REQUIRE(backend.has_value());
  REQUIRE((*backend)->write(WriteBatch().put("c", "k", "v", must_not_exist)).has_value());
  CHECK(mode_of(dir / "store.db") == 0600);
  CHECK(mode_of(dir / "store.db-wal") == 0600);
  CHECK(mode_of(dir / "store.db-shm") == 0600);
  CHECK((*backend)->describe() == "sqlite:" + (dir / "store.db").string());
}

TEST_CASE("a new SQLite store records keyfolio's application id and schema version, in WAL mode") {
  TempDir dir;
  REQUIRE(make_sqlite_backend(dir / "store.db").has_value());
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir / "store.db").c_str(), &db) == SQLITE_OK);
  auto scalar = [&](const char* q) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, q, -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
  };
  CHECK(scalar("PRAGMA user_version") == std::to_string(keyfolio::sqlite_schema_version));
  CHECK(scalar("PRAGMA application_id") == std::to_string(0x4B465331));
  CHECK(scalar("PRAGMA journal_mode") == "wal");
  CHECK(scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'") == "0");  // no AUTOINCREMENT
  sqlite3_close(db);
}

TEST_CASE("a SQLite store overwrites the bytes of erased records even on a SQLite build that would leave them") {
  TempDir dir;
  const auto path = dir / "store.db";
  SecureDeleteOffByDefault off;
  REQUIRE(rows(":memory:", "PRAGMA secure_delete") == "0");  // the stand-in for such a build works

  SECTION("every connection of the backend has secure_delete on") {
    REQUIRE(make_sqlite_backend(path).has_value());
    auto c = keyfolio::detail::sqlite::connect(path, SqliteOptions{});
    REQUIRE(c.has_value());
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(c->db.get(), "PRAGMA secure_delete", -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(sqlite3_column_int(s, 0) == 1);
    sqlite3_finalize(s);
  }
  SECTION("the bytes of an erased value are not left in the file") {
    const std::string marker = "erased-value-marker-5e1f0c7a";
    const auto stored_bytes = [&] {
      std::string bytes = file_bytes(path);
      if (std::filesystem::exists(dir / "store.db-wal")) bytes += file_bytes(dir / "store.db-wal");
      return bytes;
    };
    {
      auto b = make_sqlite_backend(path).value();
      REQUIRE(b->write(WriteBatch().put("c", "other", "kept", must_not_exist)).has_value());
      REQUIRE(b->write(WriteBatch().put("c", "k", marker, must_not_exist)).has_value());
      REQUIRE(mentions(stored_bytes(), marker));  // the search below can find it
      REQUIRE(b->write(WriteBatch().erase("c", "k", 1)).has_value());
    }
    sql(path, "PRAGMA wal_checkpoint(TRUNCATE)");
    CHECK_FALSE(mentions(stored_bytes(), marker));
    CHECK(make_sqlite_backend(path).value()->get("c", "other").value()->value == "kept");
  }
}

TEST_CASE("a store whose change log has AUTOINCREMENT opens with a plain one, keeping its entries and their numbers") {
  // tests/data/format1-store.db has six log entries, numbered by AUTOINCREMENT.
  TempDir dir;
  const auto path = dir / "store.db";
  const auto log = [&] { return rows(path, "SELECT seq || ':' || kind || ':' || key FROM changes ORDER BY seq"); };
  const auto has_autoincrement = [&] {
    return rows(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'changes' AND sql LIKE '%AUTOINCREMENT%'") ==
           "1";
  };
  const std::string before =
      "1:0:keyring,2:0:binance/legacy,3:0:hyperliquid,4:0:kraken/e522af42a94d2402062456ce9e5d83d7,"
      "5:0:e522af42a94d2402062456ce9e5d83d7,6:0:41664d7bc4100d4d1583e7786536c20d";

  SECTION("the numbers go on from the newest entry") {
    std::filesystem::copy_file(KEYFOLIO_TEST_DATA_DIR "/format1-store.db", path);
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    REQUIRE(has_autoincrement());
    REQUIRE(log() == before);
    auto writer = make_sqlite_backend(path).value();
    CHECK_FALSE(has_autoincrement());
    CHECK(rows(path, "PRAGMA user_version") == "1");  // the same format: older builds still open it
    CHECK(log() == before);
    auto reader = make_sqlite_backend(path).value();
    keyfolio::test::Heard<keyfolio::ChangeEvent> heard;
    auto subscription = reader->subscribe(heard.handler()).value();
    REQUIRE(writer->write(WriteBatch().put("c", "new", "v", must_not_exist)).has_value());
    CHECK(log() == before + ",7:0:new");
    CHECK(heard.wait_for([](const keyfolio::ChangeEvent& e) { return e.key == "new" && e.version == 1; }));
    CHECK(writer->get("accounts", "binance/legacy").value().has_value());
  }
  SECTION("when the sequence was ahead of the newest entry, a resync entry takes the next number") {
    std::filesystem::copy_file(KEYFOLIO_TEST_DATA_DIR "/format1-store.db", path);
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    sql(path, "DELETE FROM changes WHERE seq > 4");  // the sequence table still says 6
    auto writer = make_sqlite_backend(path).value();
    CHECK_FALSE(has_autoincrement());
    REQUIRE(writer->write(WriteBatch().put("c", "new", "v", must_not_exist)).has_value());
    CHECK(log() ==
          "1:0:keyring,2:0:binance/legacy,3:0:hyperliquid,4:0:kraken/e522af42a94d2402062456ce9e5d83d7,7:3:,8:0:new");
  }
}

TEST_CASE("a SQLite store whose schema holds objects keyfolio did not create is refused as corrupt_data") {
  TempDir dir;
  const auto path = dir / "store.db";
  {
    auto b = make_sqlite_backend(path).value();
    REQUIRE(b->write(WriteBatch().put("c", "k", "kept", must_not_exist)).has_value());
  }
  const auto schema = [&] { return rows(path, "SELECT type || ' ' || name FROM sqlite_schema ORDER BY name"); };
  REQUIRE(schema() == "table changes,table records");
  const auto refused = [&](const char* plant, const std::string& named) {
    sql(path, plant);
    const auto before = file_bytes(path);
    const auto planted = schema();
    auto r = make_sqlite_backend(path);
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().message());
    CHECK(r.error().code() == errc::corrupt_data);
    CHECK(mentions(r.error().message(), "sqlite store \"" + path.string() + "\""));
    CHECK(mentions(r.error().message(), named));
    CHECK(mentions(r.error().message(), "keyfolio did not create"));
    CHECK(file_bytes(path) == before);
    CHECK(schema() == planted);
  };

  SECTION("a trigger that keeps a copy of every replaced value") {
    refused("CREATE TRIGGER keep_old AFTER UPDATE ON records BEGIN "
            "INSERT INTO changes (kind, collection, key, version) VALUES (0, old.collection, old.value, 0); END",
            "trigger \"keep_old\"");
    sql(path, "DROP TRIGGER keep_old");
  }
  SECTION("a stray table, and a trigger filling it") {
    refused("CREATE TABLE stash (value BLOB)", "table \"stash\"");
    refused("CREATE TRIGGER fill AFTER DELETE ON records BEGIN INSERT INTO stash VALUES (old.value); END",
            "\"stash\"");
    sql(path, "DROP TRIGGER fill; DROP TABLE stash");
  }
  SECTION("a view") {
    refused("CREATE VIEW peek AS SELECT key, value FROM records", "view \"peek\"");
    sql(path, "DROP VIEW peek");
  }
  SECTION("an index, which keeps its own copy of the values it indexes") {
    refused("CREATE INDEX by_value ON records (value)", "index \"by_value\"");
    sql(path, "DROP INDEX by_value");
  }
  SECTION("one of keyfolio's tables replaced by a view of the same name") {
    refused("ALTER TABLE changes RENAME TO changes_kept; CREATE VIEW changes AS SELECT * FROM changes_kept",
            "\"changes");
    sql(path, "DROP VIEW changes; ALTER TABLE changes_kept RENAME TO changes");
  }
  REQUIRE(schema() == "table changes,table records");
  auto clean = make_sqlite_backend(path);
  REQUIRE(clean.has_value());
  CHECK((*clean)->get("c", "k").value()->value == "kept");
}

TEST_CASE("a SQLite store at the current schema version without one of keyfolio's tables is refused as corrupt_data") {
  TempDir dir;
  const auto path = dir / "store.db";
  { REQUIRE(make_sqlite_backend(path).has_value()); }
  sql(path, "DROP TABLE changes");
  const auto before = file_bytes(path);
  auto r = make_sqlite_backend(path);
  REQUIRE_FALSE(r.has_value());
  INFO(r.error().message());
  CHECK(r.error().code() == errc::corrupt_data);
  CHECK(mentions(r.error().message(), "table \"changes\""));
  CHECK(file_bytes(path) == before);
}

TEST_CASE("records written to a SQLite store are there after reopening") {
  TempDir dir;
  {
    auto b = make_sqlite_backend(dir / "store.db").value();
    REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());
    REQUIRE(b->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
  }
  auto b = make_sqlite_backend(dir / "store.db").value();
  auto got = b->get("c", "k").value();
  REQUIRE(got.has_value());
  CHECK(got->version == 2);
  CHECK(got->value == "v2");
}

TEST_CASE("handles opening a new SQLite store at the same moment all open it, none sees a half-made store") {
  // Each round, several handles race to create the same store: one creates
  // the schema, the others must see no store or the whole of it.
  constexpr int rounds = 40;
  constexpr int handles = 4;
  for (int round = 0; round < rounds; ++round) {
    TempDir dir;
    const auto path = dir / "store.db";
    std::vector<std::string> failures(handles);
    std::mutex m;
    std::condition_variable cv;
    int waiting = 0;
    std::vector<std::thread> threads;
    for (int i = 0; i < handles; ++i) {
      threads.emplace_back([&, i] {
        {
          std::unique_lock lock(m);
          if (++waiting == handles) cv.notify_all();
          cv.wait(lock, [&] { return waiting == handles; });
        }
        auto b = make_sqlite_backend(path);
        if (!b) failures[i] = b.error().message();
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& f : failures) {
      INFO("round " << round << ": " << f);
      CHECK(f.empty());
    }
  }
}

TEST_CASE("bad SQLite store locations get clear errors and change nothing") {
  TempDir dir;
  SECTION("a directory") {
    std::filesystem::create_directory(dir / "adir");
    auto r = make_sqlite_backend(dir / "adir");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::storage_error);
    CHECK(mentions(r.error().message(), "is a directory"));
    CHECK(std::filesystem::is_empty(dir / "adir"));
  }
  SECTION("a missing parent directory") {
    auto r = make_sqlite_backend(dir / "missing" / "store.db");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::storage_error);
    CHECK(mentions(r.error().message(), "does not exist"));
    CHECK_FALSE(std::filesystem::exists(dir / "missing"));
  }
  SECTION("an empty path, or options out of range") {
    CHECK(make_sqlite_backend("").error().code() == errc::invalid_argument);
    SqliteOptions bad;
    bad.poll_interval = std::chrono::milliseconds(0);
    CHECK(make_sqlite_backend(dir / "store.db", bad).error().code() == errc::invalid_argument);
    CHECK_FALSE(std::filesystem::exists(dir / "store.db"));
  }
  SECTION("a missing file when creation is not allowed") {
    SqliteOptions no_create;
    no_create.create = false;
    auto r = make_sqlite_backend(dir / "store.db", no_create);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::not_found);
    CHECK_FALSE(std::filesystem::exists(dir / "store.db"));
  }
  SECTION("a file that is not a SQLite database") {
    const std::string junk = "this is a text file, not a database\n" + std::string(5000, 'x');
    std::ofstream(dir / "notes.txt") << junk;
    auto r = make_sqlite_backend(dir / "notes.txt");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::storage_error);
    CHECK(mentions(r.error().message(), "not a SQLite database"));
    CHECK(file_bytes(dir / "notes.txt") == junk);
  }
  SECTION("a SQLite database of another application") {
    sql(dir / "other.db", "CREATE TABLE mine (x); INSERT INTO mine VALUES (42);");
    const auto before = file_bytes(dir / "other.db");
    auto r = make_sqlite_backend(dir / "other.db");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::invalid_argument);
    CHECK(mentions(r.error().message(), "not a keyfolio store"));
    CHECK(file_bytes(dir / "other.db") == before);
    CHECK_FALSE(std::filesystem::exists(dir / "other.db-wal"));
    sql(dir / "other.db", "SELECT x FROM mine");
  }
  SECTION("a keyfolio store of a newer schema") {
    {
      auto b = make_sqlite_backend(dir / "store.db").value();
      REQUIRE(b->write(WriteBatch().put("c", "k", "kept", must_not_exist)).has_value());
    }
    sql(dir / "store.db", "PRAGMA user_version = 99");
    auto r = make_sqlite_backend(dir / "store.db");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == errc::not_supported);
    CHECK(mentions(r.error().message(), "schema version 99"));
    sql(dir / "store.db", "PRAGMA user_version = -1");
    auto negative = make_sqlite_backend(dir / "store.db");
    REQUIRE_FALSE(negative.has_value());
    CHECK(negative.error().code() == errc::corrupt_data);
    sql(dir / "store.db", "PRAGMA user_version = 1");
    CHECK(make_sqlite_backend(dir / "store.db").value()->get("c", "k").value()->value == "kept");
  }
}

TEST_CASE("a SQLite store in a location this process may not write to gets a clear error") {
  TempDir dir;
  {
    auto b = make_sqlite_backend(dir / "existing.db").value();
    REQUIRE(b->write(WriteBatch().put("c", "k", "kept", must_not_exist)).has_value());
  }
  std::filesystem::create_directory(dir / "locked");
  std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                               std::filesystem::perms::others_exec);
  std::filesystem::permissions(dir / "locked", std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
                                                   std::filesystem::perms::group_exec |
                                                   std::filesystem::perms::others_exec);
  std::filesystem::permissions(dir / "existing.db",
                               std::filesystem::perms::owner_read | std::filesystem::perms::others_read);
  auto outcome = keyfolio::test::run_in_child([&](const auto& say) {
    if (!keyfolio::test::drop_root()) return 2;
    auto created = make_sqlite_backend(dir / "locked" / "store.db");
    if (created) return 3;
    say(std::string(keyfolio::to_string(created.error().code())) + "|" + created.error().message() + "\n");
    auto existing = make_sqlite_backend(dir / "existing.db");
    if (existing) return 4;
    say(std::string(keyfolio::to_string(existing.error().code())) + "|" + existing.error().message() + "\n");
    return 0;
  });
  INFO(outcome.said);
  REQUIRE(outcome.exited);
  REQUIRE(outcome.status == 0);
  CHECK(mentions(outcome.said, "storage_error|"));
  CHECK(mentions(outcome.said, "cannot create the file: Permission denied"));
  CHECK(mentions(outcome.said, "not writable"));
  CHECK_FALSE(std::filesystem::exists(dir / "locked" / "store.db"));
  std::filesystem::permissions(dir / "existing.db", std::filesystem::perms::owner_read |
                                                        std::filesystem::perms::owner_write);
  CHECK(make_sqlite_backend(dir / "existing.db").value()->get("c", "k").value()->value == "kept");
}

TEST_CASE("an existing SQLite store file that other users may read or write is refused until chmod 600") {
  TempDir dir;
  const auto path = dir / "store.db";
  {
    auto b = make_sqlite_backend(path).value();
    REQUIRE(b->write(WriteBatch().put("c", "k", "kept", must_not_exist)).has_value());
  }
  REQUIRE(mode_of(path) == 0600);
  REQUIRE_FALSE(std::filesystem::exists(dir / "store.db-wal"));
  const auto refused = [&](unsigned mode, const std::filesystem::path& file) {
    REQUIRE(::chmod(file.c_str(), mode) == 0);
    const auto before = file_bytes(path);
    auto r = make_sqlite_backend(path);
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().message());
    CHECK(r.error().code() == errc::storage_error);
    CHECK(mentions(r.error().message(), "sqlite store \"" + path.string() + "\""));
    CHECK(mentions(r.error().message(), "accessible by other users"));
    CHECK(mentions(r.error().message(), "chmod 600 \"" + file.string() + "\""));
    CHECK(file_bytes(path) == before);
    CHECK(mode_of(file) == mode);
  };
  SECTION("readable by others") { refused(0644, path); }
  SECTION("readable by the group") { refused(0640, path); }
  SECTION("writable by others") { refused(0602, path); }
  SECTION("its WAL file, left readable while a handle has the store open") {
    auto holder = make_sqlite_backend(path).value();
    REQUIRE(holder->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
    REQUIRE(std::filesystem::exists(dir / "store.db-wal"));
    refused(0644, dir / "store.db-wal");
    REQUIRE(::chmod((dir / "store.db-wal").c_str(), 0600) == 0);
  }
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  auto reopened = make_sqlite_backend(path);
  REQUIRE(reopened.has_value());
  CHECK((*reopened)->get("c", "k").value().has_value());
}

TEST_CASE("a SQLite store locked longer than the busy timeout gives unavailable and loses nothing") {
  TempDir dir;
  SqliteOptions quick;
  quick.busy_timeout = std::chrono::milliseconds(100);
  auto b = make_sqlite_backend(dir / "store.db", quick).value();
  REQUIRE(b->write(WriteBatch().put("c", "k", "v1", must_not_exist)).has_value());

  sqlite3* holder = nullptr;
  REQUIRE(sqlite3_open((dir / "store.db").c_str(), &holder) == SQLITE_OK);
  REQUIRE(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto blocked = b->write(WriteBatch().put("c", "k", "v2", 1));
  REQUIRE_FALSE(blocked.has_value());
  CHECK(blocked.error().code() == errc::unavailable);
  CHECK(mentions(blocked.error().message(), "locked"));
  auto reopen = make_sqlite_backend(dir / "store.db", quick);
  REQUIRE_FALSE(reopen.has_value());
  CHECK(reopen.error().code() == errc::unavailable);
  REQUIRE(sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(holder);

  auto got = b->get("c", "k").value();
  CHECK(got->version == 1);
  CHECK(got->value == "v1");
  REQUIRE(b->write(WriteBatch().put("c", "k", "v2", 1)).has_value());
}

TEST_CASE("a SQLite store that runs out of space fails the write clearly and keeps every acknowledged record") {
  TempDir dir;
  const auto path = dir / "store.db";
  { REQUIRE(make_sqlite_backend(path).has_value()); }
  // In a child limited to small files: writes fail once the WAL would grow
  // past the limit, as on a full disk.
  auto outcome = keyfolio::test::run_in_child([&](const auto& say) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{256 * 1024, 256 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 2;
    auto b = make_sqlite_backend(path);
    if (!b) return 3;
    const std::string value(4000, 'v');
    for (int i = 0; i < 1000; ++i) {
      auto w = (*b)->write(WriteBatch().put("c", "k" + std::to_string(i), value, must_not_exist));
      if (!w) {
        say(std::to_string(i) + "|" + std::string(keyfolio::to_string(w.error().code())) + "|" +
            w.error().message());
        return 0;
      }
    }
    return 4;  // never ran out
  });
  INFO(outcome.said);
  REQUIRE(outcome.exited);
  REQUIRE(outcome.status == 0);
  const int acknowledged = std::stoi(outcome.said.substr(0, outcome.said.find('|')));
  CHECK(acknowledged > 0);
  CHECK(mentions(outcome.said, "|storage_error|"));
  CHECK(mentions(outcome.said, "could not write to the disk"));

  auto b = make_sqlite_backend(path).value();
  auto all = b->scan("c").value();
  CHECK(all.size() == static_cast<std::size_t>(acknowledged));
  for (const auto& r : all) CHECK(r.value == std::string(4000, 'v'));
  REQUIRE(b->write(WriteBatch().put("c", "after", "ok", must_not_exist)).has_value());
}

TEST_CASE("AccountManager on a SQLite file keeps accounts across reopening and hears another handle's writes") {
  TempDir dir;
  const auto path = dir / "keyfolio.db";
  SqliteOptions options;
  options.poll_interval = std::chrono::milliseconds(10);
  {
    auto m = AccountManager::open(make_sqlite_backend(path, options).value(), raw_key()).value();
    m.upsert("BINANCE/main", keys("k1", "s1")).value();
  }
  auto first = AccountManager::open(make_sqlite_backend(path, options).value(), raw_key()).value();
  REQUIRE(first.has_change_feed());
  CHECK(keyfolio::test::reveals(*first.get("BINANCE/main").value()->credentials.find("apiKey"), "k1"));

  keyfolio::test::Heard<keyfolio::AccountEvent> heard;
  auto subscription = first.subscribe(heard.handler());
  auto second = AccountManager::open(make_sqlite_backend(path, options).value(), raw_key()).value();
  second.upsert("BINANCE/main", keys("k2", "s2")).value();
  REQUIRE(heard.wait_for(
      [](const auto& e) { return e.kind == keyfolio::AccountEvent::Kind::updated && e.version == 2; }));
  CHECK(keyfolio::test::reveals(*first.get("BINANCE/main").value()->credentials.find("apiKey"), "k2"));
}

TEST_CASE("a batch too large to log change by change reaches other handles as a resync") {
  TempDir dir;
  SqliteOptions options;
  options.poll_interval = std::chrono::milliseconds(10);
  auto watcher = make_sqlite_backend(dir / "store.db", options).value();
  keyfolio::test::Heard<keyfolio::ChangeEvent> heard;
  auto subscription = watcher->subscribe(heard.handler()).value();
  auto writer = make_sqlite_backend(dir / "store.db", options).value();
  WriteBatch big;
  for (int i = 0; i < 2000; ++i) big.put("c", "k" + std::to_string(i), "v", must_not_exist);
  REQUIRE(writer->write(big).has_value());
  REQUIRE(writer->write(WriteBatch().put("c", "after", "v", must_not_exist)).has_value());
  REQUIRE(heard.wait_for([](const auto& e) { return e.key == "after"; }));
  const auto events = heard.events();
  CHECK(std::count_if(events.begin(), events.end(),
                      [](const auto& e) { return e.kind == keyfolio::ChangeEvent::Kind::resync; }) == 1);
  CHECK(events.size() == 2);
}

TEST_CASE("a subscribed SQLite handle checkpoints its log on the feed's thread, not inside its writes") {
  TempDir dir;
  const auto path = dir / "store.db";
  // About 2,500 pages of log: past SQLite's automatic checkpoint (1,000).
  WriteBatch big;
  for (int i = 0; i < 8000; ++i) big.put("c", "k" + std::to_string(i), std::string(1024, 'v'), must_not_exist);
  constexpr std::uintmax_t copied = 4 * 1024 * 1024;  // the database file grows by this once the log is copied

  SECTION("without a subscription, the commit checkpoints, as SQLite does by default") {
    auto b = make_sqlite_backend(path).value();
    const auto before = std::filesystem::file_size(path);
    REQUIRE(b->write(big).has_value());
    CHECK(std::filesystem::file_size(path) > before + copied);
  }

  SECTION("with one, the write returns once its commit is durable, and the poller copies the log soon after") {
    SqliteOptions options;
    options.poll_interval = std::chrono::milliseconds(300);  // far from the write's return
    auto b = make_sqlite_backend(path, options).value();
    auto subscription = b->subscribe([](const keyfolio::ChangeEvent&) {}).value();
    const auto before = std::filesystem::file_size(path);
    REQUIRE(b->write(big).has_value());
    CHECK(std::filesystem::file_size(path) < before + copied);
    bool checkpointed = false;
    for (int i = 0; i < 200 && !checkpointed; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      checkpointed = std::filesystem::file_size(path) > before + copied;
    }
    CHECK(checkpointed);
    CHECK(b->get("c", "k7999").value()->value == std::string(1024, 'v'));
  }

  SECTION("with one, a write that follows runs the checkpoint the last commit left due, first") {
    SqliteOptions options;
    options.poll_interval = std::chrono::seconds(5);  // the poller stays out of it
    auto b = make_sqlite_backend(path, options).value();
    auto subscription = b->subscribe([](const keyfolio::ChangeEvent&) {}).value();
    const auto before = std::filesystem::file_size(path);
    REQUIRE(b->write(big).has_value());
    CHECK(std::filesystem::file_size(path) < before + copied);
    REQUIRE(b->write(WriteBatch().put("c", "next", "v", must_not_exist)).has_value());
    CHECK(std::filesystem::file_size(path) > before + copied);
  }
}
