// keyfolio: the command-line tool for operators of a trading host — add,
// rotate and remove exchange accounts, connect them as portfolios, change the
// passphrase, and import or export accounts in a keyfolio store without
// writing code. Run `keyfolio --help` for the commands.
//
// Secrets never come from the command line (other users can read a process's
// arguments): each secret field is read from a no-echo prompt on a terminal,
// or one line per field from standard input otherwise. Exit codes: 0 success,
// 1 other errors, 2 usage, 3 not found, 4 validation, 5 wrong passphrase,
// 6 a PostgreSQL server that cannot be reached or refuses the connection.
//
// This file holds the command table and the global options; the commands
// live in one file per group (cli.hpp lists them).
#include "arguments.hpp"
#include "cli.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace keyfolio::cli {
namespace {

constexpr const char* general_help = R"(usage: keyfolio [--store PATH|URI] [--schema NAME] [--passphrase-fd N] [--recover] [--min-generation N]
                COMMAND [ARGS]

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
  passwd [--rotate]         change the store's passphrase (and its data key)
  rotate                    replace the store's data key, re-sealing every record
  verify                    check the store's integrity and print its generation
  export FILE [--plaintext] [--force]
                            write every account to an encrypted bundle
  import FILE               add or update the accounts of a bundle or EMS JSON file
  watch [--json]            print each account created, updated or removed, by any host

The store is --store PATH, else $KEYFOLIO_STORE, else $XDG_DATA_HOME/keyfolio/keyfolio.db.
A postgresql:// or postgres:// URI is a store on a PostgreSQL server, in the schema
--schema NAME, else $KEYFOLIO_SCHEMA, else keyfolio; anything else is a SQLite file.
The passphrase comes from --passphrase-fd N, else the file named by
$KEYFOLIO_PASSPHRASE_FILE (yours, and private to you: chmod 600), else a prompt
on the terminal.
--recover opens a store that fails its integrity check, to export what survives;
--min-generation N refuses a store older than generation N (see `keyfolio verify`).
Exit codes: 2 usage, 3 not found, 4 validation, 5 wrong passphrase, 6 PostgreSQL server
unreachable or refusing the connection, 1 other (a damaged store).
Run `keyfolio COMMAND --help` for a command's options.
)";

struct Command {
  const char* name;
  int (*run)(const Options& o, std::vector<std::string> args);
  const char* help;
};

