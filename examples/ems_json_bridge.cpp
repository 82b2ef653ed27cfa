// ems_json_bridge: CoinAPI EMS account-management requests, read from files
// and the command line, answered through keyfolio's wire layer — what a host
// puts behind its own HTTP server's /v1/accounts and /v1/exchanges routes.
//
//   ems_json_bridge [--store FILE] REQUEST...
//     POST:FILE        POST /v1/accounts with FILE as the body
//     GET              GET /v1/accounts (secrets redacted)
//     GET:ID           GET /v1/accounts?filter_exchange_id=ID
//     DELETE:ID        DELETE /v1/accounts?exchange_id=ID
//     DELETE-ALL       DELETE /v1/accounts/all
//     EXCHANGES        GET /v1/exchanges (first 3 entries shown)
//
// Without --store the accounts live in memory for this run only. Each
// response is printed as "<status> <body>".
#include <keyfolio/keyfolio.hpp>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace ems = keyfolio::wire::coinapi_ems;

namespace {

int usage() {
  std::cerr << "usage: ems_json_bridge [--store FILE] POST:FILE | GET[:ID] | DELETE:ID | DELETE-ALL | EXCHANGES ...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> requests(argv + 1, argv + argc);
  std::shared_ptr<keyfolio::StorageBackend> backend;
  if (requests.size() >= 2 && requests[0] == "--store") {
    auto sqlite = keyfolio::make_sqlite_backend(requests[1]);
    if (!sqlite) {
      std::cerr << "ems_json_bridge: " << sqlite.error().message() << '\n';
      return 1;
    }
    backend = *sqlite;
    requests.erase(requests.begin(), requests.begin() + 2);
  } else {
    backend = keyfolio::make_memory_backend();
  }
  if (requests.empty()) return usage();
  // A host would take the key from its KMS or its operator.
  auto manager = keyfolio::AccountManager::open(
      backend, keyfolio::KeySource::raw_key(keyfolio::SecretString(std::string(32, 'd'))));
  if (!manager) {
    std::cerr << "ems_json_bridge: " << manager.error().message() << '\n';
    return 1;
  }

  for (const std::string& request : requests) {
    const auto colon = request.find(':');
    const std::string verb = request.substr(0, colon);
    const std::string arg = colon == std::string::npos ? "" : request.substr(colon + 1);
    ems::Response response;
    if (verb == "POST" && !arg.empty()) {
      std::ifstream in(arg, std::ios::binary);
      if (!in) {
        std::cerr << "ems_json_bridge: cannot read " << arg << '\n';
        return 1;
      }
      std::ostringstream body;
      body << in.rdbuf();
      response = ems::post_accounts(*manager, body.str());
    } else if (verb == "GET") {
      std::vector<std::string_view> filter;
      if (!arg.empty()) filter.push_back(arg);
      response = ems::get_accounts(*manager, filter);
    } else if (verb == "DELETE" && !arg.empty()) {
      const std::string_view id = arg;
      response = ems::delete_accounts(*manager, {&id, 1});
    } else if (verb == "DELETE-ALL") {
      response = ems::delete_all_accounts(*manager);
    } else if (verb == "EXCHANGES") {
      response = ems::get_exchanges(manager->catalog());
      // Shown shortened: the full list has every exchange of the catalog.
      const auto third = response.body.find("]},", response.body.find("]},", response.body.find("]},") + 1) + 1);
      if (third != std::string::npos) response.body = response.body.substr(0, third + 2) + "...]";
    } else {
      return usage();
    }
    std::cout << request << " -> " << response.status << ' ' << response.body << '\n';
  }
  return 0;
}
