#include <keyfolio/bundle.hpp>

#include "catch.hpp"
#include "keys.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using keyfolio::KdfCost;
using keyfolio::KeySource;
using keyfolio::SecretString;
using keyfolio::errc;

namespace {

using keyfolio::test::passphrase;
using keyfolio::test::raw;

using keyfolio::test::mentions;

const std::string canary = "CANARY-bundle-7e41";

std::vector<SecretString> parts_of(std::initializer_list<std::string_view> texts) {
  std::vector<SecretString> out;
  for (auto t : texts) out.emplace_back(t);
  return out;
}

// The bundle with its JSON changed by `edit`.
std::string edited(const std::string& bundle, const std::function<void(boost::json::object&)>& edit) {
  auto value = boost::json::parse(bundle);
  edit(value.as_object());
  return boost::json::serialize(value);
}

void check_message_is_clean(const keyfolio::Error& e) {
  CHECK_FALSE(mentions(e.message(), "CANARY"));
  CHECK_FALSE(mentions(e.message(), "secret passphrase"));
}

// A file of tests/data, whole (without its final newline).
std::string data_file(const std::string& name) {
  std::ifstream in(KEYFOLIO_TEST_DATA_DIR "/" + name, std::ios::binary);
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

TEST_CASE("a bundle opens with the key that sealed it and gives back every part in order") {
  const auto parts = parts_of({"[{\"first\":\"" + canary + "\"}]", "", "third part"});
  for (const auto& key : {passphrase("secret passphrase"), raw('k')}) {
    auto bundle = keyfolio::seal_bundle(parts, key).value();
    CHECK(keyfolio::is_bundle(bundle));
    CHECK_FALSE(mentions(bundle, "CANARY"));
    CHECK_FALSE(mentions(bundle, "third part"));
    auto opened = keyfolio::open_bundle(bundle, key).value();
    REQUIRE(opened.size() == 3);
    CHECK(opened[0] == parts[0]);
    CHECK(opened[1].empty());
    CHECK(opened[2] == parts[2]);
  }
  // No parts at all is a bundle too.
  auto none = keyfolio::seal_bundle({}, raw('k')).value();
  CHECK(keyfolio::open_bundle(none, raw('k')).value().empty());
}

TEST_CASE("sealing twice gives different bundles: fresh salt and nonces") {
  const auto parts = parts_of({"same"});
  const auto a = keyfolio::seal_bundle(parts, passphrase("p")).value();
  const auto b = keyfolio::seal_bundle(parts, passphrase("p")).value();
  CHECK(a != b);
  const auto header = boost::json::parse(a).as_object();
  CHECK(header.at("keyfolio_bundle") == 2);
  CHECK(header.at("authenticator").as_object().contains("nonce"));
  CHECK(header.at("key") == "passphrase");
  CHECK(header.at("kdf") == "argon2id13");
  CHECK(header.at("ops").to_number<std::uint64_t>() == KdfCost::minimum_for_tests().ops);
  CHECK(boost::json::parse(keyfolio::seal_bundle(parts, raw('k')).value()).as_object().at("key") == "key");
}

TEST_CASE("a bundle refuses the wrong key, and a header altered under it, as wrong_key") {
  const auto parts = parts_of({canary, "two"});
  const auto bundle = keyfolio::seal_bundle(parts, passphrase("secret passphrase")).value();
  auto wrong = keyfolio::open_bundle(bundle, passphrase("another passphrase"));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code() == errc::wrong_key);
  CHECK(mentions(wrong.error().message(), "does not open with this passphrase"));
  check_message_is_clean(wrong.error());

  auto other_kind = keyfolio::open_bundle(bundle, raw('k'));
  CHECK(other_kind.error().code() == errc::wrong_key);
  CHECK(mentions(other_kind.error().message(), "sealed with a passphrase"));

  // A changed salt or cost derives another key: indistinguishable from a
  // wrong passphrase.
  const auto key = passphrase("secret passphrase");
  using Edit = std::function<void(boost::json::object&)>;
  const std::vector<std::pair<std::string, Edit>> alterations{
      {"another salt", [](boost::json::object& o) { o["salt"] = "AAAAAAAAAAAAAAAAAAAAAA=="; }},
      {"another cost", [](boost::json::object& o) { o["ops"] = o["ops"].to_number<std::uint64_t>() + 1; }},
      {"an altered authenticator",
       [](boost::json::object& o) {
         auto& c = o["authenticator"].as_object()["ciphertext"].as_string();
         c[2] = c[2] == 'A' ? 'B' : 'A';
       }},
  };
  for (const auto& [what, edit] : alterations) {
    INFO(what);
    auto opened = keyfolio::open_bundle(edited(bundle, edit), key);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::wrong_key);
    check_message_is_clean(opened.error());
  }

