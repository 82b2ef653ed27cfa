#include "storage/batch_check.hpp"

#include "detail/text.hpp"

namespace keyfolio::detail {
namespace {

std::string describe_version(std::optional<std::uint64_t> v) {
  return v ? "version " + std::to_string(*v) : std::string("absent");
}

}  // namespace

Result<std::vector<std::uint64_t>> check_batch(const WriteBatch& batch, const VersionLookup& lookup) {
  std::map<std::pair<std::string, std::string>, std::optional<std::uint64_t>> overlay;
  std::set<std::string> cleared;
  std::vector<std::uint64_t> versions;
  versions.reserve(batch.size());
  for (const auto& op : batch.operations()) {
    if (op.collection.empty()) return Error(errc::invalid_argument, "write batch: empty collection name");
    if (op.kind == WriteBatch::Kind::erase_all) {
      cleared.insert(op.collection);
      std::erase_if(overlay, [&](const auto& entry) { return entry.first.first == op.collection; });
      versions.push_back(0);
      continue;
    }
    if (op.key.empty()) {
      return Error(errc::invalid_argument, "write batch: empty key in collection " + quote(op.collection));
    }
    auto slot = std::make_pair(op.collection, op.key);
    std::optional<std::uint64_t> current;
    if (auto it = overlay.find(slot); it != overlay.end()) {
      current = it->second;
    } else if (!cleared.contains(op.collection)) {
      auto stored = lookup(op.collection, op.key);
      if (!stored) return stored.error();
      current = *stored;
    }
    const bool expected_absent = op.expected_version == must_not_exist;
    const bool matches = expected_absent ? !current : (current && *current == op.expected_version);
    if (!matches) {
      return Error(errc::conflict, "write to " + quote(op.collection) + "/" + quote(op.key) + " expected " +
                                       (expected_absent ? std::string("it absent")
                                                        : "version " + std::to_string(op.expected_version)) +
                                       ", found " + describe_version(current));
    }
    if (op.kind == WriteBatch::Kind::put) {
      overlay[slot] = op.expected_version + 1;
      versions.push_back(op.expected_version + 1);
    } else if (op.kind == WriteBatch::Kind::expect) {
      versions.push_back(0);
    } else {
      overlay[slot] = std::nullopt;
      versions.push_back(0);
    }
  }
  return versions;
}

}  // namespace keyfolio::detail
