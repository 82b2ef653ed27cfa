#include "crypto/vault.hpp"

#include <boost/json.hpp>

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace keyfolio::detail {
namespace {

constexpr std::string_view record_magic = "KF1";
constexpr std::string_view headed_magic = "KF2";
constexpr std::string_view keyring_ad_label = "keyfolio keyring v1";
constexpr std::string_view check_label = "keyfolio key check v1";
constexpr char kdf_context[crypto_kdf_CONTEXTBYTES] = {'k', 'e', 'y', 'f', 'o', 'l', 'i', 'o'};
constexpr std::uint64_t record_subkey = 1;
constexpr std::uint64_t fingerprint_subkey = 2;

const unsigned char* bytes(std::string_view s) noexcept { return reinterpret_cast<const unsigned char*>(s.data()); }

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

std::string to_hex(std::string_view data) {
  std::string out(data.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes(data), data.size());
  out.pop_back();
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  std::string out(hex.size() / 2, '\0');
  std::size_t n = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(), hex.size(), nullptr, &n,
                     &end) != 0 ||
      end != hex.data() + hex.size()) {
    return std::nullopt;
  }
  out.resize(n);
  return out;
}

void append_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void append_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The associated data of a record; `extra` bytes are reserved for what
// headed_ad() appends, so that building it takes one allocation.
std::string record_ad(const std::string& store_id, std::string_view collection, std::string_view key,
                      std::uint64_t version, std::size_t extra = 0) {
  static constexpr std::string_view label = "keyfolio record v1";
  std::string ad;
  ad.reserve(label.size() + store_id.size() + 4 + collection.size() + 4 + key.size() + 8 + extra);
  ad += label;
  ad += store_id;
  append_u32(ad, static_cast<std::uint32_t>(collection.size()));
  ad += collection;
  append_u32(ad, static_cast<std::uint32_t>(key.size()));
  ad += key;
  append_u64(ad, version);
  return ad;
}

SecretString subkey(const SecretString& data_key, std::uint64_t id) {
  SecureBuffer out(crypto_kdf_KEYBYTES);
  crypto_kdf_derive_from_key(out.bytes(), out.size(), id, kdf_context, bytes(data_key.reveal()));
  return SecretString(out.view());
}

// Proof of the key-encryption key that reveals nothing about it.
std::string key_check(const SecretString& kek, const std::string& store_id) {
  std::string message(check_label);
  message += store_id;
  std::string out(32, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), bytes(message), message.size(),
                     bytes(kek.reveal()), kek.size());
  return out;
}

const char* kind_name(KeySource::Kind kind) {
  switch (kind) {
    case KeySource::Kind::passphrase: return "passphrase";
    case KeySource::Kind::raw_key: return "raw_key";
    case KeySource::Kind::key_file: return "key_file";
  }
  return "unknown";
}

Error damaged(const std::string& why) {
  return Error(errc::corrupt_data, "the store's keyring record is damaged: " + why);
}

}  // namespace

Vault Vault::generate() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialize");
  SecureBuffer key(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  crypto_aead_xchacha20poly1305_ietf_keygen(key.bytes());
  return Vault(random_bytes(store_id_size), SecretString(key.view()));
}

Vault::Vault(std::string store_id, SecretString data_key)
    : store_id_(std::move(store_id)),
      data_key_(std::move(data_key)),
      record_key_(subkey(data_key_, record_subkey)),
      fingerprint_key_(subkey(data_key_, fingerprint_subkey)) {}

std::string Vault::store_id_hex() const { return to_hex(store_id_); }

namespace {

// Where a record's parts lie.
struct Layout {
  std::string_view header;
  bool headed = false;
  std::string_view nonce;
  std::string_view cipher;
};

std::optional<Layout> layout_of(std::string_view sealed) {
  Layout l;
  std::size_t at = record_magic.size();
  if (sealed.substr(0, headed_magic.size()) == headed_magic) {
    if (sealed.size() < at + 1) return std::nullopt;
    const std::size_t length = static_cast<unsigned char>(sealed[at]);
    at += 1;
    if (sealed.size() < at + length) return std::nullopt;
    l.header = sealed.substr(at, length);
    l.headed = true;
    at += length;
  } else if (sealed.substr(0, record_magic.size()) != record_magic) {
    return std::nullopt;
  }
  if (sealed.size() < at + nonce_size + crypto_aead_xchacha20poly1305_ietf_ABYTES) return std::nullopt;
  l.nonce = sealed.substr(at, nonce_size);
  l.cipher = sealed.substr(at + nonce_size);
  return l;
}

constexpr std::string_view header_label = "header";

// The room headed_ad() needs beyond record_ad().
std::size_t header_ad_size(const Layout& l) { return l.headed ? header_label.size() + 4 + l.header.size() : 0; }

std::string headed_ad(std::string ad, const Layout& l) {
  if (!l.headed) return ad;
  ad += header_label;
  append_u32(ad, static_cast<std::uint32_t>(l.header.size()));
  ad += l.header;
  return ad;
}

}  // namespace