  // Under a raw key, where no salt differs: the bundle's id is authenticated.
  const auto raw_a = keyfolio::seal_bundle(parts, raw('r')).value();
  const auto raw_b = keyfolio::seal_bundle(parts_of({"other", "parts"}), raw('r')).value();
  const auto relabelled = edited(raw_a, [&](boost::json::object& o) { o["id"] = boost::json::parse(raw_b).as_object()["id"]; });
  CHECK(keyfolio::open_bundle(relabelled, raw('r')).error().code() == errc::wrong_key);
}

TEST_CASE("a bundle without parts still proves its key: a wrong passphrase is wrong_key") {
  for (const auto& [right, wrong] : {std::pair{passphrase("secret passphrase"), passphrase("another passphrase")},
                                     std::pair{raw('k'), raw('j')}}) {
    const auto none = keyfolio::seal_bundle({}, right).value();
    CHECK(keyfolio::open_bundle(none, right).value().empty());
    auto opened = keyfolio::open_bundle(none, wrong);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::wrong_key);
    CHECK(mentions(opened.error().message(), "does not open with this"));
    check_message_is_clean(opened.error());
    // Nor does it open once its authenticator is taken away.
    const auto stripped = edited(none, [](boost::json::object& o) { o.erase("authenticator"); });
    auto unproved = keyfolio::open_bundle(stripped, right);
    REQUIRE_FALSE(unproved);
    CHECK(unproved.error().code() == errc::corrupt_data);
    CHECK(mentions(unproved.error().message(), "\"authenticator\" is missing"));
  }
}

TEST_CASE("a bundle whose parts were dropped, added, reordered or altered is corrupt_data saying which") {
  const auto parts = parts_of({canary, "two", "three"});
  const auto key = passphrase("secret passphrase");
  const auto bundle = keyfolio::seal_bundle(parts, key).value();
  const auto other = keyfolio::seal_bundle(parts, key).value();
  using Edit = std::function<void(boost::json::object&)>;
  auto flip = [](boost::json::string& c) { c[2] = c[2] == 'A' ? 'B' : 'A'; };
  const std::vector<std::tuple<std::string, std::string, Edit>> alterations{
      {"every part removed", "holds 0 parts, but was sealed with 3",
       [](boost::json::object& o) { o["parts"] = boost::json::array(); }},
      {"a part dropped", "holds 2 parts, but was sealed with 3",
       [](boost::json::object& o) { o["parts"].as_array().pop_back(); }},
      {"the first part dropped", "holds 2 parts, but was sealed with 3",
       [](boost::json::object& o) { o["parts"].as_array().erase(o["parts"].as_array().begin()); }},
      {"a part added twice", "holds 4 parts, but was sealed with 3",
       [](boost::json::object& o) { o["parts"].as_array().push_back(o["parts"].as_array()[0]); }},
      {"a part duplicated in place of another", "part 2 of 3 is the part sealed as part 1",
       [](boost::json::object& o) { o["parts"].as_array()[1] = o["parts"].as_array()[0]; }},
      {"parts swapped", "part 1 of 3 is the part sealed as part 2",
       [](boost::json::object& o) { std::swap(o["parts"].as_array()[0], o["parts"].as_array()[1]); }},
      {"a part from another bundle", "part 1 of 3 is not a part of this bundle",
       [&](boost::json::object& o) {
         o["parts"].as_array()[0] = boost::json::parse(other).as_object()["parts"].as_array()[0];
       }},
      {"a flipped ciphertext byte", "part 1 of 3 fails to authenticate",
       [&](boost::json::object& o) { flip(o["parts"].as_array()[0].as_object()["ciphertext"].as_string()); }},
      {"a truncated ciphertext", "part 3 of 3 fails to authenticate",
       [](boost::json::object& o) {
         auto& c = o["parts"].as_array()[2].as_object()["ciphertext"].as_string();
         c = boost::json::string(std::string_view(c).substr(0, c.size() - 4));
       }},
  };
  for (const auto& [what, expected, edit] : alterations) {
    INFO(what);
    auto opened = keyfolio::open_bundle(edited(bundle, edit), key);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
    CHECK(mentions(opened.error().message(), "the bundle is damaged: "));
    CHECK(mentions(opened.error().message(), expected));
    check_message_is_clean(opened.error());
  }
  // The same under a raw key, with a part of another bundle sealed under it.
  const auto raw_a = keyfolio::seal_bundle(parts, raw('r')).value();
  const auto raw_b = keyfolio::seal_bundle(parts_of({"other", "parts"}), raw('r')).value();
  const auto spliced = edited(raw_a, [&](boost::json::object& o) {
    o["parts"].as_array()[0] = boost::json::parse(raw_b).as_object()["parts"].as_array()[0];
  });
  CHECK(keyfolio::open_bundle(spliced, raw('r')).error().code() == errc::corrupt_data);
  const auto emptied = edited(raw_a, [](boost::json::object& o) { o["parts"] = boost::json::array(); });
  CHECK(keyfolio::open_bundle(emptied, raw('r')).error().code() == errc::corrupt_data);
}

