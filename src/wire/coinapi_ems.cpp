#include <keyfolio/wire/coinapi_ems.hpp>

#include "memory/secure_arena.hpp"
#include "detail/text.hpp"
#include "wire/json_input.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>

namespace keyfolio::wire::coinapi_ems {
namespace {

namespace json = boost::json;

struct WireName {
  std::string_view key;
  std::string_view wire;
};
constexpr std::array<WireName, 3> wire_names{{
    {"apiKey", "PublicApiKey"},
    {"secret", "PrivateApiKey"},
    {"password", "PassPhrase"},
}};

Error bad_shape(const std::string& where, const std::string& message) {
  return Error(errc::invalid_argument, where + message);
}

// Prefixes the message of `e` with where it happened, keeping its code.
Error within(const std::string& where, const Error& e) { return Error(e.code(), where + e.message()); }

Result<AccountUpdate> read_account(const json::value& v, const std::string& where, const ExchangeCatalog& catalog,
                                   const Limits& limits) {
  const json::object* object = v.if_object();
  if (object == nullptr) {
    return bad_shape(where, "must be an object with \"exchange_id\" and \"parameters\", not " +
                                std::string(detail::kind_of(v)));
  }
  for (const auto& member : *object) {
    if (member.key() != "exchange_id" && member.key() != "parameters") {
      return bad_shape(where, "has the unknown member " + detail::shown_name(member.key()) +
                                  "; an account has \"exchange_id\" and \"parameters\"");
    }
  }
  const json::value* exchange_id = object->if_contains("exchange_id");
  if (exchange_id == nullptr) {
    return Error(errc::invalid_exchange_id, where + "has no \"exchange_id\"");
  }
  if (!exchange_id->is_string()) {
    return bad_shape(where, "\"exchange_id\" must be a string, not " + std::string(detail::kind_of(*exchange_id)));
  }
  const json::string& id_text = exchange_id->get_string();
  auto id = AccountId::parse(std::string_view(id_text.data(), id_text.size()), catalog);
  if (!id) return within(where, id.error());

  const json::value* parameters = object->if_contains("parameters");
  if (parameters == nullptr) {
    return bad_shape(where, "has no \"parameters\"; expected [{\"key\": ..., \"value\": ...}, ...]");
  }
  const json::array* list = parameters->if_array();
  if (list == nullptr) {
    return bad_shape(where, "\"parameters\" must be an array, not " + std::string(detail::kind_of(*parameters)));
  }
  if (list->size() > limits.max_parameters) {
    return bad_shape(where, "has " + std::to_string(list->size()) + " parameters; at most " +
                                std::to_string(limits.max_parameters) + " are accepted");
  }
  Credentials credentials;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string at = where + "parameter " + std::to_string(i + 1) + ": ";
    const json::object* parameter = (*list)[i].if_object();
    if (parameter == nullptr) {
      return bad_shape(at, "must be an object {\"key\": ..., \"value\": ...}, not " +
                               std::string(detail::kind_of((*list)[i])));
    }
    for (const auto& member : *parameter) {
      if (member.key() == "redacted") {
        return Error(errc::validation_failed, at + "is redacted; a redacted listing cannot be stored back");
      }
      if (member.key() != "key" && member.key() != "value") {
        return bad_shape(at, "has the unknown member " + detail::shown_name(member.key()) +
                                 "; a parameter has \"key\" and \"value\"");
      }
    }
    const json::value* key = parameter->if_contains("key");
    if (key == nullptr) return bad_shape(at, "has no \"key\"");
    if (!key->is_string()) return bad_shape(at, "\"key\" must be a string, not " + std::string(detail::kind_of(*key)));
    const std::string_view name(key->get_string().data(), key->get_string().size());
    const std::string named = at.substr(0, at.size() - 2) + " (" + detail::shown_name(name) + "): ";
    const json::value* value = parameter->if_contains("value");
    if (value == nullptr) return Error(errc::validation_failed, named + "has no \"value\"");
    if (value->is_null()) {
      return Error(errc::validation_failed,
                   named + "has no value (null); a redacted listing cannot be stored back");
    }
    if (!value->is_string()) {
      return bad_shape(named, "\"value\" must be a string, not " + std::string(detail::kind_of(*value)));
    }
    const json::string& text = value->get_string();
    if (text.size() > Credentials::max_value_size) {
      return Error(errc::validation_failed, named + "value is " + std::to_string(text.size()) + " bytes; at most " +
                                                std::to_string(Credentials::max_value_size) + " are accepted");
    }
    if (auto added = credentials.add(name, SecretString(std::string_view(text.data(), text.size())), catalog);
        !added) {
      return within(named, added.error());
    }
  }
  return AccountUpdate{std::move(*id), std::move(credentials)};
}

// Builds the account array into `out`. With `reveal`, secret values are
// included; the caller then keeps `out` in wiping storage.
Result<void> build_accounts(const AccountManager& manager, std::span<const std::string_view> filter, bool reveal,
                            json::array& out) {
  const ExchangeCatalog& catalog = manager.catalog();
  std::vector<AccountSummary> summaries;
  if (filter.empty()) {
    summaries = manager.list();
  } else {
    std::vector<AccountId> wanted;
    for (std::size_t i = 0; i < filter.size(); ++i) {
      auto id = AccountId::parse(filter[i], catalog);
      if (!id) return within("filter_exchange_id " + std::to_string(i + 1) + ": ", id.error());
      wanted.push_back(std::move(*id));
    }
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    // One lookup per id asked for, not a listing of the whole store.
    for (auto& id : wanted) {
      auto stored = manager.get(id);
      if (!stored && stored.error().code() == errc::not_found) continue;
      AccountSummary summary{stored ? (*stored)->id : std::move(id)};
      summary.corrupt = !stored;
      summaries.push_back(std::move(summary));
    }
  }
  out.reserve(summaries.size());
  for (const AccountSummary& summary : summaries) {
    json::object& account = out.emplace_back(json::object(out.storage())).get_object();
    account["exchange_id"] = summary.id.spelling();
    json::array& parameters = account["parameters"].emplace_array();
    if (summary.corrupt) {
      if (reveal) {
        return Error(errc::corrupt_data, "the stored record of account " + detail::quote(summary.id.spelling()) +
                                             " does not authenticate; nothing was exported");
      }
      account["corrupt"] = true;
      continue;
    }
    auto stored = manager.get(summary.id);
    if (!stored) {
      // Removed since list(): leave it out, as if listed a moment later.
      if (stored.error().code() == errc::not_found) {
        out.pop_back();
        continue;
      }
      if (reveal) return stored.error();
      account["corrupt"] = true;
      continue;
    }
    for (const auto& [key, value] : (*stored)->credentials) {
      json::object& parameter = parameters.emplace_back(json::object(out.storage())).get_object();
      parameter["key"] = parameter_name(key);
      const CredentialField* field = catalog.find_field(key);
      const bool secret = field == nullptr || field->secret;
      if (reveal || !secret) {
        parameter["value"] = std::string_view(value.reveal());
      } else {
        parameter["value"] = nullptr;
        parameter["redacted"] = true;
      }
    }
  }
  return {};
}

std::string status_body(const std::vector<AccountUpdate>& accounts, const std::vector<UpsertResult>& results) {
  json::array out;
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    out.push_back(json::object{{"exchange_id", accounts[i].id.spelling()},
                               {"status", results[i].created ? "created" : "updated"},
                               {"version", results[i].version}});
  }
  return json::serialize(out);
}

