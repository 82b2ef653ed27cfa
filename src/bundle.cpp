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

// Format 2 adds the authenticator; format 1 is still read (see open_bundle).
constexpr std::int64_t format_version = 2;
constexpr std::string_view format_member = "keyfolio_bundle";
constexpr std::string_view part_label_v1 = "keyfolio bundle v1";
constexpr std::string_view part_label = "keyfolio bundle v2";
constexpr std::string_view authenticator_label = "keyfolio bundle v2 authenticator";
constexpr std::string_view listing_label = "keyfolio bundle v2 parts";
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

// The whole header, including the bundle's random id, so that nothing
// sealed in one bundle opens in another even under the same raw key.
AssociatedData header_ad(std::string_view label, std::string_view id, std::string_view key_kind, const KdfCost& cost,
                         std::string_view salt) {
  AssociatedData ad(label);
  ad.byte('\0').bytes(id).bytes(key_kind).byte('\0').u64(cost.ops).u64(cost.memory_bytes).bytes(salt);
  return ad;
}

// A part's: the header, the number of parts and the part's position.
AssociatedData part_ad(AssociatedData ad, std::size_t count, std::size_t index) {
  ad.u64(count).u64(index);
  return ad;
}

// What the authenticator seals: how many parts there are and each one's
// nonce, in order. Under the header's associated data it proves the key and
// the header even when there are no parts, and lets a reader that holds the
// right key say which part is missing, extra or out of place instead of
// failing them all alike. Encoded the way AssociatedData encodes fields.
std::string listing(const std::vector<std::string>& nonces) {
  AssociatedData out(listing_label, listing_label.size() + 8 + nonces.size() * nonce_size);
  out.u64(nonces.size());
  for (const auto& n : nonces) out.bytes(n);
  return std::string(out.view());
}

