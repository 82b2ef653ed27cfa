// keyfolio: the command-line tool for operators of a trading host — add,
// list, show and remove exchange accounts in a keyfolio store without writing
// code. Run `keyfolio --help` for the commands.
//
// Secrets never come from the command line (other users can read a process's
// arguments): each secret field is read from a no-echo prompt on a terminal,
// or one line per field from standard input otherwise. Exit codes: 0 success,
// 1 other errors, 2 usage, 3 not found, 4 validation, 5 wrong passphrase.
#include <keyfolio/keyfolio.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <termios.h>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr int exit_other = 1;
constexpr int exit_usage = 2;
constexpr int exit_not_found = 3;
constexpr int exit_validation = 4;
constexpr int exit_wrong_passphrase = 5;

constexpr const char* general_help = R"(usage: keyfolio [--store PATH] [--passphrase-fd N] COMMAND [ARGS]

Keeps exchange API keys encrypted in a keyfolio store.

commands:
  init                      create the store
  add ID --field KEY...     add or update an account (values read from a prompt or stdin)
  list [EXCHANGE] [--json]  list accounts, secrets redacted
  show ID [--reveal]        show one account, secrets redacted unless --reveal
  rm ID... | rm --all [--yes]
                            remove accounts
  exchanges [EXCHANGE] [--json]
                            what each exchange needs

The store is --store PATH, else $KEYFOLIO_STORE, else $XDG_DATA_HOME/keyfolio/keyfolio.db.
The passphrase comes from --passphrase-fd N, else the file named by
$KEYFOLIO_PASSPHRASE_FILE, else a prompt on the terminal.
Run `keyfolio COMMAND --help` for a command's options.
)";

struct Command {
  const char* name;
  const char* help;
};

constexpr Command commands[] = {
    {"init", "usage: keyfolio init\n\nCreates an empty store protected by the passphrase.\n"},
    {"add",
     "usage: keyfolio add ID --field KEY [--field KEY ...] [--field KEY=VALUE ...]\n\n"
     "Adds the account ID (e.g. BINANCE/main) or replaces its credentials. Each --field KEY is\n"
     "read from a no-echo prompt on a terminal, or as one line of standard input, in order.\n"
     "Only non-secret fields (such as walletAddress) may be given inline as KEY=VALUE.\n"},
    {"list", "usage: keyfolio list [EXCHANGE] [--json]\n\nLists accounts without secret values. --json prints "
             "the CoinAPI EMS accounts array, redacted.\n"},
    {"show", "usage: keyfolio show ID [--reveal]\n\nShows one account. --reveal prints secret values (after a "
             "confirmation on a terminal).\n"},
    {"rm", "usage: keyfolio rm ID...\n       keyfolio rm --all [--yes]\n\nRemoves the accounts, all or none. "
           "--all asks for confirmation on a terminal; elsewhere it needs --yes.\n"},
    {"exchanges", "usage: keyfolio exchanges [EXCHANGE] [--json]\n\nLists the exchanges and the fields each needs. "
                  "--json prints the CoinStats exchange/support array.\n"},
};

struct Usage {
  std::string message;
};

int exit_code(keyfolio::errc code) {
  switch (code) {
    case keyfolio::errc::not_found: return exit_not_found;
    case keyfolio::errc::invalid_exchange_id:
    case keyfolio::errc::validation_failed:
    case keyfolio::errc::invalid_argument: return exit_validation;
    case keyfolio::errc::wrong_key: return exit_wrong_passphrase;
    default: return exit_other;
  }
}

int fail(const keyfolio::Error& error) {
  std::cerr << "keyfolio: " << error.message() << '\n';
  return exit_code(error.code());
}

bool on_terminal(int fd) { return ::isatty(fd) == 1; }