Response error_response(const Error& error) { return {http_status(error.code()), error_body(error)}; }

}  // namespace

std::string_view parameter_name(std::string_view key) noexcept {
  for (const auto& name : wire_names) {
    if (name.key == key) return name.wire;
  }
  return key;
}

Result<std::vector<AccountUpdate>> parse_accounts(std::string_view body, const ExchangeCatalog& catalog,
                                                  const Limits& limits) {
  auto document = detail::parse_json(body, "the request body", {limits.max_body_size, 8}, detail::wiping_storage());
  if (!document) return document.error();
  std::vector<AccountUpdate> accounts;
  if (const json::array* array = document->if_array()) {
    if (array->empty()) return Error(errc::invalid_argument, "the request body is an empty array; no account given");
    if (array->size() > limits.max_accounts) {
      return Error(errc::invalid_argument, "the request body has " + std::to_string(array->size()) +
                                               " accounts; at most " + std::to_string(limits.max_accounts) +
                                               " are accepted in one body");
    }
    accounts.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
      auto account = read_account((*array)[i], "account " + std::to_string(i + 1) + ": ", catalog, limits);
      if (!account) return account.error();
      accounts.push_back(std::move(*account));
    }
    return accounts;
  }
  auto account = read_account(*document, "the request body ", catalog, limits);
  if (!account) return account.error();
  accounts.push_back(std::move(*account));
  return accounts;
}

Result<std::vector<UpsertResult>> add_or_update(AccountManager& manager, std::string_view body, const Limits& limits) {
  auto accounts = parse_accounts(body, manager.catalog(), limits);
  if (!accounts) return accounts.error();
  return manager.upsert(std::move(*accounts));
}

