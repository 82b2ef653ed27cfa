// Drives the real `keyfolio` binary: arguments, standard input, output and
// exit codes.
#include "catch.hpp"
#include "cli_runner.hpp"
#include "damage.hpp"
#include "tampering.hpp"
#include "temp_dir.hpp"

#include <keyfolio/backends/sqlite.hpp>
#include <keyfolio/storage.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <poll.h>
#include <sstream>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace keyfolio::test::cli;
using keyfolio::test::mentions;

TEST_CASE("keyfolio init, add, list, show and rm work as an operator uses them") {
  Cli cli;
  auto init = cli({"init"});
  REQUIRE(init.status == 0);
  CHECK(mentions(init.out, "created store"));
  CHECK(cli({"init"}).status == 0);  // again: the store exists and opens

  auto add = cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n");
  REQUIRE(add.status == 0);
  CHECK(mentions(add.out, "added BINANCE/main (version 1)"));
  auto update = cli({"add", "binance:main", "--field", "apiKey", "--field", "secret"}, canary_key + "\nnew\n");
  CHECK(mentions(update.out, "updated"));

  auto list = cli({"list"});
  REQUIRE(list.status == 0);
  CHECK(mentions(list.out, "binance:main  version 2  fields apiKey secret"));  // the latest spelling
  auto json = cli({"list", "--json"});
  REQUIRE(json.status == 0);
  const auto listing = boost::json::parse(json.out).as_array();
  REQUIRE(listing.size() == 1);
  CHECK(listing[0].as_object().at("exchange_id") == "binance:main");

  auto show = cli({"show", "BINANCE/main"});
  REQUIRE(show.status == 0);
  CHECK(mentions(show.out, "apiKey: [redacted]"));
  auto reveal = cli({"show", "BINANCE/main", "--reveal"});
  REQUIRE(reveal.status == 0);
  CHECK(mentions(reveal.out, "apiKey: " + canary_key));
  // The whole listing in order, each value in place of [redacted].
  std::string expected = show.out;
  for (const std::string& value : {canary_key, std::string("new")}) {
    const auto at = expected.find("[redacted]");
    REQUIRE(at != std::string::npos);
    expected.replace(at, std::string_view("[redacted]").size(), value);
  }
  const bool listing_in_order = reveal.out == expected;
  CHECK(listing_in_order);
  // Each value goes from secure memory to standard output in a write of its
  // own: through std::cout it would be copied into the stream's buffer, and
  // written with the text around it.
  Launch launch{{"show", "BINANCE/main", "--reveal"}, {}, cli.env(), cli.dir.path().string()};
  launch.stdout_writes = true;
  auto writes = keyfolio_cli(launch);
  REQUIRE(writes.status == 0);
  const bool same_output = writes.out == reveal.out;
  CHECK(same_output);
  CHECK(std::count(writes.writes.begin(), writes.writes.end(), canary_key) == 1);
  CHECK(std::count(writes.writes.begin(), writes.writes.end(), "new") == 1);
  const bool key_in_one_write = std::count_if(writes.writes.begin(), writes.writes.end(), [](const std::string& w) {
                                return mentions(w, canary_key);
                              }) == 1;
  CHECK(key_in_one_write);

  for (const auto& r : {init, add, update, list, json, show}) {
    CHECK_FALSE(mentions(r.out, "CANARY"));
    CHECK_FALSE(mentions(r.err, "CANARY"));
  }
  CHECK(cli({"rm", "BINANCE/main"}).status == 0);
  auto empty = cli({"list"});
  CHECK(empty.status == 0);
  CHECK(empty.out.empty());
}

TEST_CASE("keyfolio exits with distinct codes and clear messages") {
  Cli cli;
  CHECK(cli({}).status == 2);
  CHECK(cli({"frobnicate"}).status == 2);
  CHECK(cli({"list", "--bogus"}).status == 2);
  auto missing = cli({"list"});
  CHECK(missing.status == 3);
  CHECK(mentions(missing.err, "keyfolio init"));
  REQUIRE(cli({"init"}).status == 0);
  CHECK(cli({"show", "BINANCE/none"}).status == 3);
  CHECK(cli({"rm", "BINANCE/none"}).status == 3);
  auto invalid = cli({"add", "BINANSE/x", "--field", "apiKey"}, "k\n");
  CHECK(invalid.status == 4);
  CHECK(mentions(invalid.err, "did you mean"));
  auto incomplete = cli({"add", "OKX/x", "--field", "apiKey", "--field", "secret"}, "k\n" + canary_secret + "\n");
  CHECK(incomplete.status == 4);
  CHECK(mentions(incomplete.err, "password"));
  CHECK_FALSE(mentions(incomplete.err, "CANARY"));
  auto inline_secret = cli({"add", "BINANCE/x", "--field", "secret=" + canary_secret});
  CHECK(inline_secret.status == 2);
  CHECK_FALSE(mentions(inline_secret.err, "CANARY"));
  CHECK(cli({"rm", "--all"}).status == 2);  // no terminal, no --yes
  CHECK(cli({"exchanges", "NOSUCH"}).status == 4);

  CHECK(cli({"--passphrase-fd", "-1", "list"}).status == 2);
  CHECK(cli({"--passphrase-fd", "3x", "list"}).status == 2);
  auto wrong = keyfolio_cli({"--passphrase-fd", "0", "list"}, "not the passphrase\n", cli.env());
  CHECK(wrong.status == 5);
  CHECK(mentions(wrong.err, "passphrase"));
  CHECK(cli({"list"}).status == 0);
}

TEST_CASE("keyfolio refuses a passphrase file other users can reach or another user owns with a message saying how to fix it") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, "k\n" + canary_secret + "\n").status == 0);
  const std::vector<std::string> passphrases{"correct horse", "a new and longer", "the bundle's own"};
  auto check_refused = [&](const Run& r, const std::string& variable, const std::string& file, const char* mode) {
    CHECK(r.status == 4);  // a bad input, as a passphrase file without a passphrase; never 5 (wrong passphrase)
    CHECK(mentions(r.err, variable));
    CHECK(mentions(r.err, file));
    CHECK(mentions(r.err, std::string("mode ") + mode));
    CHECK(mentions(r.err, "chmod 600"));
    CHECK(r.out.empty());
    for (const auto& p : passphrases) {
      CHECK_FALSE(mentions(r.out, p));
      CHECK_FALSE(mentions(r.err, p));
    }
  };
  auto set_mode = [](const std::string& file, const char* mode) {
    fs::permissions(file, static_cast<fs::perms>(std::stoi(mode, nullptr, 8)));
  };

  SECTION("the store's passphrase file") {
    for (const char* mode : {"0644", "0640", "0604", "0620", "0602", "0610"}) {
      set_mode(cli.passphrase_file, mode);
      check_refused(cli({"list"}), "KEYFOLIO_PASSPHRASE_FILE", cli.passphrase_file, mode);
    }
    set_mode(cli.passphrase_file, "0604");
    check_refused(cli({"init"}), "KEYFOLIO_PASSPHRASE_FILE", cli.passphrase_file, "0604");
    set_mode(cli.passphrase_file, "0400");
    CHECK(cli({"list"}).status == 0);
    set_mode(cli.passphrase_file, "0600");
    CHECK(mentions(cli({"list"}).out, "BINANCE/main"));
  }
  SECTION("the new passphrase file of passwd: refused, and the passphrase is not changed") {
    set_mode(cli.new_passphrase_file, "0644");
    check_refused(cli({"passwd"}), "KEYFOLIO_NEW_PASSPHRASE_FILE", cli.new_passphrase_file, "0644");
    CHECK(cli({"list"}).status == 0);  // still the old passphrase
  }
  SECTION("the bundle passphrase file of export and import: refused, and no file is written") {
    set_mode(cli.bundle_passphrase_file, "0644");
    check_refused(cli({"export", "backup.kfb"}), "KEYFOLIO_BUNDLE_PASSPHRASE_FILE", cli.bundle_passphrase_file,
                  "0644");
    CHECK_FALSE(fs::exists(cli.path("backup.kfb")));
    set_mode(cli.bundle_passphrase_file, "0600");
    REQUIRE(cli({"export", "backup.kfb"}).status == 0);
    REQUIRE(cli({"rm", "BINANCE/main"}).status == 0);
    set_mode(cli.bundle_passphrase_file, "0660");
    check_refused(cli({"import", "backup.kfb"}), "KEYFOLIO_BUNDLE_PASSPHRASE_FILE", cli.bundle_passphrase_file,
                  "0660");
    CHECK(cli({"list"}).out.empty());  // nothing imported
  }
  SECTION("a private passphrase file that another user owns") {
    if (::geteuid() != 0) {
      WARN("not root: cannot give the file to another user");
      return;
    }
    REQUIRE(::chown(cli.passphrase_file.c_str(), 65534, 65534) == 0);
    auto r = cli({"list"});
    CHECK(r.status == 4);
    CHECK(mentions(r.err, "KEYFOLIO_PASSPHRASE_FILE"));
    CHECK(mentions(r.err, cli.passphrase_file));
    CHECK(mentions(r.err, "owned by user 65534"));
    CHECK(mentions(r.err, "chown"));
    CHECK(r.out.empty());
    for (const auto& p : passphrases) CHECK_FALSE(mentions(r.err, p));
  }
}

