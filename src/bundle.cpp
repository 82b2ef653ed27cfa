#include <keyfolio/bundle.hpp>

#include "crypto/aead.hpp"
#include "crypto/encoding.hpp"
#include "crypto/kdf.hpp"
#include "crypto/random.hpp"
#include "memory/secure_arena.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>

namespace keyfolio {
namespace {

namespace json = boost::json;

constexpr std::int64_t format_version = 1;
constexpr std::string_view format_member = "keyfolio_bundle";
constexpr std::string_view ad_label = "keyfolio bundle v1";
constexpr std::string_view kdf_name = "argon2id13";
constexpr std::size_t salt_size = detail::crypto::argon2id_salt_size;
constexpr std::size_t id_size = 16;
constexpr std::size_t nonce_size = detail::crypto::aead_nonce_size;
constexpr std::size_t tag_size = detail::crypto::aead_tag_size;

using detail::crypto::AssociatedData;
using detail::crypto::from_base64;
using detail::crypto::to_base64;

std::string_view key_name(KeySource::Kind kind) noexcept {
  switch (kind) {
    case KeySource::Kind::passphrase: return "passphrase";
    case KeySource::Kind::raw_key:
    case KeySource::Kind::key_file: return "key";  // the same 32 bytes either way
  }
  return "passphrase";
}

// What every part's associated data starts with: the whole header,
// including the bundle's random id, so that no part opens in another bundle
// even under the same raw key.
AssociatedData header_ad(std::string_view id, std::string_view key_kind, const KdfCost& cost, std::string_view salt,
                         std::size_t count) {
  AssociatedData ad(ad_label);
  ad.byte('\0').bytes(id).bytes(key_kind).byte('\0').u64(cost.ops).u64(cost.memory_bytes).bytes(salt).u64(count);
  return ad;
}

// The Argon2id costs a bundle may carry: what seal accepts, open accepts.
bool acceptable(const KdfCost& cost) {
  const KdfCost most = KdfCost::sensitive();
  const KdfCost least = KdfCost::minimum_for_tests();
  return cost.ops >= least.ops && cost.ops <= most.ops && cost.memory_bytes >= least.memory_bytes &&
         cost.memory_bytes <= most.memory_bytes;
}

AssociatedData part_ad(const AssociatedData& header, std::size_t index) {
  AssociatedData ad = header;
  ad.u64(index);
  return ad;
}

Error damaged(std::string_view what) {
  return Error(errc::corrupt_data, "the bundle is damaged: " + std::string(what));
}

const json::string* string_member(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v != nullptr ? v->if_string() : nullptr;
}

std::optional<std::uint64_t> count_member(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (const auto* u = v->if_uint64()) return *u;
  if (const auto* i = v->if_int64(); i != nullptr && *i >= 0) return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

}  // namespace

Result<std::string> seal_bundle(std::span<const SecretString> parts, const KeySource& key) {
  const std::string_view kind = key_name(key.kind());
  const bool passphrase = key.kind() == KeySource::Kind::passphrase;
  std::string salt;
  KdfCost cost{};
  if (passphrase) {
    salt = detail::crypto::random_bytes(salt_size);
    cost = key.cost();
    if (!acceptable(cost)) {
      return Error(errc::invalid_argument, "a bundle's Argon2id cost must lie between the minimum and the sensitive "
                                           "preset (ops " + std::to_string(cost.ops) + ", memory " +
                                               std::to_string(cost.memory_bytes) + " bytes given)");
    }
  }
  auto derived = key.derive(salt, cost);
  if (!derived) return derived.error();
  const std::string id = detail::crypto::random_bytes(id_size);
  const AssociatedData header = header_ad(id, kind, cost, salt, parts.size());

  json::object out;
  out[format_member] = format_version;
  out["id"] = to_base64(id);
  out["key"] = kind;
  if (passphrase) {
    out["kdf"] = kdf_name;
    out["ops"] = cost.ops;
    out["memory"] = cost.memory_bytes;
    out["salt"] = to_base64(salt);
  }
  json::array sealed;
  sealed.reserve(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string nonce = detail::crypto::random_bytes(nonce_size);
    const std::string_view plain = parts[i].reveal();
    std::string cipher(plain.size() + tag_size, '\0');
    detail::crypto::aead_encrypt(*derived, nonce, plain, part_ad(header, i).view(), cipher.data());
    sealed.push_back(json::object{{"nonce", to_base64(nonce)}, {"ciphertext", to_base64(cipher)}});
  }
  out["parts"] = std::move(sealed);
  return json::serialize(out);
}

Result<std::vector<SecretString>> open_bundle(std::string_view text, const KeySource& key) {
  if (!is_bundle(text)) {
    return Error(errc::invalid_argument, "not a keyfolio bundle (it does not start with {\"keyfolio_bundle\": ...)");
  }
  std::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec) return damaged("it is not valid JSON (" + ec.message() + ")");
  const json::object* o = parsed.if_object();
  if (o == nullptr) return damaged("it is not a JSON object");
  const auto version = count_member(*o, format_member);
  if (!version) return damaged("\"keyfolio_bundle\" is not a format number");
  if (*version != static_cast<std::uint64_t>(format_version)) {
    return Error(errc::not_supported, "the bundle has format " + std::to_string(*version) +
                                          "; this keyfolio reads format " + std::to_string(format_version));
  }
  const json::string* id_text = string_member(*o, "id");
  auto id = id_text != nullptr ? from_base64(*id_text) : std::nullopt;
  if (!id || id->size() != id_size) return damaged("\"id\" is not " + std::to_string(id_size) + " bytes of base64");
  const json::string* kind = string_member(*o, "key");
  if (kind == nullptr) return damaged("\"key\" is missing");
  const std::string_view expected = key_name(key.kind());
  if (*kind != "passphrase" && *kind != "key") return damaged("\"key\" is neither \"passphrase\" nor \"key\"");
  if (*kind != expected) {
    return Error(errc::wrong_key, "the bundle was sealed with a " + std::string(kind->c_str()) +
                                      ", not a " + std::string(expected) + "; open it with one");
  }
  std::string salt;
  KdfCost cost{};
  if (key.kind() == KeySource::Kind::passphrase) {
    const json::string* kdf = string_member(*o, "kdf");
    if (kdf == nullptr || *kdf != kdf_name) return damaged("\"kdf\" is not " + std::string(kdf_name));
    const auto ops = count_member(*o, "ops");
    const auto memory = count_member(*o, "memory");
    if (!ops || !memory) return damaged("\"ops\" and \"memory\" must be whole numbers");
    if (!acceptable(KdfCost{*ops, static_cast<std::size_t>(*memory)})) {
      return damaged("its Argon2id cost (ops " + std::to_string(*ops) + ", memory " + std::to_string(*memory) +
                     " bytes) is outside what keyfolio accepts (at most the sensitive preset)");
    }
    cost = KdfCost{*ops, static_cast<std::size_t>(*memory)};
    const json::string* salt_text = string_member(*o, "salt");
    auto decoded = salt_text != nullptr ? from_base64(*salt_text) : std::nullopt;
    if (!decoded || decoded->size() != salt_size) return damaged("\"salt\" is not " + std::to_string(salt_size) +
                                                                 " bytes of base64");
    salt = std::move(*decoded);
  }
  const json::value* parts_value = o->if_contains("parts");
  const json::array* parts = parts_value != nullptr ? parts_value->if_array() : nullptr;
  if (parts == nullptr) return damaged("\"parts\" is not an array");

