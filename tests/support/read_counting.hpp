// A backend wrapper that counts the reads (get and scan) reaching its target.
#pragma once

#include <keyfolio/storage.hpp>

#include <atomic>

namespace keyfolio::test {

class ReadCountingBackend : public StorageBackendWrapper {
 public:
  using StorageBackendWrapper::StorageBackendWrapper;
  std::atomic<int> reads{0};

  Result<std::optional<Record>> get(std::string_view collection, std::string_view key) override {
    ++reads;
    return StorageBackendWrapper::get(collection, key);
  }
  Result<std::vector<Record>> scan(std::string_view collection, std::string_view prefix) override {
    ++reads;
    return StorageBackendWrapper::scan(collection, prefix);
  }
};

}  // namespace keyfolio::test