TEST_CASE("keyfolio init that fails on a store another process created meanwhile leaves that store's files alone") {
  Cli cli;
  // The tool opens its passphrase file after it has looked for the store, so
  // a FIFO as that file holds it between the look and the open.
  const std::string fifo = cli.path("passphrase-fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto env = cli.env();
  env[1] = "KEYFOLIO_PASSPHRASE_FILE=" + fifo;
  std::shared_ptr<keyfolio::StorageBackend> other;
  Launch launch{{"init"}, "", env, cli.dir.path().string()};
  launch.meanwhile = [&](pid_t pid) {
    const int writer = open_fifo_when_read(fifo);
    if (writer < 0) {
      ::kill(pid, SIGKILL);
      FAIL("the tool never opened its passphrase file");
    }
    // Another process's store, open in that process (so with its -wal and
    // -shm files), that this init cannot open: records but no keyring yet.
    auto backend = keyfolio::make_sqlite_backend(cli.store);
    if (backend) {
      keyfolio::WriteBatch batch;
      batch.put("accounts", "another process's", "its sealed record", keyfolio::must_not_exist);
      CHECK((*backend)->write(batch));
      other = *backend;
    }
    const std::string line = "correct horse battery staple\n";
    CHECK(::write(writer, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    ::close(writer);
  };
  auto r = keyfolio_cli(launch);
  REQUIRE(other);
  CHECK(r.status == 1);
  CHECK(mentions(r.err, "keyring is missing"));
  CHECK_FALSE(mentions(r.out, "created store"));
  for (const char* suffix : {"", "-wal", "-shm"}) CHECK(fs::exists(cli.store + suffix));
  other.reset();
  auto reopened = keyfolio::make_sqlite_backend(cli.store);
  REQUIRE(reopened);
  auto record = (*reopened)->get("accounts", "another process's");
  REQUIRE(record);
  REQUIRE(record->has_value());
  CHECK((*record)->value == "its sealed record");
}

TEST_CASE("keyfolio init that fails on a store it created leaves no file behind") {
#if defined(__SANITIZE_ADDRESS__)
  WARN("AddressSanitizer reserves more address space than the limit this test sets");
  return;
#endif
  Cli cli;
  // Too little memory for Argon2id (256 MiB): the open fails after the store's
  // files were created.
  Launch launch{{"init"}, "", cli.env(), cli.dir.path().string()};
  launch.address_space = rlim_t{128} << 20;
  auto r = keyfolio_cli(launch);
  CHECK(r.status == 1);
  CHECK(mentions(r.err, "Argon2id could not get"));
  for (const char* suffix : {"", "-wal", "-shm"}) CHECK_FALSE(fs::exists(cli.store + suffix));
}

TEST_CASE("keyfolio interrupted at a passphrase prompt turns the terminal's echo back on") {
  Cli cli;
  const std::vector<std::string> env{"KEYFOLIO_STORE=" + cli.store, "HOME=" + cli.dir.path().string()};
  SECTION("by Ctrl-C") {
    OnTerminal tool({"init"}, env);
    REQUIRE(tool.echo());
    REQUIRE(tool.wait_for("Passphrase: "));
    REQUIRE(tool.echo_goes_off());
    REQUIRE(::write(tool.master, "\x03", 1) == 1);
    CHECK(tool.end_signal() == SIGINT);
    CHECK(tool.echo());
  }
  SECTION("by SIGTERM, at the second prompt") {
    OnTerminal tool({"init"}, env);
    REQUIRE(tool.wait_for("Passphrase: "));
    REQUIRE(tool.echo_goes_off());
    REQUIRE(::write(tool.master, "typed\n", 6) == 6);
    REQUIRE(tool.wait_for("Again: "));
    REQUIRE(tool.echo_goes_off());
    REQUIRE(::kill(tool.pid, SIGTERM) == 0);
    CHECK(tool.end_signal() == SIGTERM);
    CHECK(tool.echo());
    CHECK_FALSE(mentions(tool.shown, "typed"));
  }
  CHECK_FALSE(fs::exists(cli.store));  // asked before any file is made
}

TEST_CASE("keyfolio takes non-secret fields inline, removes all with --yes, and describes exchanges") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  auto wallet = cli({"add", "HYPERLIQUID", "--field", "walletAddress=0xabc", "--field", "privateKey"}, "pk\n");
  REQUIRE(wallet.status == 0);
  CHECK(mentions(cli({"show", "HYPERLIQUID"}).out, "walletAddress: 0xabc"));
  auto all = cli({"rm", "--all", "--yes"});
  CHECK(all.status == 0);
  CHECK(mentions(all.out, "removed 1 accounts"));

  auto okx = cli({"exchanges", "OKEX"});
  REQUIRE(okx.status == 0);
  CHECK(okx.out == "okx (OKX): apiKey secret password\n");
  auto json = boost::json::parse(cli({"exchanges", "--json"}).out).as_array();
  CHECK(json.size() > 100);
  CHECK(mentions(cli({"--version"}).out, "keyfolio "));
  for (const char* command : {"init", "add", "list", "show", "rm", "exchanges", "connect", "portfolios", "disconnect",
                              "passwd", "export", "import"}) {
    auto help = cli({command, "--help"});
    CHECK(help.status == 0);
    CHECK(mentions(help.out, std::string("usage: keyfolio ") + command));
    CHECK(mentions(cli({"--help"}).out, std::string("\n  ") + command));  // listed in the general help
  }
}

namespace {

bool owner_only(const std::string& path) {
  return (fs::status(path).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write);
}

bool is_portfolio_id(std::string_view text) {
  return text.size() == 32 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

void check_no_canary(const std::vector<Run>& runs) {
  for (const auto& r : runs) {
    CHECK_FALSE(mentions(r.out, "CANARY"));
    CHECK_FALSE(mentions(r.err, "CANARY"));
  }
}

// `count` accounts as a CoinAPI EMS array; secrets carry the canary prefix.
std::string ems_accounts(int count) {
  std::string body = "[";
  for (int i = 0; i < count; ++i) {
    if (i > 0) body += ",";
    const std::string n = std::to_string(i);
    body += R"({"exchange_id":"BINANCE/acct)" + n + R"(","parameters":[{"key":"PublicApiKey","value":"key)" + n +
            R"("},{"key":"PrivateApiKey","value":"CANARY-)" + n + R"("}]})";
  }
  return body + "]";
}

}  // namespace

