// The commands on the store as a whole: init, passwd, rotate and verify.
#include "cli.hpp"
#include "progress_bar.hpp"
#include "prompts.hpp"

#include <algorithm>
#include <iostream>

namespace keyfolio::cli {

int cmd_init(const Options& o, std::vector<std::string> args) {
  reject_options(args);
  if (!args.empty()) throw Usage{"init takes no arguments"};
  auto opened = open_whole_store(o, true);
  if (!opened) return fail(opened.error());
  std::cout << (opened->created ? "created store " : "store already exists: ") << opened->name << '\n';
  return 0;
}

int cmd_passwd(const Options& o, std::vector<std::string> args) {
  const auto new_fd = take_fd(args, "--new-passphrase-fd");
  const bool also_rotate = flag(args, "--rotate");
  reject_options(args);
  if (!args.empty()) throw Usage{"passwd takes no arguments"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  auto fresh = read_passphrase({"new passphrase", "--new-passphrase-fd", new_fd, "KEYFOLIO_NEW_PASSPHRASE_FILE", true});
  if (!fresh) return fail(fresh.error());
  const auto key = keyfolio::KeySource::passphrase(std::move(*fresh));
  if (also_rotate) return rotate(*manager, key, "passphrase and data key changed");
  if (auto changed = manager->change_key(key); !changed) return fail(changed.error());
  std::cout << "passphrase changed\n";
  return 0;
}

int rotate(keyfolio::AccountManager& manager, const keyfolio::KeySource& key, std::string_view done) {
  constexpr std::size_t progress_threshold = 1000;
  ProgressBar bar("re-sealing", progress_threshold);
  auto rotated = manager.rotate_data_key(key, [&](std::size_t n, std::size_t all) {
    bar.update(n, all, n == all ? "records, writing" : "records");
  });
  bar.finish();
  if (!rotated) return fail(rotated.error());
  std::cout << done << ": " << rotated->resealed << (rotated->resealed == 1 ? " record" : " records")
            << " re-sealed under a new data key";
  if (rotated->dropped > 0) {
    std::cout << ", " << rotated->dropped << " that did not authenticate left behind";
  }
  std::cout << " (generation " << manager.generation() << ")\n";
  return 0;
}

int cmd_rotate(const Options& o, std::vector<std::string> args) {
  reject_options(args);
  if (!args.empty()) throw Usage{"rotate takes no arguments"};
  auto opened = open_whole_store(o, false);
  if (!opened) return fail(opened.error());
  return rotate(opened->manager, opened->key, "data key replaced");
}

int cmd_verify(const Options& o, std::vector<std::string> args) {
  reject_options(args);
  if (!args.empty()) throw Usage{"verify takes no arguments"};
  // Opened to recover, so that damage is reported rather than refused.
  Options recovering = o;
  recovering.recover = true;
  recovering.warn_when_recovering = false;  // the report goes to standard output
  auto manager = open_store(recovering, false);
  if (!manager) return fail(manager.error());
  const auto report = manager->integrity();
  const auto accounts = manager->list();
  auto portfolios = keyfolio::PortfolioConnector(*manager).list();
  if (!portfolios) return fail(portfolios.error());
  const auto damaged =
      std::count_if(accounts.begin(), accounts.end(), [](const keyfolio::AccountSummary& a) { return a.corrupt; }) +
      std::count_if(portfolios->begin(), portfolios->end(), [](const keyfolio::Portfolio& p) { return p.corrupt; });
  if (report.intact() && damaged == 0) {
    std::cout << "intact: " << accounts.size() << (accounts.size() == 1 ? " account" : " accounts")
              << ", generation " << report.generation << '\n';
    return 0;
  }
  std::cout << "damaged (generation " << report.generation << "):\n";
  for (const auto& finding : report.findings) std::cout << "  " << finding.message << '\n';
  for (const auto& account : accounts) {
    if (account.corrupt) std::cout << "  account " << account.id.spelling() << " does not authenticate\n";
  }
  for (const auto& portfolio : *portfolios) {
    if (!portfolio.corrupt) continue;
    // The id of a damaged record is its storage key, which nothing
    // authenticates: shown only when it has the form of an id.
    const bool well_formed = portfolio.id.size() == 32 && std::all_of(portfolio.id.begin(), portfolio.id.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    });
    std::cout << "  portfolio " << (well_formed ? portfolio.id : std::string("(a malformed id)"))
              << " does not authenticate\n";
  }
  return exit_other;
}

}  // namespace keyfolio::cli
