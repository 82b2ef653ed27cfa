#include "storage/manifest.hpp"

#include <keyfolio/storage.hpp>

#include "detail/text.hpp"
#include "storage/sealed_store.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace keyfolio {

const char* to_string(IntegrityFinding::Kind kind) noexcept {
  using Kind = IntegrityFinding::Kind;
  switch (kind) {
    case Kind::missing: return "missing";
    case Kind::older: return "older";
    case Kind::unexpected: return "unexpected";
    case Kind::replaced: return "replaced";
    case Kind::manifest_damaged: return "manifest_damaged";
    case Kind::rolled_back: return "rolled_back";
  }
  return "unknown";
}

std::string IntegrityReport::describe() const {
  std::string out;
  for (const auto& finding : findings) {
    out += finding.message;
    out += '\n';
  }
  return out;
}

}  // namespace keyfolio

namespace keyfolio::detail {
namespace {

constexpr std::uint8_t manifest_format = 1;

bool take(std::string_view& in, std::size_t n, std::string_view& out) {
  if (in.size() < n) return false;
  out = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

bool take_u64(std::string_view& in, std::uint64_t& v) {
  std::string_view raw;
  if (!take(in, 8, raw)) return false;
  v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(i)]);
  return true;
}

bool take_u16(std::string_view& in, std::uint16_t& v) {
  std::string_view raw;
  if (!take(in, 2, raw)) return false;
  v = static_cast<std::uint16_t>(static_cast<unsigned char>(raw[0]) | (static_cast<unsigned char>(raw[1]) << 8));
  return true;
}

constexpr std::array<std::string_view, covered_collections> covered = {
    collections::accounts, collections::portfolios, collections::portfolio_index, collections::snapshots};

}  // namespace

std::optional<std::size_t> covered_index(std::string_view collection) noexcept {
  for (std::size_t i = 0; i < covered.size(); ++i) {
    if (covered[i] == collection) return i;
  }
  return std::nullopt;
}

std::string_view covered_name(std::size_t index) noexcept {
  return index < covered.size() ? covered[index] : std::string_view("?");
}

void DigestSum::add(const Vault::Digest& digest) noexcept {
  unsigned carry = 0;
  for (std::size_t i = 0; i < limbs; ++i) {
    std::uint64_t d;
    std::memcpy(&d, digest.data() + 8 * i, 8);  // the byte order does not matter, as long as it is one
    const std::uint64_t sum = limbs_[i] + d;
    const unsigned c1 = sum < d;
    const std::uint64_t with_carry = sum + carry;
    const unsigned c2 = with_carry < sum;
    limbs_[i] = with_carry;
    carry = c1 | c2;
  }
}

void DigestSum::subtract(const Vault::Digest& digest) noexcept {
  unsigned borrow = 0;
  for (std::size_t i = 0; i < limbs; ++i) {
    std::uint64_t d;
    std::memcpy(&d, digest.data() + 8 * i, 8);
    const std::uint64_t diff = limbs_[i] - d;
    const unsigned b1 = limbs_[i] < d;
    const std::uint64_t with_borrow = diff - borrow;
    const unsigned b2 = diff < borrow;
    limbs_[i] = with_borrow;
    borrow = b1 | b2;
  }
}

char* DigestSum::write(char* out) const noexcept {
  for (std::uint64_t limb : limbs_) {
    for (int i = 0; i < 8; ++i) *out++ = static_cast<char>((limb >> (8 * i)) & 0xff);
  }
  return out;
}

std::optional<DigestSum> DigestSum::read(std::string_view& in) {
  DigestSum sum;
  for (auto& limb : sum.limbs_) {
    if (!take_u64(in, limb)) return std::nullopt;
  }
  return sum;
}

void Manifest::remember(Change change) {
  journal.push_back(std::move(change));
  while (journal.size() > journal_size) journal.pop_front();
}