TEST_CASE("keyfolio connect prints the portfolio id and whether it is new, portfolios lists, disconnect removes") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  auto first = cli({"connect", "kraken", "--field", "apiKey", "--field", "secret", "--name", "Long-term"},
                   canary_key + "\n" + canary_secret + "\n");
  REQUIRE(first.status == 0);
  const std::string id = first.out.substr(0, first.out.find(' '));
  CHECK(is_portfolio_id(id));
  CHECK(mentions(first.out, id + " connected  account kraken/"));

  auto again = cli({"connect", "KRAKEN", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n");
  REQUIRE(again.status == 0);
  CHECK(again.out.starts_with(id + " existing"));
  CHECK_FALSE(mentions(again.out, "credentials updated"));
  auto rotated = cli({"connect", "KRAKEN", "--field", "apiKey", "--field", "secret", "--json"},
                     canary_key + "\nCANARY-rotated\n");
  REQUIRE(rotated.status == 0);
  const auto body = boost::json::parse(rotated.out).as_object();
  CHECK(body.at("portfolioId") == id.c_str());
  CHECK(body.at("status") == "existing");
  CHECK(body.at("connectionId") == "kraken");

  auto listed = cli({"portfolios"});
  REQUIRE(listed.status == 0);
  CHECK(listed.out.starts_with(id + "  Long-term  account kraken/"));
  auto listed_json = cli({"portfolios", "--json"});
  REQUIRE(listed_json.status == 0);
  const auto portfolios = boost::json::parse(listed_json.out).as_array();
  REQUIRE(portfolios.size() == 1);
  CHECK(portfolios[0].as_object().at("portfolioId") == id.c_str());
  CHECK(portfolios[0].as_object().at("name") == "Long-term");
  CHECK(portfolios[0].as_object().at("connectionId") == "kraken");

  auto gone = cli({"disconnect", "Long-term"});
  REQUIRE(gone.status == 0);
  CHECK(mentions(gone.out, "disconnected " + id + " (Long-term) and removed account kraken/"));
  auto no_portfolios = cli({"portfolios"});
  CHECK(no_portfolios.status == 0);
  CHECK(no_portfolios.out.empty());
  auto no_accounts = cli({"list"});
  CHECK(no_accounts.status == 0);
  CHECK(no_accounts.out.empty());  // connect stored the account, disconnect removed it
  check_no_canary({first, again, rotated, listed, listed_json, gone});
}

TEST_CASE("keyfolio connect and disconnect refuse bad input and leave the store as it was") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, "k\ns\n").status == 0);
  // Reported before any value is read.
  auto unknown = cli({"connect", "BINANSE", "--field", "apiKey"});
  CHECK(unknown.status == 4);
  CHECK(mentions(unknown.err, "did you mean"));
  auto account_id = cli({"connect", "BINANCE/main", "--field", "apiKey"});
  CHECK(account_id.status == 4);
  CHECK(mentions(account_id.err, "not the account id"));
  CHECK(cli({"connect", "BINANCE"}).status == 2);
  CHECK(cli({"connect", "BINANCE", "--field", "apiKey", "--name"}).status == 2);
  auto inline_secret = cli({"connect", "BINANCE", "--field", "apiKey", "--field", "secret=" + canary_secret});
  CHECK(inline_secret.status == 2);
  auto incomplete = cli({"connect", "OKX", "--field", "apiKey", "--field", "secret"}, "k\n" + canary_secret + "\n");
  CHECK(incomplete.status == 4);
  CHECK(mentions(incomplete.err, "password"));
  auto short_input = cli({"connect", "BINANCE", "--field", "apiKey", "--field", "secret"}, "only-one-line\n");
  CHECK(short_input.status == 2);
  CHECK(mentions(short_input.err, "no value for field secret"));
  auto none = cli({"portfolios"});
  CHECK(none.status == 0);
  CHECK(none.out.empty());

  // Linking an account stored before: disconnect keeps it.
  auto linked = cli({"connect", "BINANCE", "--field", "apiKey", "--field", "secret", "--name", "twin"}, "k\ns\n");
  REQUIRE(linked.status == 0);
  REQUIRE(cli({"connect", "KRAKEN", "--field", "apiKey", "--field", "secret", "--name", "twin"}, "k2\ns2\n").status == 0);
  auto ambiguous = cli({"disconnect", "twin"});
  CHECK(ambiguous.status == 4);
  CHECK(mentions(ambiguous.err, "2 portfolios are named \"twin\""));
  auto missing = cli({"disconnect", "0123456789abcdef0123456789abcdef"});
  CHECK(missing.status == 3);
  CHECK(mentions(missing.err, "no portfolio"));
  CHECK(cli({"disconnect"}).status == 2);
  CHECK(cli({"disconnect", "a", "b"}).status == 2);
  const auto before = cli({"portfolios"}).out;
  CHECK(std::count(before.begin(), before.end(), '\n') == 2);

  const std::string binance_id = linked.out.substr(0, 32);
  auto unlinked = cli({"disconnect", binance_id});
  REQUIRE(unlinked.status == 0);
  CHECK_FALSE(mentions(unlinked.out, "removed account"));
  CHECK(mentions(cli({"list", "BINANCE"}).out, "BINANCE/main"));  // stored before connect: kept
  const std::string kraken_id = cli({"portfolios"}).out.substr(0, 32);
  REQUIRE(cli({"disconnect", kraken_id, "--keep-account"}).status == 0);
  CHECK(mentions(cli({"list", "KRAKEN"}).out, "kraken/"));
  check_no_canary({unknown, account_id, inline_secret, incomplete, short_input, ambiguous, missing});
}

