// The vault on its own: the data key, the keyring record that wraps it,
// sealing and opening of records, fingerprints. Expected values come from the
// record and keyring layouts the vault documents, parsed here independently,
// never from the vault's own output read back.
#include "crypto/vault.hpp"

#include "catch.hpp"
#include "keys.hpp"
#include "temp_dir.hpp"

#include <boost/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using keyfolio::KdfCost;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::detail::Vault;

namespace {

using keyfolio::test::mentions;
using keyfolio::test::passphrase;

using Texts = std::vector<std::string>;

// The record layout of vault.hpp:
//   "KF1" | 24-byte nonce | ciphertext
//   "KF2" | u8 header length | header | 24-byte nonce | ciphertext
// where the ciphertext carries a 16-byte Poly1305 tag.
constexpr std::size_t magic_size = 3;
constexpr std::size_t nonce_bytes = 24;
constexpr std::size_t tag_size = 16;

const std::string passphrase_canary = "CANARY-passphrase-5d1c";
const std::string other_passphrase_canary = "CANARY-other-passphrase-a03e";
const std::string plaintext_canary = "CANARY-plaintext-e82b";
// 32 bytes, so that it is a valid raw key whose bytes are recognisable.
const std::string raw_key_canary = "CANARY-raw-key-0123456789abcdef!";

KeySource canary_raw_key() { return KeySource::raw_key(SecretString(raw_key_canary)); }

std::string hex_of(std::string_view data) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : data) {
    out += digits[c >> 4];
    out += digits[c & 0x0f];
  }
  return out;
}

