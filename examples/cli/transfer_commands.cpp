// The commands that move accounts in and out of the store: export (to an
// encrypted bundle or a plain-text EMS array) and import (of either).
#include "cli.hpp"
#include "files.hpp"
#include "progress_bar.hpp"
#include "prompts.hpp"

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <string_view>
#include <unistd.h>

namespace keyfolio::cli {

namespace fs = std::filesystem;

namespace {

keyfolio::Result<keyfolio::SecretString> bundle_passphrase(std::optional<int> fd, bool confirm) {
  return read_passphrase({"bundle passphrase", "--bundle-passphrase-fd", fd, "KEYFOLIO_BUNDLE_PASSPHRASE_FILE",
                          confirm});
}

// Accounts per bundle part: each part is one EMS array in a SecretString,
// halved for a part that would not fit one.
constexpr std::size_t accounts_per_part = 5000;

// How many accounts an EMS array written by keyfolio holds: each account
// object opens with its "exchange_id" member, and inside a string value the
// quote would be escaped.
std::size_t accounts_in(std::string_view array) {
  std::size_t count = 0;
  for (std::size_t at = 0; (at = array.find("{\"exchange_id\":", at)) != std::string_view::npos; ++at) ++count;
  return count;
}

// Every account as EMS arrays of at most `accounts_per_part` accounts, each
// small enough for a SecretString.
keyfolio::Result<std::vector<keyfolio::SecretString>> revealed_parts(const keyfolio::AccountManager& manager) {
  const auto summaries = manager.list();
  std::vector<keyfolio::SecretString> parts;
  std::size_t first = 0;
  std::size_t size = accounts_per_part;
  while (first < summaries.size()) {
    const std::size_t last = std::min(summaries.size(), first + size);
    std::vector<std::string> ids;
    for (std::size_t i = first; i < last; ++i) ids.push_back(summaries[i].id.spelling());
    const std::vector<std::string_view> filter(ids.begin(), ids.end());
    auto part = keyfolio::wire::coinapi_ems::revealed_accounts_body(manager, filter);
    if (!part) {
      // Too long for one SecretString (accounts with long keys): fewer per part.
      if (part.error().code() == keyfolio::errc::invalid_argument && size > 1) {
        size /= 2;
        continue;
      }
      return part.error();
    }
    parts.push_back(std::move(*part));
    first = last;
    size = accounts_per_part;
  }
  return parts;
}

// Imports of at least this many accounts show a progress bar on a terminal.
constexpr std::size_t progress_threshold = 1000;

// Whether `text` is an empty JSON array: what an export of an empty store
// holds, which imports nothing (parse_accounts, which answers EMS requests,
// refuses one).
bool empty_array(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return false;
  text = text.substr(1, text.size() - 2);
  return std::all_of(text.begin(), text.end(), blank);
}

}  // namespace

int cmd_export(const Options& o, std::vector<std::string> args) {
  const bool plaintext = flag(args, "--plaintext");
  const bool force = flag(args, "--force");
  const auto bundle_fd = take_fd(args, "--bundle-passphrase-fd");
  reject_options(args);
  if (args.size() != 1) throw Usage{"export takes one file (- for standard output)"};
  if (plaintext && bundle_fd) throw Usage{"--plaintext writes no bundle; --bundle-passphrase-fd does not apply"};
  const bool to_stdout = args[0] == "-";
  if (!force && !to_stdout && fs::exists(args[0])) {
    return fail(already_exists(args[0]));
  }
  if (plaintext && to_stdout && on_terminal(STDOUT_FILENO) &&
      !confirm("Print the secrets of every account on this terminal?")) {
    std::cerr << "keyfolio: nothing exported\n";
    return exit_other;
  }
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  // The bundle passphrase is asked for before anything is decrypted.
  std::optional<keyfolio::KeySource> bundle_key;
  if (!plaintext) {
    auto secret = bundle_passphrase(bundle_fd, true);
    if (!secret) return fail(secret.error());
    bundle_key = keyfolio::KeySource::passphrase(std::move(*secret));
  }
  auto parts = revealed_parts(*manager);
  if (!parts) return fail(parts.error());
  std::size_t exported = 0;
  for (const auto& part : *parts) exported += accounts_in(part.reveal());
  if (plaintext) {
    // One array: the parts' arrays joined.
    std::vector<std::string_view> pieces{"["};
    for (const auto& part : *parts) {
      std::string_view inner = part.reveal();
      inner.remove_prefix(1);
      inner.remove_suffix(1);
      if (inner.empty()) continue;
      if (pieces.size() > 1) pieces.push_back(",");
      pieces.push_back(inner);
    }
    pieces.push_back("]\n");
    if (auto written = write_file(args[0], pieces, force); !written) return fail(written.error());
  } else {
    auto bundle = keyfolio::seal_bundle(*parts, *bundle_key);
    if (!bundle) return fail(bundle.error());
    if (auto written = write_file(args[0], {*bundle, "\n"}, force); !written) return fail(written.error());
  }
  std::ostream& status = to_stdout ? std::cerr : std::cout;
  status << "exported " << exported << (exported == 1 ? " account" : " accounts");
  if (!to_stdout) status << " to " << args[0];
  status << (plaintext ? " in plain text: anyone who can read it has the secrets\n" : " (encrypted bundle)\n");
  return 0;
}

int cmd_import(const Options& o, std::vector<std::string> args) {
  const auto bundle_fd = take_fd(args, "--bundle-passphrase-fd");
  reject_options(args);
  if (args.size() != 1) throw Usage{"import takes one file (- for standard input)"};
  if (args[0] == "-" && bundle_fd == STDIN_FILENO) {
    throw Usage{"import - reads the file from standard input; give the bundle passphrase on another descriptor"};
  }
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  auto text = read_input(args[0]);
  if (!text) return fail(text.error());
  Wiped wipe{*text};
  keyfolio::wire::coinapi_ems::Limits limits;
  limits.max_body_size = std::max<std::size_t>(text->size(), 1);
  limits.max_accounts = std::numeric_limits<std::size_t>::max();
  std::vector<keyfolio::AccountUpdate> updates;
  auto add_part = [&](std::string_view body, const std::string& where) -> keyfolio::Result<void> {
    if (empty_array(body)) return {};
    auto parsed = keyfolio::wire::coinapi_ems::parse_accounts(body, manager->catalog(), limits);
    if (!parsed) return keyfolio::Error(parsed.error().code(), where + parsed.error().message());
    for (auto& u : *parsed) updates.push_back(std::move(u));
    return {};
  };
  if (keyfolio::is_bundle(*text)) {
    auto secret = bundle_passphrase(bundle_fd, false);
    if (!secret) return fail(secret.error());
    auto parts = keyfolio::open_bundle(*text, keyfolio::KeySource::passphrase(std::move(*secret)));
    if (!parts) return fail(keyfolio::Error(parts.error().code(), args[0] + ": " + parts.error().message()));
    for (std::size_t i = 0; i < parts->size(); ++i) {
      // Each part numbers its accounts from 1: say which accounts it holds.
      const std::string where = args[0] + ": " +
                                (parts->size() == 1 ? std::string()
                                                    : "part " + std::to_string(i + 1) + " (accounts from " +
                                                          std::to_string(updates.size() + 1) + "): ");
      limits.max_body_size = std::max<std::size_t>((*parts)[i].size(), 1);
      if (auto added = add_part((*parts)[i].reveal(), where); !added) return fail(added.error());
    }
  } else {
    if (bundle_fd) throw Usage{args[0] + " is not a bundle; --bundle-passphrase-fd does not apply"};
    if (auto added = add_part(*text, args[0] + ": "); !added) return fail(added.error());
  }
  const std::size_t total = updates.size();
  ProgressBar bar("importing", progress_threshold);
  auto stored = manager->upsert(std::move(updates), [&](std::size_t done, std::size_t all) {
    bar.update(done, all, done == all ? "accounts, writing" : "accounts");
  });
  bar.finish();
  if (!stored) return fail(keyfolio::Error(stored.error().code(), args[0] + ": " + stored.error().message()));
  const auto created = std::count_if(stored->begin(), stored->end(), [](const auto& r) { return r.created; });
  std::cout << "imported " << total << (total == 1 ? " account" : " accounts") << " (" << created << " added, "
            << (static_cast<std::ptrdiff_t>(total) - created) << " updated)\n";
  return 0;
}

}  // namespace keyfolio::cli