TEST_CASE("keyfolio refuses a store with a damaged portfolio, and with --recover portfolios shows it as corrupt, disconnect removes it and rotate seals the store anew") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  const auto connect = [&](const std::string& exchange, const std::string& name, const std::string& key) {
    auto r = cli({"connect", exchange, "--field", "apiKey", "--field", "secret", "--name", name}, key + "\ns\n");
    REQUIRE(r.status == 0);
    return r.out.substr(0, 32);
  };
  const std::string kept = connect("kraken", "Long-term", "k1");
  const std::string healthy = connect("kraken", "Trading", "k2");
  const std::string damaged = connect("binance", "Broken", "k3");
  keyfolio::test::damage(*keyfolio::make_sqlite_backend(cli.store).value(), "portfolios", damaged);

  // Written behind the store's back: refused, naming it, pointing at verify.
  auto refused = cli({"portfolios"});
  CHECK(refused.status == 1);
  CHECK(mentions(refused.err, "portfolios \"" + damaged + "\""));
  CHECK(mentions(refused.err, "keyfolio verify"));
  auto verified = cli({"verify"});
  CHECK(verified.status == 1);
  CHECK(mentions(verified.out, "portfolios \"" + damaged + "\""));

  auto listed = cli({"--recover", "portfolios"});
  REQUIRE(listed.status == 0);
  CHECK(std::count(listed.out.begin(), listed.out.end(), '\n') == 3);
  CHECK(mentions(listed.out, kept + "  Long-term  account kraken/" + kept + "\n"));
  CHECK(mentions(listed.out, healthy + "  Trading  account kraken/" + healthy + "\n"));
  CHECK(mentions(listed.out, damaged + "  CORRUPT: its stored record is damaged"));
  CHECK_FALSE(mentions(listed.out, "Broken"));
  auto listed_json = cli({"--recover", "portfolios", "--json"});
  REQUIRE(listed_json.status == 0);
  const auto portfolios = boost::json::parse(listed_json.out).as_array();
  REQUIRE(portfolios.size() == 3);
  const auto& corrupt = portfolios[2].as_object();
  CHECK(corrupt.at("portfolioId") == damaged.c_str());
  CHECK(corrupt.at("corrupt") == true);
  CHECK_FALSE(corrupt.contains("name"));
  CHECK_FALSE(portfolios[0].as_object().contains("corrupt"));

  // A healthy portfolio is still found by name and disconnected.
  auto by_name = cli({"--recover", "disconnect", "Trading"});
  REQUIRE(by_name.status == 0);
  CHECK(mentions(by_name.out, "disconnected " + healthy + " (Trading) and removed account kraken/" + healthy));

  // The damaged one by its id; its account stays, named for the operator.
  auto gone = cli({"--recover", "disconnect", damaged});
  REQUIRE(gone.status == 0);
  CHECK(gone.out.starts_with("disconnected " + damaged + " (its record was damaged)\n"));
  CHECK(mentions(gone.out, "kept account binance/" + damaged));
  CHECK(mentions(gone.out, "keyfolio rm binance/" + damaged));
  CHECK(cli({"--recover", "portfolios"}).out == kept + "  Long-term  account kraken/" + kept + "\n");
  CHECK(mentions(cli({"--recover", "list", "BINANCE"}).out, "binance/" + damaged));
  auto again = cli({"--recover", "disconnect", damaged});
  CHECK(again.status == 3);
  CHECK(mentions(again.err, "no portfolio"));

  // Sealed anew, the store is whole again.
  auto rotated = cli({"--recover", "rotate"});
  REQUIRE(rotated.status == 0);
  CHECK(mentions(rotated.out, "re-sealed under a new data key"));
  auto whole = cli({"verify"});
  CHECK(whole.status == 0);
  CHECK(whole.out.starts_with("intact: 2 accounts, generation "));
  CHECK(cli({"portfolios"}).out == kept + "  Long-term  account kraken/" + kept + "\n");
}

TEST_CASE("keyfolio passwd changes the passphrase, after which only the new one opens the store") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, "k\n" + canary_secret + "\n").status == 0);
  auto changed = cli({"passwd"});
  REQUIRE(changed.status == 0);
  CHECK(changed.out == "passphrase changed\n");
  auto old = cli({"list"});
  CHECK(old.status == 5);
  CHECK(mentions(old.err, "passphrase"));
  auto fresh = keyfolio_cli({"--passphrase-fd", "0", "list"}, "a new and longer passphrase\n", cli.env());
  REQUIRE(fresh.status == 0);
  CHECK(mentions(fresh.out, "BINANCE/main"));

  // Back again, the new passphrase on a descriptor: stdin carries the current one first.
  auto back = keyfolio_cli({"--passphrase-fd", "0", "passwd", "--new-passphrase-fd", "0"},
                           "a new and longer passphrase\ncorrect horse battery staple\n", cli.env());
  REQUIRE(back.status == 0);
  CHECK(cli({"list"}).status == 0);

  // Failures change nothing.
  auto wrong_current = keyfolio_cli({"--passphrase-fd", "0", "passwd"}, "not it\n", cli.env());
  CHECK(wrong_current.status == 5);
  auto no_new = keyfolio_cli({"passwd"}, "", {"KEYFOLIO_STORE=" + cli.store, "KEYFOLIO_PASSPHRASE_FILE=" + cli.passphrase_file});
  CHECK(no_new.status == 4);
  CHECK(mentions(no_new.err, "no new passphrase"));
  auto empty_new = keyfolio_cli({"passwd", "--new-passphrase-fd", "0"}, "\n", cli.env());
  CHECK(empty_new.status == 4);
  CHECK(cli({"passwd", "--new-passphrase-fd", "x"}).status == 2);
  CHECK(cli({"passwd", "extra"}).status == 2);
  CHECK(mentions(cli({"show", "BINANCE/main", "--reveal"}).out, "secret: " + canary_secret));
}

TEST_CASE("keyfolio export then import restores every account, and the bundle keeps secrets encrypted") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n").status == 0);
  REQUIRE(cli({"add", "OKX/trading", "--field", "apiKey", "--field", "secret", "--field", "password"},
              "okx-key\nCANARY-okx-secret\nCANARY-okx-pass\n").status == 0);
  REQUIRE(cli({"add", "HYPERLIQUID", "--field", "walletAddress=0xabc", "--field", "privateKey"}, "CANARY-pk\n").status == 0);
  const std::string before = cli({"export", "before.json", "--plaintext"}).out;
  CHECK(before == "exported 3 accounts to before.json in plain text: anyone who can read it has the secrets\n");
  const std::string plain = read_text(cli.path("before.json"));
  CHECK(mentions(plain, canary_secret));  // asked for explicitly
  CHECK(owner_only(cli.path("before.json")));

  auto exported = cli({"export", "backup.kfb"});
  REQUIRE(exported.status == 0);
  CHECK(exported.out == "exported 3 accounts to backup.kfb (encrypted bundle)\n");
  const std::string bundle = read_text(cli.path("backup.kfb"));
  CHECK(bundle.starts_with("{\"keyfolio_bundle\":2"));
  CHECK_FALSE(mentions(bundle, "CANARY"));
  CHECK_FALSE(mentions(bundle, "okx-key"));
  CHECK(owner_only(cli.path("backup.kfb")));
  auto exists = cli({"export", "backup.kfb"});
  CHECK(exists.status == 1);
  CHECK(mentions(exists.err, "--force"));
  CHECK(read_text(cli.path("backup.kfb")) == bundle);
  auto to_stdout = cli({"export", "-"});
  REQUIRE(to_stdout.status == 0);
  CHECK(to_stdout.out.starts_with("{\"keyfolio_bundle\":2"));
  CHECK(to_stdout.err == "exported 3 accounts (encrypted bundle)\n");
  auto forced = cli({"export", "backup.kfb", "--force"});
  REQUIRE(forced.status == 0);
  CHECK(read_text(cli.path("backup.kfb")) != bundle);  // a fresh seal replaced it
  CHECK(owner_only(cli.path("backup.kfb")));
  CHECK(cli({"export", "x.json", "--plaintext", "--bundle-passphrase-fd", "0"}).status == 2);
  CHECK_FALSE(fs::exists(cli.path("x.json")));

  REQUIRE(cli({"rm", "--all", "--yes"}).status == 0);
  auto imported = cli({"import", "backup.kfb"});
  REQUIRE(imported.status == 0);
  CHECK(imported.out == "imported 3 accounts (3 added, 0 updated)\n");
  REQUIRE(cli({"export", "after.json", "--plaintext"}).status == 0);
  CHECK(read_text(cli.path("after.json")) == plain);

  // Into another store with another passphrase: the bundle needs only its own.
  write_private_text(cli.path("other-passphrase"), "another store's passphrase\n");
  const std::vector<std::string> other_env{"KEYFOLIO_STORE=" + cli.path("other.db"),
                                           "KEYFOLIO_PASSPHRASE_FILE=" + cli.path("other-passphrase"),
                                           "KEYFOLIO_BUNDLE_PASSPHRASE_FILE=" + cli.bundle_passphrase_file};
  REQUIRE(keyfolio_cli({"init"}, "", other_env).status == 0);
  auto other = keyfolio_cli({"import", cli.path("backup.kfb")}, "", other_env);
  REQUIRE(other.status == 0);
  auto other_plain = keyfolio_cli({"export", "-", "--plaintext"}, "", other_env);
  CHECK(other_plain.out == plain);

  // The bundle written to standard output, read back from standard input.
  write_private_text(cli.path("third-passphrase"), "a third store\n");
  const std::vector<std::string> third_env{"KEYFOLIO_STORE=" + cli.path("third.db"),
                                           "KEYFOLIO_PASSPHRASE_FILE=" + cli.path("third-passphrase"),
                                           "KEYFOLIO_BUNDLE_PASSPHRASE_FILE=" + cli.bundle_passphrase_file};
  REQUIRE(keyfolio_cli({"init"}, "", third_env).status == 0);
  auto piped = keyfolio_cli({"import", "-"}, to_stdout.out, third_env);
  REQUIRE(piped.status == 0);
  CHECK(piped.out == "imported 3 accounts (3 added, 0 updated)\n");
  CHECK(keyfolio_cli({"export", "-", "--plaintext"}, "", third_env).out == plain);
  CHECK(keyfolio_cli({"import", "-", "--bundle-passphrase-fd", "0"}, to_stdout.out, third_env).status == 2);

  // Imported again: every account updated, none duplicated.
  auto plain_import = cli({"import", "before.json"});
  REQUIRE(plain_import.status == 0);
  CHECK(plain_import.out == "imported 3 accounts (0 added, 3 updated)\n");
  check_no_canary({exported, exists, to_stdout, forced, imported, other, piped, plain_import});
}

