// keyfolio/bundle.hpp: sealed bundles, secret data encrypted for keeping or
// moving outside a store (the `keyfolio export` backup, a host's own
// exports).
//
// A bundle seals a sequence of parts (each a SecretString, so at most
// SecretString::max_size bytes) under a KeySource. It is one line of JSON
// text, safe to keep anywhere:
//   {"keyfolio_bundle": 2, "id": "<base64>", "key": "passphrase", "kdf": "argon2id13",
//    "ops": 3, "memory": 268435456, "salt": "<base64>",
//    "authenticator": {"nonce": "<base64>", "ciphertext": "<base64>"},
//    "parts": [{"nonce": "<base64>", "ciphertext": "<base64>"}, ...]}
// ("kdf", "ops", "memory" and "salt" only for a passphrase; "key" is "key"
// for a raw key or key file, which open each other's bundles). The key is
// Argon2id of the passphrase with a fresh salt at the KeySource's cost, or
// the raw key itself. Everything sealed is XChaCha20-Poly1305 with a fresh
// random nonce. The authenticator, present even when there are no parts,
// seals the number of parts and each part's nonce, in order, with the
// header (its format, the bundle's random 16-byte id, key kind, cost and
// salt) as associated data: it proves the key, so that a wrong one is
// refused whatever the bundle holds, and fixes which parts belong where.
// Each part's associated data binds the header, the number of parts and its
// position, so a part that is altered, dropped, added, reordered or moved
// from another bundle fails to open, whatever the key.
//
// Format 1 (before the authenticator) is still opened when it has at least
// one part, the first of which then proves the key; a format 1 bundle
// without parts would open under any key, and is refused.
//
// Free functions; safe to call concurrently.
#pragma once

#include <keyfolio/error.hpp>
#include <keyfolio/export.hpp>
#include <keyfolio/key_source.hpp>
#include <keyfolio/secret.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio {

// The bundle text. Errors: `invalid_argument` for a passphrase whose cost
// lies outside [KdfCost::minimum_for_tests(), KdfCost::sensitive()] (what
// open_bundle accepts), and those of KeySource::derive (an empty passphrase,
// a bad key file, `unavailable` when Argon2id cannot get its memory).
KEYFOLIO_EXPORT Result<std::string> seal_bundle(std::span<const SecretString> parts, const KeySource& key);

// The parts, in order. `wrong_key` when `key` does not open the bundle (or
// its header was altered: the two cannot be told apart), `invalid_argument`
// when `text` is not a bundle, `not_supported` for a bundle of a later
// format, `corrupt_data` for a bundle whose header is damaged, or whose
// parts, under the right key, were dropped, added, reordered, replaced or
// altered (the message says which part and how), and for a format 1 bundle
// without parts. In a format 1 bundle an altered part is `wrong_key`, as
// before. A passphrase bundle's stored cost is used (the KeySource's cost
// does not matter); a cost beyond what KdfCost::sensitive() asks is refused
// as `corrupt_data`, so that a crafted file cannot make the reader allocate
// without bound.
KEYFOLIO_EXPORT Result<std::vector<SecretString>> open_bundle(std::string_view text, const KeySource& key);

// Whether `text` claims to be a bundle (starts, after white space, with the
// member that names the format). Cheap; does not validate.
KEYFOLIO_EXPORT bool is_bundle(std::string_view text) noexcept;

}  // namespace keyfolio
