// keyfolio/credentials.hpp: Credentials, the secret fields of one account.
//
// Credentials map canonical field keys ("apiKey", "secret", "password", ...)
// to SecretStrings. Field names given in another ecosystem's spelling are
// canonicalized through the catalog's aliases when added (`PrivateApiKey` and
// `apiSecret` become `secret`); names the catalog does not know are kept as
// given, so that `validate` can name them.
//
// `validate` checks the fields against what one exchange needs and reports
// every missing required field and every unknown field in one
// `validation_failed` error. Messages name fields, never values.
//
// Credentials is a value type like a map (iterating gives (key, value) pairs
// ordered by key): safe for concurrent const access.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/secret.hpp>

#include <cstddef>
#include <iosfwd>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio {

class KEYFOLIO_EXPORT Credentials {
 public:
  // (key, value) pairs ordered by key. A flat array: an account has a handful
  // of fields, and a lookup on the hot path should touch one block of memory.
  using Field = std::pair<std::string, SecretString>;
  using Fields = std::vector<Field>;
  using const_iterator = Fields::const_iterator;

  // Longest value of one field (bytes); long enough for PEM private keys.
  static constexpr std::size_t max_value_size = 16 * 1024;

  Credentials() = default;

  // Adds a field. `name` may be any spelling `catalog` knows; it is stored
  // under the canonical key. Returns `validation_failed` when the name is
  // empty, longer than ExchangeCatalog::max_field_key_length or not printable
  // ASCII, when the value is empty or longer than max_value_size, or when the
  // same field is already present under any spelling; nothing changes then.
  Result<void> add(std::string_view name, SecretString value);
  Result<void> add(std::string_view name, SecretString value, const ExchangeCatalog& catalog);
  // Room for `n` fields without reallocating: a set built field by field
  // then takes exactly the memory it needs.
  void reserve(std::size_t n) { fields_.reserve(n); }

  // The value stored under canonical key `key`, or nullptr.
  const SecretString* find(std::string_view key) const noexcept;
  bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }
  // Removes the field; returns whether it was there.
  bool erase(std::string_view key);

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  const_iterator begin() const noexcept { return fields_.begin(); }
  const_iterator end() const noexcept { return fields_.end(); }
  // Canonical keys in order.
  std::vector<std::string> field_names() const;

  // Checks that every field `exchange` requires is present and that every
  // present field is one it accepts. Returns `validation_failed` naming all
  // missing and all unknown fields.
  Result<void> validate(const ExchangeInfo& exchange) const;

  // Same keys and equal values (values compared in constant time).
  friend bool operator==(const Credentials& a, const Credentials& b) noexcept {
    return a.fields_ == b.fields_;
  }

 private:
  Fields fields_;
};

// Prints the field names with redacted values: {apiKey: [redacted], secret: [redacted]}.
KEYFOLIO_EXPORT std::ostream& operator<<(std::ostream& os, const Credentials& credentials);

}  // namespace keyfolio