TEST_CASE("a format 1 bundle opens only when a part proves its key, and one without parts is refused") {
  // tests/data/format1-bundle.kfb: sealed by keyfolio before bundles carried
  // an authenticator, two parts; format1-empty-bundle.kfb: no parts.
  const auto key = passphrase("format 1 passphrase");
  const auto v1 = data_file("format1-bundle.kfb");
  REQUIRE(keyfolio::is_bundle(v1));
  auto opened = keyfolio::open_bundle(v1, key).value();
  REQUIRE(opened.size() == 2);
  CHECK(opened[0].reveal() == "format 1 part one");
  CHECK(opened[1].reveal() == "format 1 part two");
  CHECK(keyfolio::open_bundle(v1, passphrase("another passphrase")).error().code() == errc::wrong_key);
  auto dropped = keyfolio::open_bundle(edited(v1, [](boost::json::object& o) { o["parts"].as_array().pop_back(); }), key);
  CHECK_FALSE(dropped);

  for (const auto& empty : {data_file("format1-empty-bundle.kfb"),
                            edited(v1, [](boost::json::object& o) { o["parts"] = boost::json::array(); })}) {
    for (const auto& any : {key, passphrase("another passphrase")}) {
      auto refused = keyfolio::open_bundle(empty, any);
      REQUIRE_FALSE(refused);
      CHECK(refused.error().code() == errc::corrupt_data);
      CHECK(mentions(refused.error().message(), "a format 1 bundle without parts"));
    }
  }
  // A bundle of today's format, relabelled as format 1 with its authenticator
  // removed, does not open either way.
  const auto bundle = keyfolio::seal_bundle(parts_of({canary}), key).value();
  auto downgrade = [&](bool keep_parts) {
    return edited(bundle, [&](boost::json::object& o) {
      o["keyfolio_bundle"] = 1;
      o.erase("authenticator");
      if (!keep_parts) o["parts"] = boost::json::array();
    });
  };
  CHECK(keyfolio::open_bundle(downgrade(true), key).error().code() == errc::wrong_key);
  CHECK(keyfolio::open_bundle(downgrade(false), key).error().code() == errc::corrupt_data);
}

TEST_CASE("a bundle is sealed only at a cost it can be opened with") {
  for (const auto cost : {KdfCost{5, KdfCost::minimum_for_tests().memory_bytes}, KdfCost{1, 1024}}) {
    auto sealed = keyfolio::seal_bundle(parts_of({"x"}), KeySource::passphrase(SecretString("p"), cost));
    REQUIRE_FALSE(sealed);
    CHECK(sealed.error().code() == errc::invalid_argument);
    CHECK(mentions(sealed.error().message(), "sensitive preset"));
  }
}