std::uint64_t read_u64(const char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The nonces a listing names, or nullopt when it is not one.
std::optional<std::vector<std::string_view>> listed_nonces(std::string_view text) {
  if (!text.starts_with(listing_label) || text.size() < listing_label.size() + 8) return std::nullopt;
  text.remove_prefix(listing_label.size());
  const std::uint64_t count = read_u64(text.data());
  text.remove_prefix(8);
  if (text.size() % nonce_size != 0 || text.size() / nonce_size != count) return std::nullopt;
  std::vector<std::string_view> out;
  for (; !text.empty(); text.remove_prefix(nonce_size)) out.push_back(text.substr(0, nonce_size));
  return out;
}

// The Argon2id costs a bundle may carry: what seal accepts, open accepts.
bool acceptable(const KdfCost& cost) {
  const KdfCost most = KdfCost::sensitive();
  const KdfCost least = KdfCost::minimum_for_tests();
  return cost.ops >= least.ops && cost.ops <= most.ops && cost.memory_bytes >= least.memory_bytes &&
         cost.memory_bytes <= most.memory_bytes;
}

Error damaged(std::string_view what) {
  return Error(errc::corrupt_data, "the bundle is damaged: " + std::string(what));
}

std::string count_of_parts(std::size_t n) { return std::to_string(n) + (n == 1 ? " part" : " parts"); }

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

json::object sealed_object(std::string_view nonce, std::string_view cipher) {
  return json::object{{"nonce", to_base64(nonce)}, {"ciphertext", to_base64(cipher)}};
}

struct Sealed {
  std::string nonce;
  std::string cipher;
};

// The nonce and ciphertext of a {"nonce", "ciphertext"} object, or what is
// wrong with it, named by `where`. A ciphertext whose plaintext could not be
// a SecretString is refused before anything is allocated for it.
Result<Sealed> sealed_member(const json::value& value, const std::string& where) {
  const json::object* o = value.if_object();
  const json::string* nonce_text = o != nullptr ? string_member(*o, "nonce") : nullptr;
  const json::string* cipher_text = o != nullptr ? string_member(*o, "ciphertext") : nullptr;
  if (nonce_text == nullptr || cipher_text == nullptr) return damaged(where + " lacks a nonce or ciphertext");
  auto nonce = from_base64(*nonce_text);
  auto cipher = from_base64(*cipher_text);
  if (!nonce || nonce->size() != nonce_size || !cipher || cipher->size() < tag_size ||
      cipher->size() - tag_size > SecretString::max_size) {
    return damaged(where + " has a malformed nonce or ciphertext");
  }
  return Sealed{std::move(*nonce), std::move(*cipher)};
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

  std::vector<std::string> nonces;
  nonces.reserve(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i) nonces.push_back(detail::crypto::random_bytes(nonce_size));

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
  {
    const std::string nonce = detail::crypto::random_bytes(nonce_size);
    const std::string plain = listing(nonces);
    std::string cipher(plain.size() + tag_size, '\0');
    detail::crypto::aead_encrypt(*derived, nonce, plain, header_ad(authenticator_label, id, kind, cost, salt).view(),
                                 cipher.data());
    out["authenticator"] = sealed_object(nonce, cipher);
  }
  const AssociatedData header = header_ad(part_label, id, kind, cost, salt);
  json::array sealed;
  sealed.reserve(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view plain = parts[i].reveal();
    std::string cipher(plain.size() + tag_size, '\0');
    detail::crypto::aead_encrypt(*derived, nonces[i], plain, part_ad(header, parts.size(), i).view(), cipher.data());
    sealed.push_back(sealed_object(nonces[i], cipher));
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
  if (*version != 1 && *version != static_cast<std::uint64_t>(format_version)) {
    return Error(errc::not_supported, "the bundle has format " + std::to_string(*version) +
                                          "; this keyfolio reads formats 1 to " + std::to_string(format_version));
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
  const bool v1 = *version == 1;
  // Format 1 has no authenticator: only a part proves its key and header, so
  // one without parts would open under any key, and is refused. Its parts'
  // associated data differs from format 2's, so a format 2 bundle relabelled
  // as format 1 does not open either.
  if (v1 && parts->empty()) {
    return damaged("a format 1 bundle without parts carries nothing that proves its key or header (an empty export "
                   "of an older keyfolio, or one whose parts were removed); it is refused");
  }
  std::optional<Sealed> authenticator;
  if (!v1) {
    const json::value* a = o->if_contains("authenticator");
    if (a == nullptr) return damaged("\"authenticator\" is missing");
    auto member = sealed_member(*a, "\"authenticator\"");
    if (!member) return member.error();
    authenticator = std::move(*member);
  }

  auto derived = key.derive(salt, cost);
  if (!derived) return derived.error();
  auto refused = [&](const std::string& why) {
    return Error(errc::wrong_key, "the bundle does not open with this " + std::string(expected) + " (" + why + ")");
  };
  std::optional<detail::SecureBuffer> listed_plain;
  std::vector<std::string_view> listed;
  if (authenticator) {
    listed_plain = detail::crypto::aead_decrypt(*derived, authenticator->nonce, authenticator->cipher,
                                                header_ad(authenticator_label, *id, expected, cost, salt).view());
    if (!listed_plain) return refused("its header fails to authenticate: a wrong " + std::string(expected) +
                                      ", or the header was altered");
    auto nonces = listed_nonces(listed_plain->view());
    if (!nonces) return damaged("its authenticator does not list its parts");
    listed = std::move(*nonces);
    if (listed.size() != parts->size()) {
      return damaged("it holds " + count_of_parts(parts->size()) + ", but was sealed with " +
                     std::to_string(listed.size()) + " (parts were removed or added)");
    }
  }
  const AssociatedData header = header_ad(v1 ? part_label_v1 : part_label, *id, expected, cost, salt);
  std::vector<SecretString> out;
  out.reserve(parts->size());
  for (std::size_t i = 0; i < parts->size(); ++i) {
    const std::string where = "part " + std::to_string(i + 1) + " of " + std::to_string(parts->size());
    auto part = sealed_member((*parts)[i], where);
    if (!part) return part.error();
    if (!v1 && part->nonce != listed[i]) {
      const auto at = std::find(listed.begin(), listed.end(), part->nonce);
      if (at == listed.end()) return damaged(where + " is not a part of this bundle (it was replaced)");
      return damaged(where + " is the part sealed as part " + std::to_string(at - listed.begin() + 1) +
                     " (parts were reordered or duplicated)");
    }
    auto plain = detail::crypto::aead_decrypt(*derived, part->nonce, part->cipher,
                                              part_ad(header, parts->size(), i).view());
    if (!plain) {
      // In format 1 nothing proved the key before: a wrong key and an altered
      // part look the same.
      if (v1) return refused(where + " fails to authenticate: a wrong key, or the file was altered");
      return damaged(where + " fails to authenticate (it was altered)");
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