constexpr Command commands[] = {
    {"init", cmd_init, "usage: keyfolio init\n\nCreates an empty store protected by the passphrase.\n"},
    {"add", cmd_add,
     "usage: keyfolio add ID --field KEY [--field KEY ...] [--field KEY=VALUE ...]\n\n"
     "Adds the account ID (e.g. BINANCE/main) or replaces its credentials. Each --field KEY is\n"
     "read from a no-echo prompt on a terminal, or as one line of standard input, in order.\n"
     "Only non-secret fields (such as walletAddress) may be given inline as KEY=VALUE.\n"},
    {"list", cmd_list,
     "usage: keyfolio list [EXCHANGE] [--json]\n\nLists accounts without secret values. --json prints "
     "the CoinAPI EMS accounts array, redacted.\n"},
    {"show", cmd_show,
     "usage: keyfolio show ID [--reveal]\n\nShows one account. --reveal prints secret values (after a "
     "confirmation on a terminal).\n"},
    {"rm", cmd_rm,
     "usage: keyfolio rm ID...\n       keyfolio rm --all [--yes]\n\nRemoves the accounts, all or none. "
     "--all asks for confirmation on a terminal; elsewhere it needs --yes.\n"},
    {"exchanges", cmd_exchanges,
     "usage: keyfolio exchanges [EXCHANGE] [--json]\n\nLists the exchanges and the fields each needs. "
     "--json prints the CoinStats exchange/support array.\n"},
    {"connect", cmd_connect,
     "usage: keyfolio connect EXCHANGE --field KEY [--field KEY ...] [--name NAME] [--json]\n\n"
     "Connects an exchange account as a portfolio and prints its id and `connected`, or `existing`\n"
     "when that account (the same API key) is already connected. Fields are read as for `add`.\n"
     "--json prints the CoinStats connect response.\n"},
    {"portfolios", cmd_portfolios,
     "usage: keyfolio portfolios [--json]\n\nLists portfolios; one whose stored record is damaged is shown\n"
     "as CORRUPT, by id. --json prints the CoinStats portfolio list.\n"},
    {"disconnect", cmd_disconnect,
     "usage: keyfolio disconnect PORTFOLIO [--keep-account]\n\n"
     "Removes the portfolio (given by id, or by name when one portfolio has it) and its snapshots,\n"
     "and the account `connect` stored for it unless --keep-account. Accounts added before stay.\n"
     "A CORRUPT portfolio is removed by id, keeping any account: which one it held is unknown.\n"},
    {"passwd", cmd_passwd,
     "usage: keyfolio passwd [--rotate] [--new-passphrase-fd N]\n\n"
     "Changes the store's passphrase. The new one comes from --new-passphrase-fd N, else the file\n"
     "named by $KEYFOLIO_NEW_PASSPHRASE_FILE, else a prompt (asked twice). With --rotate the data\n"
     "key is replaced too, as `rotate` does: an old copy of the store's keyring then opens nothing.\n"},
    {"rotate", cmd_rotate,
     "usage: keyfolio rotate\n\n"
     "Replaces the store's data key with a new random one, under the same passphrase, re-sealing\n"
     "every record in one atomic write. Afterwards a copy of the old keyring (a backup, a snapshot)\n"
     "and the passphrase open no current record. With --recover, a damaged store is sealed anew\n"
     "without the records that do not authenticate.\n"},
    {"verify", cmd_verify,
     "usage: keyfolio verify\n\n"
     "Checks every record of the store against its integrity record, opens every account and\n"
     "portfolio, and prints the store's generation and what differs: missing, older or unexpected\n"
     "records, records that do not authenticate. Exits 0 when the store is intact, 1 when it is\n"
     "damaged. Keep the generation elsewhere and pass it to\n"
     "--min-generation to have an older copy of the whole store refused.\n"},
    {"export", cmd_export,
     "usage: keyfolio export FILE [--plaintext] [--force] [--bundle-passphrase-fd N]\n\n"
     "Writes every account to FILE (- for standard output) as an encrypted keyfolio bundle, sealed\n"
     "with a bundle passphrase from --bundle-passphrase-fd N, else the file named by\n"
     "$KEYFOLIO_BUNDLE_PASSPHRASE_FILE, else a prompt (asked twice). --plaintext writes the CoinAPI\n"
     "EMS accounts array with secret values in clear instead. FILE is created readable by its owner\n"
     "only; an existing FILE is replaced only with --force.\n"},
    {"import", cmd_import,
     "usage: keyfolio import FILE [--bundle-passphrase-fd N]\n\n"
     "Adds or updates the accounts in FILE (- for standard input): a keyfolio bundle (the bundle\n"
     "passphrase is read as for export) or a CoinAPI EMS accounts array. All or nothing: one bad\n"
     "entry rejects the whole file, naming the entry and the reason.\n"},
    {"watch", cmd_watch,
     "usage: keyfolio watch [--json]\n\n"
     "Prints a line for every account created, updated or removed in the store, by this host or\n"
     "any other, as it happens: the time, the change, the account id and its version; never a\n"
     "value. Also a line when the change feed may have missed changes (resync: every account is\n"
     "read again, and what changed is printed) and when another host replaced the data key\n"
     "(rotated: the watch goes on under the new key; if the passphrase changed too, it exits 5).\n"
     "--json prints one JSON object per line instead. Runs until SIGINT or SIGTERM (exit 0).\n"},
};

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
    if (a == "--store" || a == "--schema" || a == "--passphrase-fd") {
      if (i + 1 >= argc) throw Usage{a + " needs a value"};
      const std::string v = argv[++i];
      if (a == "--store") {
        o.store = v;
      } else if (a == "--schema") {
        o.schema = v;
      } else {
        std::vector<std::string> option{a, v};
        o.passphrase_fd = take_fd(option, a);
      }
      continue;
    }
    if (a == "--recover") {
      o.recover = true;
      continue;
    }
    if (a == "--min-generation") {
      if (i + 1 >= argc) throw Usage{a + " needs a value"};
      const std::string v = argv[++i];
      std::uint64_t n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size()) throw Usage{a + " takes a number, the generation to require"};
      o.minimum_generation = n;
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
    return c.run(o, o.args);
  }
  throw Usage{"unknown command " + o.command};
}

}  // namespace
}  // namespace keyfolio::cli

int main(int argc, char** argv) {
  namespace cli = keyfolio::cli;
  try {
    return cli::run(argc, argv);
  } catch (const cli::Failure& failure) {
    return cli::fail(failure);
  } catch (const cli::Usage& usage) {
    std::cerr << "keyfolio: " << usage.message << "\nRun `keyfolio --help` for usage.\n";
    return cli::exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "keyfolio: " << e.what() << '\n';
    return cli::exit_other;
  }
}
