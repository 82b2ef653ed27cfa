// What a backend holds, for proving that a rejected call changed nothing.
#pragma once

#include <keyfolio/storage.hpp>

#include <vector>

namespace keyfolio::test {

// Every record of the collections keyfolio writes.
inline std::vector<Record> everything(StorageBackend& backend) {
  std::vector<Record> all;
  for (const char* collection : {"accounts", "keyfolio", "portfolios", "portfolio_index", "snapshots"}) {
    auto part = backend.scan(collection).value();
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

// The same keys, versions and bytes, in the same order.
inline bool same(const std::vector<Record>& a, const std::vector<Record>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].key != b[i].key || a[i].version != b[i].version || a[i].value != b[i].value) return false;
  }
  return true;
}

}  // namespace keyfolio::test
