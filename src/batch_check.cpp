#include <keyfolio/batch_check.hpp>

#include "detail/text.hpp"

#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace keyfolio {
namespace {

std::string describe_version(std::optional<std::uint64_t> v) {
  return v ? "version " + std::to_string(*v) : std::string("absent");
}

// A (collection, key) of the batch, viewing the batch's own strings.
using Slot = std::pair<std::string_view, std::string_view>;

struct SlotHash {
  std::size_t operator()(const Slot& slot) const noexcept {
    const std::size_t h = std::hash<std::string_view>{}(slot.first);
    return h ^ (std::hash<std::string_view>{}(slot.second) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};

}  // namespace

Result<void> check_names(const WriteBatch::Operation& op) {
  if (op.collection.empty()) return Error(errc::invalid_argument, "write batch: empty collection name");
  if (op.kind != WriteBatch::Kind::erase_all && op.key.empty()) {
    return Error(errc::invalid_argument, "write batch: empty key in collection " + detail::quote(op.collection));
  }
  return {};
}

Error conflict_error(const WriteBatch::Operation& op, std::optional<std::uint64_t> found) {
  const bool expected_absent = op.expected_version == must_not_exist;
  return Error(errc::conflict, "write to " + detail::quote(op.collection) + "/" + detail::quote(op.key) + " expected " +
                                   (expected_absent ? std::string("it absent")
                                                    : "version " + std::to_string(op.expected_version)) +
                                   ", found " + describe_version(found));
}

Result<std::vector<std::uint64_t>> check_batch(const WriteBatch& batch, const VersionLookup& lookup) {
  // What the batch's earlier operations left each slot at.
  std::unordered_map<Slot, std::optional<std::uint64_t>, SlotHash> overlay;
  overlay.reserve(batch.size());
  std::unordered_set<std::string_view> cleared;
  std::vector<std::uint64_t> versions;
  versions.reserve(batch.size());
  for (const auto& op : batch.operations()) {
    if (auto named = check_names(op); !named) return named.error();
    if (op.kind == WriteBatch::Kind::erase_all) {
      cleared.insert(op.collection);
      std::erase_if(overlay, [&](const auto& entry) { return entry.first.first == op.collection; });
      versions.push_back(0);
      continue;
    }
    const Slot slot{op.collection, op.key};
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
    if (!matches) return conflict_error(op, current);
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

}  // namespace keyfolio
