#include <keyfolio/exchange_catalog.hpp>

#include "detail/text.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace keyfolio {
namespace detail {
extern const std::string_view builtin_catalog_json;
}  // namespace detail

namespace {

using detail::quote;

constexpr std::size_t max_name_length = 128;
constexpr std::size_t max_icon_length = 2048;

bool contains(const std::vector<std::string>& v, std::string_view s) noexcept {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Why `id` cannot be an exchange id or alias, or empty when it can.
std::string id_problem(std::string_view id) {
  if (id.empty()) return "is empty";
  if (id.size() > ExchangeCatalog::max_id_length) {
    return "is " + std::to_string(id.size()) + " bytes long; at most " +
           std::to_string(ExchangeCatalog::max_id_length) + " are allowed";
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (!detail::is_visible_ascii(id[i])) {
      return "has a space, control or non-ASCII character at position " + std::to_string(i);
    }
    if (ExchangeCatalog::id_separators.find(id[i]) != std::string_view::npos) {
      return std::string("contains the account-id separator '") + id[i] + "' at position " +
             std::to_string(i);
    }
  }
  return {};
}

std::string field_key_problem(std::string_view key) {
  if (key.empty()) return "is empty";
  if (key.size() > ExchangeCatalog::max_field_key_length) {
    return "is " + std::to_string(key.size()) + " bytes long; at most " +
           std::to_string(ExchangeCatalog::max_field_key_length) + " are allowed";
  }
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (!detail::is_visible_ascii(key[i])) {
      return "has a space, control or non-ASCII character at position " + std::to_string(i);
    }
  }
  return {};
}

std::string text_problem(std::string_view text, std::size_t max_length) {
  if (text.size() > max_length) {
    return "is " + std::to_string(text.size()) + " bytes long; at most " + std::to_string(max_length) +
           " are allowed";
  }
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t at = pos;
    const auto cp = detail::decode_utf8(text, pos);
    if (!cp) return "is not valid UTF-8 at byte " + std::to_string(at);
    if (*cp < 0x20 || *cp == 0x7f) return "has a control character at byte " + std::to_string(at);
  }
  return {};
}

Error invalid(std::string message) { return Error(errc::invalid_argument, std::move(message)); }

}  // namespace

// ---------------------------------------------------------------------------
// ExchangeInfo

bool ExchangeInfo::requires_field(std::string_view key) const noexcept { return contains(required, key); }

bool ExchangeInfo::accepts_field(std::string_view key) const noexcept {
  return contains(required, key) || contains(optional, key);
}

std::string_view ExchangeInfo::identifying_field() const noexcept {
  static constexpr std::string_view order[] = {"apiKey", "walletAddress", "accountId", "uid",
                                               "login",  "privateKey",    "token",     "secret"};
  for (const std::string_view key : order) {
    if (requires_field(key)) return key;
  }
  return {};
}

// ---------------------------------------------------------------------------
// ExchangeCatalog

struct ExchangeCatalog::Impl {
  std::string source;
  std::vector<CredentialField> fields;
  std::unordered_map<std::string, std::size_t> field_index;  // lower-cased key or alias
  std::vector<ExchangeInfo> exchanges;
  std::unordered_map<std::string, std::size_t> exchange_index;  // lower-cased id or alias

  // Validates and indexes `fields`; on error the Impl is unusable.
  Result<void> set_fields(std::vector<CredentialField> list) {
    fields = std::move(list);
    field_index.clear();
    for (std::size_t i = 0; i < fields.size(); ++i) {
      CredentialField& f = fields[i];
      if (auto p = field_key_problem(f.key); !p.empty()) {
        return invalid("credential field key " + quote(f.key) + " " + p);
      }
      if (f.name.empty()) f.name = f.key;
      if (auto p = text_problem(f.name, max_name_length); !p.empty()) {
        return invalid("name of credential field " + quote(f.key) + " " + p);
      }
      std::vector<std::string_view> spellings{f.key};
      spellings.insert(spellings.end(), f.aliases.begin(), f.aliases.end());
      for (const std::string_view s : spellings) {
        if (auto p = field_key_problem(s); !p.empty()) {
          return invalid("alias " + quote(s) + " of credential field " + quote(f.key) + " " + p);
        }
        auto [it, inserted] = field_index.emplace(detail::ascii_lower(s), i);
        if (!inserted) {
          return invalid("credential field spelling " + quote(s) + " is used twice (by " +
                         quote(fields[it->second].key) + " and " + quote(f.key) + ")");
        }
      }
    }
    return {};
  }