// A line from the terminal with echo off.
std::optional<keyfolio::SecretString> prompt_secret(const std::string& prompt) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr) return std::nullopt;
  std::fputs(prompt.c_str(), tty);
  std::fflush(tty);
  termios saved{};
  const int fd = ::fileno(tty);
  const bool restore = ::tcgetattr(fd, &saved) == 0;
  if (restore) {
    termios quiet = saved;
    quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  std::string line;
  for (int c; (c = std::fgetc(tty)) != EOF && c != '\n';) line.push_back(static_cast<char>(c));
  if (restore) ::tcsetattr(fd, TCSAFLUSH, &saved);
  std::fputs("\n", tty);
  std::fclose(tty);
  keyfolio::SecretString value(line);
  std::fill(line.begin(), line.end(), '\0');
  return value;
}

// One line of standard input (without its newline).
std::optional<keyfolio::SecretString> stdin_line() {
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  keyfolio::SecretString value(line);
  std::fill(line.begin(), line.end(), '\0');
  return value;
}

std::optional<keyfolio::SecretString> line_from_fd(int fd) {
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  if (line.empty()) return std::nullopt;
  keyfolio::SecretString value(line);
  std::fill(line.begin(), line.end(), '\0');
  return value;
}

struct Options {
  std::optional<std::string> store;
  std::optional<int> passphrase_fd;
  std::string command;
  std::vector<std::string> args;  // after the command
};

fs::path store_path(const Options& o) {
  if (o.store) return *o.store;
  if (const char* env = std::getenv("KEYFOLIO_STORE"); env != nullptr && *env != '\0') return env;
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

keyfolio::Result<keyfolio::SecretString> passphrase(const Options& o) {
  if (o.passphrase_fd) {
    if (auto p = line_from_fd(*o.passphrase_fd)) return std::move(*p);
    return keyfolio::Error(keyfolio::errc::invalid_argument, "no passphrase could be read from file descriptor " +
                                                                 std::to_string(*o.passphrase_fd));
  }
  if (const char* file = std::getenv("KEYFOLIO_PASSPHRASE_FILE"); file != nullptr && *file != '\0') {
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line) || line.empty()) {
      return keyfolio::Error(keyfolio::errc::invalid_argument,
                             "KEYFOLIO_PASSPHRASE_FILE names a file without a passphrase on its first line");
    }
    keyfolio::SecretString value(line);
    std::fill(line.begin(), line.end(), '\0');
    return value;
  }
  if (auto p = prompt_secret("Passphrase: ")) return std::move(*p);
  return keyfolio::Error(keyfolio::errc::invalid_argument,
                         "no passphrase: no terminal to ask on; use --passphrase-fd N or KEYFOLIO_PASSPHRASE_FILE");
}

keyfolio::Result<keyfolio::AccountManager> open_store(const Options& o, bool create) {
  const fs::path path = store_path(o);
  if (create && path.has_parent_path()) {
    std::error_code ec;
    if (fs::create_directories(path.parent_path(), ec)) {
      fs::permissions(path.parent_path(), fs::perms::owner_all, ec);
    }
  }
  keyfolio::SqliteOptions options;
  options.create = create;
  auto backend = keyfolio::make_sqlite_backend(path, options);
  if (!backend) {
    if (backend.error().code() == keyfolio::errc::not_found) {
      return keyfolio::Error(keyfolio::errc::not_found,
                             "no store at " + path.string() + "; create one with `keyfolio init`");
    }
    return backend.error();
  }
  auto secret = passphrase(o);
  if (!secret) return secret.error();
  return keyfolio::AccountManager::open(*backend, keyfolio::KeySource::passphrase(std::move(*secret)));
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

bool confirm(const std::string& question) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr) return false;
  std::fputs((question + " [y/N] ").c_str(), tty);
  std::fflush(tty);
  const int c = std::fgetc(tty);
  std::fclose(tty);
  return c == 'y' || c == 'Y';
}

int cmd_init(const Options& o, std::vector<std::string> args) {
  reject_options(args);
  if (!args.empty()) throw Usage{"init takes no arguments"};
  const bool existed = fs::exists(store_path(o));
  auto manager = open_store(o, true);
  if (!manager) return fail(manager.error());
  std::cout << (existed ? "store already exists: " : "created store ") << store_path(o).string() << '\n';
  return 0;
}

