#include "crypto/vault.hpp"

#include <array>
#include <cstring>

#include "crypto/aead.hpp"
#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"
#include "crypto/kdf.hpp"
#include "crypto/random.hpp"

#include <boost/json.hpp>

#include <stdexcept>

namespace keyfolio::detail {
namespace {

constexpr std::string_view record_magic = "KF1";
constexpr std::string_view headed_magic = "KF2";
constexpr std::string_view keyring_ad_label = "keyfolio keyring v1";
constexpr std::string_view check_label = "keyfolio key check v1";
constexpr std::string_view kdf_context = "keyfolio";
constexpr std::uint64_t record_subkey = 1;
constexpr std::uint64_t fingerprint_subkey = 2;
constexpr std::uint64_t digest_subkey = 3;
// What a keyring that says its store keeps an integrity record adds to the
// associated data of its wrapped key, and so cannot lose unnoticed.
constexpr std::string_view integrity_marker = "integrity";

using crypto::AssociatedData;
using crypto::from_hex;
using crypto::random_bytes;
using crypto::to_hex;

constexpr std::string_view record_label = "keyfolio record v1";
constexpr std::string_view header_label = "header";

// The associated data of a record: its store, collection, key and version,
// and (for a "KF2" record) its header.
AssociatedData record_ad(const std::string& store_id, std::string_view collection, std::string_view key,
                         std::uint64_t version, std::optional<std::string_view> header) {
  AssociatedData ad(record_label, store_id.size() + 4 + collection.size() + 4 + key.size() + 8 +
                                      (header ? header_label.size() + 4 + header->size() : 0));
  ad.bytes(store_id).sized(collection).sized(key).u64(version);
  if (header) ad.bytes(header_label).sized(*header);
  return ad;
}

AssociatedData keyring_ad(std::string_view store_id, bool integrity) {
  AssociatedData ad(keyring_ad_label);
  ad.bytes(store_id);
  if (integrity) ad.bytes(integrity_marker);
  return ad;
}

// The wrapped data key: a nonce, then the key sealed under `kek`.
std::string wrap(const SecretString& kek, const SecretString& data_key, std::string_view store_id, bool integrity) {
  std::string wrapped(nonce_size + data_key.size() + crypto::aead_tag_size, '\0');
  crypto::fill_random(wrapped.data(), nonce_size);
  crypto::aead_encrypt(kek, std::string_view(wrapped.data(), nonce_size), data_key.reveal(),
                       keyring_ad(store_id, integrity).view(), wrapped.data() + nonce_size);
  return wrapped;
}

// A checksum of how the key-encryption key is derived (the kek object's
// kind, KDF, salt and cost) and of the store id, so that a changed cost or
// salt reads as damage rather than as a wrong passphrase. Unkeyed: it tells
// damage from a wrong key, it does not stop someone who rewrites the
// keyring (who can replace it whole anyway).
std::string parameters_checksum(std::string_view store_id, const boost::json::object& kek) {
  std::string message = "keyfolio kek parameters v1";
  const auto add = [&](std::string_view part) {
    const auto size = static_cast<std::uint32_t>(part.size());
    for (int i = 0; i < 4; ++i) message.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
    message.append(part);
  };
  add(store_id);
  for (const char* name : {"kind", "kdf", "salt", "ops", "memory"}) {
    const auto* v = kek.if_contains(name);
    add(v == nullptr ? std::string_view("-") : std::string_view(boost::json::serialize(*v)));
  }
  std::string out(16, '\0');
  crypto::keyed_hash(SecretString(), message, out.data(), out.size());
  return to_hex(out);
}

// Proof of the key-encryption key that reveals nothing about it.
std::string key_check(const SecretString& kek, const std::string& store_id) {
  std::string message(check_label);
  message += store_id;
  std::string out(32, '\0');
  crypto::keyed_hash(kek, message, out.data(), out.size());
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
  crypto::initialize();
  std::string store_id = random_bytes(store_id_size);
  return Vault(std::move(store_id), crypto::aead_keygen());
}

Vault::Vault(std::string store_id, SecretString data_key)
    : store_id_(std::move(store_id)),
      data_key_(std::move(data_key)),
      record_key_(crypto::derive_subkey(data_key_, record_subkey, kdf_context)),
      fingerprint_key_(crypto::derive_subkey(data_key_, fingerprint_subkey, kdf_context)),
      digest_key_(crypto::derive_subkey(data_key_, digest_subkey, kdf_context, crypto::short_hash_key_size)) {}

std::string Vault::store_id_hex() const { return to_hex(store_id_); }

namespace {

// Where a record's parts lie.
struct Layout {
  std::optional<std::string_view> header;  // a "KF2" record's
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
    at += length;
  } else if (sealed.substr(0, record_magic.size()) != record_magic) {
    return std::nullopt;
  }
  if (sealed.size() < at + nonce_size + crypto::aead_tag_size) return std::nullopt;
  l.nonce = sealed.substr(at, nonce_size);
  l.cipher = sealed.substr(at + nonce_size);
  return l;
}

}  // namespace

std::string Vault::seal(std::string_view collection, std::string_view key, std::uint64_t version,
                        std::string_view plaintext, std::string_view header) const {
  const bool headed = !header.empty();
  if (header.size() > 255) throw std::length_error("a record header is at most 255 bytes");
  const std::string_view magic = headed ? headed_magic : record_magic;
  std::string out;
  out.reserve(magic.size() + (headed ? 1 + header.size() : 0) + nonce_size + plaintext.size() +
              crypto::aead_tag_size);
  out += magic;
  if (headed) {
    out.push_back(static_cast<char>(header.size()));
    out += header;
  }
  const std::size_t nonce_at = out.size();
  out.resize(nonce_at + nonce_size + plaintext.size() + crypto::aead_tag_size);
  crypto::fill_random(out.data() + nonce_at, nonce_size);
  const auto ad = record_ad(store_id_, collection, key, version,
                            headed ? std::optional<std::string_view>(header) : std::nullopt);
  crypto::aead_encrypt(record_key_, std::string_view(out.data() + nonce_at, nonce_size), plaintext, ad.view(),
                       out.data() + nonce_at + nonce_size);
  return out;
}

std::optional<SecureBuffer> Vault::open(std::string_view collection, std::string_view key, std::uint64_t version,
                                        std::string_view sealed) const {
  const auto l = layout_of(sealed);
  if (!l) return std::nullopt;
  const auto ad = record_ad(store_id_, collection, key, version, l->header);
  return crypto::aead_decrypt(record_key_, l->nonce, l->cipher, ad.view());
}

std::string_view Vault::nonce_of(std::string_view sealed) noexcept {
  const auto l = layout_of(sealed);
  return l ? l->nonce : std::string_view();
}

std::optional<std::string_view> Vault::header_of(std::string_view sealed) noexcept {
  const auto l = layout_of(sealed);
  if (!l) return std::nullopt;
  return l->header;
}

Vault::FingerprintBytes Vault::fingerprint_bytes(std::string_view data) const {
  FingerprintBytes out{};
  crypto::keyed_hash(fingerprint_key_, data, out.data(), out.size());
  return out;
}

Vault::Digest Vault::record_digest(std::string_view collection, std::string_view key, std::uint64_t version,
                                   std::string_view sealed) const {
  // The nonce and the tag pin the ciphertext: no other ciphertext opens
  // with both. A malformed record is pinned by all of its bytes.
  const auto l = layout_of(sealed);
  const std::string_view pin =
      l ? std::string_view(l->nonce.data(), nonce_size) : sealed;
  const std::string_view tag = l ? sealed.substr(sealed.size() - crypto::aead_tag_size) : std::string_view();
  // u32-sized collection, key, pin and tag, u64 version and size: on the
  // stack for the records keyfolio writes.
  const std::size_t length = 4 * 4 + 2 * 8 + collection.size() + key.size() + pin.size() + tag.size();
  std::array<char, 512> stack;
  std::string heap;
  char* at = stack.data();
  if (length > stack.size()) {
    heap.resize(length);
    at = heap.data();
  }
  char* const begin = at;
  const auto put_u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) *at++ = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  const auto put_u64 = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) *at++ = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  const auto put_sized = [&](std::string_view bytes) {
    put_u32(static_cast<std::uint32_t>(bytes.size()));
    if (!bytes.empty()) std::memcpy(at, bytes.data(), bytes.size());
    at += bytes.size();
  };
  put_sized(collection);
  put_sized(key);
  put_u64(version);
  put_u64(sealed.size());
  put_sized(pin);
  put_sized(tag);
  Digest out{};
  crypto::short_keyed_hash(digest_key_, std::string_view(begin, static_cast<std::size_t>(at - begin)), out.data());
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
    salt = random_bytes(crypto::argon2id_salt_size);
    kek["kdf"] = "argon2id13";
    kek["salt"] = to_hex(salt);
    kek["ops"] = source.cost().ops;
    kek["memory"] = source.cost().memory_bytes;
  }
  auto key = source.derive(salt, source.cost());
  if (!key) return key.error();
  kek["check"] = to_hex(key_check(*key, store_id_));
  kek["parameters_check"] = parameters_checksum(store_id_, kek);
  record["kek"] = std::move(kek);
  record["integrity"] = 1;
  record["wrapped_key"] = to_hex(wrap(*key, data_key_, store_id_, true));
  return boost::json::serialize(record);
}