TEST_CASE("keyfolio import is all or nothing and says which entry is wrong and why") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, "k\ns\n").status == 0);
  REQUIRE(cli({"export", "backup.kfb"}).status == 0);
  const std::string before = cli({"list"}).out;

  write_text(cli.path("bad-entry.json"),
             R"([{"exchange_id":"KRAKEN/a","parameters":[{"key":"PublicApiKey","value":"k"},{"key":"PrivateApiKey","value":"CANARY-1"}]},)"
             R"({"exchange_id":"OKX/b","parameters":[{"key":"PublicApiKey","value":"k"},{"key":"PrivateApiKey","value":"CANARY-2"}]},)"
             R"({"exchange_id":"BINANCE/c","parameters":[{"key":"PublicApiKey","value":"k"},{"key":"PrivateApiKey","value":"CANARY-3"}]}])");
  auto bad_entry = cli({"import", "bad-entry.json"});
  CHECK(bad_entry.status == 4);
  CHECK(mentions(bad_entry.err, "bad-entry.json: account \"OKX/b\": "));
  CHECK(mentions(bad_entry.err, "missing required field \"password\""));

  write_text(cli.path("unknown.json"), R"([{"exchange_id":"BINANSE/x","parameters":[{"key":"PublicApiKey","value":"k"}]}])");
  auto unknown = cli({"import", "unknown.json"});
  CHECK(unknown.status == 4);
  CHECK(mentions(unknown.err, "account 1: "));

  REQUIRE(cli({"list", "--json"}).status == 0);
  write_text(cli.path("redacted.json"), cli({"list", "--json"}).out);
  auto redacted = cli({"import", "redacted.json"});
  CHECK(redacted.status == 4);
  CHECK(mentions(redacted.err, "redacted"));

  write_text(cli.path("broken.json"), R"([{"exchange_id": "BINANCE/x", "parameters": [)");
  auto broken = cli({"import", "broken.json"});
  CHECK(broken.status == 4);
  CHECK(mentions(broken.err, "line 1"));

  auto wrong_bundle_passphrase = cli({"import", "backup.kfb", "--bundle-passphrase-fd", "0"}, "not the one\n");
  CHECK(wrong_bundle_passphrase.status == 5);
  CHECK(mentions(wrong_bundle_passphrase.err, "backup.kfb: the bundle does not open"));
  // An altered header cannot be told from a wrong passphrase; an altered part
  // under the right one is damage.
  const std::string original = read_text(cli.path("backup.kfb"));
  auto tamper = [&](std::string_view after) {
    std::string text = original;
    const auto at = text.find("\"ciphertext\":\"", text.find(after)) + 20;
    text[at] = text[at] == 'A' ? 'B' : 'A';
    return text;
  };
  write_text(cli.path("tampered.kfb"), tamper("\"authenticator\""));
  CHECK(cli({"import", "tampered.kfb"}).status == 5);
  write_text(cli.path("tampered-part.kfb"), tamper("\"parts\""));
  auto tampered_part = cli({"import", "tampered-part.kfb"});
  CHECK(tampered_part.status == 1);
  CHECK(mentions(tampered_part.err, "tampered-part.kfb: the bundle is damaged: part 1 of 1 fails to authenticate"));
  write_text(cli.path("damaged.kfb"), "{\"keyfolio_bundle\":1,\"key\":\"passphrase\"");
  auto damaged = cli({"import", "damaged.kfb"});
  CHECK(damaged.status == 1);
  CHECK(mentions(damaged.err, "damaged"));

  auto missing = cli({"import", "no-such-file.json"});
  CHECK(missing.status == 3);
  CHECK(mentions(missing.err, "no-such-file.json"));
  CHECK(cli({"import"}).status == 2);
  CHECK(cli({"import", "bad-entry.json", "--bundle-passphrase-fd", "0"}).status == 2);  // not a bundle
  write_text(cli.path("empty.json"), "[ ]\n");
  auto empty = cli({"import", "empty.json"});
  CHECK(empty.status == 0);
  CHECK(empty.out == "imported 0 accounts (0 added, 0 updated)\n");

  CHECK(cli({"list"}).out == before);  // nothing stored by any of the failures
  check_no_canary({bad_entry, unknown, redacted, broken, wrong_bundle_passphrase, tampered_part, damaged, missing, empty});
}

TEST_CASE("keyfolio import of a bundle whose parts were removed, or of an empty store's under a wrong passphrase, "
          "imports nothing and fails") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"export", "empty.kfb"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n").status == 0);
  REQUIRE(cli({"add", "OKX/trading", "--field", "apiKey", "--field", "secret", "--field", "password"},
              "okx-key\nCANARY-okx-secret\nCANARY-okx-pass\n").status == 0);
  REQUIRE(cli({"export", "backup.kfb"}).status == 0);
  const std::string before = cli({"list"}).out;

  // The empty store's bundle opens with its own passphrase only.
  auto empty_right = cli({"import", "empty.kfb"});
  CHECK(empty_right.status == 0);
  CHECK(empty_right.out == "imported 0 accounts (0 added, 0 updated)\n");
  auto empty_wrong = cli({"import", "empty.kfb", "--bundle-passphrase-fd", "0"}, "not the one\n");
  CHECK(empty_wrong.status == 5);
  CHECK(mentions(empty_wrong.err, "empty.kfb: the bundle does not open with this passphrase"));
  CHECK(empty_wrong.out.empty());

  auto rewritten = [&](const std::string& name, const std::function<void(boost::json::array&)>& edit) {
    auto bundle = boost::json::parse(read_text(cli.path("backup.kfb")));
    edit(bundle.as_object()["parts"].as_array());
    write_text(cli.path(name), boost::json::serialize(bundle) + "\n");
  };
  rewritten("no-parts.kfb", [](boost::json::array& parts) { parts.clear(); });
  rewritten("doubled.kfb", [](boost::json::array& parts) { parts.push_back(parts[0]); });
  std::vector<Run> runs{empty_right, empty_wrong};
  for (const std::string name : {"no-parts.kfb", "doubled.kfb"}) {
    INFO(name);
    for (const std::string passphrase : {"the bundle's own passphrase\n", "not the one\n"}) {
      auto run = passphrase.starts_with("not") ? cli({"import", name, "--bundle-passphrase-fd", "0"}, passphrase)
                                               : cli({"import", name});
      CHECK(run.status == (passphrase.starts_with("not") ? 5 : 1));
      CHECK(run.out.empty());
      CHECK_FALSE(mentions(run.err, "imported"));
      if (!passphrase.starts_with("not")) {
        CHECK(mentions(run.err, name + ": the bundle is damaged: it holds "));
        CHECK(mentions(run.err, ", but was sealed with 1 (parts were removed or added)"));
      }
      runs.push_back(run);
    }
  }
  CHECK(cli({"list"}).out == before);
  check_no_canary(runs);
}

