// The commands on portfolios: connect (an exchange account as a portfolio),
// portfolios, and disconnect.
#include "cli.hpp"
#include "prompts.hpp"

#include <iostream>

namespace keyfolio::cli {

int cmd_connect(const Options& o, std::vector<std::string> args) {
  const auto& catalog = keyfolio::ExchangeCatalog::builtin();
  const auto fields = take_fields(args, catalog);
  const auto name = take_value(args, "--name");
  const bool json = flag(args, "--json");
  reject_options(args);
  if (args.size() != 1) throw Usage{"connect takes one exchange"};
  if (fields.empty()) throw Usage{"connect needs at least one --field"};
  if (catalog.find(args[0]) == nullptr) return fail(unknown_exchange(args[0], catalog));
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  auto credentials = read_fields(fields, catalog);
  if (!credentials) return fail(credentials.error());
  keyfolio::PortfolioConnector connector(*manager);
  auto result = connector.connect({args[0], std::move(*credentials), name.value_or("")});
  if (!result) return fail(result.error());
  if (json) {
    std::cout << keyfolio::wire::coinstats::connect_body(*result) << '\n';
    return 0;
  }
  const bool connected = result->status == keyfolio::ConnectResult::Status::connected;
  std::cout << result->portfolio_id << (connected ? " connected" : " existing") << "  account " << result->account;
  if (result->credentials_updated) std::cout << "  (credentials updated)";
  std::cout << '\n';
  return 0;
}

int cmd_portfolios(const Options& o, std::vector<std::string> args) {
  const bool json = flag(args, "--json");
  reject_options(args);
  if (!args.empty()) throw Usage{"portfolios takes no arguments"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  keyfolio::PortfolioConnector connector(*manager);
  auto list = connector.list();
  if (!list) return fail(list.error());
  if (json) {
    std::cout << keyfolio::wire::coinstats::portfolios_body(*list) << '\n';
    return 0;
  }
  for (const auto& p : *list) {
    if (p.corrupt) {
      std::cout << p.id << "  CORRUPT: its stored record is damaged; `keyfolio disconnect " << p.id
                << "` removes it\n";
    } else {
      std::cout << p.id << "  " << p.name << "  account " << p.account << '\n';
    }
  }
  return 0;
}

namespace {

// A portfolio by id, or by name when exactly one portfolio has it (a
// corrupt one, whose name is unknown, by id only).
keyfolio::Result<keyfolio::Portfolio> find_portfolio(const keyfolio::PortfolioConnector& connector,
                                                     const std::string& wanted) {
  auto list = connector.list();
  if (!list) return list.error();
  std::vector<const keyfolio::Portfolio*> named;
  for (const auto& p : *list) {
    if (p.id == wanted) return p;
    if (!p.corrupt && p.name == wanted) named.push_back(&p);
  }
  if (named.size() == 1) return *named.front();
  const std::string shown = wanted.size() <= 64 ? wanted : wanted.substr(0, 61) + "...";
  if (named.empty()) {
    return keyfolio::Error(keyfolio::errc::not_found, "no portfolio has the id or name \"" + shown + "\"");
  }
  std::string ids;
  for (const auto* p : named) ids += (ids.empty() ? "" : ", ") + p->id;
  return keyfolio::Error(keyfolio::errc::invalid_argument,
                         std::to_string(named.size()) + " portfolios are named \"" + shown + "\" (" + ids +
                             "); give the id");
}

}  // namespace

int cmd_disconnect(const Options& o, std::vector<std::string> args) {
  const bool keep = flag(args, "--keep-account");
  reject_options(args);
  if (args.size() != 1) throw Usage{"disconnect takes one portfolio id or name"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  keyfolio::PortfolioConnector connector(*manager);
  auto portfolio = find_portfolio(connector, args[0]);
  if (!portfolio) return fail(portfolio.error());
  using Policy = keyfolio::PortfolioConnector::AccountPolicy;
  if (auto done = connector.disconnect(portfolio->id, keep ? Policy::keep : Policy::remove_if_owned); !done) {
    return fail(done.error());
  }
  if (portfolio->corrupt) {
    std::cout << "disconnected " << portfolio->id << " (its record was damaged)\n";
    // Whether it created an account is unknown, so none was removed. The
    // account connect creates is tagged with the portfolio id: name it.
    if (!keep) {
      for (const auto& s : manager->list()) {
        if (s.id.tag() != portfolio->id) continue;
        std::cout << "kept account " << s.id << ", which it may have created; `keyfolio rm " << s.id
                  << "` removes it\n";
      }
    }
    return 0;
  }
  std::cout << "disconnected " << portfolio->id << " (" << portfolio->name << ")";
  if (portfolio->owns_account && !keep) std::cout << " and removed account " << portfolio->account;
  std::cout << '\n';
  return 0;
}

}  // namespace keyfolio::cli
