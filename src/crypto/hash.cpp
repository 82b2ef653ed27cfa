#include "crypto/hash.hpp"

#include <sodium.h>

namespace keyfolio::detail::crypto {

void keyed_hash(const SecretString& key, std::string_view message, char* out, std::size_t size) noexcept {
  const std::string_view k = key.reveal();
  crypto_generichash(reinterpret_cast<unsigned char*>(out), size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                     reinterpret_cast<const unsigned char*>(k.data()), k.size());
}

void short_keyed_hash(const SecretString& key, std::string_view message, unsigned char* out) noexcept {
  static_assert(short_hash_size == crypto_shorthash_siphashx24_BYTES);
  static_assert(short_hash_key_size == crypto_shorthash_siphashx24_KEYBYTES);
  crypto_shorthash_siphashx24(out, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                              reinterpret_cast<const unsigned char*>(key.reveal().data()));
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;  // no pointers to hand libsodium
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace keyfolio::detail::crypto