  // The canonical keys of `names`, or the reason one is not acceptable.
  Result<std::vector<std::string>> canonical_fields(const ExchangeInfo& info, const char* what,
                                                    const std::vector<std::string>& names) const {
    std::vector<std::string> out;
    for (const std::string& name : names) {
      auto it = field_index.find(detail::ascii_lower(name));
      if (it == field_index.end()) {
        return invalid("exchange " + quote(info.id) + ": unknown credential field " + quote(name) + " in " +
                       what);
      }
      const std::string& key = fields[it->second].key;
      if (contains(out, key)) {
        return invalid("exchange " + quote(info.id) + ": credential field " + quote(key) + " appears twice in " +
                       what);
      }
      out.push_back(key);
    }
    return out;
  }

  Result<void> add(ExchangeInfo info) {
    if (auto p = id_problem(info.id); !p.empty()) {
      return Error(errc::invalid_argument, "exchange id " + quote(info.id) + " " + p);
    }
    if (info.name.empty()) info.name = info.id;
    if (auto p = text_problem(info.name, max_name_length); !p.empty()) {
      return invalid("name of exchange " + quote(info.id) + " " + p);
    }
    if (auto p = text_problem(info.icon, max_icon_length); !p.empty()) {
      return invalid("icon of exchange " + quote(info.id) + " " + p);
    }
    auto required = canonical_fields(info, "required", info.required);
    if (!required) return required.error();
    auto optional = canonical_fields(info, "optional", info.optional);
    if (!optional) return optional.error();
    for (const std::string& key : *optional) {
      if (contains(*required, key)) {
        return invalid("exchange " + quote(info.id) + ": credential field " + quote(key) +
                       " is both required and optional");
      }
    }
    info.required = std::move(*required);
    info.optional = std::move(*optional);

    std::vector<std::string> spellings{detail::ascii_lower(info.id)};
    for (const std::string& alias : info.aliases) {
      if (auto p = id_problem(alias); !p.empty()) {
        return invalid("alias " + quote(alias) + " of exchange " + quote(info.id) + " " + p);
      }
      std::string lower = detail::ascii_lower(alias);
      if (contains(spellings, lower)) {
        return invalid("exchange " + quote(info.id) + ": alias " + quote(alias) +
                       " repeats its id or another alias (ids match case-insensitively)");
      }
      spellings.push_back(std::move(lower));
    }
    for (std::size_t i = 0; i < spellings.size(); ++i) {
      if (auto it = exchange_index.find(spellings[i]); it != exchange_index.end()) {
        const std::string& taken = i == 0 ? info.id : info.aliases[i - 1];
        return Error(errc::conflict, "exchange id " + quote(taken) + " is already taken by exchange " +
                                         quote(exchanges[it->second].id));
      }
    }
    const std::size_t index = exchanges.size();
    exchanges.push_back(std::move(info));
    for (std::string& s : spellings) exchange_index.emplace(std::move(s), index);
    return {};
  }
};

namespace {

// ---------------------------------------------------------------------------
// JSON reading with paths in the messages

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  Reader at(std::string_view member) const { return Reader(path_ + "." + std::string(member)); }
  Reader at(std::size_t index) const { return Reader(path_ + "[" + std::to_string(index) + "]"); }

  Error fail(const std::string& what) const { return invalid("exchange catalog JSON: " + path_ + ": " + what); }

