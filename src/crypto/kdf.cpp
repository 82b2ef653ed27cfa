#include "crypto/kdf.hpp"

#include "memory/secure_arena.hpp"

#include <sodium.h>

#include <cassert>
#include <cstring>

namespace keyfolio::detail::crypto {

static_assert(argon2id_salt_size == crypto_pwhash_argon2id_SALTBYTES);
static_assert(derived_key_size == crypto_kdf_KEYBYTES);

KdfCost argon2id_interactive() noexcept {
  return {crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE, crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE};
}
KdfCost argon2id_moderate() noexcept {
  return {crypto_pwhash_argon2id_OPSLIMIT_MODERATE, crypto_pwhash_argon2id_MEMLIMIT_MODERATE};
}
KdfCost argon2id_sensitive() noexcept {
  return {crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE, crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE};
}
KdfCost argon2id_minimum() noexcept { return {crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN}; }

bool argon2id_accepts(const KdfCost& cost) noexcept {
  return cost.ops >= crypto_pwhash_argon2id_OPSLIMIT_MIN && cost.ops <= crypto_pwhash_argon2id_OPSLIMIT_MAX &&
         cost.memory_bytes >= crypto_pwhash_argon2id_MEMLIMIT_MIN &&
         cost.memory_bytes <= crypto_pwhash_argon2id_MEMLIMIT_MAX;
}

std::optional<SecretString> argon2id(const SecretString& passphrase, std::string_view salt, const KdfCost& cost) {
  assert(salt.size() == argon2id_salt_size && argon2id_accepts(cost));
  SecureBuffer key(derived_key_size);
  if (crypto_pwhash(key.bytes(), key.size(), passphrase.reveal().data(), passphrase.size(),
                    reinterpret_cast<const unsigned char*>(salt.data()), cost.ops, cost.memory_bytes,
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return std::nullopt;
  }
  return SecretString(key.view());
}

SecretString derive_subkey(const SecretString& key, std::uint64_t id, std::string_view context, std::size_t size) {
  assert(context.size() == crypto_kdf_CONTEXTBYTES && key.size() == crypto_kdf_KEYBYTES);
  assert(size >= crypto_kdf_BYTES_MIN && size <= crypto_kdf_BYTES_MAX);
  char ctx[crypto_kdf_CONTEXTBYTES];
  std::memcpy(ctx, context.data(), sizeof ctx);
  SecureBuffer out(size);
  crypto_kdf_derive_from_key(out.bytes(), out.size(), id, ctx,
                             reinterpret_cast<const unsigned char*>(key.reveal().data()));
  return SecretString(out.view());
}

}  // namespace keyfolio::detail::crypto
