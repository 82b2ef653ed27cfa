// An account's fingerprint: the keyed, non-reversible hash of its
// exchange and identifying credential (the API key, or a wallet's address),
// the same on every handle of one store. It finds an exchange account
// without decrypting any, and is not secret: it is the key of the portfolio
// index and may be printed.
#pragma once

#include "crypto/encoding.hpp"
#include "crypto/vault.hpp"
#include "detail/inline_bytes.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace keyfolio::detail {

// As kept in memory: its 16 bytes, not the 32 hex digits it is written and
// shown as.
class Fingerprint : public InlineBytes<Vault::fingerprint_size> {
 public:
  Fingerprint() = default;
  // From the 32 hex digits; empty when `hex` is not that.
  explicit Fingerprint(std::string_view hex) : InlineBytes(crypto::from_hex(hex).value_or(std::string())) {}
  // As the vault computes it.
  explicit Fingerprint(const Vault::FingerprintBytes& bytes)
      : InlineBytes(std::string_view(bytes.data(), bytes.size())) {}
  // From its 16 bytes as stored in a record header (empty unless 16).
  static Fingerprint from_bytes(std::string_view bytes) {
    Fingerprint f;
    static_cast<InlineBytes&>(f) = InlineBytes(bytes);
    return f;
  }
  // The first 8 bytes: the key of the fingerprint index (keyed hash output,
  // so as good as any hash of the whole).
  std::uint64_t prefix() const noexcept {
    std::uint64_t v = 0;
    if (!empty()) std::memcpy(&v, view().data(), sizeof v);
    return v;
  }
  std::string hex() const { return empty() ? std::string() : crypto::to_hex(view()); }
};

}  // namespace keyfolio::detail
