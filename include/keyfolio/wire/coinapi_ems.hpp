// keyfolio/wire/coinapi_ems.hpp: the JSON bodies of CoinAPI EMS account
// management (`/v1/accounts`, `/v1/exchanges`), so that a host can serve that
// API from an AccountManager, or import and export accounts in its form.
//
// An account on the wire:
//   {"exchange_id": "BITSTAMP/2574",
//    "parameters": [{"key": "PublicApiKey", "value": "..."},
//                   {"key": "PrivateApiKey", "value": "..."}]}
// Parameter keys map onto canonical credential fields through the catalog's
// aliases (PublicApiKey -> apiKey, PrivateApiKey -> secret, PassPhrase ->
// password, and every other spelling the catalog knows). Output uses the EMS
// names for those three fields and canonical keys for the rest.
//
// Parsing is strict: anything but the shape above is rejected with a message
// that says where and why, and never quotes a value. A request that fails to
// parse or validate stores nothing. Listings are redacted: secret fields are
// shown as `{"key": "PrivateApiKey", "value": null, "redacted": true}`, so a
// redacted listing cannot be imported back by mistake; non-secret fields
// (a wallet address, a user id) are shown. Only `revealed_accounts_body`
// returns secret values, and it returns them in a SecretString.
//
// HTTP statuses follow EMS where it defines them and HTTP usage elsewhere:
//   invalid_exchange_id 400, invalid_argument (malformed or oversized body,
//   wrong types) 400, validation_failed 405, not_found 404, conflict 409,
//   unavailable 503, not_supported 501, anything else 500.
// Error bodies are {"status": 405, "error": "validation_failed",
// "message": "..."}.
//
// Functions taking an AccountManager are as thread-safe as the manager.
#pragma once

#include <keyfolio/account_manager.hpp>
#include <keyfolio/error.hpp>
#include <keyfolio/exchange_catalog.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/secret.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::wire::coinapi_ems {

struct Limits {
  std::size_t max_body_size = std::size_t{1} << 20;  // bytes of one body
  std::size_t max_accounts = 10'000;                 // accounts in one array body
  std::size_t max_parameters = 32;                   // parameters of one account
};

// Parses an add-or-update body: one account object, or an array of them.
// Errors: `invalid_argument` for a body that is not JSON of this shape
// (naming the place), `invalid_exchange_id` for a missing or bad exchange_id,
// `validation_failed` for a bad, empty or repeated parameter. In an array,
// the message names the entry.
KEYFOLIO_EXPORT Result<std::vector<AccountUpdate>> parse_accounts(std::string_view body,
                                                                  const ExchangeCatalog& catalog,
                                                                  const Limits& limits = {});

// Parses `body` and upserts every account it holds in one atomic write; on
// any error nothing is stored.
KEYFOLIO_EXPORT Result<std::vector<UpsertResult>> add_or_update(AccountManager& manager, std::string_view body,
                                                                const Limits& limits = {});

// The GET /v1/accounts array, redacted, ordered by id. With `filter`
// (account ids, as EMS's filter_exchange_id), only those accounts; ids that
// are well-formed but absent are left out, malformed ones are an error.
KEYFOLIO_EXPORT std::string accounts_body(const AccountManager& manager);
KEYFOLIO_EXPORT Result<std::string> accounts_body(const AccountManager& manager,
                                                  std::span<const std::string_view> filter);

// The same array with secret values in clear, for an export the user asked
// for. `corrupt_data` when any listed account fails to authenticate;
// `invalid_argument` when the array would be longer than
// SecretString::max_size (then ask for fewer accounts per call).
KEYFOLIO_EXPORT Result<SecretString> revealed_accounts_body(const AccountManager& manager,
                                                            std::span<const std::string_view> filter = {});

// The GET /v1/exchanges array: [{"exchange_id": "BINANCE",
// "required_parameters": ["PublicApiKey", "PrivateApiKey"]}, ...], exchange
// ids upper-cased as EMS spells them, parameters named as on input.
KEYFOLIO_EXPORT std::string exchanges_body(const ExchangeCatalog& catalog);

// The wire name of canonical field `key`: "PublicApiKey" for "apiKey", ...
KEYFOLIO_EXPORT std::string_view parameter_name(std::string_view key) noexcept;

KEYFOLIO_EXPORT int http_status(errc code) noexcept;
KEYFOLIO_EXPORT std::string error_body(const Error& error);

// A complete response for a host's HTTP server.
struct Response {
  int status = 200;
  std::string body;  // JSON
};

// POST /v1/accounts. 200 with [{"exchange_id", "status": "created" |
// "updated", "version"}] for the accounts stored, in the order given.
KEYFOLIO_EXPORT Response post_accounts(AccountManager& manager, std::string_view body, const Limits& limits = {});
// GET /v1/accounts[?filter_exchange_id=...].
KEYFOLIO_EXPORT Response get_accounts(const AccountManager& manager, std::span<const std::string_view> filter = {});
// DELETE /v1/accounts?exchange_id=...: removes all the ids given, atomically;
// 404 naming the first absent one (and then nothing is removed). 200 with
// {"removed": n}.
KEYFOLIO_EXPORT Response delete_accounts(AccountManager& manager, std::span<const std::string_view> exchange_ids);
// DELETE /v1/accounts/all. 200 with {"removed": n}.
KEYFOLIO_EXPORT Response delete_all_accounts(AccountManager& manager);
// GET /v1/exchanges.
KEYFOLIO_EXPORT Response get_exchanges(const ExchangeCatalog& catalog);

}  // namespace keyfolio::wire::coinapi_ems