// format u8 | generation u64 | per collection: count u64, sum 16 bytes |
// journal entries u16 | per entry: collection u8, erased u8, generation u64,
// version u64, digest 16 bytes, key length u16, key.
std::string Manifest::encode() const {
  std::size_t size = 1 + 8 + covered_collections * (8 + Vault::digest_size) + 2;
  for (const Change& c : journal) size += 1 + 1 + 8 + 8 + Vault::digest_size + 2 + std::min<std::size_t>(c.key.size(), 0xffff);
  std::string out(size, '\0');
  char* at = out.data();
  const auto u64 = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) *at++ = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  const auto u16 = [&](std::uint16_t v) {
    *at++ = static_cast<char>(v & 0xff);
    *at++ = static_cast<char>(v >> 8);
  };
  *at++ = static_cast<char>(manifest_format);
  u64(generation);
  for (const Tally& t : tallies) {
    u64(t.count);
    at = t.sum.write(at);
  }
  u16(static_cast<std::uint16_t>(journal.size()));
  for (const Change& c : journal) {
    *at++ = static_cast<char>(c.collection);
    *at++ = c.erased ? '\1' : '\0';
    u64(c.generation);
    u64(c.version);
    std::memcpy(at, c.digest.data(), c.digest.size());
    at += c.digest.size();
    const std::size_t length = std::min<std::size_t>(c.key.size(), 0xffff);
    u16(static_cast<std::uint16_t>(length));
    if (length > 0) std::memcpy(at, c.key.data(), length);
    at += length;
  }
  return out;
}

std::optional<Manifest> Manifest::decode(std::string_view in) {
  std::string_view raw;
  if (!take(in, 1, raw) || static_cast<std::uint8_t>(raw[0]) != manifest_format) return std::nullopt;
  Manifest m;
  if (!take_u64(in, m.generation)) return std::nullopt;
  for (Tally& t : m.tallies) {
    if (!take_u64(in, t.count)) return std::nullopt;
    auto sum = DigestSum::read(in);
    if (!sum) return std::nullopt;
    t.sum = *sum;
  }
  std::uint16_t entries = 0;
  if (!take_u16(in, entries) || entries > journal_size) return std::nullopt;
  for (std::uint16_t i = 0; i < entries; ++i) {
    Change c;
    std::string_view head;
    if (!take(in, 2, head)) return std::nullopt;
    c.collection = static_cast<std::uint8_t>(head[0]);
    if (c.collection >= covered_collections || static_cast<unsigned char>(head[1]) > 1) return std::nullopt;
    c.erased = head[1] == '\1';
    if (!take_u64(in, c.generation) || !take_u64(in, c.version)) return std::nullopt;
    std::string_view digest;
    if (!take(in, c.digest.size(), digest)) return std::nullopt;
    std::memcpy(c.digest.data(), digest.data(), digest.size());
    std::uint16_t length = 0;
    std::string_view key;
    if (!take_u16(in, length) || !take(in, length, key)) return std::nullopt;
    c.key = std::string(key);
    m.journal.push_back(std::move(c));
  }
  if (!in.empty()) return std::nullopt;
  return m;
}

