#include <keyfolio/credentials.hpp>

#include "detail/text.hpp"

#include <ostream>

namespace keyfolio {
namespace {

Error invalid_field(const std::string& message) { return Error(errc::validation_failed, message); }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

Result<void> Credentials::add(std::string_view name, SecretString value) {
  return add(name, std::move(value), ExchangeCatalog::builtin());
}

Result<void> Credentials::add(std::string_view name, SecretString value, const ExchangeCatalog& catalog) {
  if (name.empty()) return invalid_field("credential field name is empty");
  if (name.size() > ExchangeCatalog::max_field_key_length) {
    // Not quoted: an overlong "name" is more likely a value pasted in the wrong place.
    return invalid_field("credential field name is " + std::to_string(name.size()) + " bytes long; at most " +
                         std::to_string(ExchangeCatalog::max_field_key_length) + " are allowed");
  }
  for (const char c : name) {
    if (!detail::is_visible_ascii(c)) {
      return invalid_field("credential field name " + detail::quote(name) +
                           " has a space, control or non-ASCII character");
    }
  }
  const CredentialField* field = catalog.find_field(name);
  std::string key = field != nullptr ? field->key : std::string(name);
  if (value.empty()) return invalid_field("credential field " + detail::quote(key) + " is empty");
  if (value.size() > max_value_size) {
    return invalid_field("credential field " + detail::quote(key) + " is " + std::to_string(value.size()) +
                         " bytes long; at most " + std::to_string(max_value_size) + " are allowed");
  }
  if (fields_.contains(key)) {
    std::string why = "credential field " + detail::quote(key) + " is given twice";
    if (key != name) why += " (once as " + detail::quote(name) + ")";
    return invalid_field(why);
  }
  fields_.emplace(std::move(key), std::move(value));
  return {};
}

const SecretString* Credentials::find(std::string_view key) const noexcept {
  auto it = fields_.find(key);
  return it == fields_.end() ? nullptr : &it->second;
}

bool Credentials::erase(std::string_view key) {
  auto it = fields_.find(key);
  if (it == fields_.end()) return false;
  fields_.erase(it);
  return true;
}

std::vector<std::string> Credentials::field_names() const {
  std::vector<std::string> names;
  names.reserve(fields_.size());
  for (const auto& entry : fields_) names.push_back(entry.first);
  return names;
}

Result<void> Credentials::validate(const ExchangeInfo& exchange) const {
  std::vector<std::string> missing;
  for (const auto& key : exchange.required) {
    if (!fields_.contains(key)) missing.push_back(detail::quote(key));
  }
  std::vector<std::string> unknown;
  for (const auto& entry : fields_) {
    if (!exchange.accepts_field(entry.first)) unknown.push_back(detail::quote(entry.first));
  }
  if (missing.empty() && unknown.empty()) return {};

  std::string message = "credentials for " + exchange.name + " (" + exchange.id + ")";
  if (!missing.empty()) message += ": missing required field" + std::string(missing.size() > 1 ? "s " : " ") + join(missing);
  if (!unknown.empty()) {
    message += std::string(missing.empty() ? ": " : "; ") + "unknown field" + (unknown.size() > 1 ? "s " : " ") +
               join(unknown);
    std::vector<std::string> accepted;
    for (const auto& key : exchange.required) accepted.push_back(key);
    for (const auto& key : exchange.optional) accepted.push_back(key);
    message += accepted.empty() ? " (it takes no credentials)" : " (it takes " + join(accepted) + ")";
  }
  return Error(errc::validation_failed, std::move(message));
}

std::ostream& operator<<(std::ostream& os, const Credentials& credentials) {
  os << '{';
  bool first = true;
  for (const auto& [key, value] : credentials) {
    os << (first ? "" : ", ") << key << ": " << value;
    first = false;
  }
  return os << '}';
}

}  // namespace keyfolio
