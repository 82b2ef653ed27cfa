// The stored form of an account, above the seal: a clear header that a
// reader may see before decrypting, and a plaintext built in secure memory.
//
// Header (at most 255 bytes; bound into the record's associated data):
//   u8 fingerprint length | fingerprint (16 bytes, or none) | spelling
// Plaintext:
//   u8 format | i64 created ms | i64 updated ms | str spelling |
//   u32 field count | (str key | str value)*    (str = u32 length + bytes,
//   integers little-endian)
// Records written before headers existed have none, and are decrypted to
// learn their fingerprint.
#pragma once

#include <keyfolio/account.hpp>
#include <keyfolio/exchange_catalog.hpp>

#include "accounts/fingerprint.hpp"
#include "memory/secure_arena.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keyfolio::detail::account_record {

struct Header {
  std::string_view fingerprint;  // its bytes, or empty
  std::string_view spelling;
};

// The header of `account`'s record; empty (no header) when it would not fit.
std::string header(const Fingerprint& fingerprint, std::string_view spelling);
// The header of a sealed account record; nullopt when it has none or it is
// malformed. Authenticated only once the record opens.
std::optional<Header> header_of(std::string_view sealed);

// The plaintext of `account` (its id, times and credentials).
SecureBuffer encode(const Account& account);
// The account in `plaintext`, read from storage key `key` at `version`;
// nullopt when it does not parse, its id does not parse under `catalog`, is
// not the one `key` names, or a field is not one `catalog` knows.
std::optional<Account> decode(std::string_view key, std::uint64_t version, std::string_view plaintext,
                              const ExchangeCatalog& catalog);

}  // namespace keyfolio::detail::account_record
