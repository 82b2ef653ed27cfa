// The commands on accounts: add, list, show, rm, and exchanges (what each
// exchange needs).
#include "cli.hpp"
#include "files.hpp"
#include "prompts.hpp"

#include <iostream>
#include <string_view>

namespace keyfolio::cli {

int cmd_add(const Options& o, std::vector<std::string> args) {
  const auto& catalog = keyfolio::ExchangeCatalog::builtin();
  const auto fields = take_fields(args, catalog);
  reject_options(args);
  if (args.size() != 1) throw Usage{"add takes one account id"};
  if (fields.empty()) throw Usage{"add needs at least one --field"};
  // A bad id is reported before any value is asked for.
  auto id = keyfolio::AccountId::parse(args[0], catalog);
  if (!id) return fail(id.error());
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  auto credentials = read_fields(fields, catalog);
  if (!credentials) return fail(credentials.error());
  auto result = manager->upsert(*id, std::move(*credentials));
  if (!result) return fail(result.error());
  std::cout << (result->created ? "added " : "updated ") << args[0] << " (version " << result->version << ")\n";
  return 0;
}

int cmd_list(const Options& o, std::vector<std::string> args) {
  const bool json = flag(args, "--json");
  reject_options(args);
  if (args.size() > 1) throw Usage{"list takes at most one exchange"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  std::vector<keyfolio::AccountSummary> summaries;
  if (args.empty()) {
    summaries = manager->list();
  } else {
    auto filtered = manager->list(args[0]);
    if (!filtered) return fail(filtered.error());
    summaries = std::move(*filtered);
  }
  if (json) {
    std::vector<std::string> ids;
    for (const auto& s : summaries) ids.push_back(s.id.spelling());
    std::vector<std::string_view> filter(ids.begin(), ids.end());
    if (filter.empty()) {
      std::cout << "[]\n";
      return 0;
    }
    auto body = keyfolio::wire::coinapi_ems::accounts_body(*manager, filter);
    if (!body) return fail(body.error());
    std::cout << *body << '\n';
    return 0;
  }
  for (const auto& s : summaries) {
    std::cout << s.id << "  version " << s.version << "  fields";
    for (const auto& f : s.fields) std::cout << ' ' << f;
    if (s.corrupt) std::cout << "  CORRUPT";
    std::cout << "  fingerprint " << s.fingerprint.substr(0, 16) << '\n';
  }
  return 0;
}

int cmd_show(const Options& o, std::vector<std::string> args) {
  const bool reveal = flag(args, "--reveal");
  reject_options(args);
  if (args.size() != 1) throw Usage{"show takes one account id"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  auto account = manager->get(args[0]);
  if (!account) return fail(account.error());
  if (reveal && on_terminal(STDOUT_FILENO) && !confirm("Print the secrets of " + args[0] + " on this terminal?")) {
    std::cerr << "keyfolio: not revealed\n";
    return exit_other;
  }
  const auto& catalog = manager->catalog();
  std::cout << (*account)->id << "  version " << (*account)->version << '\n';
  for (const auto& [key, value] : (*account)->credentials) {
    const keyfolio::CredentialField* field = catalog.find_field(key);
    const bool secret = field == nullptr || field->secret;
    std::cout << "  " << key << ": ";
    if (reveal || !secret) {
      // Straight from secure memory to the descriptor: through std::cout the
      // value would stay behind in the stream's buffer. Flushed first so the
      // output stays in order.
      std::cout.flush();
      if (auto written = write_file("-", {value.reveal()}, false); !written) return fail(written.error());
    } else {
      std::cout << value;
    }
    std::cout << '\n';
  }
  return 0;
}

int cmd_rm(const Options& o, std::vector<std::string> args) {
  const bool all = flag(args, "--all");
  const bool yes = flag(args, "--yes");
  reject_options(args);
  if (all) {
    if (!args.empty()) throw Usage{"rm --all takes no account ids"};
    if (!yes) {
      if (!on_terminal(STDIN_FILENO)) throw Usage{"rm --all needs --yes when not run on a terminal"};
      if (!confirm("Remove every account of the store?")) {
        std::cerr << "keyfolio: nothing removed\n";
        return exit_other;
      }
    }
    auto manager = open_store(o, false);
    if (!manager) return fail(manager.error());
    auto removed = manager->remove_all();
    if (!removed) return fail(removed.error());
    std::cout << "removed " << *removed << " accounts\n";
    return 0;
  }
  if (args.empty()) throw Usage{"rm takes account ids, or --all"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  std::vector<keyfolio::AccountId> ids;
  for (const auto& a : args) {
    auto id = keyfolio::AccountId::parse(a, manager->catalog());
    if (!id) return fail(id.error());
    ids.push_back(std::move(*id));
  }
  auto removed = manager->remove(ids);
  if (!removed) return fail(removed.error());
  std::cout << "removed " << *removed << (*removed == 1 ? " account\n" : " accounts\n");
  return 0;
}

int cmd_exchanges(const Options&, std::vector<std::string> args) {
  const bool json = flag(args, "--json");
  reject_options(args);
  if (args.size() > 1) throw Usage{"exchanges takes at most one exchange"};
  const auto& catalog = keyfolio::ExchangeCatalog::builtin();
  std::vector<keyfolio::SupportedExchange> list;
  for (const auto& info : catalog.exchanges()) {
    if (!args.empty() && catalog.find(args[0]) != &info) continue;
    keyfolio::SupportedExchange e{info.id, info.name, info.icon, {}};
    for (const auto& key : info.required) e.fields.push_back(*catalog.find_field(key));
    list.push_back(std::move(e));
  }
  if (!args.empty() && list.empty()) {
    return fail(unknown_exchange(args[0], catalog));
  }
  if (json) {
    std::cout << keyfolio::wire::coinstats::support_body(list) << '\n';
    return 0;
  }
  for (const auto& e : list) {
    std::cout << e.connection_id << " (" << e.name << "):";
    for (const auto& f : e.fields) std::cout << ' ' << f.key;
    std::cout << '\n';
  }
  return 0;
}

}  // namespace keyfolio::cli