int cmd_add(const Options& o, std::vector<std::string> args) {
  std::vector<std::string> fields;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--field") {
      if (i + 1 >= args.size()) throw Usage{"--field needs a field name"};
      fields.push_back(args[++i]);
    } else {
      rest.push_back(args[i]);
    }
  }
  reject_options(rest);
  if (rest.size() != 1) throw Usage{"add takes one account id"};
  if (fields.empty()) throw Usage{"add needs at least one --field"};
  const auto& catalog = keyfolio::ExchangeCatalog::builtin();
  // Check the inline values before asking for anything.
  for (const auto& f : fields) {
    const auto eq = f.find('=');
    if (eq == std::string::npos) continue;
    const keyfolio::CredentialField* known = catalog.find_field(f.substr(0, eq));
    if (known == nullptr || known->secret) {
      throw Usage{"field " + f.substr(0, eq) +
                  " may not be given on the command line, where other users can read it; "
                  "give --field " + f.substr(0, eq) + " and enter the value when asked"};
    }
  }
  auto manager = open_store(o, false);
  if (!manager) return fail(manager.error());
  keyfolio::Credentials credentials;
  const bool interactive = on_terminal(STDIN_FILENO);
  for (const auto& f : fields) {
    const auto eq = f.find('=');
    std::optional<keyfolio::SecretString> value;
    std::string name = f.substr(0, eq);
    if (eq != std::string::npos) {
      value = keyfolio::SecretString(std::string_view(f).substr(eq + 1));
    } else {
      value = interactive ? prompt_secret(name + ": ") : stdin_line();
      if (!value) throw Usage{"no value for field " + name + " on standard input"};
    }
    if (auto added = credentials.add(name, std::move(*value), catalog); !added) return fail(added.error());
  }
  auto result = manager->upsert(rest[0], std::move(credentials));
  if (!result) return fail(result.error());
  std::cout << (result->created ? "added " : "updated ") << rest[0] << " (version " << result->version << ")\n";
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
      std::cout << value.reveal();
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
    return fail(keyfolio::AccountId::parse(args[0]).error());
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

int run(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << general_help;
      return 0;
    }
    if (a == "--version") {
      std::cout << "keyfolio " << keyfolio::version_string << '\n';
      return 0;
    }
    if (a == "--store" || a == "--passphrase-fd") {
      if (i + 1 >= argc) throw Usage{a + " needs a value"};
      const std::string v = argv[++i];
      if (a == "--store") {
        o.store = v;
      } else {
        try {
          o.passphrase_fd = std::stoi(v);
        } catch (...) {
          throw Usage{"--passphrase-fd needs a file descriptor number"};
        }
      }
      continue;
    }
    if (a.rfind("-", 0) == 0) throw Usage{"unknown option " + a};
    break;
  }
  if (i >= argc) throw Usage{"no command given"};
  o.command = argv[i];
  o.args.assign(argv + i + 1, argv + argc);
  for (const auto& c : commands) {
    if (o.command != c.name) continue;
    if (std::find(o.args.begin(), o.args.end(), "--help") != o.args.end()) {
      std::cout << c.help;
      return 0;
    }
  }
  if (o.command == "init") return cmd_init(o, o.args);
  if (o.command == "add") return cmd_add(o, o.args);
  if (o.command == "list") return cmd_list(o, o.args);
  if (o.command == "show") return cmd_show(o, o.args);
  if (o.command == "rm") return cmd_rm(o, o.args);
  if (o.command == "exchanges") return cmd_exchanges(o, o.args);
  throw Usage{"unknown command " + o.command};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Usage& usage) {
    std::cerr << "keyfolio: " << usage.message << "\nRun `keyfolio --help` for usage.\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "keyfolio: " << e.what() << '\n';
    return exit_other;
  }
}
