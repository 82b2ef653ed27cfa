// custom_backend: a host's own StorageBackend, proven with keyfolio's
// conformance suite.
//
// FileBackend keeps a whole store in one file, rewritten atomically on every
// write batch (a temporary file, fsync, rename, fsync of the directory) under
// an exclusive lock on a sibling lock file, so that several handles and
// processes can share it. Reads take a shared lock and read the file. It
// offers no change feed (subscribe says not_supported; AccountManager then
// needs refresh()). Simple and crash-safe, and slow beyond a few thousand
// records: the shape to copy, not a backend to ship.
//
// Run it like any Catch2 test program: `custom_backend` runs the suite.
#include <keyfolio/keyfolio.hpp>

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
#include <keyfolio/testing/storage_conformance.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <mutex>
#include <sys/file.h>
#include <unistd.h>

namespace {

using Key = std::pair<std::string, std::string>;  // collection, key
struct Entry {
  std::uint64_t version = 0;
  std::string value;
};
using Table = std::map<Key, Entry>;

class FileBackend final : public keyfolio::StorageBackend {
 public:
  explicit FileBackend(std::filesystem::path path) : path_(std::move(path)) {}

  keyfolio::Result<std::optional<keyfolio::Record>> get(std::string_view collection, std::string_view key) override {
    auto table = read_locked(LOCK_SH);
    if (!table) return table.error();
    auto it = table->find(Key(collection, key));
    if (it == table->end()) return std::optional<keyfolio::Record>();
    return std::optional<keyfolio::Record>(keyfolio::Record{std::string(key), it->second.version, it->second.value});
  }

  keyfolio::Result<std::vector<keyfolio::Record>> scan(std::string_view collection, std::string_view prefix) override {
    auto table = read_locked(LOCK_SH);
    if (!table) return table.error();
    std::vector<keyfolio::Record> out;
    // std::string compares as unsigned bytes (char_traits<char>::compare is
    // memcmp-like), which is the order the contract asks for.
    for (auto it = table->lower_bound(Key(collection, prefix));
         it != table->end() && it->first.first == collection && it->first.second.starts_with(prefix); ++it) {
      out.push_back({it->first.second, it->second.version, it->second.value});
    }
    return out;
  }

  keyfolio::Result<void> write(const keyfolio::WriteBatch& batch) override {
    if (batch.empty()) return {};
    std::lock_guard guard(mutex_);
    Lock lock(lock_path(), LOCK_EX);
    if (!lock.ok()) return io_error("locking");
    auto table = read();
    if (!table) return table.error();
    // keyfolio's own check of every expectation, against the versions
    // stored before the batch (and those its earlier operations produce).
    auto checked = keyfolio::check_batch(batch, [&](const std::string& collection, const std::string& key)
                                                    -> keyfolio::Result<std::optional<std::uint64_t>> {
      auto it = table->find(Key(collection, key));
      if (it == table->end()) return std::optional<std::uint64_t>();
      return std::optional<std::uint64_t>(it->second.version);
    });
    if (!checked) return checked.error();
    // Then apply to a copy, which replaces the file.
    Table next = *table;
    for (const auto& op : batch.operations()) {
      switch (op.kind) {
        case keyfolio::WriteBatch::Kind::put:
          next[Key(op.collection, op.key)] = Entry{op.expected_version + 1, op.value};
          break;
        case keyfolio::WriteBatch::Kind::erase:
          next.erase(Key(op.collection, op.key));  // absent when it was expected absent
          break;
        case keyfolio::WriteBatch::Kind::erase_all:
          std::erase_if(next, [&](const auto& e) { return e.first.first == op.collection; });
          break;
        case keyfolio::WriteBatch::Kind::expect:
          break;
      }
    }
    return replace(next);
  }

  std::string describe() const override { return "file:" + path_.string(); }

 private:
  // An flock on the lock file for the lifetime of the object.
  class Lock {
   public:
    Lock(const std::filesystem::path& path, int how) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
      if (fd_ >= 0 && ::flock(fd_, how) != 0) {
        ::close(fd_);
        fd_ = -1;
      }
    }
    ~Lock() {
      if (fd_ >= 0) ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }

   private:
    int fd_;
  };

  std::filesystem::path lock_path() const { return path_.string() + ".lock"; }