  auto derived = key.derive(salt, cost);
  if (!derived) return derived.error();
  const AssociatedData header = header_ad(*id, expected, cost, salt, parts->size());
  std::vector<SecretString> out;
  out.reserve(parts->size());
  for (std::size_t i = 0; i < parts->size(); ++i) {
    const std::string where = "part " + std::to_string(i + 1) + " of " + std::to_string(parts->size());
    const json::object* part = (*parts)[i].if_object();
    const json::string* nonce_text = part != nullptr ? string_member(*part, "nonce") : nullptr;
    const json::string* cipher_text = part != nullptr ? string_member(*part, "ciphertext") : nullptr;
    if (nonce_text == nullptr || cipher_text == nullptr) return damaged(where + " lacks a nonce or ciphertext");
    auto nonce = from_base64(*nonce_text);
    auto cipher = from_base64(*cipher_text);
    if (!nonce || nonce->size() != nonce_size || !cipher || cipher->size() < tag_size ||
        cipher->size() - tag_size > SecretString::max_size) {
      return damaged(where + " has a malformed nonce or ciphertext");
    }
    auto plain = detail::crypto::aead_decrypt(*derived, *nonce, *cipher, part_ad(header, i).view());
    if (!plain) {
      return Error(errc::wrong_key, "the bundle does not open with this " + std::string(expected) + " (" + where +
                                        " fails to authenticate: a wrong key, or the file was altered)");
    }
    out.emplace_back(plain->view());
  }
  return out;
}

bool is_bundle(std::string_view text) noexcept {
  auto skip = [&] {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\n' ||
                             text.front() == '\r')) {
      text.remove_prefix(1);
    }
  };
  skip();
  if (text.empty() || text.front() != '{') return false;
  text.remove_prefix(1);
  skip();
  return text.starts_with("\"keyfolio_bundle\"");
}

}  // namespace keyfolio