TEST_CASE("keyfolio draws an import progress bar only on a terminal, and never colour") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  write_text(cli.path("many.json"), ems_accounts(5000));
  auto on_terminal = keyfolio_cli(Launch{{"import", "many.json"}, "", cli.env(), cli.dir.path().string(), true});
  REQUIRE(on_terminal.status == 0);
  CHECK(on_terminal.out == "imported 5000 accounts (5000 added, 0 updated)\n");
  CHECK(mentions(on_terminal.err, "\rimporting [##########"));
  CHECK(mentions(on_terminal.err, "] 4096/5000 accounts"));
  CHECK(mentions(on_terminal.err, "] 5000/5000 accounts, writing"));

  auto piped = cli({"import", "many.json"});
  INFO(piped.err);
  REQUIRE(piped.status == 0);
  CHECK(piped.out == "imported 5000 accounts (0 added, 5000 updated)\n");
  CHECK(piped.err.empty());
  for (const auto& r : {on_terminal, piped, cli({"list"}), cli({"exchanges"}), cli({"frobnicate"})}) {
    CHECK_FALSE(mentions(r.out, "\x1b"));
    CHECK_FALSE(mentions(r.err, "\x1b"));
  }
  check_no_canary({on_terminal, piped});
}

namespace {

keyfolio::Record raw_record(const Cli& cli, const std::string& collection, const std::string& key) {
  return keyfolio::make_sqlite_backend(cli.store).value()->get(collection, key).value().value();
}

// Puts `record`'s exact bytes back under its key at its version, as someone
// with write access to the file can.
void put_back(const Cli& cli, const std::string& collection, const keyfolio::Record& record) {
  keyfolio::test::put_back(*keyfolio::make_sqlite_backend(cli.store).value(), collection, record);
}

// The command fails with exit 1 (never 5, the wrong passphrase) naming what
// is wrong, and the keyring stays as it was.
void check_refused(const Cli& cli, const std::vector<std::string>& words) {
  const auto keyring = raw_record(cli, "keyfolio", "keyring");
  auto listed = cli({"list"});
  CHECK(listed.status == 1);
  for (const auto& word : words) CHECK(mentions(listed.err, word));
  auto verified = cli({"verify"});
  CHECK(verified.status == 1);
  for (const auto& word : words) CHECK(mentions(verified.out, word));
  const auto after = raw_record(cli, "keyfolio", "keyring");
  CHECK(after.version == keyring.version);
  CHECK(after.value == keyring.value);
}

}  // namespace

TEST_CASE("keyfolio refuses a store whose records were rolled back, deleted or put back, with exit 1 naming them") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  const auto add = [&](const std::string& id, const std::string& secret) {
    REQUIRE(cli({"add", id, "--field", "apiKey", "--field", "secret"}, "k\n" + secret + "\n").status == 0);
  };
  add("BINANCE/a", "first");
  add("BINANCE/b", "other");
  auto intact = cli({"verify"});
  CHECK(intact.status == 0);
  CHECK(intact.out == "intact: 2 accounts, generation 3\n");
  const auto first = raw_record(cli, "accounts", "binance/a");

  SECTION("an older version put back") {
    add("BINANCE/a", "second");
    put_back(cli, "accounts", first);
    check_refused(cli, {"accounts \"binance/a\"", "older"});
  }
  SECTION("an account deleted") {
    auto backend = keyfolio::make_sqlite_backend(cli.store).value();
    backend->write(keyfolio::WriteBatch().erase("accounts", "binance/b", 1)).value();
    check_refused(cli, {"accounts \"binance/b\"", "missing"});
  }
  SECTION("a removed account put back") {
    REQUIRE(cli({"rm", "BINANCE/a"}).status == 0);
    put_back(cli, "accounts", first);
    check_refused(cli, {"accounts \"binance/a\"", "removed"});
  }
  SECTION("an account's first life replayed after it was removed and added again") {
    REQUIRE(cli({"rm", "BINANCE/a"}).status == 0);
    add("BINANCE/a", "second life");
    put_back(cli, "accounts", first);
    check_refused(cli, {"accounts \"binance/a\"", "another copy"});
  }
  SECTION("the whole store replaced by an older copy, with the generation anchored") {
    fs::copy_file(cli.store, cli.path("old.db"));
    add("BINANCE/c", "later");
    const auto anchor = cli({"verify"});
    REQUIRE(anchor.out == "intact: 3 accounts, generation 4\n");
    fs::remove(cli.store);
    fs::remove(cli.store + "-wal");
    fs::copy_file(cli.path("old.db"), cli.store);
    CHECK(cli({"list"}).status == 0);  // consistent in itself
    auto refused = cli({"--min-generation", "4", "list"});
    CHECK(refused.status == 1);
    CHECK(mentions(refused.err, "generation 3, older than the generation 4 required"));
    CHECK(cli({"--min-generation", "x", "list"}).status == 2);
  }
}

TEST_CASE("keyfolio refuses a damaged or missing keyring with exit 1 and never writes a new one") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, "k\n" + canary_secret + "\n").status == 0);
  const auto keyring = raw_record(cli, "keyfolio", "keyring");
  const auto edited = [&](const std::function<void(boost::json::object&)>& edit) {
    auto document = boost::json::parse(keyring.value).as_object();
    edit(document);
    auto backend = keyfolio::make_sqlite_backend(cli.store).value();
    const auto now = backend->get("keyfolio", "keyring").value().value();
    backend->write(keyfolio::WriteBatch().put("keyfolio", "keyring", boost::json::serialize(document), now.version))
        .value();
  };
  const auto refused = [&](const std::string& word) {
    const auto before = raw_record(cli, "keyfolio", "keyring");
    auto r = cli({"list"});
    CHECK(r.status == 1);
    CHECK(mentions(r.err, word));
    CHECK(raw_record(cli, "keyfolio", "keyring").value == before.value);
  };
  SECTION("a cost changed within bounds") {
    edited([](boost::json::object& k) { k["kek"].as_object()["ops"] = k["kek"].as_object()["ops"].to_number<std::int64_t>() + 1; });
    refused("checksum");
  }
  SECTION("a cost raised to make opening hang") {
    edited([](boost::json::object& k) { k["kek"].as_object()["ops"] = 4294967295; });
    refused("cost");
  }
  SECTION("a shortened salt") {
    edited([](boost::json::object& k) { k["kek"].as_object()["salt"] = "00ff"; });
    refused("damaged");
  }
  SECTION("a memory cost near the machine's memory") {
    edited([](boost::json::object& k) { k["kek"].as_object()["memory"] = std::int64_t{1} << 40; });
    refused("cost");
  }
  SECTION("the keyring deleted") {
    auto backend = keyfolio::make_sqlite_backend(cli.store).value();
    backend->write(keyfolio::WriteBatch().erase("keyfolio", "keyring", keyring.version)).value();
    auto r = cli({"list"});
    CHECK(r.status == 1);
    CHECK(mentions(r.err, "keyring is missing"));
    CHECK_FALSE(keyfolio::make_sqlite_backend(cli.store).value()->get("keyfolio", "keyring").value());
  }
}