bool is_lower_hex(std::string_view text) {
  return text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// A record split by the documented layout, without the vault's help.
struct Parts {
  std::string magic;
  std::optional<std::string> header;  // KF2 only
  std::size_t nonce_at = 0;
  std::string nonce;
  std::string cipher;
};

Parts parse(std::string_view sealed) {
  REQUIRE(sealed.size() >= magic_size);
  Parts p;
  p.magic = std::string(sealed.substr(0, magic_size));
  std::size_t at = magic_size;
  if (p.magic == "KF2") {
    REQUIRE(sealed.size() > at);
    const std::size_t length = static_cast<unsigned char>(sealed[at]);
    at += 1;
    REQUIRE(sealed.size() >= at + length);
    p.header = std::string(sealed.substr(at, length));
    at += length;
  } else {
    REQUIRE(p.magic == "KF1");
  }
  REQUIRE(sealed.size() >= at + nonce_bytes + tag_size);
  p.nonce_at = at;
  p.nonce = std::string(sealed.substr(at, nonce_bytes));
  p.cipher = std::string(sealed.substr(at + nonce_bytes));
  return p;
}

// Whether `sealed` opens under (collection, key, version) to exactly
// `expected`; a bool, so that a failure prints no plaintext.
bool opens_to(const Vault& vault, std::string_view collection, std::string_view key, std::uint64_t version,
              std::string_view sealed, std::string_view expected) {
  const auto plain = vault.open(collection, key, version, sealed);
  return plain && plain->view() == expected;
}

bool opens(const Vault& vault, std::string_view collection, std::string_view key, std::uint64_t version,
           std::string_view sealed) {
  return vault.open(collection, key, version, sealed).has_value();
}

std::string with_byte_flipped(std::string s, std::size_t at) {
  s.at(at) = static_cast<char>(s.at(at) ^ 0x01);
  return s;
}

// Bytes 0, 1, ..., n-1 (mod 256): every byte value, NUL included.
std::string counting_bytes(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(i & 0xff);
  return out;
}

// "opened", or the name of the error open_keyring gave, so that a failure
// prints names rather than numbers.
template <class Opened>
std::string outcome(const keyfolio::Result<Opened>& opened) {
  return opened ? std::string("opened") : std::string(keyfolio::to_string(opened.error().code()));
}

void check_message_is_clean(const std::string& message) {
  CHECK_FALSE(mentions(message, "CANARY"));
  CHECK_FALSE(mentions(message, passphrase_canary));
  CHECK_FALSE(mentions(message, raw_key_canary));
  CHECK_FALSE(mentions(message, hex_of(raw_key_canary)));
  CHECK_FALSE(mentions(message, plaintext_canary));
}

// A key file holding `content`, readable only by its owner.
std::filesystem::path write_key_file(const keyfolio::test::TempDir& dir, const std::string& name,
                                     std::string_view content) {
  const auto path = dir / name;
  {
    std::ofstream out(path, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return path;
}

// --- keyring JSON edits ------------------------------------------------------

using Edit = std::function<void(boost::json::object&)>;

std::string edited(const std::string& record, const Edit& edit) {
  auto value = boost::json::parse(record);
  edit(value.as_object());
  return boost::json::serialize(value);
}

// The object holding `field` ("kek.salt" lives in "kek") and the field's name.
std::pair<boost::json::object*, std::string> locate(boost::json::object& root, std::string_view field) {
  const auto dot = field.find('.');
  if (dot == std::string_view::npos) return {&root, std::string(field)};
  auto* parent = root.if_contains(field.substr(0, dot));
  REQUIRE(parent != nullptr);
  REQUIRE(parent->is_object());
  return {&parent->as_object(), std::string(field.substr(dot + 1))};
}

// Each edit first requires the field to be there, so that an edit cannot
// silently do nothing and leave an intact record behind.
Edit removed(std::string field) {
  return [field](boost::json::object& root) {
    auto [o, name] = locate(root, field);
    REQUIRE(o->erase(name) == 1);
  };
}

Edit set_to(std::string field, boost::json::value value) {
  return [field, value](boost::json::object& root) {
    auto [o, name] = locate(root, field);
    REQUIRE(o->contains(name));
    (*o)[name] = value;
  };
}

Edit text_changed(std::string field, std::function<std::string(std::string)> change) {
  return [field, change](boost::json::object& root) {
    auto [o, name] = locate(root, field);
    REQUIRE(o->contains(name));
    REQUIRE((*o)[name].is_string());
    const std::string before((*o)[name].as_string());
    const std::string after = change(before);
    REQUIRE(after != before);
    (*o)[name] = after;
  };
}

Edit number_changed(std::string field, std::function<boost::json::value(std::uint64_t)> change) {
  return [field, change](boost::json::object& root) {
    auto [o, name] = locate(root, field);
    REQUIRE(o->contains(name));
    (*o)[name] = change((*o)[name].to_number<std::uint64_t>());
  };
}

// Hex edits: one digit changed to another digit (so the bytes change but stay
// valid hex), two digits dropped or added (one byte short or long), one digit
// dropped (odd length), a non-hex character.
std::string digit_flipped(std::string hex, std::size_t at) {
  hex.at(at) = hex.at(at) == '0' ? '1' : '0';
  return hex;
}
std::string first_digit_flipped(std::string hex) { return digit_flipped(std::move(hex), 0); }
std::string last_digit_flipped(std::string hex) { return digit_flipped(hex, hex.size() - 1); }
std::string byte_short(std::string hex) { return hex.substr(0, hex.size() - 2); }
std::string byte_long(std::string hex) { return hex + "00"; }
std::string odd_length(std::string hex) { return hex.substr(0, hex.size() - 1); }
std::string not_hex(std::string hex) {
  hex.at(0) = 'z';
  return hex;
}
std::string emptied(std::string) { return {}; }

struct Damage {
  std::string what;
  Edit edit;
  std::string expected;  // "corrupt_data", "wrong_key", "not_supported", ...
};

void check_damages(const std::string& record, const KeySource& key, const std::vector<Damage>& damages) {
  for (const auto& d : damages) {
    INFO(d.what);
    const auto opened = Vault::open_keyring(edited(record, d.edit), key);
    CHECK(outcome(opened) == d.expected);
    if (!opened) {
      CHECK_FALSE(opened.error().message().empty());
      check_message_is_clean(opened.error().message());
    }
  }
}

struct Store {
  Vault vault;
  std::string keyring;
};

Store passphrase_store() {
  auto vault = Vault::generate();
  auto keyring = vault.keyring_record(passphrase(passphrase_canary)).value();
  return {std::move(vault), std::move(keyring)};
}

Store raw_key_store() {
  auto vault = Vault::generate();
  auto keyring = vault.keyring_record(canary_raw_key()).value();
  return {std::move(vault), std::move(keyring)};
}

// Checks `opened` is the same store as `original`: same store id, each opens
// what the other sealed, same fingerprints.
void check_same_store(const Vault& original, const Vault& opened) {
  CHECK(opened.store_id() == original.store_id());
  const auto sealed = original.seal("accounts", "binance", 3, plaintext_canary, "hdr");
  CHECK(opens_to(opened, "accounts", "binance", 3, sealed, plaintext_canary));
  const auto back = opened.seal("accounts", "kraken", 4, plaintext_canary);
  CHECK(opens_to(original, "accounts", "kraken", 4, back, plaintext_canary));
  CHECK(opened.fingerprint("binance:key") == original.fingerprint("binance:key"));
}

void check_same_store(const Vault& original, const Vault::Opened& opened) { check_same_store(original, opened.vault); }

}  // namespace

// --- sealing and opening -----------------------------------------------------

TEST_CASE("a sealed record opens under the same collection, key and version to its plaintext", "[vault]") {
  const auto vault = Vault::generate();
  const std::string large = counting_bytes((1u << 20) + 7);
  const std::vector<std::string> plaintexts{"", "x", plaintext_canary, counting_bytes(256), large};
  const std::vector<std::string> headers{"", "h", counting_bytes(255)};
  for (const auto& plain : plaintexts) {
    for (const auto& header : headers) {
      INFO("plaintext of " << plain.size() << " bytes, header of " << header.size() << " bytes");
      const auto sealed = vault.seal("accounts", "okx/main", 42, plain, header);
      CHECK(opens_to(vault, "accounts", "okx/main", 42, sealed, plain));
    }
  }
}

TEST_CASE("a header of at most 255 bytes is accepted, and a longer one is refused with length_error", "[vault]") {
  const auto vault = Vault::generate();
  CHECK_NOTHROW(vault.seal("c", "k", 1, "p", counting_bytes(255)));
  const std::string too_long = plaintext_canary + std::string(256 - plaintext_canary.size(), 'h');
  REQUIRE(too_long.size() == 256);
  CHECK_THROWS_AS(vault.seal("c", "k", 1, "p", too_long), std::length_error);
  CHECK_THROWS_AS(vault.seal("c", "k", 1, "p", std::string(1000, 'h')), std::length_error);
  try {
    (void)vault.seal("c", "k", 1, plaintext_canary, too_long);
    FAIL("a 256-byte header was accepted");
  } catch (const std::length_error& e) {
    check_message_is_clean(e.what());
  }
}

TEST_CASE("a record without a header is KF1 | nonce | ciphertext, with plaintext size + 16 bytes of ciphertext",
          "[vault]") {
  const auto vault = Vault::generate();
  for (const auto& plain : Texts{std::string(), plaintext_canary, counting_bytes(5000)}) {
    INFO("plaintext of " << plain.size() << " bytes");
    const auto sealed = vault.seal("accounts", "k", 1, plain);
    CHECK(sealed.size() == magic_size + nonce_bytes + plain.size() + tag_size);
    const auto parts = parse(sealed);
    CHECK(parts.magic == "KF1");
    CHECK(parts.nonce_at == magic_size);
    CHECK(parts.cipher.size() == plain.size() + tag_size);
    CHECK_FALSE(parts.header);
    // An empty header is no header.
    CHECK(parse(vault.seal("accounts", "k", 1, plain, "")).magic == "KF1");
  }
}

TEST_CASE("a record with a header is KF2 | length | header | nonce | ciphertext, the header readable", "[vault]") {
  const auto vault = Vault::generate();
  for (const auto& header : Texts{std::string("h"), std::string("fingerprint and spelling"), counting_bytes(255)}) {
    INFO("header of " << header.size() << " bytes");
    const auto sealed = vault.seal("accounts", "k", 1, plaintext_canary, header);
    CHECK(sealed.size() == magic_size + 1 + header.size() + nonce_bytes + plaintext_canary.size() + tag_size);
    const auto parts = parse(sealed);
    CHECK(parts.magic == "KF2");
    REQUIRE(parts.header);
    CHECK(*parts.header == header);
    CHECK(parts.nonce_at == magic_size + 1 + header.size());
    CHECK(parts.cipher.size() == plaintext_canary.size() + tag_size);
  }
}

TEST_CASE("the plaintext does not appear in the sealed record", "[vault]") {
  const auto vault = Vault::generate();
  const std::string plain = "{\"secret\":\"" + plaintext_canary + "\"}";
  for (const auto& header : Texts{std::string(), std::string("header")}) {
    const auto sealed = vault.seal("accounts", "k", 1, plain, header);
    CHECK_FALSE(mentions(sealed, plaintext_canary));
    CHECK_FALSE(mentions(sealed, "secret"));
  }
}

TEST_CASE("sealing the same plaintext twice gives different records with different nonces", "[vault]") {
  const auto vault = Vault::generate();
  for (const auto& header : Texts{std::string(), std::string("header")}) {
    const auto a = vault.seal("accounts", "k", 1, plaintext_canary, header);
    const auto b = vault.seal("accounts", "k", 1, plaintext_canary, header);
    CHECK(a != b);
    CHECK(parse(a).nonce != parse(b).nonce);
    CHECK(parse(a).cipher != parse(b).cipher);
    CHECK(opens_to(vault, "accounts", "k", 1, a, plaintext_canary));
    CHECK(opens_to(vault, "accounts", "k", 1, b, plaintext_canary));
  }
  std::set<std::string> nonces;
  for (int i = 0; i < 200; ++i) nonces.insert(parse(vault.seal("c", "k", 1, "same")).nonce);
  CHECK(nonces.size() == 200);
}

TEST_CASE("nonce_of gives the 24 nonce bytes where the layout puts them, inside the record", "[vault]") {
  const auto vault = Vault::generate();
  for (const auto& header : Texts{std::string(), std::string("h"), counting_bytes(255)}) {
    INFO("header of " << header.size() << " bytes");
    const auto sealed = vault.seal("accounts", "k", 1, plaintext_canary, header);
    const auto parts = parse(sealed);
    const auto nonce = Vault::nonce_of(sealed);
    CHECK(nonce.size() == nonce_bytes);
    CHECK(nonce == parts.nonce);
    CHECK(nonce.data() == sealed.data() + parts.nonce_at);
  }
}

TEST_CASE("nonce_of of a malformed record is empty", "[vault]") {
  const auto vault = Vault::generate();
  const auto kf1 = vault.seal("c", "k", 1, "");
  const auto kf2 = vault.seal("c", "k", 1, "", "header");
  const std::vector<std::string> malformed{
      "", "KF", "KF1", "KF2", "KF3" + kf1.substr(3), "XYZ" + std::string(100, '\0'),
      kf1.substr(0, kf1.size() - 1),   // one byte short of the tag
      kf2.substr(0, kf2.size() - 1),
      std::string("KF2\xff", 4) + std::string(100, 'h'),  // header longer than the record
  };
  for (const auto& m : malformed) {
    INFO("record of " << m.size() << " bytes");
    CHECK(Vault::nonce_of(m).empty());
  }
}

TEST_CASE("header_of gives a KF2 record's header, and nothing for a KF1 or malformed record", "[vault]") {
  const auto vault = Vault::generate();
  for (const auto& header : Texts{std::string("h"), counting_bytes(255)}) {
    const auto sealed = vault.seal("c", "k", 1, plaintext_canary, header);
    const auto read = Vault::header_of(sealed);
    REQUIRE(read);
    CHECK(*read == header);
    CHECK(*read == *parse(sealed).header);
    CHECK(read->data() == sealed.data() + magic_size + 1);
  }
  CHECK_FALSE(Vault::header_of(vault.seal("c", "k", 1, plaintext_canary)));
  CHECK_FALSE(Vault::header_of(vault.seal("c", "k", 1, plaintext_canary, "")));

  const auto kf2 = vault.seal("c", "k", 1, "", "header");
  const std::vector<std::string> malformed{
      "", "KF2", std::string("KF2\x06", 4) + "header",  // no nonce or tag
      kf2.substr(0, kf2.size() - 1), "KF3" + kf2.substr(3),
      std::string("KF2\xff", 4) + std::string(100, 'h'),
  };
  for (const auto& m : malformed) {
    INFO("record of " << m.size() << " bytes");
    CHECK_FALSE(Vault::header_of(m));
  }
}

// --- associated data ---------------------------------------------------------

TEST_CASE("a record does not open under another collection, key or version", "[vault]") {
  const auto vault = Vault::generate();
  for (const auto& header : Texts{std::string(), std::string("header")}) {
    INFO("header: " << header);
    const auto sealed = vault.seal("accounts", "binance/main", 7, plaintext_canary, header);
    REQUIRE(opens(vault, "accounts", "binance/main", 7, sealed));
    CHECK_FALSE(opens(vault, "portfolios", "binance/main", 7, sealed));
    CHECK_FALSE(opens(vault, "", "binance/main", 7, sealed));
    CHECK_FALSE(opens(vault, "accounts", "binance/other", 7, sealed));
    CHECK_FALSE(opens(vault, "accounts", "", 7, sealed));
    CHECK_FALSE(opens(vault, "accounts", "binance/main", 6, sealed));
    CHECK_FALSE(opens(vault, "accounts", "binance/main", 8, sealed));
    CHECK_FALSE(opens(vault, "accounts", "binance/main", 0, sealed));
    // Versions that agree in their low 32 bits: all 64 are bound.
    CHECK_FALSE(opens(vault, "accounts", "binance/main", 7 + (std::uint64_t{1} << 32), sealed));
    CHECK_FALSE(opens(vault, "accounts", "binance/main", 7 + (std::uint64_t{1} << 63), sealed));
  }
}

TEST_CASE("the boundary between collection and key is bound: (\"ab\", \"c\") is not (\"a\", \"bc\")", "[vault]") {
  const auto vault = Vault::generate();
  const auto sealed = vault.seal("ab", "c", 1, plaintext_canary);
  REQUIRE(opens(vault, "ab", "c", 1, sealed));
  CHECK_FALSE(opens(vault, "a", "bc", 1, sealed));
  CHECK_FALSE(opens(vault, "abc", "", 1, sealed));
  CHECK_FALSE(opens(vault, "", "abc", 1, sealed));
}

TEST_CASE("collection and key are each delimited: a key's bytes cannot pass for the end of the collection",
          "[vault]") {
  // Were only the key length-prefixed, collection "x" with key "\0\0\0\0"
  // and collection "x\x04\0\0\0" with an empty key would give the same bytes
  // to authenticate.
  const auto vault = Vault::generate();
  const std::string four_zeros(4, '\0');
  const std::string collection_with_length = std::string("x\x04", 2) + std::string(3, '\0');
  const auto sealed = vault.seal("x", four_zeros, 1, plaintext_canary);
  REQUIRE(opens(vault, "x", four_zeros, 1, sealed));
  CHECK_FALSE(opens(vault, collection_with_length, "", 1, sealed));
  const auto back = vault.seal(collection_with_length, "", 1, plaintext_canary);
  REQUIRE(opens(vault, collection_with_length, "", 1, back));
  CHECK_FALSE(opens(vault, "x", four_zeros, 1, back));
}

TEST_CASE("a record sealed by one store does not open in another", "[vault]") {
  const auto one = Vault::generate();
  const auto other = Vault::generate();
  CHECK(one.store_id() != other.store_id());
  for (const auto& header : Texts{std::string(), std::string("header")}) {
    const auto sealed = one.seal("accounts", "k", 1, plaintext_canary, header);
    CHECK(opens(one, "accounts", "k", 1, sealed));
    CHECK_FALSE(opens(other, "accounts", "k", 1, sealed));
  }
}

TEST_CASE("the store id is bound: the same data key under another store id does not open a record", "[vault]") {
  const std::string data_key(32, 'd');
  const Vault a(std::string(16, 'a'), SecretString(data_key));
  const Vault a_again(std::string(16, 'a'), SecretString(data_key));
  const Vault b(std::string(16, 'b'), SecretString(data_key));
  const auto sealed = a.seal("accounts", "k", 1, plaintext_canary, "header");
  CHECK(opens_to(a_again, "accounts", "k", 1, sealed, plaintext_canary));
  CHECK_FALSE(opens(b, "accounts", "k", 1, sealed));
}

TEST_CASE("the data key is bound: the same store id under another data key does not open a record", "[vault]") {
  const Vault a(std::string(16, 's'), SecretString(std::string(32, 'a')));
  const Vault b(std::string(16, 's'), SecretString(std::string(32, 'b')));
  const auto sealed = a.seal("accounts", "k", 1, plaintext_canary);
  CHECK(opens(a, "accounts", "k", 1, sealed));
  CHECK_FALSE(opens(b, "accounts", "k", 1, sealed));
}

TEST_CASE("a changed header byte, header length, nonce byte or ciphertext byte makes a record not open", "[vault]") {
  const auto vault = Vault::generate();
  const std::string header = "fingerprint";
  const auto sealed = vault.seal("accounts", "k", 1, plaintext_canary, header);
  REQUIRE(opens(vault, "accounts", "k", 1, sealed));
  const auto parts = parse(sealed);
  const std::size_t header_at = magic_size + 1;

  SECTION("a header byte") {
    CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, header_at)));
    CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, header_at + header.size() - 1)));
  }
  SECTION("the header's length byte, one up or one down") {
    auto longer = sealed;
    longer[magic_size] = static_cast<char>(header.size() + 1);
    auto shorter = sealed;
    shorter[magic_size] = static_cast<char>(header.size() - 1);
    CHECK_FALSE(opens(vault, "accounts", "k", 1, longer));
    CHECK_FALSE(opens(vault, "accounts", "k", 1, shorter));
  }
  SECTION("the header replaced by another of the same length") {
    auto other = sealed;
    other.replace(header_at, header.size(), "FINGERPRINT");
    CHECK(Vault::header_of(other) == std::optional<std::string_view>("FINGERPRINT"));
    CHECK_FALSE(opens(vault, "accounts", "k", 1, other));
  }
  SECTION("a nonce byte") {
    CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, parts.nonce_at)));
    CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, parts.nonce_at + nonce_bytes - 1)));
  }
  SECTION("a ciphertext or tag byte") {
    const std::size_t cipher_at = parts.nonce_at + nonce_bytes;
    CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, cipher_at)));
    CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, sealed.size() - 1)));
  }
  SECTION("any single byte, anywhere") {
    for (std::size_t i = 0; i < sealed.size(); ++i) {
      INFO("byte " << i);
      CHECK_FALSE(opens(vault, "accounts", "k", 1, with_byte_flipped(sealed, i)));
    }
  }
}