  keyfolio::Error io_error(const char* what) const {
    return keyfolio::Error(keyfolio::errc::storage_error, describe() + ": " + what + ": " + std::strerror(errno));
  }

  keyfolio::Result<Table> read_locked(int how) const {
    Lock lock(lock_path(), how);
    if (!lock.ok()) return io_error("locking");
    return read();
  }

  // The file: u64 count, then per record u64 version and three
  // length-prefixed strings (collection, key, value).
  keyfolio::Result<Table> read() const {
    Table table;
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return table;
      return io_error("opening");
    }
    std::string bytes;
    char buffer[65536];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) != 0;) {
      if (n < 0) {
        ::close(fd);
        return io_error("reading");
      }
      bytes.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    std::size_t at = 0;
    bool ok = true;
    auto u64 = [&] {
      std::uint64_t v = 0;
      if (bytes.size() - at < 8) {
        ok = false;
        return v;
      }
      std::memcpy(&v, bytes.data() + at, 8);
      at += 8;
      return v;
    };
    auto str = [&] {
      const std::uint64_t n = u64();
      if (!ok || bytes.size() - at < n) {
        ok = false;
        return std::string();
      }
      at += n;
      return bytes.substr(at - n, n);
    };
    for (std::uint64_t count = bytes.empty() ? 0 : u64(); ok && count > 0; --count) {
      const std::uint64_t version = u64();
      std::string collection = str();
      std::string key = str();
      std::string value = str();
      table[Key(std::move(collection), std::move(key))] = Entry{version, std::move(value)};
    }
    if (!ok) return keyfolio::Error(keyfolio::errc::corrupt_data, describe() + ": the file is truncated");
    return table;
  }

  keyfolio::Result<void> replace(const Table& table) const {
    std::string bytes;
    auto u64 = [&](std::uint64_t v) { bytes.append(reinterpret_cast<const char*>(&v), 8); };
    auto str = [&](const std::string& s) {
      u64(s.size());
      bytes += s;
    };
    u64(table.size());
    for (const auto& [key, entry] : table) {
      u64(entry.version);
      str(key.first);
      str(key.second);
      str(entry.value);
    }
    const std::string temp = path_.string() + ".tmp";
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("creating the new file");
    std::size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
      if (n < 0) {
        ::close(fd);
        return io_error("writing");
      }
      at += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      return io_error("syncing");
    }
    ::close(fd);
    if (::rename(temp.c_str(), path_.c_str()) != 0) return io_error("replacing");
    const int dir = ::open(path_.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
    return {};
  }

  std::filesystem::path path_;
  std::mutex mutex_;  // one writer per handle at a time; the flock covers other handles
};

std::filesystem::path fresh_directory() {
  std::string pattern = (std::filesystem::temp_directory_path() / "keyfolio-custom-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

}  // namespace

TEST_CASE("a host's own file backend keeps the StorageBackend contract") {
  const std::filesystem::path dir = fresh_directory();
  keyfolio::testing::StorageConformance suite;
  suite.open_fresh = [&] { return std::make_shared<FileBackend>(dir / "store.bin"); };
  // A second handle on the same file, as another process would open it.
  suite.open_another = [&](const auto&) { return std::make_shared<FileBackend>(dir / "store.bin"); };
  suite.large_value_size = 1 << 20;
  suite.increments_per_thread = 25;
  keyfolio::testing::check_storage_backend(suite);
  std::filesystem::remove_all(dir);
}

TEST_CASE("an AccountManager runs on the host's backend") {
  const std::filesystem::path dir = fresh_directory();
  auto backend = std::make_shared<FileBackend>(dir / "store.bin");
  const auto key = keyfolio::KeySource::raw_key(keyfolio::SecretString(std::string(32, 'k')));
  {
    auto manager = keyfolio::AccountManager::open(backend, key).value();
    CHECK_FALSE(manager.has_change_feed());
    keyfolio::Credentials credentials;
    credentials.add("apiKey", keyfolio::SecretString("key")).value();
    credentials.add("secret", keyfolio::SecretString("secret")).value();
    CHECK(manager.upsert("KRAKEN/JOHN", std::move(credentials)).value().created);
  }
  auto reopened = keyfolio::AccountManager::open(backend, key).value();
  CHECK(reopened.size() == 1);
  CHECK(reopened.get("kraken/JOHN").value()->credentials.find("secret")->reveal() == "secret");
  std::filesystem::remove_all(dir);
}
