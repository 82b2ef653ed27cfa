#include "arguments.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace keyfolio::cli {

namespace fs = std::filesystem;

namespace {

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

bool postgres_uri(std::string_view store) {
  return store.starts_with("postgresql://") || store.starts_with("postgres://");
}

fs::path default_store_path() {
  fs::path data;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    data = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr) {
    data = fs::path(home) / ".local" / "share";
  } else {
    throw Usage{"no store location: give --store PATH or set KEYFOLIO_STORE"};
  }
  return data / "keyfolio" / "keyfolio.db";
}

}  // namespace

StoreLocation store_location(const Options& o) {
  StoreLocation where;
  std::string given = o.store ? *o.store : environment("KEYFOLIO_STORE");
  if (postgres_uri(given)) {
    where.uri = std::move(given);
    where.schema = o.schema ? *o.schema : environment("KEYFOLIO_SCHEMA");
    return where;
  }
  // $KEYFOLIO_SCHEMA may be set for other stores; --schema is a mistake.
  if (o.schema) throw Usage{"--schema names a schema of a PostgreSQL store; the store is a SQLite file"};
  where.path = given.empty() ? default_store_path() : fs::path(given);
  return where;
}

bool flag(std::vector<std::string>& args, const std::string& name) {
  auto it = std::find(args.begin(), args.end(), name);
  if (it == args.end()) return false;
  args.erase(it);
  return true;
}

void reject_options(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a.rfind("--", 0) == 0) throw Usage{"unknown option " + a};
  }
}

std::optional<std::string> take_value(std::vector<std::string>& args, const std::string& name) {
  auto it = std::find(args.begin(), args.end(), name);
  if (it == args.end()) return std::nullopt;
  if (it + 1 == args.end()) throw Usage{name + " needs a value"};
  std::string value = *(it + 1);
  args.erase(it, it + 2);
  return value;
}

std::optional<int> take_fd(std::vector<std::string>& args, const std::string& name) {
  auto value = take_value(args, name);
  if (!value) return std::nullopt;
  int fd = -1;
  const char* end = value->data() + value->size();
  if (auto [ptr, ec] = std::from_chars(value->data(), end, fd); ec != std::errc() || ptr != end || fd < 0) {
    throw Usage{name + " needs a file descriptor number"};
  }
  return fd;
}

std::vector<std::string> take_fields(std::vector<std::string>& args, const keyfolio::ExchangeCatalog& catalog) {
  std::vector<std::string> fields;
  while (auto field = take_value(args, "--field")) fields.push_back(std::move(*field));
  for (const auto& f : fields) {
    const auto eq = f.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = f.substr(0, eq);
    const keyfolio::CredentialField* known = catalog.find_field(name);
    if (known == nullptr || known->secret) {
      throw Usage{"field " + name.substr(0, 64) +
                  " may not be given on the command line, where other users can read it; give --field " +
                  name.substr(0, 64) + " and enter the value when asked"};
    }
  }
  return fields;
}

}  // namespace keyfolio::cli