std::string Vault::seal(std::string_view collection, std::string_view key, std::uint64_t version,
                        std::string_view plaintext, std::string_view header) const {
  const bool headed = !header.empty();
  if (header.size() > 255) throw std::length_error("a record header is at most 255 bytes");
  const std::string_view magic = headed ? headed_magic : record_magic;
  std::string out;
  out.reserve(magic.size() + (headed ? 1 + header.size() : 0) + nonce_size + plaintext.size() +
              crypto_aead_xchacha20poly1305_ietf_ABYTES);
  out += magic;
  if (headed) {
    out.push_back(static_cast<char>(header.size()));
    out += header;
  }
  const std::size_t nonce_at = out.size();
  out.resize(nonce_at + nonce_size + plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  auto* nonce = reinterpret_cast<unsigned char*>(out.data() + nonce_at);
  randombytes_buf(nonce, nonce_size);
  Layout l;
  l.header = header;
  l.headed = headed;
  const std::string ad = headed_ad(record_ad(store_id_, collection, key, version, header_ad_size(l)), l);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + nonce_size, &written, bytes(plaintext), plaintext.size(),
                                             bytes(ad), ad.size(), nullptr, nonce, bytes(record_key_.reveal()));
  return out;
}

std::optional<SecureBuffer> Vault::open(std::string_view collection, std::string_view key, std::uint64_t version,
                                        std::string_view sealed) const {
  const auto l = layout_of(sealed);
  if (!l) return std::nullopt;
  const std::string ad = headed_ad(record_ad(store_id_, collection, key, version, header_ad_size(*l)), *l);
  SecureBuffer plain(l->cipher.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES + 1);
  unsigned long long plain_size = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.bytes(), &plain_size, nullptr, bytes(l->cipher),
                                                 l->cipher.size(), bytes(ad), ad.size(), bytes(l->nonce),
                                                 bytes(record_key_.reveal())) != 0) {
    return std::nullopt;
  }
  plain.shrink(plain_size);
  return plain;
}

std::string_view Vault::nonce_of(std::string_view sealed) noexcept {
  const auto l = layout_of(sealed);
  return l ? l->nonce : std::string_view();
}

std::optional<std::string_view> Vault::header_of(std::string_view sealed) noexcept {
  const auto l = layout_of(sealed);
  if (!l || !l->headed) return std::nullopt;
  return l->header;
}

Vault::FingerprintBytes Vault::fingerprint_bytes(std::string_view data) const {
  FingerprintBytes out{};
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), bytes(data), data.size(),
                     bytes(fingerprint_key_.reveal()), fingerprint_key_.size());
  return out;
}

std::string Vault::fingerprint(std::string_view data) const {
  const auto raw = fingerprint_bytes(data);
  return to_hex({raw.data(), raw.size()});
}

Result<std::string> Vault::keyring_record(const KeySource& source) const {
  boost::json::object record;
  record["format"] = 1;
  record["store_id"] = to_hex(store_id_);
  boost::json::object kek;
  kek["kind"] = kind_name(source.kind());
  std::string salt;
  if (source.kind() == KeySource::Kind::passphrase) {
    salt = random_bytes(crypto_pwhash_argon2id_SALTBYTES);
    kek["kdf"] = "argon2id13";
    kek["salt"] = to_hex(salt);
    kek["ops"] = source.cost().ops;
    kek["memory"] = source.cost().memory_bytes;
  }
  auto key = source.derive(salt, source.cost());
  if (!key) return key.error();
  kek["check"] = to_hex(key_check(*key, store_id_));
  record["kek"] = std::move(kek);

  std::string ad(keyring_ad_label);
  ad += store_id_;
  std::string wrapped(nonce_size + data_key_.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(wrapped.data());
  randombytes_buf(nonce, nonce_size);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + nonce_size, &written, bytes(data_key_.reveal()),
                                             data_key_.size(), bytes(ad), ad.size(), nullptr, nonce,
                                             bytes(key->reveal()));
  record["wrapped_key"] = to_hex(wrapped);
  return boost::json::serialize(record);
}