namespace {

std::optional<std::string> string_at(const boost::json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

std::string kind_description(std::string_view kind) {
  if (kind == "raw_key") return "raw key";
  if (kind == "key_file") return "key file";
  if (kind == "passphrase") return "passphrase";
  return "different key";
}

struct PassphraseParameters {
  std::string salt;
  KdfCost cost;
};

// The salt and cost of a passphrase keyring's `kek` object.
Result<PassphraseParameters> passphrase_parameters(const boost::json::object& kek) {
  const auto salt_hex = string_at(kek, "salt");
  const auto decoded = salt_hex ? from_hex(*salt_hex) : std::nullopt;
  const auto* ops = kek.if_contains("ops");
  const auto* memory = kek.if_contains("memory");
  if (!decoded || ops == nullptr || memory == nullptr || !ops->is_number() || !memory->is_number()) {
    return damaged("bad passphrase parameters");
  }
  if (decoded->size() != crypto::argon2id_salt_size) return damaged("bad passphrase salt");
  PassphraseParameters out{*decoded, {}};
  boost::system::error_code ec;
  out.cost.ops = ops->to_number<std::uint64_t>(ec);
  if (ec) return damaged("bad passphrase cost");
  out.cost.memory_bytes = memory->to_number<std::size_t>(ec);
  if (ec) return damaged("bad passphrase cost");
  // Checked before deriving: a cost raised in the record would otherwise
  // make opening run for hours, or take all memory.
  const KdfCost least = crypto::argon2id_minimum();
  const KdfCost most = crypto::argon2id_sensitive();
  if (out.cost.ops < least.ops || out.cost.memory_bytes < least.memory_bytes || out.cost.ops > most.ops ||
      out.cost.memory_bytes > most.memory_bytes) {
    return damaged("its Argon2id cost (ops " + std::to_string(out.cost.ops) + ", memory " +
                   std::to_string(out.cost.memory_bytes) +
                   " bytes) lies outside what keyfolio accepts (at most the sensitive preset)");
  }
  return out;
}

}  // namespace

std::optional<std::string> Vault::keyring_store_id(std::string_view text) {
  boost::system::error_code ec;
  const auto document = boost::json::parse(text, ec);
  if (ec || !document.is_object()) return std::nullopt;
  return string_at(document.get_object(), "store_id");
}

Result<Vault::Opened> Vault::open_keyring(std::string_view text, const KeySource& source) {
  boost::system::error_code ec;
  const auto document = boost::json::parse(text, ec);
  if (ec) return damaged("not JSON (" + ec.message() + ")");
  const auto* record = document.if_object();
  if (record == nullptr) return damaged("not a JSON object");
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
    return Error(errc::wrong_key,
                 "this store is protected by a " + kind_description(*kind) + ", not by a " + source.describe());
  }
  PassphraseParameters parameters;
  if (source.kind() == KeySource::Kind::passphrase) {
    auto read = passphrase_parameters(kek);
    if (!read) return read.error();
    parameters = std::move(*read);
  }
  // Required of a keyring that says its store keeps an integrity record;
  // older keyrings have none.
  const bool marked = record->contains("integrity");
  if (const auto* sum = kek.if_contains("parameters_check"); sum != nullptr || marked) {
    if (sum == nullptr || !sum->is_string() ||
        !crypto::constant_time_equal(sum->get_string(), parameters_checksum(*store_id, kek))) {
      return damaged("its key-derivation parameters do not match their checksum (changed or damaged)");
    }
  }
  auto key = source.derive(parameters.salt, parameters.cost);
  if (!key) return key.error();