TEST_CASE("what is not a bundle, or a damaged or later one, gets a clear error") {
  const auto key = passphrase("p");
  const auto bundle = keyfolio::seal_bundle(parts_of({"x"}), key).value();
  CHECK_FALSE(keyfolio::is_bundle("[]"));
  CHECK_FALSE(keyfolio::is_bundle(""));
  CHECK(keyfolio::is_bundle("  \n{ \"keyfolio_bundle\": 2}"));
  CHECK(keyfolio::open_bundle("[{\"exchange_id\": \"BINANCE/x\"}]", key).error().code() == errc::invalid_argument);

  auto later = keyfolio::open_bundle(edited(bundle, [](boost::json::object& o) { o["keyfolio_bundle"] = 3; }), key);
  CHECK(later.error().code() == errc::not_supported);
  CHECK(mentions(later.error().message(), "format 3"));

  using Edit = std::function<void(boost::json::object&)>;
  const std::vector<std::pair<std::string, Edit>> damages{
      {"\"keyfolio_bundle\" is not a format number", [](boost::json::object& o) { o["keyfolio_bundle"] = "one"; }},
      {"\"key\" is missing", [](boost::json::object& o) { o.erase("key"); }},
      {"\"id\" is not 16 bytes", [](boost::json::object& o) { o.erase("id"); }},
      {"\"id\" is not 16 bytes", [](boost::json::object& o) { o["id"] = "c2hvcnQ="; }},
      {"\"key\" is neither", [](boost::json::object& o) { o["key"] = "token"; }},
      {"\"kdf\" is not argon2id13", [](boost::json::object& o) { o["kdf"] = "scrypt"; }},
      {"\"ops\" and \"memory\" must be whole numbers", [](boost::json::object& o) { o["memory"] = -1; }},
      {"outside what keyfolio accepts", [](boost::json::object& o) { o["memory"] = std::uint64_t{1} << 40; }},
      {"outside what keyfolio accepts", [](boost::json::object& o) { o["ops"] = 0; }},
      {"\"salt\" is not 16 bytes", [](boost::json::object& o) { o["salt"] = "c2hvcnQ="; }},
      {"\"salt\" is not 16 bytes", [](boost::json::object& o) { o["salt"] = "not base64!"; }},
      {"\"parts\" is not an array", [](boost::json::object& o) { o["parts"] = "none"; }},
      {"\"authenticator\" is missing", [](boost::json::object& o) { o.erase("authenticator"); }},
      {"\"authenticator\" has a malformed nonce or ciphertext",
       [](boost::json::object& o) { o["authenticator"].as_object()["nonce"] = "AAAA"; }},
      {"part 1 of 1 lacks a nonce", [](boost::json::object& o) { o["parts"].as_array()[0].as_object().erase("nonce"); }},
      {"part 1 of 1 has a malformed nonce",
       [](boost::json::object& o) { o["parts"].as_array()[0].as_object()["nonce"] = "AAAA"; }},
      {"part 1 of 1 has a malformed nonce or ciphertext",
       [](boost::json::object& o) { o["parts"].as_array()[0].as_object()["ciphertext"] = "AAAA"; }},
  };
  for (const auto& [expected, edit] : damages) {
    INFO(expected);
    auto opened = keyfolio::open_bundle(edited(bundle, edit), key);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == errc::corrupt_data);
    CHECK(mentions(opened.error().message(), "the bundle is damaged: "));
    CHECK(mentions(opened.error().message(), expected));
  }
  auto truncated = keyfolio::open_bundle(bundle.substr(0, bundle.size() / 2), key);
  CHECK(truncated.error().code() == errc::corrupt_data);
  CHECK(mentions(truncated.error().message(), "not valid JSON"));

  auto empty_passphrase = keyfolio::seal_bundle(parts_of({"x"}), KeySource::passphrase(SecretString("")));
  CHECK(empty_passphrase.error().code() == errc::invalid_argument);
}
