#include <keyfolio/credentials.hpp>

#include "detail/text.hpp"

#include <algorithm>
#include <ostream>

namespace keyfolio {
namespace {

Error invalid_field(const std::string& message) { return Error(errc::validation_failed, message); }

// A field name as messages and stream output show it. The catalog's own
// names are shown whole. Any other name might be a value pasted into the
// wrong place, so it is quoted only when it looks like an identifier.
std::string shown_name(std::string_view name, const ExchangeCatalog& catalog) {
  if (catalog.find_field(name) != nullptr) return detail::quote(name);
  return detail::shown_field_name(name);
}

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
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!detail::is_visible_ascii(name[i])) {
      // Not quoted: a name with such characters is likely no name at all.
      return invalid_field("a credential field name has a space, control or non-ASCII character at position " +
                           std::to_string(i));
    }
  }
  const CredentialField* field = catalog.find_field(name);
  std::string key = field != nullptr ? field->key : std::string(name);
  if (value.empty()) return invalid_field("credential field " + shown_name(key, catalog) + " is empty");
  if (value.size() > max_value_size) {
    return invalid_field("credential field " + shown_name(key, catalog) + " is " + std::to_string(value.size()) +
                         " bytes long; at most " + std::to_string(max_value_size) + " are allowed");
  }
  auto at = std::lower_bound(fields_.begin(), fields_.end(), key,
                             [](const Field& f, const std::string& k) { return f.first < k; });
  if (at != fields_.end() && at->first == key) {
    std::string why = "credential field " + shown_name(key, catalog) + " is given twice";
    if (key != name) why += " (once as " + shown_name(name, catalog) + ")";
    return invalid_field(why);
  }
  fields_.emplace(at, std::move(key), std::move(value));
  return {};
}

const SecretString* Credentials::find(std::string_view key) const noexcept {
  for (const Field& f : fields_) {
    if (f.first == key) return &f.second;
  }
  return nullptr;
}

bool Credentials::erase(std::string_view key) {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.first == key; });
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
    if (!contains(key)) missing.push_back(detail::quote(key));
  }
  std::vector<std::string> unknown;
  for (const auto& entry : fields_) {
    if (!exchange.accepts_field(entry.first)) {
      unknown.push_back(shown_name(entry.first, ExchangeCatalog::builtin()));
    }
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
    const bool known = ExchangeCatalog::builtin().find_field(key) != nullptr;
    os << (first ? "" : ", ") << (known ? key : shown_name(key, ExchangeCatalog::builtin())) << ": " << value;
    first = false;
  }
  return os << '}';
}

}  // namespace keyfolio