  const auto check_hex = string_at(kek, "check");
  const auto check = check_hex ? from_hex(*check_hex) : std::nullopt;
  if (!check || check->size() != 32) return damaged("bad key check");
  if (!crypto::constant_time_equal(*check, key_check(*key, *store_id))) {
    return Error(errc::wrong_key, "the " + source.describe() + " does not open this store");
  }

  // Absent in a keyring written before stores kept an integrity record;
  // removing it from a newer one makes its wrapped key fail to open.
  const auto* integrity = record->if_contains("integrity");
  if (integrity != nullptr && !(integrity->is_int64() && integrity->get_int64() == 1)) {
    return damaged("bad integrity marker");
  }
  const bool legacy = integrity == nullptr;
  const auto wrapped_hex = string_at(*record, "wrapped_key");
  const auto wrapped = wrapped_hex ? from_hex(*wrapped_hex) : std::nullopt;
  constexpr std::size_t wrapped_size = nonce_size + crypto::aead_key_size + crypto::aead_tag_size;
  if (!wrapped || wrapped->size() != wrapped_size) return damaged("bad wrapped key");
  const std::string_view w(*wrapped);
  auto data_key = crypto::aead_decrypt(*key, w.substr(0, nonce_size), w.substr(nonce_size),
                                       keyring_ad(*store_id, !legacy).view());
  if (!data_key) return damaged("the wrapped data key does not authenticate");
  Opened opened{Vault(*store_id, SecretString(data_key->view())), legacy, {}};
  if (legacy) {
    boost::json::object upgraded = *record;
    upgraded["integrity"] = 1;
    upgraded["kek"].as_object()["parameters_check"] = parameters_checksum(*store_id, kek);
    upgraded["wrapped_key"] = to_hex(wrap(*key, opened.vault.data_key_, *store_id, true));
    opened.upgraded = boost::json::serialize(upgraded);
  }
  return opened;
}

}  // namespace keyfolio::detail
