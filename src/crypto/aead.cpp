#include "crypto/aead.hpp"

#include <sodium.h>

#include <algorithm>

namespace keyfolio::detail::crypto {
namespace {

static_assert(aead_key_size == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(aead_nonce_size == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(aead_tag_size == crypto_aead_xchacha20poly1305_ietf_ABYTES);

const unsigned char* bytes_of(std::string_view s) noexcept { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

SecretString aead_keygen() {
  SecureBuffer key(aead_key_size);
  crypto_aead_xchacha20poly1305_ietf_keygen(key.bytes());
  return SecretString(key.view());
}

void aead_encrypt(const SecretString& key, std::string_view nonce, std::string_view plain, std::string_view ad,
                  char* out) noexcept {
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out), &written, bytes_of(plain),
                                             plain.size(), bytes_of(ad), ad.size(), nullptr, bytes_of(nonce),
                                             bytes_of(key.reveal()));
}

std::optional<SecureBuffer> aead_decrypt(const SecretString& key, std::string_view nonce, std::string_view cipher,
                                         std::string_view ad) {
  if (cipher.size() < aead_tag_size || nonce.size() != aead_nonce_size || key.size() != aead_key_size) {
    return std::nullopt;
  }
  // At least one byte: an empty secure buffer has no memory to write to.
  SecureBuffer plain(std::max<std::size_t>(cipher.size() - aead_tag_size, 1));
  unsigned long long size = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.bytes(), &size, nullptr, bytes_of(cipher), cipher.size(),
                                                 bytes_of(ad), ad.size(), bytes_of(nonce),
                                                 bytes_of(key.reveal())) != 0) {
    return std::nullopt;
  }
  plain.shrink(static_cast<std::size_t>(size));
  return plain;
}

AssociatedData::AssociatedData(std::string_view label, std::size_t reserve) {
  ad_.reserve(label.size() + reserve);
  ad_ += label;
}

AssociatedData& AssociatedData::bytes(std::string_view raw) {
  ad_ += raw;
  return *this;
}

AssociatedData& AssociatedData::byte(char c) {
  ad_.push_back(c);
  return *this;
}

AssociatedData& AssociatedData::u32(std::uint32_t v) {
  for (int i = 0; i < 4; ++i) ad_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return *this;
}

AssociatedData& AssociatedData::u64(std::uint64_t v) {
  for (int i = 0; i < 8; ++i) ad_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return *this;
}

AssociatedData& AssociatedData::sized(std::string_view raw) {
  u32(static_cast<std::uint32_t>(raw.size()));
  return bytes(raw);
}

}  // namespace keyfolio::detail::crypto
