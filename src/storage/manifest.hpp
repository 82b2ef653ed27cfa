// The store's integrity record (the manifest): a sealed commitment to the set
// of live records of every collection, rewritten in the batch of every write.
//
// For each collection it keeps the number of live records and the sum,
// modulo 2^128, of their keyed digests (Vault::record_digest: collection,
// key, version, and the nonce and tag that pin the exact ciphertext). Adding
// or removing a record is one addition or one subtraction, whatever the
// store's size. The digests are keyed and the sums sealed, so without the
// data key nobody can find another set of records with the same sum.
//
// It also keeps the store's generation, which grows by one with every write
// (a store-wide write sequence a host can anchor elsewhere), and a journal of
// the most recent changes, so that a difference found later can be named
// (which key is missing, older or unexpected) when it concerns one of them.
// A difference older than the journal is reported by collection and count.
#pragma once

#include <keyfolio/integrity.hpp>

#include "crypto/vault.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace keyfolio {
struct Record;
}

namespace keyfolio::detail {

// A sum of digests modulo 2^128, as little-endian 64-bit limbs.
class DigestSum {
 public:
  void add(const Vault::Digest& digest) noexcept;
  void subtract(const Vault::Digest& digest) noexcept;
  bool operator==(const DigestSum&) const = default;

  // Writes its limbs at `out`; past them.
  char* write(char* out) const noexcept;
  static std::optional<DigestSum> read(std::string_view& in);

 private:
  static constexpr std::size_t limbs = Vault::digest_size / 8;
  std::array<std::uint64_t, limbs> limbs_{};
};

// One collection's live records: how many, and their digests' sum.
struct Tally {
  std::uint64_t count = 0;
  DigestSum sum;
  void add(const Vault::Digest& d) noexcept {
    ++count;
    sum.add(d);
  }
  void subtract(const Vault::Digest& d) noexcept {
    --count;
    sum.subtract(d);
  }
  bool operator==(const Tally&) const = default;
};

// The collections the manifest covers, in a fixed order.
inline constexpr std::size_t covered_collections = 4;
// The index of `collection` among them; nullopt for one not covered.
std::optional<std::size_t> covered_index(std::string_view collection) noexcept;
std::string_view covered_name(std::size_t index) noexcept;

struct Manifest {
  // A change of one key, as the journal remembers it.
  struct Change {
    std::uint8_t collection = 0;
    bool erased = false;  // otherwise put at `version`, with `digest`
    std::uint64_t generation = 0;
    std::uint64_t version = 0;
    Vault::Digest digest{};
    std::string key;
  };
  static constexpr std::size_t journal_size = 16;

  std::uint64_t generation = 0;
  std::array<Tally, covered_collections> tallies{};
  std::deque<Change> journal;  // oldest first

  void remember(Change change);

  std::string encode() const;
  static std::optional<Manifest> decode(std::string_view bytes);
};

// The live records of every covered collection, each ordered by key, as one
// consistent reading of the store.
using CollectionRecords = std::array<std::vector<Record>, covered_collections>;

// The message of the corrupt_data a failed check gives: the first findings,
// and how many more.
std::string describe_failure(const IntegrityReport& report);

// How `records` differ from `manifest`: nothing when they match. Names keys
// where the journal tells which, counts otherwise.
std::vector<IntegrityFinding> compare(const Manifest& manifest, const CollectionRecords& records,
                                      const Vault& vault);

}  // namespace keyfolio::detail
