// keyfolio: the command-line tool for operators of a trading host — add,
// rotate and remove exchange accounts, connect them as portfolios, change the
// passphrase, and import or export accounts in a keyfolio store without
// writing code. Run `keyfolio --help` for the commands.
//
// Secrets never come from the command line (other users can read a process's
// arguments): each secret field is read from a no-echo prompt on a terminal,
// or one line per field from standard input otherwise. Exit codes: 0 success,
// 1 other errors, 2 usage, 3 not found, 4 validation, 5 wrong passphrase.
#include <keyfolio/keyfolio.hpp>

#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <sys/stat.h>
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
  connect EXCHANGE --field KEY... [--name NAME] [--json]
                            connect an exchange account as a portfolio
  portfolios [--json]       list portfolios
  disconnect PORTFOLIO [--keep-account]
                            remove a portfolio (by id or name)
  passwd                    change the store's passphrase
  export FILE [--plaintext] [--force]
                            write every account to an encrypted bundle
  import FILE               add or update the accounts of a bundle or EMS JSON file

The store is --store PATH, else $KEYFOLIO_STORE, else $XDG_DATA_HOME/keyfolio/keyfolio.db.
The passphrase comes from --passphrase-fd N, else the file named by
$KEYFOLIO_PASSPHRASE_FILE, else a prompt on the terminal.
Exit codes: 2 usage, 3 not found, 4 validation, 5 wrong passphrase, 1 other.
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
    {"connect",
     "usage: keyfolio connect EXCHANGE --field KEY [--field KEY ...] [--name NAME] [--json]\n\n"
     "Connects an exchange account as a portfolio and prints its id and `connected`, or `existing`\n"
     "when that account (the same API key) is already connected. Fields are read as for `add`.\n"
     "--json prints the CoinStats connect response.\n"},
    {"portfolios", "usage: keyfolio portfolios [--json]\n\nLists portfolios. --json prints the CoinStats "
                   "portfolio list.\n"},
    {"disconnect",
     "usage: keyfolio disconnect PORTFOLIO [--keep-account]\n\n"
     "Removes the portfolio (given by id, or by name when one portfolio has it) and its snapshots,\n"
     "and the account `connect` stored for it unless --keep-account. Accounts added before stay.\n"},
    {"passwd",
     "usage: keyfolio passwd [--new-passphrase-fd N]\n\n"
     "Changes the store's passphrase. The new one comes from --new-passphrase-fd N, else the file\n"
     "named by $KEYFOLIO_NEW_PASSPHRASE_FILE, else a prompt (asked twice).\n"},
    {"export",
     "usage: keyfolio export FILE [--plaintext] [--force] [--bundle-passphrase-fd N]\n\n"
     "Writes every account to FILE (- for standard output) as an encrypted keyfolio bundle, sealed\n"
     "with a bundle passphrase from --bundle-passphrase-fd N, else the file named by\n"
     "$KEYFOLIO_BUNDLE_PASSPHRASE_FILE, else a prompt (asked twice). --plaintext writes the CoinAPI\n"
     "EMS accounts array with secret values in clear instead. FILE is created readable by its owner\n"
     "only; an existing FILE is replaced only with --force.\n"},
    {"import",
     "usage: keyfolio import FILE [--bundle-passphrase-fd N]\n\n"
     "Adds or updates the accounts in FILE (- for standard input): a keyfolio bundle (the bundle\n"
     "passphrase is read as for export) or a CoinAPI EMS accounts array. All or nothing: one bad\n"
     "entry rejects the whole file, naming the entry and the reason.\n"},
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

// An error that ends the command; main() reports it like a library error.
struct Failure {
  keyfolio::Error error;
};

// Longest line read as a secret: a credential value (16 KiB) with room to spare.
constexpr std::size_t max_secret_line = 64 * 1024;

// One line from `fd` (without its newline, or a trailing \r), read a byte at
// a time so that nothing past it is consumed and no stdio buffer keeps a
// copy; nullopt at end of input before any byte. The working copy is
// allocated once and wiped.
std::optional<keyfolio::SecretString> read_line(int fd, const std::string& what) {
  std::string line;
  line.reserve(max_secret_line + 1);
  bool any = false;
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      sodium_memzero(line.data(), line.size());
      throw Failure{keyfolio::Error(keyfolio::errc::storage_error,
                                    "could not read " + what + ": " + std::strerror(saved))};
    }
    if (n == 0 || c == '\n') {
      any = any || n == 1;
      break;
    }
    any = true;
    if (line.size() == max_secret_line) {
      sodium_memzero(line.data(), line.size());
      throw Failure{keyfolio::Error(keyfolio::errc::invalid_argument,
                                    what + " is longer than " + std::to_string(max_secret_line) + " bytes")};
    }
    line.push_back(c);
  }
  if (!line.empty() && line.back() == '\r') {
    line.back() = '\0';
    line.pop_back();
  }
  std::optional<keyfolio::SecretString> value;
  if (any) value.emplace(line);
  sodium_memzero(line.data(), line.size());
  return value;
}

