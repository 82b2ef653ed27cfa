// keyfolio/storage.hpp: StorageBackend, the plug-in that keeps keyfolio's
// records, and what passes through it.
//
// A backend stores collections of records: key -> (version, opaque bytes).
// keyfolio encrypts before anything reaches a backend, so a backend never
// sees a plaintext secret. Writes come in atomic batches of put / erase /
// erase-all / expect operations; every put, erase and expect names the
// version it expects the key to have (0: the key must not exist), and the
// whole batch fails with `conflict`, changing nothing, if any expectation
// fails. An expect writes nothing: it makes the batch depend on a key it
// does not change. A put stores the
// value at version expected + 1, so versions of a key only grow while it
// exists; after an erase the key starts again at 1.
//
// A backend may offer a change feed: subscribers hear of every committed
// change, including those made through other handles, processes or hosts.
// Backends without one return `not_supported` from subscribe().
//
// Contract for implementers: no member function throws (errors are
// `Result`s; `storage_error` for I/O failures, `unavailable` for a busy or
// unreachable store), all are safe to call concurrently from many threads,
// and a successful write() is visible to every get()/scan() that starts after
// it returns. `keyfolio/testing/storage_conformance.hpp` checks all of it.
//
// StorageBackendWrapper forwards every call to another backend; derive from
// it to decorate a backend or to inject faults in tests.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/subscription.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio {

// One stored entry.
struct Record {
  std::string key{};
  std::uint64_t version = 0;  // >= 1 for a stored record
  std::string value{};        // opaque bytes
};

// Version expectations of a write operation.
inline constexpr std::uint64_t must_not_exist = 0;

// An atomic group of writes. Operations apply in order; a later put to the
// same key expects the version the earlier one produced.
class KEYFOLIO_EXPORT WriteBatch {
 public:
  enum class Kind { put, erase, erase_all, expect };

  struct Operation {
    Kind kind = Kind::put;
    std::string collection{};
    std::string key{};                  // empty for erase_all
    std::string value{};                // put only
    std::uint64_t expected_version = 0; // put, erase and expect
  };

  // Stores `value` under `key` at version expected_version + 1; fails the
  // batch unless the key is at `expected_version` (must_not_exist: absent).
  WriteBatch& put(std::string_view collection, std::string_view key, std::string value,
                  std::uint64_t expected_version);
  // Removes `key`; fails the batch unless it exists at `expected_version`.
  WriteBatch& erase(std::string_view collection, std::string_view key, std::uint64_t expected_version);
  // Removes every key of `collection`; never fails on expectations.
  WriteBatch& erase_all(std::string_view collection);
  // Changes nothing; fails the batch unless `key` is at `expected_version`
  // (must_not_exist: absent). Produces no change-feed event.
  WriteBatch& expect(std::string_view collection, std::string_view key, std::uint64_t expected_version);

  // Removes the last operation staged, if any: what a layer that appends its
  // own operation to a caller's batch uses to hand the batch back unchanged.
  void pop_back() noexcept {
    if (!operations_.empty()) operations_.pop_back();
  }

  std::span<const Operation> operations() const noexcept { return operations_; }
  bool empty() const noexcept { return operations_.empty(); }
  std::size_t size() const noexcept { return operations_.size(); }

 private:
  std::vector<Operation> operations_;
};

// What a change feed reports: one committed change. `erase_all` covers a whole
// collection (key empty). `resync` means the feed may have missed changes of
// the collection (or of all collections, when `collection` is empty): the
// subscriber should re-read.
struct ChangeEvent {
  enum class Kind { put, erase, erase_all, resync };
  Kind kind = Kind::put;
  std::string collection{};
  std::string key{};
  std::uint64_t version = 0;  // the new version for put; 0 otherwise
};

using ChangeHandler = std::function<void(const ChangeEvent&)>;

class KEYFOLIO_EXPORT StorageBackend {
 public:
  virtual ~StorageBackend();

  // The record under `key`, or an empty optional when there is none.
  virtual Result<std::optional<Record>> get(std::string_view collection, std::string_view key) = 0;

  // Every record of `collection` whose key starts with `prefix` (all when
  // empty), ordered by key (bytewise).
  virtual Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix = {}) = 0;

  // Applies `batch` atomically: all operations or none. `conflict` names the
  // first failed expectation. An empty batch succeeds.
  virtual Result<void> write(const WriteBatch& batch) = 0;

  // Calls `handler` for every change committed after this call returns, from
  // any handle, on a thread of the backend's choosing (possibly the writer's,
  // after its write committed). Handlers must be quick and must not destroy
  // their own Subscription. The default says `not_supported`.
  virtual Result<Subscription> subscribe(ChangeHandler handler);

  // Removes what the backend keeps of values that were overwritten or
  // erased, where it keeps any (a write-ahead log, free pages), so that an
  // old copy of a record cannot be read back from its files. keyfolio calls
  // it after replacing the keyring (a changed key, a rotated data key). The
  // default has nothing to remove.
  virtual Result<void> scrub();

  // A short name for messages: "memory", "sqlite:/path", ...
  virtual std::string describe() const = 0;
};

// Forwards every call to `target`. Override what a test or decoration needs.
class KEYFOLIO_EXPORT StorageBackendWrapper : public StorageBackend {
 public:
  explicit StorageBackendWrapper(std::shared_ptr<StorageBackend> target) : target_(std::move(target)) {}

  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) override {
    return target_->get(collection, key);
  }
  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix = {}) override {
    return target_->scan(collection, prefix);
  }
  Result<void> write(const WriteBatch& batch) override { return target_->write(batch); }
  Result<Subscription> subscribe(ChangeHandler handler) override { return target_->subscribe(std::move(handler)); }
  Result<void> scrub() override { return target_->scrub(); }
  std::string describe() const override { return target_->describe(); }

  const std::shared_ptr<StorageBackend>& target() const noexcept { return target_; }

 private:
  std::shared_ptr<StorageBackend> target_;
};

}  // namespace keyfolio
