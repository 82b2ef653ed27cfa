#include <keyfolio/storage.hpp>

namespace keyfolio {

WriteBatch& WriteBatch::put(std::string_view collection, std::string_view key, std::string value,
                            std::uint64_t expected_version) {
  operations_.push_back(
      {Kind::put, std::string(collection), std::string(key), std::move(value), expected_version});
  return *this;
}

WriteBatch& WriteBatch::erase(std::string_view collection, std::string_view key,
                              std::uint64_t expected_version) {
  operations_.push_back({Kind::erase, std::string(collection), std::string(key), {}, expected_version});
  return *this;
}

WriteBatch& WriteBatch::expect(std::string_view collection, std::string_view key,
                               std::uint64_t expected_version) {
  operations_.push_back({Kind::expect, std::string(collection), std::string(key), {}, expected_version});
  return *this;
}

WriteBatch& WriteBatch::erase_all(std::string_view collection) {
  operations_.push_back({Kind::erase_all, std::string(collection), {}, {}, 0});
  return *this;
}

StorageBackend::~StorageBackend() = default;

Result<void> StorageBackend::scrub() { return {}; }

Result<Subscription> StorageBackend::subscribe(ChangeHandler) {
  return Error(errc::not_supported, describe() + " has no change feed");
}

}  // namespace keyfolio