TEST_CASE("a truncated or extended record, or an empty string, does not open", "[vault]") {
  const auto vault = Vault::generate();
  CHECK_FALSE(opens(vault, "accounts", "k", 1, ""));
  for (const auto& header : Texts{std::string(), std::string("header")}) {
    INFO("header: " << header);
    const auto sealed = vault.seal("accounts", "k", 1, plaintext_canary, header);
    REQUIRE(opens(vault, "accounts", "k", 1, sealed));
    for (std::size_t n = 0; n < sealed.size(); ++n) {
      INFO("first " << n << " bytes");
      CHECK_FALSE(opens(vault, "accounts", "k", 1, sealed.substr(0, n)));
    }
    CHECK_FALSE(opens(vault, "accounts", "k", 1, sealed + '\0'));
    CHECK_FALSE(opens(vault, "accounts", "k", 1, sealed.substr(1)));
  }
  // A record of an empty plaintext is the shortest there is; one byte less is not one.
  const auto empty = vault.seal("accounts", "k", 1, "");
  CHECK(opens_to(vault, "accounts", "k", 1, empty, ""));
  CHECK_FALSE(opens(vault, "accounts", "k", 1, empty.substr(0, empty.size() - 1)));
}

TEST_CASE("a record whose magic is turned from KF1 into KF2, or from KF2 into KF1, does not open", "[vault]") {
  const auto vault = Vault::generate();
  const auto kf1 = vault.seal("accounts", "k", 1, plaintext_canary);
  const auto kf2 = vault.seal("accounts", "k", 1, plaintext_canary, "header");
  REQUIRE(opens(vault, "accounts", "k", 1, kf1));
  REQUIRE(opens(vault, "accounts", "k", 1, kf2));

  CHECK_FALSE(opens(vault, "accounts", "k", 1, "KF2" + kf1.substr(magic_size)));
  CHECK_FALSE(opens(vault, "accounts", "k", 1, "KF1" + kf2.substr(magic_size)));
  // The same nonce and ciphertext presented as KF2 with an empty header: the
  // magic is bound through the associated data, not only through the layout.
  CHECK_FALSE(opens(vault, "accounts", "k", 1, std::string("KF2\0", 4) + kf1.substr(magic_size)));
  // And a KF2 record stripped of its header back to KF1.
  const auto parts = parse(kf2);
  CHECK_FALSE(opens(vault, "accounts", "k", 1, "KF1" + parts.nonce + parts.cipher));
  // Another magic altogether.
  CHECK_FALSE(opens(vault, "accounts", "k", 1, "KF3" + kf1.substr(magic_size)));
  CHECK_FALSE(opens(vault, "accounts", "k", 1, "kf1" + kf1.substr(magic_size)));
}

