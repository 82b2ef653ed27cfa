// keyfolio/exchange_catalog.hpp: which exchanges exist and which credentials
// each one needs.
//
// The built-in catalog holds every exchange of the CCXT library with exactly
// the credential fields CCXT requires for it (`requiredCredentials`), plus
// display names, logos and the aliases other ecosystems use: CoinAPI EMS's
// upper-case exchange ids (`OKEX` -> `okx`, `HUOBI` -> `htx`) and field names
// (`PublicApiKey` -> `apiKey`, `PrivateApiKey`/`apiSecret` -> `secret`,
// `PassPhrase`/`passphrase` -> `password`). Exchange ids, exchange aliases,
// field keys and field aliases all match case-insensitively.
//
// Hosts extend a copy of the built-in catalog with `add`, or load a whole
// catalog from JSON with `from_json` (format below).
//
// Thread safety: const member functions may be called concurrently; `add`
// needs exclusive access. `builtin()` is immutable and safe everywhere.
//
// Catalog JSON (the format of src/catalog/exchanges.json):
//   {
//     "format": 1,                       optional; 1 is the only format
//     "source": "ccxt 4.5.84",           optional; where the data came from
//     "fields": [                        optional; default: the built-in fields
//       {"key": "apiKey", "name": "API Key", "secret": true, "aliases": ["PublicApiKey"]}
//     ],
//     "exchanges": [
//       {"id": "binance", "name": "Binance", "required": ["apiKey", "secret"],
//        "optional": [], "aliases": ["BINANCEX"], "icon": "https://..."}
//     ]
//   }
// Only "id" is required in an exchange; "name" defaults to the id. Field names
// in "required"/"optional" may be aliases. Unknown members are rejected, so a
// misspelt "requierd" is an error rather than an exchange that needs nothing.
// A member given twice in one object counts once, with its last value (as
// Boost.JSON parses it).
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio {

// A kind of credential, such as an API key or a passphrase.
struct CredentialField {
  std::string key{};                   // canonical key, CCXT's spelling: "apiKey"
  std::string name{};                  // for people: "API Key"
  bool secret = true;                // hidden when shown (a wallet address is not)
  std::vector<std::string> aliases{};  // other spellings that mean this field
};

// One exchange and the credentials an account on it needs.
struct KEYFOLIO_EXPORT ExchangeInfo {
  std::string id{};                     // canonical id, CCXT's spelling: "okx"
  std::string name{};                   // for people: "OKX"
  std::vector<std::string> required{};  // canonical field keys, all needed
  std::vector<std::string> optional{};  // canonical field keys also accepted
  std::vector<std::string> aliases{};   // other ids that mean this exchange
  std::string icon{};                   // logo URL, may be empty

  bool requires_field(std::string_view key) const noexcept;
  // Required or optional.
  bool accepts_field(std::string_view key) const noexcept;
  // The field that tells one account on this exchange from another: the
  // first required of apiKey, walletAddress, accountId, uid, login,
  // privateKey, token, secret; empty when nothing is required.
  std::string_view identifying_field() const noexcept;
};

class KEYFOLIO_EXPORT ExchangeCatalog {
 public:
  // Longest exchange id or alias accepted (bytes).
  static constexpr std::size_t max_id_length = 64;
  // Longest credential field key or alias accepted (bytes).
  static constexpr std::size_t max_field_key_length = 64;

  // The catalog compiled into the library; built on first use.
  static const ExchangeCatalog& builtin();

  // Parses a catalog in the JSON format above. A malformed document returns
  // `invalid_argument` with the position or the path of the offending member.
  static Result<ExchangeCatalog> from_json(std::string_view json);

  // No exchanges; the built-in credential fields.
  ExchangeCatalog();
  ExchangeCatalog(const ExchangeCatalog& other);
  ExchangeCatalog& operator=(const ExchangeCatalog& other);
  // A moved-from catalog may only be assigned to or destroyed.
  ExchangeCatalog(ExchangeCatalog&&) noexcept;
  ExchangeCatalog& operator=(ExchangeCatalog&&) noexcept;
  ~ExchangeCatalog();

  // The characters that end an exchange id in an account id (CoinAPI EMS's
  // separators; see AccountId): no exchange id or alias contains one.
  static constexpr std::string_view id_separators = "~/.,:;!@#$%^&*-_+=";

  // Registers an exchange. Its id and aliases must be non-empty printable
  // ASCII without id_separators or whitespace, at most
  // max_id_length bytes; field names are canonicalized through the field
  // aliases. Returns `invalid_argument` for a malformed entry or an unknown
  // field, `conflict` when the id or an alias is already taken
  // (case-insensitively); the catalog is unchanged on error.
  Result<void> add(ExchangeInfo info);

  // The exchange whose id or alias equals `id_or_alias` case-insensitively,
  // or nullptr. The pointer is valid until the catalog is next modified.
  const ExchangeInfo* find(std::string_view id_or_alias) const;

  // The field whose key or alias equals `key_or_alias` case-insensitively,
  // or nullptr.
  const CredentialField* find_field(std::string_view key_or_alias) const;

  // All exchanges, in the order they were added (the built-in catalog: by id).
  std::span<const ExchangeInfo> exchanges() const noexcept;
  std::span<const CredentialField> fields() const noexcept;

  // Where the data came from, e.g. "ccxt 4.5.84"; may be empty.
  const std::string& source() const noexcept;

  // Exchange ids within a small edit distance of `id`, closest first, for
  // "did you mean" hints.
  std::vector<std::string> suggest(std::string_view id, std::size_t limit = 3) const;

 private:
  struct Impl;
  explicit ExchangeCatalog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keyfolio