// A line from the terminal with echo off; nullopt without a terminal.
std::optional<keyfolio::SecretString> prompt_secret(const std::string& prompt) {
  const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty < 0) return std::nullopt;
  (void)!::write(tty, prompt.data(), prompt.size());
  termios saved{};
  const bool restore = ::tcgetattr(tty, &saved) == 0;
  if (restore) {
    termios quiet = saved;
    quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  std::optional<keyfolio::SecretString> value;
  try {
    value = read_line(tty, "the terminal");
  } catch (...) {
    if (restore) ::tcsetattr(tty, TCSAFLUSH, &saved);
    ::close(tty);
    throw;
  }
  if (restore) ::tcsetattr(tty, TCSAFLUSH, &saved);
  (void)!::write(tty, "\n", 1);
  ::close(tty);
  return value;
}

// One line of standard input.
std::optional<keyfolio::SecretString> stdin_line() { return read_line(STDIN_FILENO, "standard input"); }

// A passphrase line from `fd`; nullopt when there is none or it is empty.
std::optional<keyfolio::SecretString> line_from_fd(int fd) {
  auto line = read_line(fd, "file descriptor " + std::to_string(fd));
  if (!line || line->empty()) return std::nullopt;
  return line;
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

// Where a passphrase comes from: a file descriptor given by an option, else
// a file named by an environment variable, else a no-echo prompt.
struct PassphraseSource {
  std::string what;       // "passphrase", "new passphrase", ...
  std::string fd_option;  // "--passphrase-fd"
  std::optional<int> fd;
  const char* file_variable;  // "KEYFOLIO_PASSPHRASE_FILE"
  bool confirm = false;       // on a prompt, ask twice
};

keyfolio::Error invalid(std::string message) {
  return keyfolio::Error(keyfolio::errc::invalid_argument, std::move(message));
}

keyfolio::Result<keyfolio::SecretString> read_passphrase(const PassphraseSource& source) {
  if (source.fd) {
    if (auto p = line_from_fd(*source.fd)) return std::move(*p);
    return invalid("no " + source.what + " could be read from file descriptor " + std::to_string(*source.fd) +
                   " (" + source.fd_option + ")");
  }
  if (const char* file = std::getenv(source.file_variable); file != nullptr && *file != '\0') {
    const int fd = ::open(file, O_RDONLY | O_CLOEXEC);
    std::optional<keyfolio::SecretString> p = fd >= 0 ? line_from_fd(fd) : std::nullopt;
    if (fd >= 0) ::close(fd);
    if (p) return std::move(*p);
    return invalid(std::string(source.file_variable) + " names a file without a " + source.what +
                   " on its first line");
  }
  std::string prompt = source.what + ": ";
  prompt[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(prompt[0])));
  auto first = prompt_secret(prompt);
  if (!first) {
    return invalid("no " + source.what + ": no terminal to ask on; use " + source.fd_option + " N or " +
                   source.file_variable);
  }
  if (first->empty()) return invalid("the " + source.what + " is empty");
  if (source.confirm) {
    auto again = prompt_secret("Again: ");
    if (!again || !(*again == *first)) return invalid("the two " + source.what + "s differ; nothing was changed");
  }
  return std::move(*first);
}

keyfolio::Result<keyfolio::SecretString> store_passphrase(const Options& o, bool confirm) {
  return read_passphrase({"passphrase", "--passphrase-fd", o.passphrase_fd, "KEYFOLIO_PASSPHRASE_FILE", confirm});
}