// --- store id and fingerprints ----------------------------------------------

TEST_CASE("a generated store has a random 16-byte store id, shown as 32 lowercase hex digits", "[vault]") {
  const auto a = Vault::generate();
  const auto b = Vault::generate();
  CHECK(a.store_id().size() == 16);
  CHECK(a.store_id() != b.store_id());
  CHECK(a.store_id_hex().size() == 32);
  CHECK(is_lower_hex(a.store_id_hex()));
  CHECK(a.store_id_hex() == hex_of(a.store_id()));
}

TEST_CASE("a fingerprint is 16 bytes, the same for the same data under one vault, in hex as 32 lowercase digits",
          "[vault]") {
  const auto vault = Vault::generate();
  CHECK(Vault::fingerprint_size == 16);
  for (const auto& data : Texts{std::string(), std::string("binance:apikey"), plaintext_canary, counting_bytes(4096)}) {
    INFO("data of " << data.size() << " bytes");
    const auto bytes = vault.fingerprint_bytes(data);
    CHECK(bytes.size() == 16);
    CHECK(vault.fingerprint_bytes(data) == bytes);
    const auto hex = vault.fingerprint(data);
    CHECK(hex.size() == 32);
    CHECK(is_lower_hex(hex));
    CHECK(hex == hex_of({bytes.data(), bytes.size()}));
    CHECK(vault.fingerprint(data) == hex);
    CHECK_FALSE(mentions(hex, plaintext_canary));
  }
}

