// Drives the real `keyfolio` binary: arguments, standard input, output and
// exit codes.
#include "catch.hpp"
#include "temp_dir.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

struct Run {
  int status = -1;
  std::string out, err;
};

// Runs the tool with `args`, `input` on its standard input and no terminal.
Run keyfolio_cli(const std::vector<std::string>& args, const std::string& input, const std::vector<std::string>& env) {
  int in[2], out[2], err[2];
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setsid();  // no controlling terminal: prompts must not be reachable
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    std::vector<char*> argv{const_cast<char*>(KEYFOLIO_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    ::execve(KEYFOLIO_CLI, argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  Run r;
  auto drain = [](int fd, std::string& to) {
    char buffer[4096];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) to.append(buffer, static_cast<std::size_t>(n));
    ::close(fd);
  };
  drain(out[0], r.out);
  drain(err[0], r.err);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool mentions(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

struct Cli {
  keyfolio::test::TempDir dir;
  std::string passphrase_file = (dir / "passphrase").string();
  Cli() {
    FILE* f = std::fopen(passphrase_file.c_str(), "w");
    std::fputs("correct horse battery staple\n", f);
    std::fclose(f);
  }
  std::vector<std::string> env() const {
    return {"KEYFOLIO_STORE=" + (dir / "store.db").string(), "KEYFOLIO_PASSPHRASE_FILE=" + passphrase_file,
            "HOME=" + dir.path().string()};
  }
  Run operator()(const std::vector<std::string>& args, const std::string& input = {}) const {
    return keyfolio_cli(args, input, env());
  }
};

const std::string canary_key = "CANARY-cli-key-4f2a";
const std::string canary_secret = "CANARY-cli-secret-9d1c";

}  // namespace

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

  for (const auto& r : {init, add, update, list, json, show}) {
    CHECK_FALSE(mentions(r.out, "CANARY"));
    CHECK_FALSE(mentions(r.err, "CANARY"));
  }
  CHECK(cli({"rm", "BINANCE/main"}).status == 0);
  CHECK(cli({"list"}).out.empty());
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

  auto wrong = keyfolio_cli({"--passphrase-fd", "0", "list"}, "not the passphrase\n", cli.env());
  CHECK(wrong.status == 5);
  CHECK(mentions(wrong.err, "passphrase"));
  CHECK(cli({"list"}).status == 0);
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
  for (const char* command : {"init", "add", "list", "show", "rm", "exchanges"}) {
    auto help = cli({command, "--help"});
    CHECK(help.status == 0);
    CHECK(mentions(help.out, std::string("usage: keyfolio ") + command));
  }
}