TEST_CASE("keyfolio verify opens every account and portfolio, and names one whose ciphertext alone was changed") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  auto connected = cli({"connect", "KRAKEN", "--field", "apiKey", "--field", "secret"}, "k\nc2VjcmV0\n");
  REQUIRE(connected.status == 0);
  const std::string portfolio = connected.out.substr(0, 32);
  CHECK(cli({"verify"}).status == 0);
  // A byte inside the ciphertext, at the same version: the integrity record
  // pins the nonce and tag, so only opening the record finds it.
  auto record = raw_record(cli, "portfolios", portfolio);
  record.value[record.value.size() - 20] = static_cast<char>(record.value[record.value.size() - 20] ^ 1);
  put_back(cli, "portfolios", record);
  auto verified = cli({"verify"});
  CHECK(verified.status == 1);
  CHECK(mentions(verified.out, "portfolio " + portfolio + " does not authenticate"));
}

TEST_CASE("keyfolio rotate and passwd --rotate replace the data key, and every account reads back") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, "k\n" + canary_secret + "\n").status == 0);
  const auto before = raw_record(cli, "keyfolio", "keyring");
  auto rotated = cli({"rotate"});
  REQUIRE(rotated.status == 0);
  CHECK(rotated.out == "data key replaced: 1 record re-sealed under a new data key (generation 3)\n");
  CHECK(raw_record(cli, "keyfolio", "keyring").value != before.value);
  auto shown = cli({"show", "BINANCE/main", "--reveal"});
  REQUIRE(shown.status == 0);
  CHECK(mentions(shown.out, canary_secret));

  auto changed = cli({"passwd", "--rotate"});
  REQUIRE(changed.status == 0);
  CHECK(changed.out == "passphrase and data key changed: 1 record re-sealed under a new data key (generation 4)\n");
  CHECK(cli({"list"}).status == 5);
  auto fresh = keyfolio_cli({"--passphrase-fd", "0", "show", "BINANCE/main", "--reveal"}, "a new and longer passphrase\n",
                            cli.env());
  REQUIRE(fresh.status == 0);
  CHECK(mentions(fresh.out, canary_secret));
  CHECK(cli({"rotate", "extra"}).status == 2);
}

TEST_CASE("keyfolio rotate draws a progress bar on a terminal") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  write_text(cli.path("many.json"), ems_accounts(5000));
  REQUIRE(cli({"import", "many.json"}).status == 0);
  auto on_terminal = keyfolio_cli(Launch{{"rotate"}, "", cli.env(), cli.dir.path().string(), true});
  REQUIRE(on_terminal.status == 0);
  CHECK(mentions(on_terminal.err, "\rre-sealing [##########"));
  CHECK(mentions(on_terminal.err, "] 5000/5000 records, writing"));
  CHECK(on_terminal.out == "data key replaced: 5000 records re-sealed under a new data key (generation 3)\n");
}

TEST_CASE("every command of the README's CLI walkthrough runs, in order, and does what it says") {
  Cli cli;
  std::string portfolio;
  struct Step {
    std::vector<std::string> args;
    std::string input;
    std::function<void(const Run&)> check;
  };
  const std::vector<Step> steps{
      {{"init"}, "", [](const Run& r) { CHECK(mentions(r.out, "created store")); }},
      {{"exchanges", "OKX"}, "", [](const Run& r) { CHECK(r.out == "okx (OKX): apiKey secret password\n"); }},
      {{"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"},
       canary_key + "\n" + canary_secret + "\n",
       [](const Run& r) { CHECK(r.out == "added BINANCE/main (version 1)\n"); }},
      {{"add", "OKX/trading", "--field", "apiKey", "--field", "secret", "--field", "password"},
       "okx-key\nCANARY-okx-secret\nCANARY-okx-password\n",
       [](const Run& r) { CHECK(r.out == "added OKX/trading (version 1)\n"); }},
      {{"add", "HYPERLIQUID", "--field", "walletAddress=0xabc", "--field", "privateKey"}, "CANARY-private-key\n",
       [](const Run& r) { CHECK(r.out == "added HYPERLIQUID (version 1)\n"); }},
      {{"list"}, "",
       [](const Run& r) {
         CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 3);
         CHECK(mentions(r.out, "OKX/trading  version 1  fields apiKey password secret"));
       }},
      {{"show", "OKX/trading"}, "",
       [](const Run& r) {
         CHECK(mentions(r.out, "secret: [redacted]"));
         CHECK(mentions(r.out, "password: [redacted]"));
       }},
      {{"connect", "KRAKEN", "--field", "apiKey", "--field", "secret", "--name", "Long-term"},
       "kraken-key\nCANARY-kraken-secret\n",
       [&](const Run& r) {
         portfolio = r.out.substr(0, r.out.find(' '));
         CHECK(is_portfolio_id(portfolio));
         CHECK(mentions(r.out, " connected  account kraken/"));
       }},
      {{"portfolios"}, "", [&](const Run& r) { CHECK(r.out.starts_with(portfolio + "  Long-term  account kraken/")); }},
      {{"export", "backup.kfb"}, "",
       [](const Run& r) { CHECK(r.out == "exported 4 accounts to backup.kfb (encrypted bundle)\n"); }},
      {{"rm", "OKX/trading"}, "", [](const Run& r) { CHECK(r.out == "removed 1 account\n"); }},
      {{"import", "backup.kfb"}, "",
       [](const Run& r) { CHECK(r.out == "imported 4 accounts (1 added, 3 updated)\n"); }},
      {{"disconnect", "Long-term"}, "",
       [&](const Run& r) {
         CHECK(r.out.starts_with("disconnected " + portfolio + " (Long-term) and removed account kraken/"));
       }},
      {{"verify"}, "", [](const Run& r) { CHECK(r.out.starts_with("intact: 3 accounts, generation ")); }},
      {{"rotate"}, "",
       [](const Run& r) { CHECK(r.out.starts_with("data key replaced: 3 records re-sealed under a new data key")); }},
      {{"passwd"}, "", [](const Run& r) { CHECK(r.out == "passphrase changed\n"); }},
  };

  std::vector<std::string> documented, tested;
  for (const auto& args : readme_walkthrough()) documented.push_back(joined(args));
  for (const auto& step : steps) tested.push_back(joined(step.args));
  REQUIRE(documented == tested);

  for (const auto& step : steps) {
    INFO(joined(step.args));
    const Run r = cli(step.args, step.input);
    INFO(r.err);
    REQUIRE(r.status == 0);
    step.check(r);
    CHECK_FALSE(mentions(r.out, "CANARY"));
    CHECK_FALSE(mentions(r.err, "CANARY"));
  }
  // After passwd only the new passphrase opens the store, and it holds what the walkthrough left.
  auto after = keyfolio_cli({"--passphrase-fd", "0", "list"}, "a new and longer passphrase\n", cli.env());
  REQUIRE(after.status == 0);
  CHECK(after.out.find("kraken/") == std::string::npos);
  CHECK(std::count(after.out.begin(), after.out.end(), '\n') == 3);
}

TEST_CASE("keyfolio --schema with a SQLite store is a usage error, and KEYFOLIO_SCHEMA does not apply to one") {
  Cli cli;
  auto refused = cli({"--schema", "trading", "init"});
  CHECK(refused.status == 2);
  CHECK(mentions(refused.err, "PostgreSQL"));
  CHECK_FALSE(fs::exists(cli.store));
  CHECK(cli({"--schema"}).status == 2);
  cli.more_env = {"KEYFOLIO_SCHEMA=trading"};
  CHECK(cli({"init"}).status == 0);
  CHECK(cli({"list"}).status == 0);
}