keyfolio::Result<keyfolio::AccountManager> open_store(const Options& o, bool create) {
  const fs::path path = store_path(o);
  if (create && path.has_parent_path()) {
    std::error_code ec;
    if (fs::create_directories(path.parent_path(), ec)) {
      fs::permissions(path.parent_path(), fs::perms::owner_all, ec);
    }
  }
  const bool is_new = create && !fs::exists(path);
  if (!create && !fs::exists(path)) {
    return keyfolio::Error(keyfolio::errc::not_found, "no store at " + path.string() + "; create one with `keyfolio init`");
  }
  // A new store's passphrase is asked twice on a terminal, and before the
  // file exists, so that a failed init leaves nothing behind.
  auto secret = store_passphrase(o, is_new);
  if (!secret) return secret.error();
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
  auto manager = keyfolio::AccountManager::open(*backend, keyfolio::KeySource::passphrase(std::move(*secret)));
  // Clean up after a failed init, unless another process created the store
  // meanwhile (then it opened with its own passphrase, and this one is wrong).
  if (!manager && is_new && manager.error().code() != keyfolio::errc::wrong_key) {
    backend->reset();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix, ec);
  }
  return manager;
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

// Why `name` is not an exchange of `catalog`, with a suggestion when one is close.
keyfolio::Error unknown_exchange(const std::string& name, const keyfolio::ExchangeCatalog& catalog) {
  auto parsed = keyfolio::AccountId::parse(name, catalog);
  if (!parsed) return parsed.error();
  return keyfolio::Error(keyfolio::errc::invalid_exchange_id,
                         "expected an exchange such as BINANCE, not the account id " + parsed->spelling());
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

// Removes `name VALUE` from `args` and returns VALUE.
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

// Splits `--field KEY` / `--field KEY=VALUE` out of `args` and refuses
// inline values of secret fields before anything is asked for.
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

// The values of `fields`: inline ones as given, the others from a no-echo
// prompt on a terminal or one line each of standard input.
keyfolio::Result<keyfolio::Credentials> read_fields(const std::vector<std::string>& fields,
                                                    const keyfolio::ExchangeCatalog& catalog) {
  keyfolio::Credentials credentials;
  const bool interactive = on_terminal(STDIN_FILENO);
  for (const auto& f : fields) {
    const auto eq = f.find('=');
    std::optional<keyfolio::SecretString> value;
    const std::string name = f.substr(0, eq);
    if (eq != std::string::npos) {
      value = keyfolio::SecretString(std::string_view(f).substr(eq + 1));
    } else {
      value = interactive ? prompt_secret(name + ": ") : stdin_line();
      if (!value) throw Usage{"no value for field " + name + " on standard input"};
    }
    if (auto added = credentials.add(name, std::move(*value), catalog); !added) return added.error();
  }
  return credentials;
}

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
  for (const auto& p : *list) std::cout << p.id << "  " << p.name << "  account " << p.account << '\n';
  return 0;
}

