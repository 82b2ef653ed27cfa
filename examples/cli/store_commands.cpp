// The commands on the store as a whole: init and passwd.
#include "cli.hpp"
#include "prompts.hpp"

#include <filesystem>
#include <iostream>

namespace keyfolio::cli {

namespace fs = std::filesystem;

int cmd_init(const Options& o, std::vector<std::string> args) {
  reject_options(args);
  if (!args.empty()) throw Usage{"init takes no arguments"};
  const bool existed = fs::exists(store_path(o));
  auto manager = open_store(o, true);
  if (!manager) return fail(manager.error());
  std::cout << (existed ? "store already exists: " : "created store ") << store_path(o).string() << '\n';
  return 0;
}

int cmd_passwd(const Options& o, std::vector<std::string> args) {
  const auto new_fd = take_fd(args, "--new-passphrase-fd");
  reject_options(args);
  if (!args.empty()) throw Usage{"passwd takes no arguments"};
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  auto fresh = read_passphrase({"new passphrase", "--new-passphrase-fd", new_fd, "KEYFOLIO_NEW_PASSPHRASE_FILE", true});
  if (!fresh) return fail(fresh.error());
  if (auto changed = manager->change_key(keyfolio::KeySource::passphrase(std::move(*fresh))); !changed) {
    return fail(changed.error());
  }
  std::cout << "passphrase changed\n";
  return 0;
}

}  // namespace keyfolio::cli