TEST_CASE("fingerprints differ for different data, and under another vault for the same data", "[vault]") {
  const auto vault = Vault::generate();
  const auto other = Vault::generate();
  CHECK(vault.fingerprint("a") != vault.fingerprint("b"));
  CHECK(vault.fingerprint("") != vault.fingerprint(std::string(1, '\0')));
  for (const auto& data : Texts{std::string(), std::string("binance:apikey"), plaintext_canary}) {
    CHECK(vault.fingerprint_bytes(data) != other.fingerprint_bytes(data));
    CHECK(vault.fingerprint(data) != other.fingerprint(data));
  }
  // Keyed by the data key: two vaults that differ only in their data key differ.
  const Vault a(std::string(16, 's'), SecretString(std::string(32, 'a')));
  const Vault b(std::string(16, 's'), SecretString(std::string(32, 'b')));
  const Vault a_again(std::string(16, 's'), SecretString(std::string(32, 'a')));
  CHECK(a.fingerprint("binance:apikey") != b.fingerprint("binance:apikey"));
  CHECK(a.fingerprint("binance:apikey") == a_again.fingerprint("binance:apikey"));
}

// --- keyring: round trips ----------------------------------------------------

TEST_CASE("a keyring wrapped by a passphrase reopens the same store with that passphrase", "[vault]") {
  const auto original = Vault::generate();
  const auto keyring = original.keyring_record(passphrase(passphrase_canary));
  REQUIRE(keyring);
  CHECK_FALSE(mentions(*keyring, passphrase_canary));
  const auto opened = Vault::open_keyring(*keyring, passphrase(passphrase_canary));
  REQUIRE(opened);
  check_same_store(original, *opened);
}

TEST_CASE("a keyring wrapped by a raw key reopens the same store with that key", "[vault]") {
  const auto original = Vault::generate();
  const auto keyring = original.keyring_record(canary_raw_key());
  REQUIRE(keyring);
  CHECK_FALSE(mentions(*keyring, raw_key_canary));
  CHECK_FALSE(mentions(*keyring, hex_of(raw_key_canary)));
  const auto opened = Vault::open_keyring(*keyring, canary_raw_key());
  REQUIRE(opened);
  check_same_store(original, *opened);
}

TEST_CASE("a keyring wrapped by a key file reopens the same store with that file, raw or hex", "[vault]") {
  keyfolio::test::TempDir dir;
  const auto raw_file = write_key_file(dir, "raw.key", raw_key_canary);
  const auto hex_file = write_key_file(dir, "hex.key", hex_of(raw_key_canary) + "\n");
  const auto original = Vault::generate();
  const auto keyring = original.keyring_record(KeySource::key_file(raw_file));
  REQUIRE(keyring);
  CHECK_FALSE(mentions(*keyring, raw_key_canary));
  const auto opened = Vault::open_keyring(*keyring, KeySource::key_file(raw_file));
  REQUIRE(opened);
  check_same_store(original, *opened);
  // The same 32 bytes written as hex are the same key.
  const auto from_hex = Vault::open_keyring(*keyring, KeySource::key_file(hex_file));
  REQUIRE(from_hex);
  check_same_store(original, *from_hex);
}

TEST_CASE("a keyring opened from a keyring it wrote again keeps opening the same store", "[vault]") {
  const auto original = Vault::generate();
  const auto first = Vault::open_keyring(original.keyring_record(canary_raw_key()).value(), canary_raw_key());
  REQUIRE(first);
  // Re-wrapping under a passphrase, as changing the key does.
  const auto second =
      Vault::open_keyring(first->vault.keyring_record(passphrase(passphrase_canary)).value(), passphrase(passphrase_canary));
  REQUIRE(second);
  check_same_store(original, *second);
}

TEST_CASE("a keyring record holds its format, the store id, how its key is derived and the wrapped key, and each one is "
          "freshly wrapped",
          "[vault]") {
  const auto vault = Vault::generate();
  const auto min = KdfCost::minimum_for_tests();
  // nonce | data key (32) | tag, in hex
  const std::size_t wrapped_digits = 2 * (nonce_bytes + 32 + tag_size);

  SECTION("under a passphrase") {
    const auto text = vault.keyring_record(passphrase(passphrase_canary)).value();
    const auto record = boost::json::parse(text).as_object();
    CHECK(record.at("format") == 1);
    CHECK(record.at("store_id") == hex_of(vault.store_id()).c_str());
    const auto& kek = record.at("kek").as_object();
    CHECK(kek.at("kind") == "passphrase");
    CHECK(kek.at("kdf") == "argon2id13");
    CHECK(kek.at("salt").as_string().size() == 32);
    CHECK(is_lower_hex(kek.at("salt").as_string()));
    CHECK(kek.at("ops").to_number<std::uint64_t>() == min.ops);
    CHECK(kek.at("memory").to_number<std::uint64_t>() == min.memory_bytes);
    CHECK(kek.at("check").as_string().size() == 64);
    CHECK(is_lower_hex(kek.at("check").as_string()));
    CHECK(record.at("wrapped_key").as_string().size() == wrapped_digits);
    CHECK(is_lower_hex(record.at("wrapped_key").as_string()));

    const auto again = boost::json::parse(vault.keyring_record(passphrase(passphrase_canary)).value()).as_object();
    CHECK(again.at("kek").at("salt") != kek.at("salt"));
    CHECK(again.at("kek").at("check") != kek.at("check"));
    CHECK(again.at("wrapped_key") != record.at("wrapped_key"));
  }
  SECTION("under a raw key: no salt, cost or kdf") {
    const auto text = vault.keyring_record(canary_raw_key()).value();
    const auto record = boost::json::parse(text).as_object();
    CHECK(record.at("format") == 1);
    CHECK(record.at("store_id") == hex_of(vault.store_id()).c_str());
    const auto& kek = record.at("kek").as_object();
    CHECK(kek.at("kind") == "raw_key");
    CHECK_FALSE(kek.contains("kdf"));
    CHECK_FALSE(kek.contains("salt"));
    CHECK_FALSE(kek.contains("ops"));
    CHECK_FALSE(kek.contains("memory"));
    CHECK(kek.at("check").as_string().size() == 64);
    CHECK(record.at("wrapped_key").as_string().size() == wrapped_digits);

    const auto again = boost::json::parse(vault.keyring_record(canary_raw_key()).value()).as_object();
    CHECK(again.at("wrapped_key") != record.at("wrapped_key"));
  }
  SECTION("under a key file") {
    keyfolio::test::TempDir dir;
    const auto file = write_key_file(dir, "store.key", raw_key_canary);
    const auto record = boost::json::parse(vault.keyring_record(KeySource::key_file(file)).value()).as_object();
    CHECK(record.at("kek").at("kind") == "key_file");
    CHECK_FALSE(record.at("kek").as_object().contains("salt"));
  }
}

TEST_CASE("a passphrase keyring opens at the cost stored in it, not the cost of the key source", "[vault]") {
  const auto original = Vault::generate();
  const auto keyring = original.keyring_record(passphrase(passphrase_canary)).value();
  const auto min = KdfCost::minimum_for_tests();
  const KdfCost other_cost{min.ops + 1, min.memory_bytes * 2};
  const auto opened =
      Vault::open_keyring(keyring, KeySource::passphrase(SecretString(passphrase_canary), other_cost));
  REQUIRE(opened);
  check_same_store(original, *opened);
}

