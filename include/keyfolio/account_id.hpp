// keyfolio/account_id.hpp: AccountId, which exchange account a record is.
//
// An account id is an exchange identifier, optionally followed by a separator
// and a tag that names one of several accounts on the same exchange, as in
// CoinAPI EMS: `BITSTAMP`, `KRAKEN/JOHN`,
// `BITSTAMP/7c177641-74bd-4dbe-9b01-2497c12a5f70`. The separator is any one of
// `~ / . , : ; ! @ # $ % ^ & * - _ + =`; the first separator splits, and the
// tag may contain further separators.
//
// Identity is (canonical exchange, tag): the exchange part matches catalog
// ids and aliases case-insensitively, the tag is case-sensitive, and the
// separator does not matter, so `BITSTAMP/2574` and `bitstamp:2574` are the
// same account. The spelling the user gave is kept for display and for wire
// output.
//
// Limits and rules (each violation is `invalid_exchange_id` with a message
// that says which):
//  - the exchange part: 1 to max_exchange_length bytes of printable ASCII
//    (no space), naming an exchange of the catalog;
//  - the tag: 1 to max_tag_length bytes of UTF-8, no whitespace (ASCII or
//    Unicode), no control or invisible formatting characters; present if
//    and only if a separator is.
//
// AccountId is a value type; const access is safe from many threads.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/export.hpp>

#include <compare>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

namespace keyfolio {

class KEYFOLIO_EXPORT AccountId {
 public:
  static constexpr std::string_view separators = ExchangeCatalog::id_separators;
  static constexpr std::size_t max_exchange_length = ExchangeCatalog::max_id_length;
  static constexpr std::size_t max_tag_length = 128;

  // Parses `text` by the rules above against `catalog` (by default the
  // built-in one).
  static Result<AccountId> parse(std::string_view text);
  static Result<AccountId> parse(std::string_view text, const ExchangeCatalog& catalog);

  // An id from its parts, as CoinStats gives them (a connection id and no
  // tag); `tag` empty means no tag. Spelled `exchange` or `exchange/tag`.
  static Result<AccountId> from_parts(std::string_view exchange, std::string_view tag = {});
  static Result<AccountId> from_parts(std::string_view exchange, std::string_view tag,
                                      const ExchangeCatalog& catalog);

  // The empty id, naming no account (no exchange, no tag): what a corrupt
  // Portfolio holds as its account. parse and from_parts never return it.
  AccountId() : AccountId({}, {}, {}) {}

  // The catalog's canonical exchange id: "bitstamp".
  const std::string& exchange() const noexcept { return exchange_; }
  // The tag, case preserved; empty when the id has none.
  const std::string& tag() const noexcept { return tag_; }
  bool has_tag() const noexcept { return !tag_.empty(); }
  // The id as the user spelled it: "BITSTAMP/2574".
  const std::string& spelling() const noexcept { return spelling_; }
  // A hash of the identity (exchange and tag), equal for equal ids.
  std::size_t hash() const noexcept { return hash_; }

  // The canonical form, "bitstamp" or "bitstamp/2574": equal for equal ids,
  // stable across versions, fit for use as a storage key.
  std::string canonical() const;

  friend bool operator==(const AccountId& a, const AccountId& b) noexcept {
    return a.exchange_ == b.exchange_ && a.tag_ == b.tag_;
  }
  friend std::strong_ordering operator<=>(const AccountId& a, const AccountId& b) noexcept {
    if (auto c = a.exchange_ <=> b.exchange_; c != 0) return c;
    return a.tag_ <=> b.tag_;
  }

 private:
  AccountId(std::string exchange, std::string tag, std::string spelling)
      : exchange_(std::move(exchange)), tag_(std::move(tag)), spelling_(std::move(spelling)) {
    const std::size_t h = std::hash<std::string>{}(exchange_);
    hash_ = h ^ (std::hash<std::string>{}(tag_) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }

  std::string exchange_;
  std::string tag_;
  std::string spelling_;
  std::size_t hash_ = 0;
};

// Prints the spelling.
KEYFOLIO_EXPORT std::ostream& operator<<(std::ostream& os, const AccountId& id);

}  // namespace keyfolio

// Computed once when the id is made: ids are hashed on every credential read.
template <>
struct std::hash<keyfolio::AccountId> {
  std::size_t operator()(const keyfolio::AccountId& id) const noexcept { return id.hash(); }
};