std::string accounts_body(const AccountManager& manager) {
  json::array out;
  (void)build_accounts(manager, {}, false, out);  // cannot fail unredacted and unfiltered
  return json::serialize(out);
}

Result<std::string> accounts_body(const AccountManager& manager, std::span<const std::string_view> filter) {
  json::array out;
  if (auto built = build_accounts(manager, filter, false, out); !built) return built.error();
  return json::serialize(out);
}

Result<SecretString> revealed_accounts_body(const AccountManager& manager, std::span<const std::string_view> filter) {
  json::array out(detail::wiping_storage());
  if (auto built = build_accounts(manager, filter, true, out); !built) return built.error();
  // Serialize straight into secure memory: size it with a first pass.
  json::serializer counter;
  counter.reset(&out);
  std::array<char, 4096> scratch{};
  std::size_t size = 0;
  while (!counter.done()) size += counter.read(scratch.data(), scratch.size()).size();
  detail::secure_wipe(scratch.data(), scratch.size());
  if (size > SecretString::max_size) {
    return Error(errc::invalid_argument, "the revealed listing would be " + std::to_string(size) +
                                             " bytes, more than a SecretString holds (" +
                                             std::to_string(SecretString::max_size) +
                                             "); ask for fewer accounts at a time");
  }
  detail::SecureBuffer buffer(size);
  json::serializer writer;
  writer.reset(&out);
  std::size_t at = 0;
  while (!writer.done()) at += writer.read(buffer.data() + at, size - at).size();
  return SecretString(buffer.view());
}

std::string exchanges_body(const ExchangeCatalog& catalog) {
  json::array out;
  out.reserve(catalog.exchanges().size());
  for (const ExchangeInfo& info : catalog.exchanges()) {
    json::array required;
    for (const auto& key : info.required) required.emplace_back(parameter_name(key));
    std::string id = info.id;
    std::transform(id.begin(), id.end(), id.begin(), [](char c) {
      return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    });
    out.push_back(json::object{{"exchange_id", id}, {"required_parameters", std::move(required)}});
  }
  return json::serialize(out);
}

int http_status(errc code) noexcept {
  switch (code) {
    case errc::invalid_exchange_id:
    case errc::invalid_argument: return 400;
    case errc::validation_failed: return 405;
    case errc::not_found: return 404;
    case errc::conflict: return 409;
    case errc::unavailable: return 503;
    case errc::not_supported: return 501;
    default: return 500;
  }
}

std::string error_body(const Error& error) {
  return json::serialize(json::object{{"status", http_status(error.code())},
                                      {"error", to_string(error.code())},
                                      {"message", error.message()}});
}

Response post_accounts(AccountManager& manager, std::string_view body, const Limits& limits) {
  auto accounts = parse_accounts(body, manager.catalog(), limits);
  if (!accounts) return error_response(accounts.error());
  std::vector<AccountUpdate> copy;
  copy.reserve(accounts->size());
  for (const auto& account : *accounts) copy.push_back({account.id, {}});
  auto stored = manager.upsert(std::move(*accounts));
  if (!stored) return error_response(stored.error());
  return {200, status_body(copy, *stored)};
}

Response get_accounts(const AccountManager& manager, std::span<const std::string_view> filter) {
  auto body = accounts_body(manager, filter);
  if (!body) return error_response(body.error());
  return {200, std::move(*body)};
}

Response delete_accounts(AccountManager& manager, std::span<const std::string_view> exchange_ids) {
  if (exchange_ids.empty()) {
    return error_response(Error(errc::invalid_exchange_id, "no exchange_id given; nothing was removed"));
  }
  std::vector<AccountId> ids;
  for (std::size_t i = 0; i < exchange_ids.size(); ++i) {
    auto id = AccountId::parse(exchange_ids[i], manager.catalog());
    if (!id) return error_response(within("exchange_id " + std::to_string(i + 1) + ": ", id.error()));
    ids.push_back(std::move(*id));
  }
  auto removed = manager.remove(ids);
  if (!removed) return error_response(removed.error());
  return {200, json::serialize(json::object{{"removed", *removed}})};
}

Response delete_all_accounts(AccountManager& manager) {
  auto removed = manager.remove_all();
  if (!removed) return error_response(removed.error());
  return {200, json::serialize(json::object{{"removed", *removed}})};
}

Response get_exchanges(const ExchangeCatalog& catalog) { return {200, exchanges_body(catalog)}; }

}  // namespace keyfolio::wire::coinapi_ems