TEST_CASE("keyfolio commands other than init never create a store in a file that holds none, and init does") {
  Cli cli;
  // What an init that failed after the file was made, or another program, leaves: SQLite's tables, no store.
  REQUIRE(keyfolio::make_sqlite_backend(cli.store));
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"list"}, {"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, {"rotate"},
        {"watch"}}) {
    INFO(joined(command));
    // In the background, so that a watch that does open a store is stopped (after 30 seconds).
    Background tool(Launch{command, "k\n" + canary_secret + "\n", cli.env(), cli.dir.path().string()});
    const Run r = tool.stop(0);
    CHECK(r.status == 3);
    CHECK(mentions(r.err, "no store at " + cli.store));
    CHECK(mentions(r.err, "keyfolio init"));
    auto keyring = keyfolio::make_sqlite_backend(cli.store).value()->get("keyfolio", "keyring");
    REQUIRE(keyring);
    CHECK_FALSE(keyring->has_value());
  }
  auto init = cli({"init"});
  CHECK(init.status == 0);
  CHECK(init.out == "created store " + cli.store + "\n");
  CHECK(cli({"init"}).out == "store already exists: " + cli.store + "\n");
  CHECK(cli({"list"}).status == 0);
}

namespace {

// A line of `keyfolio watch`: the time in UTC to the millisecond, then the event.
bool watch_line(const std::string& line, const std::string& event) {
  return line.size() > 25 && line[4] == '-' && line[10] == 'T' && line[19] == '.' && line[23] == 'Z' &&
         line.substr(25) == event;
}

bool watch_lines(const std::string& out, const std::vector<std::string>& events) {
  const auto lines = lines_of(out);
  if (lines.size() != events.size()) return false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (!watch_line(lines[i], events[i])) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("keyfolio watch prints a line, as it happens, for each account another process creates, updates or "
          "removes, never a value, until SIGINT or SIGTERM") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n").status == 0);
  const auto add = [&](const std::string& id) {
    REQUIRE(cli({"add", id, "--field", "apiKey", "--field", "secret"}, canary_key + "\nCANARY-" + id + "\n").status == 0);
  };
  SECTION("as text, stopped by SIGINT") {
    auto watch = watching(cli);
    CHECK(mentions(watch->err(), "watching " + cli.store + " (1 account)"));
    add("KRAKEN/john");
    // Each line is there while the watch runs: written and flushed at once.
    REQUIRE(watch->wait_for("created KRAKEN/john version 1\n"));
    add("KRAKEN/john");
    REQUIRE(watch->wait_for("updated KRAKEN/john version 2\n"));
    REQUIRE(cli({"rm", "KRAKEN/john", "BINANCE/main"}).status == 0);
    REQUIRE(watch->wait_for("removed BINANCE/main\n"));
    const Run r = watch->stop(SIGINT);
    CHECK(r.status == 0);
    INFO(r.out);
    // The two removals are one write, reported in either order.
    CHECK((watch_lines(r.out, {"created KRAKEN/john version 1", "updated KRAKEN/john version 2",
                               "removed BINANCE/main", "removed KRAKEN/john"}) ||
           watch_lines(r.out, {"created KRAKEN/john version 1", "updated KRAKEN/john version 2",
                               "removed KRAKEN/john", "removed BINANCE/main"})));
    CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
  }
  SECTION("as JSON, one object a line, stopped by SIGTERM") {
    auto watch = watching(cli, {"--json"});
    add("KRAKEN/x");
    REQUIRE(watch->wait_for("\"event\":\"created\""));
    REQUIRE(cli({"rm", "KRAKEN/x"}).status == 0);
    REQUIRE(watch->wait_for("\"event\":\"removed\""));
    const Run r = watch->stop(SIGTERM);
    CHECK(r.status == 0);
    const auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 2);
    const auto created = boost::json::parse(lines[0]).as_object();
    CHECK(created.at("event") == "created");
    CHECK(created.at("exchange_id") == "KRAKEN/x");
    CHECK(created.at("version") == 1);
    CHECK(created.at("time").as_string().size() == 24);
    const auto removed = boost::json::parse(lines[1]).as_object();
    CHECK(removed.at("event") == "removed");
    CHECK(removed.at("exchange_id") == "KRAKEN/x");
    CHECK_FALSE(removed.contains("version"));
    CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
  }
}

TEST_CASE("keyfolio watch refuses arguments and a missing store") {
  Cli cli;
  CHECK(cli({"watch"}).status == 3);
  REQUIRE(cli({"init"}).status == 0);
  CHECK(cli({"watch", "extra"}).status == 2);
  CHECK(cli({"watch", "--bogus"}).status == 2);
  CHECK(mentions(cli({"watch", "--help"}).out, "usage: keyfolio watch [--json]"));
}

TEST_CASE("keyfolio watch prints a resync line when the change feed may have missed changes, then what changed") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  auto watch = watching(cli);
  // An import of more than 1,024 accounts reaches the feed as one resync.
  write_text(cli.path("many.json"), ems_accounts(1100));
  REQUIRE(cli({"import", "many.json"}).status == 0);
  CHECK(watch->wait_for_lines(1101) == 1101);
  const Run r = watch->stop(SIGINT);
  CHECK(r.status == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 1101);
  CHECK(watch_line(lines[0], "resync: the change feed may have missed changes; every account is read again"));
  CHECK(std::all_of(lines.begin() + 1, lines.end(), [](const std::string& l) { return mentions(l, " created "); }));
}

TEST_CASE("keyfolio watch goes on after another process rotates the data key, and exits 5 saying why when the "
          "passphrase changed with it") {
  Cli cli;
  REQUIRE(cli({"init"}).status == 0);
  REQUIRE(cli({"add", "BINANCE/main", "--field", "apiKey", "--field", "secret"}, canary_key + "\n" + canary_secret + "\n").status == 0);
  auto watch = watching(cli);
  REQUIRE(cli({"rotate"}).status == 0);
  REQUIRE(watch->wait_for("rotated: the store's data key was replaced; watching under the new one\n"));
  REQUIRE(cli({"add", "KRAKEN", "--field", "apiKey", "--field", "secret"}, "k\nCANARY-kraken\n").status == 0);
  REQUIRE(watch->wait_for("created KRAKEN version 1\n"));
  REQUIRE(cli({"rotate"}).status == 0);  // and again, under the manager opened after the first
  REQUIRE(cli({"rm", "KRAKEN"}).status == 0);
  REQUIRE(watch->wait_for("removed KRAKEN\n"));
  // The re-sealed accounts changed only their key: no line of their own.
  CHECK(watch_lines(watch->out(), {"rotated: the store's data key was replaced; watching under the new one",
                                   "created KRAKEN version 1",
                                   "rotated: the store's data key was replaced; watching under the new one",
                                   "removed KRAKEN"}));

  REQUIRE(cli({"passwd", "--rotate"}).status == 0);
  const Run r = watch->stop(0);
  CHECK(r.status == 5);
  CHECK(mentions(r.err, "passphrase, which no longer opens it"));
  CHECK(mentions(r.err, "run `keyfolio watch` again"));
  CHECK_FALSE(mentions(r.out + r.err, "CANARY"));
  CHECK_FALSE(mentions(r.out + r.err, "correct horse"));
  CHECK_FALSE(mentions(r.out + r.err, "a new and longer"));
}
