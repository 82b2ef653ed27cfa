#include <keyfolio/account_id.hpp>

#include "detail/text.hpp"

#include <ostream>

namespace keyfolio {
namespace {

using detail::quote;

// Input as messages show it: whole when short, else its first characters and
// length, because a long "id" that fails to parse may be a secret pasted into
// the wrong field.
std::string shown(std::string_view text) { return detail::quote_abbreviated(text, 24); }

Error bad(std::string_view text, const std::string& why) {
  return Error(errc::invalid_exchange_id, "invalid account id " + shown(text) + ": " + why);
}

std::string position(std::size_t i) { return "at position " + std::to_string(i); }

// Checks the tag; `offset` is where it starts in `text`, for positions.
Result<void> check_tag(std::string_view text, std::string_view tag, std::size_t offset) {
  if (tag.size() > AccountId::max_tag_length) {
    return bad(text, "the tag is " + std::to_string(tag.size()) + " bytes long; at most " +
                         std::to_string(AccountId::max_tag_length) + " are allowed");
  }
  for (std::size_t pos = 0; pos < tag.size();) {
    const std::size_t at = pos;
    const auto cp = detail::decode_utf8(tag, pos);
    if (!cp) return bad(text, "the tag is not valid UTF-8 " + position(offset + at));
    if (*cp < 0x80 ? detail::is_ascii_space_or_control(static_cast<char>(*cp))
                   : detail::is_unicode_space_or_invisible(*cp)) {
      return bad(text, "whitespace, control or invisible character " + position(offset + at));
    }
  }
  return {};
}

Result<AccountId> resolve(std::string_view text, std::string_view exchange, const ExchangeCatalog& catalog,
                          auto&& make) {
  const ExchangeInfo* info = catalog.find(exchange);
  if (info == nullptr) {
    std::string why = "unknown exchange " + shown(exchange);
    const auto suggestions = catalog.suggest(exchange);
    if (!suggestions.empty()) {
      why += "; did you mean";
      for (std::size_t i = 0; i < suggestions.size(); ++i) {
        why += (i == 0 ? " " : (i + 1 == suggestions.size() ? " or " : ", ")) + quote(suggestions[i]);
      }
      why += "?";
    }
    return bad(text, why);
  }
  return make(info->id);
}

// Checks the exchange part; `text` is the whole input, for the message.
Result<void> check_exchange(std::string_view text, std::string_view exchange) {
  if (exchange.size() > AccountId::max_exchange_length) {
    return bad(text, "the exchange part is " + std::to_string(exchange.size()) + " bytes long; at most " +
                         std::to_string(AccountId::max_exchange_length) + " are allowed");
  }
  for (std::size_t i = 0; i < exchange.size(); ++i) {
    if (detail::is_ascii_space_or_control(exchange[i])) {
      return bad(text, "whitespace or control character " + position(i));
    }
    if (static_cast<unsigned char>(exchange[i]) >= 0x80) {
      return bad(text, "the exchange part has a character outside printable ASCII " + position(i));
    }
  }
  return {};
}

}  // namespace

Result<AccountId> AccountId::parse(std::string_view text) { return parse(text, ExchangeCatalog::builtin()); }

Result<AccountId> AccountId::parse(std::string_view text, const ExchangeCatalog& catalog) {
  if (text.empty()) return bad(text, "it is empty");
  const std::size_t split = text.find_first_of(separators);
  const std::string_view exchange = text.substr(0, split);
  if (exchange.empty()) {
    return bad(text, std::string("the exchange part before the separator '") + text[0] + "' is empty");
  }
  if (auto r = check_exchange(text, exchange); !r) return r.error();
  std::string_view tag;
  if (split != std::string_view::npos) {
    tag = text.substr(split + 1);
    if (tag.empty()) {
      return bad(text, std::string("the separator '") + text[split] + "' is not followed by a tag");
    }
    if (auto r = check_tag(text, tag, split + 1); !r) return r.error();
  }
  return resolve(text, exchange, catalog, [&](const std::string& canonical) {
    return AccountId(canonical, std::string(tag), std::string(text));
  });
}

Result<AccountId> AccountId::from_parts(std::string_view exchange, std::string_view tag) {
  return from_parts(exchange, tag, ExchangeCatalog::builtin());
}

Result<AccountId> AccountId::from_parts(std::string_view exchange, std::string_view tag,
                                        const ExchangeCatalog& catalog) {
  std::string spelling(exchange);
  if (!tag.empty()) (spelling += '/') += tag;
  if (exchange.empty()) return bad(spelling, "the exchange part is empty");
  if (auto r = check_exchange(spelling, exchange); !r) return r.error();
  if (const auto sep = exchange.find_first_of(separators); sep != std::string_view::npos) {
    return bad(spelling, std::string("the exchange part contains the separator '") + exchange[sep] + "' " +
                             position(sep));
  }
  if (auto r = check_tag(spelling, tag, exchange.size() + 1); !r) return r.error();
  return resolve(spelling, exchange, catalog, [&](const std::string& canonical) {
    return AccountId(canonical, std::string(tag), spelling);
  });
}

std::string AccountId::canonical() const { return tag_.empty() ? exchange_ : exchange_ + "/" + tag_; }

std::ostream& operator<<(std::ostream& os, const AccountId& id) { return os << id.spelling(); }

}  // namespace keyfolio