Result<Vault> Vault::open_keyring(std::string_view text, const KeySource& source) {
  boost::system::error_code ec;
  const auto document = boost::json::parse(text, ec);
  if (ec) return damaged("not JSON (" + ec.message() + ")");
  const auto* record = document.if_object();
  if (record == nullptr) return damaged("not a JSON object");
  const auto string_at = [](const boost::json::object& o, std::string_view name) -> std::optional<std::string> {
    const auto* v = o.if_contains(name);
    if (v == nullptr || !v->is_string()) return std::nullopt;
    return std::string(v->get_string());
  };
  const auto* format = record->if_contains("format");
  if (format == nullptr || !format->is_int64() || format->get_int64() != 1) {
    return Error(errc::not_supported, "the store's keyring has a format this version of keyfolio cannot read");
  }
  const auto store_hex = string_at(*record, "store_id");
  const auto store_id = store_hex ? from_hex(*store_hex) : std::nullopt;
  if (!store_id || store_id->size() != store_id_size) return damaged("bad store_id");
  const auto* kek_value = record->if_contains("kek");
  if (kek_value == nullptr || !kek_value->is_object()) return damaged("missing kek");
  const auto& kek = kek_value->get_object();
  const auto kind = string_at(kek, "kind");
  if (!kind) return damaged("missing kek.kind");
  if (*kind != kind_name(source.kind())) {
    return Error(errc::wrong_key, "this store is protected by a " +
                                      std::string(*kind == "raw_key"    ? "raw key"
                                                  : *kind == "key_file" ? "key file"
                                                                        : *kind == "passphrase" ? "passphrase"
                                                                                                : "different key") +
                                      ", not by a " + source.describe());
  }
  std::string salt;
  KdfCost cost;
  if (source.kind() == KeySource::Kind::passphrase) {
    const auto salt_hex = string_at(kek, "salt");
    const auto decoded = salt_hex ? from_hex(*salt_hex) : std::nullopt;
    const auto* ops = kek.if_contains("ops");
    const auto* memory = kek.if_contains("memory");
    if (!decoded || ops == nullptr || memory == nullptr || !ops->is_number() || !memory->is_number()) {
      return damaged("bad passphrase parameters");
    }
    salt = *decoded;
    boost::system::error_code number_ec;
    cost.ops = ops->to_number<std::uint64_t>(number_ec);
    if (number_ec) return damaged("bad passphrase cost");
    cost.memory_bytes = memory->to_number<std::size_t>(number_ec);
    if (number_ec) return damaged("bad passphrase cost");
  }
  auto key = source.derive(salt, cost);
  if (!key) return key.error();

  const auto check_hex = string_at(kek, "check");
  const auto check = check_hex ? from_hex(*check_hex) : std::nullopt;
  if (!check || check->size() != 32) return damaged("bad key check");
  const std::string expected = key_check(*key, *store_id);
  if (sodium_memcmp(check->data(), expected.data(), expected.size()) != 0) {
    return Error(errc::wrong_key, "the " + source.describe() + " does not open this store");
  }

  const auto wrapped_hex = string_at(*record, "wrapped_key");
  const auto wrapped = wrapped_hex ? from_hex(*wrapped_hex) : std::nullopt;
  constexpr std::size_t wrapped_size =
      nonce_size + crypto_aead_xchacha20poly1305_ietf_KEYBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (!wrapped || wrapped->size() != wrapped_size) return damaged("bad wrapped key");
  std::string ad(keyring_ad_label);
  ad += *store_id;
  SecureBuffer data_key(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  unsigned long long n = 0;
  const auto* nonce = bytes(*wrapped);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(data_key.bytes(), &n, nullptr, nonce + nonce_size,
                                                 wrapped->size() - nonce_size, bytes(ad), ad.size(), nonce,
                                                 bytes(key->reveal())) != 0) {
    return damaged("the wrapped data key does not authenticate");
  }
  return Vault(*store_id, SecretString(data_key.view()));
}

}  // namespace keyfolio::detail