namespace {

const Record* find_record(const std::vector<Record>& records, std::string_view key) {
  auto it = std::lower_bound(records.begin(), records.end(), key,
                             [](const Record& r, std::string_view k) { return r.key < k; });
  return it != records.end() && it->key == key ? &*it : nullptr;
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

}  // namespace

std::string describe_failure(const IntegrityReport& report) {
  constexpr std::size_t shown = 3;
  std::string message = "the store fails its integrity check: ";
  for (std::size_t i = 0; i < report.findings.size() && i < shown; ++i) {
    if (i > 0) message += "; ";
    message += report.findings[i].message;
  }
  if (report.findings.size() > shown) {
    message += "; and " + std::to_string(report.findings.size() - shown) + " more";
  }
  message += " (opened with the recover option, the store shows what survives, to be exported)";
  return message;
}

std::vector<IntegrityFinding> compare(const Manifest& manifest, const CollectionRecords& records,
                                      const Vault& vault) {
  using Kind = IntegrityFinding::Kind;
  std::vector<IntegrityFinding> findings;
  for (std::size_t c = 0; c < covered_collections; ++c) {
    Tally actual;
    for (const Record& r : records[c]) actual.add(vault.record_digest(covered_name(c), r.key, r.version, r.value));
    const Tally& expected = manifest.tallies[c];
    if (actual == expected) continue;

    const std::string collection(covered_name(c));
    // The journal's latest word on each key it remembers.
    std::unordered_map<std::string_view, const Manifest::Change*> latest;
    for (const auto& change : manifest.journal) {
      if (change.collection == c) latest[change.key] = &change;
    }
    std::size_t named = 0;
    for (const auto& [key, change] : latest) {
      const Record* present = find_record(records[c], key);
      const std::string where = collection + " " + quote(key);
      if (change->erased) {
        if (present != nullptr) {
          findings.push_back({Kind::unexpected, collection, std::string(key),
                              where + " is present, but the store removed it (generation " +
                                  std::to_string(change->generation) + ")"});
          ++named;
        }
        continue;
      }
      if (present == nullptr) {
        findings.push_back({Kind::missing, collection, std::string(key),
                            where + " is missing (the store wrote version " + std::to_string(change->version) +
                                " at generation " + std::to_string(change->generation) + ")"});
        ++named;
      } else if (vault.record_digest(collection, key, present->version, present->value) != change->digest) {
        const std::string written =
            "version " + std::to_string(change->version) + " (generation " + std::to_string(change->generation) + ")";
        if (present->version < change->version) {
          findings.push_back({Kind::older, collection, std::string(key),
                              where + " is at version " + std::to_string(present->version) +
                                  ", older than the store's last write of it, " + written});
        } else if (present->version == change->version) {
          findings.push_back({Kind::replaced, collection, std::string(key),
                              where + " is not the record the store wrote as " + written +
                                  ": another copy was put in its place"});
        } else {
          findings.push_back({Kind::replaced, collection, std::string(key),
                              where + " is at version " + std::to_string(present->version) +
                                  ", which the store never wrote (its last write of it was " + written + ")"});
        }
        ++named;
      }
    }
    if (named > 0) continue;
    // Records that do not authenticate are named: found by opening each
    // record of the collection, which only a store that fails its check
    // costs.
    for (const Record& r : records[c]) {
      if (vault.open(collection, r.key, r.version, r.value)) continue;
      findings.push_back({Kind::replaced, collection, r.key,
                          collection + " " + quote(r.key) + " at version " + std::to_string(r.version) +
                              " does not authenticate: it is not a record the store wrote there (tampered, "
                              "truncated, or copied from elsewhere)"});
      ++named;
    }
    if (named > 0 && actual.count == expected.count) continue;
    // What the journal cannot name: said by number.
    std::string message = collection + ": ";
    Kind kind = Kind::replaced;
    if (actual.count < expected.count) {
      kind = Kind::missing;
      message += plural(expected.count - actual.count, "record is", "records are") +
                 " missing (the store holds " + std::to_string(actual.count) + " of the " +
                 std::to_string(expected.count) + " it wrote)";
    } else if (actual.count > expected.count) {
      kind = Kind::unexpected;
      message += plural(actual.count - expected.count, "record is", "records are") +
                 " unexpected (the store holds " + std::to_string(actual.count) + ", it wrote " +
                 std::to_string(expected.count) + ")";
    } else {
      message += "records differ from the ones the store wrote (older versions, or copies from elsewhere)";
    }
    findings.push_back({kind, collection, {}, std::move(message)});
  }
  return findings;
}

}  // namespace keyfolio::detail