  Result<const boost::json::object*> object(const boost::json::value& v,
                                            std::initializer_list<std::string_view> allowed) const {
    const auto* o = v.if_object();
    if (o == nullptr) return fail("expected an object");
    for (const auto& member : *o) {
      if (std::find(allowed.begin(), allowed.end(), member.key()) == allowed.end()) {
        std::string names;
        for (const std::string_view a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
        return at(member.key()).fail("unknown member; expected one of " + names);
      }
    }
    return o;
  }

  Result<std::string> string(const boost::json::value& v) const {
    const auto* s = v.if_string();
    if (s == nullptr) return fail("expected a string");
    return std::string(s->data(), s->size());
  }

  Result<std::vector<std::string>> strings(const boost::json::value& v) const {
    const auto* a = v.if_array();
    if (a == nullptr) return fail("expected an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < a->size(); ++i) {
      auto s = at(i).string((*a)[i]);
      if (!s) return s.error();
      out.push_back(std::move(*s));
    }
    return out;
  }

  Result<bool> boolean(const boost::json::value& v) const {
    if (!v.is_bool()) return fail("expected true or false");
    return v.get_bool();
  }

  // An error of the catalog itself (a clash, an unknown field) found while
  // loading is a malformed document, reported with its place.
  Error wrap(const Error& e) const { return invalid("exchange catalog JSON: " + path_ + ": " + e.message()); }

 private:
  std::string path_;
};

Result<boost::json::value> parse_document(std::string_view json) {
  // write_some treats the buffer as the whole input (a truncated document is
  // an error) and reports how far it got, which places the error.
  boost::json::parser parser;
  boost::system::error_code ec;
  const std::size_t consumed = parser.write_some(json.data(), json.size(), ec);
  std::size_t offset = consumed;
  if (!ec) {
    const auto rest = json.find_first_not_of(" \t\r\n", consumed);
    if (rest != std::string_view::npos) {
      ec = boost::json::error::extra_data;
      offset = rest;
    }
  }
  if (ec) {
    return invalid("exchange catalog JSON is malformed at " + detail::place_of(json, offset) + ": " + ec.message());
  }
  return parser.release();
}

Result<std::vector<CredentialField>> read_fields(const Reader& r, const boost::json::value& v) {
  const auto* a = v.if_array();
  if (a == nullptr) return r.fail("expected an array of credential fields");
  std::vector<CredentialField> out;
  for (std::size_t i = 0; i < a->size(); ++i) {
    const Reader ri = r.at(i);
    auto o = ri.object((*a)[i], {"key", "name", "secret", "aliases"});
    if (!o) return o.error();
    CredentialField f;
    const auto* key = (*o)->if_contains("key");
    if (key == nullptr) return ri.fail("missing member \"key\"");
    auto k = ri.at("key").string(*key);
    if (!k) return k.error();
    f.key = std::move(*k);
    if (const auto* name = (*o)->if_contains("name")) {
      auto n = ri.at("name").string(*name);
      if (!n) return n.error();
      f.name = std::move(*n);
    }
    if (const auto* secret = (*o)->if_contains("secret")) {
      auto b = ri.at("secret").boolean(*secret);
      if (!b) return b.error();
      f.secret = *b;
    }
    if (const auto* aliases = (*o)->if_contains("aliases")) {
      auto list = ri.at("aliases").strings(*aliases);
      if (!list) return list.error();
      f.aliases = std::move(*list);
    }
    out.push_back(std::move(f));
  }
  return out;
}

Result<ExchangeInfo> read_exchange(const Reader& r, const boost::json::value& v) {
  auto o = r.object(v, {"id", "name", "required", "optional", "aliases", "icon"});
  if (!o) return o.error();
  ExchangeInfo info;
  const auto* id = (*o)->if_contains("id");
  if (id == nullptr) return r.fail("missing member \"id\"");
  auto s = r.at("id").string(*id);
  if (!s) return s.error();
  info.id = std::move(*s);
  for (auto [member, target] : {std::pair{"name", &info.name}, std::pair{"icon", &info.icon}}) {
    if (const auto* m = (*o)->if_contains(member)) {
      auto text = r.at(member).string(*m);
      if (!text) return text.error();
      *target = std::move(*text);
    }
  }
  for (auto [member, target] : {std::pair{"required", &info.required}, std::pair{"optional", &info.optional},
                                std::pair{"aliases", &info.aliases}}) {
    if (const auto* m = (*o)->if_contains(member)) {
      auto list = r.at(member).strings(*m);
      if (!list) return list.error();
      *target = std::move(*list);
    }
  }
  return info;
}

}  // namespace

ExchangeCatalog::ExchangeCatalog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ExchangeCatalog::ExchangeCatalog() : impl_(std::make_unique<Impl>()) {
  const Impl& standard = *builtin().impl_;
  impl_->fields = standard.fields;
  impl_->field_index = standard.field_index;
}

ExchangeCatalog::ExchangeCatalog(const ExchangeCatalog& other)
    : impl_(std::make_unique<Impl>(*other.impl_)) {}

ExchangeCatalog& ExchangeCatalog::operator=(const ExchangeCatalog& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}

ExchangeCatalog::ExchangeCatalog(ExchangeCatalog&&) noexcept = default;
ExchangeCatalog& ExchangeCatalog::operator=(ExchangeCatalog&&) noexcept = default;
ExchangeCatalog::~ExchangeCatalog() = default;