TEST_CASE("a keyring cannot be written with a key source that cannot derive a key", "[vault]") {
  const auto vault = Vault::generate();
  const auto short_key = vault.keyring_record(KeySource::raw_key(SecretString("too short")));
  REQUIRE_FALSE(short_key);
  CHECK(short_key.error().code() == keyfolio::errc::invalid_argument);
  const auto empty = vault.keyring_record(KeySource::passphrase(SecretString(""), KdfCost::minimum_for_tests()));
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == keyfolio::errc::invalid_argument);
}

// --- keyring: the wrong key ---------------------------------------------------

TEST_CASE("a wrong passphrase is wrong_key, named as a passphrase, without the passphrase in the message",
          "[vault]") {
  const auto store = passphrase_store();
  const auto opened = Vault::open_keyring(store.keyring, passphrase(other_passphrase_canary));
  REQUIRE_FALSE(opened);
  CHECK(outcome(opened) == "wrong_key");
  CHECK(mentions(opened.error().message(), "passphrase"));
  check_message_is_clean(opened.error().message());
  CHECK_FALSE(mentions(opened.error().message(), other_passphrase_canary));
}

TEST_CASE("a wrong raw key or key file is wrong_key, named as such", "[vault]") {
  const auto store = raw_key_store();
  const auto wrong_raw = Vault::open_keyring(store.keyring, keyfolio::test::raw('w'));
  REQUIRE_FALSE(wrong_raw);
  CHECK(outcome(wrong_raw) == "wrong_key");
  CHECK(mentions(wrong_raw.error().message(), "raw key"));
  check_message_is_clean(wrong_raw.error().message());

  keyfolio::test::TempDir dir;
  const auto right = write_key_file(dir, "right.key", raw_key_canary);
  const auto wrong = write_key_file(dir, "wrong.key", std::string(32, 'w'));
  const auto keyring = store.vault.keyring_record(KeySource::key_file(right)).value();
  const auto wrong_file = Vault::open_keyring(keyring, KeySource::key_file(wrong));
  REQUIRE_FALSE(wrong_file);
  CHECK(outcome(wrong_file) == "wrong_key");
  CHECK(mentions(wrong_file.error().message(), "key file"));
  CHECK(mentions(wrong_file.error().message(), "wrong.key"));
  check_message_is_clean(wrong_file.error().message());
}

TEST_CASE("a store opened with another kind of key is wrong_key naming the kind that protects it", "[vault]") {
  const auto pass = passphrase_store();
  const auto raw = raw_key_store();
  keyfolio::test::TempDir dir;
  const auto file = write_key_file(dir, "store.key", raw_key_canary);
  const auto file_keyring = raw.vault.keyring_record(KeySource::key_file(file)).value();

  SECTION("a raw-key store opened with a passphrase") {
    const auto opened = Vault::open_keyring(raw.keyring, passphrase(passphrase_canary));
    REQUIRE_FALSE(opened);
    CHECK(outcome(opened) == "wrong_key");
    CHECK(mentions(opened.error().message(), "protected by a raw key"));
    CHECK(mentions(opened.error().message(), "not by a passphrase"));
    check_message_is_clean(opened.error().message());
  }
  SECTION("a passphrase store opened with a raw key") {
    const auto opened = Vault::open_keyring(pass.keyring, canary_raw_key());
    REQUIRE_FALSE(opened);
    CHECK(outcome(opened) == "wrong_key");
    CHECK(mentions(opened.error().message(), "protected by a passphrase"));
    CHECK(mentions(opened.error().message(), "not by a raw key"));
    check_message_is_clean(opened.error().message());
  }
  SECTION("a key-file store opened with a raw key of the very same bytes") {
    const auto opened = Vault::open_keyring(file_keyring, canary_raw_key());
    REQUIRE_FALSE(opened);
    CHECK(outcome(opened) == "wrong_key");
    CHECK(mentions(opened.error().message(), "protected by a key file"));
    check_message_is_clean(opened.error().message());
  }
  SECTION("a raw-key store opened with a key file of the very same bytes") {
    const auto opened = Vault::open_keyring(raw.keyring, KeySource::key_file(file));
    REQUIRE_FALSE(opened);
    CHECK(outcome(opened) == "wrong_key");
    CHECK(mentions(opened.error().message(), "protected by a raw key"));
    CHECK(mentions(opened.error().message(), "not by a key file"));
    check_message_is_clean(opened.error().message());
  }
}

TEST_CASE("a raw key of the wrong size opening a raw-key store is invalid_argument, not wrong_key", "[vault]") {
  const auto store = raw_key_store();
  const auto opened = Vault::open_keyring(store.keyring, KeySource::raw_key(SecretString("short")));
  CHECK(outcome(opened) == "invalid_argument");
}

// --- keyring: every field ----------------------------------------------------

TEST_CASE("a keyring that is not JSON, or not a JSON object, is corrupt_data", "[vault]") {
  const auto store = passphrase_store();
  const std::vector<std::string> not_json{"", " ", "{", "not json", store.keyring.substr(0, store.keyring.size() - 1),
                                          store.keyring + "}", store.keyring + " trailing"};
  for (const auto& text : not_json) {
    INFO("keyring of " << text.size() << " bytes");
    const auto opened = Vault::open_keyring(text, passphrase(passphrase_canary));
    CHECK(outcome(opened) == "corrupt_data");
    if (!opened) check_message_is_clean(opened.error().message());
  }
  for (const auto& text : Texts{"[]", "[" + store.keyring + "]", std::string("1"), std::string("\"text\""),
                                 std::string("null"), std::string("true")}) {
    INFO(text.substr(0, 20));
    const auto opened = Vault::open_keyring(text, passphrase(passphrase_canary));
    CHECK(outcome(opened) == "corrupt_data");
    if (!opened) CHECK(mentions(opened.error().message(), "not a JSON object"));
  }
}

TEST_CASE("an unchanged keyring passed through the JSON edits still opens", "[vault]") {
  // The edits below start from a parse and re-serialization of the record;
  // this shows that alone changes nothing, so each failure below is the edit's.
  const auto pass = passphrase_store();
  const auto raw = raw_key_store();
  const Edit nothing = [](boost::json::object&) {};
  CHECK(outcome(Vault::open_keyring(edited(pass.keyring, nothing), passphrase(passphrase_canary))) == "opened");
  CHECK(outcome(Vault::open_keyring(edited(raw.keyring, nothing), canary_raw_key())) == "opened");
}