// A portfolio by id, or by name when exactly one portfolio has it.
keyfolio::Result<keyfolio::Portfolio> find_portfolio(const keyfolio::PortfolioConnector& connector,
                                                     const std::string& wanted) {
  auto list = connector.list();
  if (!list) return list.error();
  std::vector<const keyfolio::Portfolio*> named;
  for (const auto& p : *list) {
    if (p.id == wanted) return p;
    if (p.name == wanted) named.push_back(&p);
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
  std::cout << "disconnected " << portfolio->id << " (" << portfolio->name << ")";
  if (portfolio->owns_account && !keep) std::cout << " and removed account " << portfolio->account;
  std::cout << '\n';
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

keyfolio::Result<keyfolio::SecretString> bundle_passphrase(std::optional<int> fd, bool confirm) {
  return read_passphrase({"bundle passphrase", "--bundle-passphrase-fd", fd, "KEYFOLIO_BUNDLE_PASSPHRASE_FILE",
                          confirm});
}

keyfolio::Error io_error(const std::string& what, const std::string& path) {
  return keyfolio::Error(keyfolio::errc::storage_error, "could not " + what + " " + path + ": " + std::strerror(errno));
}

keyfolio::Error already_exists(const std::string& path) {
  return keyfolio::Error(keyfolio::errc::conflict, path + " exists; give --force to replace it");
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Writes `pieces` to `path` (or standard output for "-"): through a private
// temporary file beside it, renamed into place once complete, so that a
// failed export never leaves a partial file or replaces a good one.
keyfolio::Result<void> write_file(const std::string& path, const std::vector<std::string_view>& pieces, bool replace) {
  if (path == "-") {
    for (auto piece : pieces) {
      if (!write_all(STDOUT_FILENO, piece)) return io_error("write to", "standard output");
    }
    return {};
  }
  const fs::path target(path);
  std::string temp = (target.parent_path().empty() ? fs::path(".") : target.parent_path()) /
                     ("." + target.filename().string() + ".XXXXXX");
  const int fd = ::mkstemp(temp.data());  // created 0600
  if (fd < 0) return io_error("create a file in the directory of", path);
  bool ok = true;
  for (auto piece : pieces) ok = ok && write_all(fd, piece);
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(temp.c_str());
    errno = saved;
    return io_error("write", path);
  }
  // Without --force, link() refuses to replace a file that appeared meanwhile.
  int placed = replace ? ::rename(temp.c_str(), path.c_str()) : ::link(temp.c_str(), path.c_str());
  int place_errno = errno;
  if (!replace && placed != 0 && (place_errno == EPERM || place_errno == ENOTSUP || place_errno == EXDEV)) {
    // A file system without hard links: claim the name first, then move the
    // complete file over the placeholder this process just created.
    const int claim = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    place_errno = errno;
    if (claim >= 0) {
      ::close(claim);
      placed = ::rename(temp.c_str(), path.c_str());
      place_errno = errno;
      if (placed != 0) ::unlink(path.c_str());
    }
  }
  if (!replace || placed != 0) ::unlink(temp.c_str());
  if (placed != 0) {
    errno = place_errno;
    if (errno == EEXIST) return already_exists(path);
    return io_error("write", path);
  }
  // The new name itself is durable once its directory is.
  const std::string directory = target.parent_path().empty() ? "." : target.parent_path().string();
  if (const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
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

// A progress bar on standard error, drawn only when it is a terminal.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t threshold)
      : label_(std::move(label)), threshold_(threshold), shown_(on_terminal(STDERR_FILENO)) {}
  ~ProgressBar() { finish(); }

  void update(std::size_t done, std::size_t total, std::string_view note = {}) {
    if (!shown_ || total < threshold_) return;
    constexpr std::size_t width = 30;
    const std::size_t filled = total == 0 ? width : done * width / total;
    std::string line = "\r" + label_ + " [" + std::string(filled, '#') + std::string(width - filled, '-') + "] " +
                       std::to_string(done) + "/" + std::to_string(total);
    if (!note.empty()) line += std::string(" ") + std::string(note);
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fputs("\n", stderr);
    drawn_ = false;
  }

 private:
  std::string label_;
  std::size_t threshold_;
  bool shown_;
  bool drawn_ = false;
};

// Imports of at least this many accounts show a progress bar on a terminal.
constexpr std::size_t progress_threshold = 1000;

keyfolio::Result<std::string> read_input(const std::string& path) {
  constexpr std::size_t limit = std::size_t{1} << 30;
  const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return keyfolio::Error(keyfolio::errc::not_found, "no file " + path);
    return io_error("open", path);
  }
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (fd != STDIN_FILENO) ::close(fd);
      sodium_memzero(text.data(), text.size());
      return io_error("read", path);
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > limit) {
      if (fd != STDIN_FILENO) ::close(fd);
      sodium_memzero(text.data(), text.size());
      return invalid(path + " is larger than 1 GiB; split it");
    }
    // Grown by hand so that no copy of a secret is left behind in freed memory.
    if (text.capacity() < text.size() + static_cast<std::size_t>(n)) {
      std::string bigger;
      bigger.reserve(std::max(text.capacity() * 2, text.size() + static_cast<std::size_t>(n)));
      bigger = text;
      sodium_memzero(text.data(), text.size());
      text.swap(bigger);
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  sodium_memzero(buffer, sizeof buffer);
  if (fd != STDIN_FILENO) ::close(fd);
  return text;
}

// Zeroes a buffer of plaintext secrets when it goes out of scope.
struct Wiped {
  std::string& text;
  ~Wiped() { sodium_memzero(text.data(), text.size()); }
};

bool empty_array(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return false;
  text = text.substr(1, text.size() - 2);
  return std::all_of(text.begin(), text.end(), blank);
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
        std::vector<std::string> option{a, v};
        o.passphrase_fd = take_fd(option, a);
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
  if (o.command == "connect") return cmd_connect(o, o.args);
  if (o.command == "portfolios") return cmd_portfolios(o, o.args);
  if (o.command == "disconnect") return cmd_disconnect(o, o.args);
  if (o.command == "passwd") return cmd_passwd(o, o.args);
  if (o.command == "export") return cmd_export(o, o.args);
  if (o.command == "import") return cmd_import(o, o.args);
  throw Usage{"unknown command " + o.command};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Failure& failure) {
    return fail(failure.error);
  } catch (const Usage& usage) {
    std::cerr << "keyfolio: " << usage.message << "\nRun `keyfolio --help` for usage.\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "keyfolio: " << e.what() << '\n';
    return exit_other;
  }
}