Result<ExchangeCatalog> ExchangeCatalog::from_json(std::string_view json) {
  auto document = parse_document(json);
  if (!document) return document.error();
  const Reader root("$");
  auto top = root.object(*document, {"format", "source", "fields", "exchanges"});
  if (!top) return top.error();

  if (const auto* format = (*top)->if_contains("format")) {
    const auto* n = format->if_int64();
    if (n == nullptr || *n != 1) return root.at("format").fail("unsupported format; this version reads format 1");
  }
  auto impl = std::make_unique<Impl>();
  if (const auto* source = (*top)->if_contains("source")) {
    auto s = root.at("source").string(*source);
    if (!s) return s.error();
    impl->source = std::move(*s);
  }
  if (const auto* fields = (*top)->if_contains("fields")) {
    auto list = read_fields(root.at("fields"), *fields);
    if (!list) return list.error();
    if (auto r = impl->set_fields(std::move(*list)); !r) return root.at("fields").wrap(r.error());
  } else {
    const Impl& standard = *builtin().impl_;
    impl->fields = standard.fields;
    impl->field_index = standard.field_index;
  }
  const auto* exchanges = (*top)->if_contains("exchanges");
  if (exchanges == nullptr) return root.fail("missing member \"exchanges\"");
  const auto* list = exchanges->if_array();
  if (list == nullptr) return root.at("exchanges").fail("expected an array of exchanges");
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Reader ri = root.at("exchanges").at(i);
    auto info = read_exchange(ri, (*list)[i]);
    if (!info) return info.error();
    if (auto r = impl->add(std::move(*info)); !r) return ri.wrap(r.error());
  }
  return ExchangeCatalog(std::move(impl));
}

const ExchangeCatalog& ExchangeCatalog::builtin() {
  static const ExchangeCatalog catalog = [] {
    auto parsed = from_json(detail::builtin_catalog_json);
    // The data is checked in and tested; failing here means a broken build.
    if (!parsed) throw std::logic_error("keyfolio: built-in exchange catalog: " + parsed.error().message());
    return std::move(*parsed);
  }();
  return catalog;
}

Result<void> ExchangeCatalog::add(ExchangeInfo info) { return impl_->add(std::move(info)); }

const ExchangeInfo* ExchangeCatalog::find(std::string_view id_or_alias) const {
  if (id_or_alias.empty() || id_or_alias.size() > max_id_length) return nullptr;
  char lower[max_id_length];
  std::transform(id_or_alias.begin(), id_or_alias.end(), lower,
                 [](char c) { return detail::ascii_lower(c); });
  auto it = impl_->exchange_index.find(std::string(lower, id_or_alias.size()));
  return it == impl_->exchange_index.end() ? nullptr : &impl_->exchanges[it->second];
}

const CredentialField* ExchangeCatalog::find_field(std::string_view key_or_alias) const {
  if (key_or_alias.empty() || key_or_alias.size() > max_field_key_length) return nullptr;
  auto it = impl_->field_index.find(detail::ascii_lower(key_or_alias));
  return it == impl_->field_index.end() ? nullptr : &impl_->fields[it->second];
}

std::span<const ExchangeInfo> ExchangeCatalog::exchanges() const noexcept { return impl_->exchanges; }
std::span<const CredentialField> ExchangeCatalog::fields() const noexcept { return impl_->fields; }
const std::string& ExchangeCatalog::source() const noexcept { return impl_->source; }

std::vector<std::string> ExchangeCatalog::suggest(std::string_view id, std::size_t limit) const {
  if (id.empty() || id.size() > max_id_length) return {};
  const std::size_t cap = std::max<std::size_t>(1, std::min<std::size_t>(3, id.size() / 3));
  std::vector<std::pair<std::size_t, std::string_view>> scored;
  for (const auto& [spelling, index] : impl_->exchange_index) {
    const std::size_t d = detail::edit_distance(id, spelling, cap);
    if (d > cap) continue;
    const std::string_view canonical = impl_->exchanges[index].id;
    auto same = std::find_if(scored.begin(), scored.end(), [&](const auto& s) { return s.second == canonical; });
    if (same == scored.end()) {
      scored.emplace_back(d, canonical);
    } else {
      same->first = std::min(same->first, d);
    }
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < scored.size() && i < limit; ++i) out.emplace_back(scored[i].second);
  return out;
}

}  // namespace keyfolio
