#include <keyfolio/backends/memory.hpp>
#include <keyfolio/batch_check.hpp>

#include "storage/subscribers.hpp"

#include <map>
#include <mutex>
#include <shared_mutex>

namespace keyfolio {
namespace {

struct Stored {
  std::uint64_t version = 0;
  std::string value;
};

using Collection = std::map<std::string, Stored, std::less<>>;

class MemoryBackend final : public StorageBackend {
 public:
  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) override {
    std::shared_lock lock(mutex_);
    auto c = data_.find(collection);
    if (c == data_.end()) return std::optional<Record>();
    auto it = c->second.find(key);
    if (it == c->second.end()) return std::optional<Record>();
    return std::optional<Record>(Record{it->first, it->second.version, it->second.value});
  }

  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix) override {
    std::shared_lock lock(mutex_);
    std::vector<Record> out;
    auto c = data_.find(collection);
    if (c == data_.end()) return out;
    for (auto it = c->second.lower_bound(prefix); it != c->second.end() && it->first.starts_with(prefix); ++it) {
      out.push_back(Record{it->first, it->second.version, it->second.value});
    }
    return out;
  }

  Result<void> write(const WriteBatch& batch) override {
    std::vector<ChangeEvent> events;
    {
      std::unique_lock lock(mutex_);
      auto versions = check_batch(batch, [&](const std::string& collection, const std::string& key)
                                                     -> Result<std::optional<std::uint64_t>> {
        auto c = data_.find(collection);
        if (c == data_.end()) return std::optional<std::uint64_t>();
        auto it = c->second.find(key);
        if (it == c->second.end()) return std::optional<std::uint64_t>();
        return std::optional<std::uint64_t>(it->second.version);
      });
      if (!versions) return versions.error();
      const auto ops = batch.operations();
      for (std::size_t i = 0; i < ops.size(); ++i) {
        const auto& op = ops[i];
        switch (op.kind) {
          case WriteBatch::Kind::put:
            data_[op.collection][op.key] = Stored{(*versions)[i], op.value};
            events.push_back({ChangeEvent::Kind::put, op.collection, op.key, (*versions)[i]});
            break;
          case WriteBatch::Kind::erase:
            if (op.expected_version == must_not_exist) break;  // checked absent: nothing changes
            data_[op.collection].erase(op.key);
            events.push_back({ChangeEvent::Kind::erase, op.collection, op.key, 0});
            break;
          case WriteBatch::Kind::erase_all:
            data_.erase(op.collection);
            events.push_back({ChangeEvent::Kind::erase_all, op.collection, {}, 0});
            break;
          case WriteBatch::Kind::expect:
            break;
        }
      }
    }
    // After the commit and outside the data lock, so that handlers may read
    // the backend. Concurrent writes may deliver out of order.
    subscribers_->deliver(events);
    return {};
  }

  Result<Subscription> subscribe(ChangeHandler handler) override {
    return subscribers_->add(std::move(handler));
  }

  std::string describe() const override { return "memory"; }

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, Collection, std::less<>> data_;
  std::shared_ptr<detail::Subscribers<ChangeEvent>> subscribers_ =
      std::make_shared<detail::Subscribers<ChangeEvent>>();
};

}  // namespace

std::shared_ptr<StorageBackend> make_memory_backend() { return std::make_shared<MemoryBackend>(); }

}  // namespace keyfolio