TEST_CASE("keyring field format: anything but the number 1 is not_supported", "[vault]") {
  const std::vector<Damage> damages{
      {"format removed", removed("format"), "not_supported"},
      {"format as a string", set_to("format", "1"), "not_supported"},
      {"format as a boolean", set_to("format", true), "not_supported"},
      {"format as null", set_to("format", nullptr), "not_supported"},
      {"format 2", set_to("format", 2), "not_supported"},
      {"format 0", set_to("format", 0), "not_supported"},
      {"format -1", set_to("format", -1), "not_supported"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
  check_damages(raw_key_store().keyring, canary_raw_key(), damages);
  const auto later = Vault::open_keyring(edited(raw_key_store().keyring, set_to("format", 2)), canary_raw_key());
  CHECK(mentions(later.error().message(), "format"));
}

TEST_CASE("keyring field store_id: missing, mistyped, not 16 bytes of hex or changed to another id is corrupt_data",
          "[vault]") {
  // The checksum of the key-derivation parameters covers the store id, so a
  // store id changed to another valid one is damage, not a wrong key.
  const std::vector<Damage> damages{
      {"store_id removed", removed("store_id"), "corrupt_data"},
      {"store_id as a number", set_to("store_id", 5), "corrupt_data"},
      {"store_id as an array", set_to("store_id", boost::json::array{}), "corrupt_data"},
      {"store_id empty", text_changed("store_id", emptied), "corrupt_data"},
      {"store_id a byte short", text_changed("store_id", byte_short), "corrupt_data"},
      {"store_id a byte long", text_changed("store_id", byte_long), "corrupt_data"},
      {"store_id of odd length", text_changed("store_id", odd_length), "corrupt_data"},
      {"store_id not hex", text_changed("store_id", not_hex), "corrupt_data"},
      {"store_id with a digit flipped", text_changed("store_id", first_digit_flipped), "corrupt_data"},
      {"store_id with its last digit flipped", text_changed("store_id", last_digit_flipped), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
  check_damages(raw_key_store().keyring, canary_raw_key(), damages);
  const auto damaged =
      Vault::open_keyring(edited(raw_key_store().keyring, removed("store_id")), canary_raw_key());
  CHECK(mentions(damaged.error().message(), "damaged"));
  CHECK(mentions(damaged.error().message(), "store_id"));
}

TEST_CASE("keyring field kek: missing, not an object, or empty is corrupt_data", "[vault]") {
  const std::vector<Damage> damages{
      {"kek removed", removed("kek"), "corrupt_data"},
      {"kek as a string", set_to("kek", "passphrase"), "corrupt_data"},
      {"kek as an array", set_to("kek", boost::json::array{}), "corrupt_data"},
      {"kek as null", set_to("kek", nullptr), "corrupt_data"},
      {"kek an empty object", set_to("kek", boost::json::object{}), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
  check_damages(raw_key_store().keyring, canary_raw_key(), damages);
}

TEST_CASE("keyring field kek.kind: missing or mistyped is corrupt_data, and another kind is wrong_key naming it",
          "[vault]") {
  const std::vector<Damage> pass_damages{
      {"kind removed", removed("kek.kind"), "corrupt_data"},
      {"kind as a number", set_to("kek.kind", 0), "corrupt_data"},
      {"kind as null", set_to("kek.kind", nullptr), "corrupt_data"},
      {"kind raw_key", set_to("kek.kind", "raw_key"), "wrong_key"},
      {"kind key_file", set_to("kek.kind", "key_file"), "wrong_key"},
      {"kind in capitals", set_to("kek.kind", "PASSPHRASE"), "wrong_key"},
      {"kind unknown", set_to("kek.kind", "hsm"), "wrong_key"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), pass_damages);
  const std::vector<Damage> raw_damages{
      {"kind removed", removed("kek.kind"), "corrupt_data"},
      {"kind as a number", set_to("kek.kind", 1), "corrupt_data"},
      {"kind passphrase", set_to("kek.kind", "passphrase"), "wrong_key"},
      {"kind key_file", set_to("kek.kind", "key_file"), "wrong_key"},
  };
  check_damages(raw_key_store().keyring, canary_raw_key(), raw_damages);

  const auto store = passphrase_store();
  const auto as_raw = Vault::open_keyring(edited(store.keyring, set_to("kek.kind", "raw_key")),
                                          passphrase(passphrase_canary));
  CHECK(mentions(as_raw.error().message(), "protected by a raw key"));
  const auto unknown = Vault::open_keyring(edited(store.keyring, set_to("kek.kind", "hsm")),
                                           passphrase(passphrase_canary));
  CHECK(mentions(unknown.error().message(), "protected by a different key"));
}

TEST_CASE("keyring field kek.salt: missing, mistyped, not hex or changed to another salt is corrupt_data",
          "[vault]") {
  const std::vector<Damage> damages{
      {"salt removed", removed("kek.salt"), "corrupt_data"},
      {"salt as a number", set_to("kek.salt", 16), "corrupt_data"},
      {"salt as null", set_to("kek.salt", nullptr), "corrupt_data"},
      {"salt of odd length", text_changed("kek.salt", odd_length), "corrupt_data"},
      {"salt not hex", text_changed("kek.salt", not_hex), "corrupt_data"},
      {"salt with a digit flipped", text_changed("kek.salt", first_digit_flipped), "corrupt_data"},
      {"salt with its last digit flipped", text_changed("kek.salt", last_digit_flipped), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
}

TEST_CASE("keyring field kek.ops: missing, mistyped, negative, fractional or changed to another count is "
          "corrupt_data",
          "[vault]") {
  const std::vector<Damage> damages{
      {"ops removed", removed("kek.ops"), "corrupt_data"},
      {"ops as a string", set_to("kek.ops", "1"), "corrupt_data"},
      {"ops as null", set_to("kek.ops", nullptr), "corrupt_data"},
      {"ops negative", set_to("kek.ops", -1), "corrupt_data"},
      {"ops fractional", number_changed("kek.ops", [](std::uint64_t ops) { return static_cast<double>(ops) + 0.5; }),
       "corrupt_data"},
      {"ops one more", number_changed("kek.ops", [](std::uint64_t ops) { return ops + 1; }), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
}

TEST_CASE("keyring field kek.memory: missing, mistyped, negative, fractional or changed to another size is "
          "corrupt_data",
          "[vault]") {
  const std::vector<Damage> damages{
      {"memory removed", removed("kek.memory"), "corrupt_data"},
      {"memory as a string", set_to("kek.memory", "8192"), "corrupt_data"},
      {"memory as null", set_to("kek.memory", nullptr), "corrupt_data"},
      {"memory negative", set_to("kek.memory", -8192), "corrupt_data"},
      {"memory fractional",
       number_changed("kek.memory", [](std::uint64_t m) { return static_cast<double>(m) + 0.5; }), "corrupt_data"},
      // Argon2id counts memory in KiB: another whole number of KiB is another key.
      {"memory doubled", number_changed("kek.memory", [](std::uint64_t m) { return m * 2; }), "corrupt_data"},
      {"memory 1 KiB more", number_changed("kek.memory", [](std::uint64_t m) { return m + 1024; }), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
}

TEST_CASE("keyring field kek.check: missing, mistyped or not 32 bytes of hex is corrupt_data, and another check is "
          "wrong_key",
          "[vault]") {
  // The check is what tells a wrong key from damage: a changed check is, by
  // construction, a key that does not match it.
  const std::vector<Damage> damages{
      {"check removed", removed("kek.check"), "corrupt_data"},
      {"check as a number", set_to("kek.check", 0), "corrupt_data"},
      {"check as null", set_to("kek.check", nullptr), "corrupt_data"},
      {"check empty", text_changed("kek.check", emptied), "corrupt_data"},
      {"check a byte short", text_changed("kek.check", byte_short), "corrupt_data"},
      {"check a byte long", text_changed("kek.check", byte_long), "corrupt_data"},
      {"check of odd length", text_changed("kek.check", odd_length), "corrupt_data"},
      {"check not hex", text_changed("kek.check", not_hex), "corrupt_data"},
      {"check with a digit flipped", text_changed("kek.check", first_digit_flipped), "wrong_key"},
      {"check with its last digit flipped", text_changed("kek.check", last_digit_flipped), "wrong_key"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
  check_damages(raw_key_store().keyring, canary_raw_key(), damages);
}

TEST_CASE("keyring field wrapped_key: missing, mistyped, resized or altered is corrupt_data", "[vault]") {
  // The check has already proved the key right, so a wrapped key that does
  // not authenticate is damage, not a wrong key.
  const std::vector<Damage> damages{
      {"wrapped_key removed", removed("wrapped_key"), "corrupt_data"},
      {"wrapped_key as a number", set_to("wrapped_key", 0), "corrupt_data"},
      {"wrapped_key as an object", set_to("wrapped_key", boost::json::object{}), "corrupt_data"},
      {"wrapped_key empty", text_changed("wrapped_key", emptied), "corrupt_data"},
      {"wrapped_key a byte short", text_changed("wrapped_key", byte_short), "corrupt_data"},
      {"wrapped_key a byte long", text_changed("wrapped_key", byte_long), "corrupt_data"},
      {"wrapped_key of odd length", text_changed("wrapped_key", odd_length), "corrupt_data"},
      {"wrapped_key not hex", text_changed("wrapped_key", not_hex), "corrupt_data"},
      {"wrapped_key with a nonce digit flipped", text_changed("wrapped_key", first_digit_flipped), "corrupt_data"},
      {"wrapped_key with a ciphertext digit flipped",
       text_changed("wrapped_key", [](std::string hex) { return digit_flipped(hex, 2 * nonce_bytes); }),
       "corrupt_data"},
      {"wrapped_key with a tag digit flipped", text_changed("wrapped_key", last_digit_flipped), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
  check_damages(raw_key_store().keyring, canary_raw_key(), damages);
  const auto damaged = Vault::open_keyring(
      edited(raw_key_store().keyring, text_changed("wrapped_key", last_digit_flipped)), canary_raw_key());
  CHECK(mentions(damaged.error().message(), "damaged"));
}

TEST_CASE("a wrapped key moved from another store's keyring under the same key does not open", "[vault]") {
  const auto a = raw_key_store();
  const auto b = raw_key_store();
  const auto b_wrapped = boost::json::parse(b.keyring).as_object().at("wrapped_key");
  const auto spliced = edited(a.keyring, set_to("wrapped_key", b_wrapped));
  CHECK(outcome(Vault::open_keyring(spliced, canary_raw_key())) == "corrupt_data");
}

// open_keyring promises `corrupt_data` when the record is damaged: a salt of
// the wrong size or a cost outside Argon2id's range is damage to the record,
// not a bad argument from the caller.
TEST_CASE("a keyring whose stored salt has the wrong size or whose stored cost is out of range is corrupt_data",
          "[vault]") {
  const std::vector<Damage> damages{
      {"salt empty", text_changed("kek.salt", emptied), "corrupt_data"},
      {"salt a byte short", text_changed("kek.salt", byte_short), "corrupt_data"},
      {"salt a byte long", text_changed("kek.salt", byte_long), "corrupt_data"},
      {"ops 0", set_to("kek.ops", 0), "corrupt_data"},
      {"ops beyond 32 bits", set_to("kek.ops", std::uint64_t{1} << 32), "corrupt_data"},
      {"memory 0", set_to("kek.memory", 0), "corrupt_data"},
      {"memory below Argon2id's least",
       number_changed("kek.memory", [](std::uint64_t m) { return m - 1; }), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
}

// A cost raised in the record must not make opening run for hours or take
// all memory: it is refused before anything is derived (were it derived,
// this test would not finish).
TEST_CASE("a keyring whose stored cost exceeds the sensitive preset is corrupt_data, refused before deriving",
          "[vault]") {
  const std::vector<Damage> damages{
      {"ops at 2^32 - 1", set_to("kek.ops", std::uint64_t{0xffffffff}), "corrupt_data"},
      {"ops one past the sensitive preset", set_to("kek.ops", KdfCost::sensitive().ops + 1), "corrupt_data"},
      {"memory one KiB past the sensitive preset",
       set_to("kek.memory", std::uint64_t{KdfCost::sensitive().memory_bytes} + 1024), "corrupt_data"},
      {"memory of 4 TiB", set_to("kek.memory", std::uint64_t{1} << 42), "corrupt_data"},
  };
  check_damages(passphrase_store().keyring, passphrase(passphrase_canary), damages);
}

// --- messages -----------------------------------------------------------------

TEST_CASE("no keyring error message contains the passphrase, the raw key or a plaintext", "[vault]") {
  const auto pass = passphrase_store();
  const auto raw = raw_key_store();
  std::vector<keyfolio::Result<Vault::Opened>> failures;
  failures.push_back(Vault::open_keyring(pass.keyring, passphrase(other_passphrase_canary)));
  failures.push_back(Vault::open_keyring(pass.keyring, canary_raw_key()));
  failures.push_back(Vault::open_keyring(raw.keyring, passphrase(passphrase_canary)));
  failures.push_back(Vault::open_keyring(raw.keyring, keyfolio::test::raw('w')));
  failures.push_back(Vault::open_keyring("{\"" + passphrase_canary + "\":", passphrase(passphrase_canary)));
  failures.push_back(Vault::open_keyring(plaintext_canary, passphrase(passphrase_canary)));
  failures.push_back(Vault::open_keyring(
      edited(pass.keyring, set_to("kek.kind", boost::json::value(passphrase_canary))), passphrase(passphrase_canary)));
  failures.push_back(Vault::open_keyring(edited(pass.keyring, set_to("store_id", boost::json::value(raw_key_canary))),
                                         passphrase(passphrase_canary)));
  for (const auto& f : failures) {
    REQUIRE_FALSE(f);
    check_message_is_clean(f.error().message());
    try {
      (void)f.value();
      FAIL("value() of an error did not throw");
    } catch (const keyfolio::Exception& e) {
      check_message_is_clean(e.what());
    }
  }
}
