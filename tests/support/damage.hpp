// Damaging stored records, as a failing disk or a tampering hand would.
#pragma once

#include <keyfolio/storage.hpp>

#include <string_view>

namespace keyfolio::test {

// Flips one bit of the sealed value stored under `key` in `collection` and
// writes it back through `backend`, so that the record no longer
// authenticates. The record must exist.
inline void damage(StorageBackend& backend, std::string_view collection, std::string_view key) {
  auto record = backend.get(collection, key).value().value();
  record.value.back() = static_cast<char>(record.value.back() ^ 0x01);
  backend.write(WriteBatch().put(collection, key, record.value, record.version)).value();
}

}  // namespace keyfolio::test
