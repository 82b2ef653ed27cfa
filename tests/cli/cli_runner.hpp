// Drives the real `keyfolio` binary for the CLI tests: runs it with given
// arguments, input and environment (or on a pseudo-terminal, or in the
// background while a test reads what it prints), and reads the README's
// walkthroughs of it.
#pragma once

#include "catch.hpp"
#include "tampering.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <poll.h>
#include <sstream>
#include <stdlib.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <vector>

namespace keyfolio::test::cli {

struct Run {
  int status = -1;
  std::string out, err;
  std::vector<std::string> writes;  // to standard output, one each; with stdout_writes only
};

struct Launch {
  std::vector<std::string> args;
  std::string input;
  std::vector<std::string> env;
  std::string cwd;               // empty: this process's
  bool stderr_on_terminal = false;  // a pseudo-terminal instead of a pipe
  std::function<void(pid_t)> meanwhile{};  // run while the tool runs, after its input is written
  rlim_t address_space = 0;                // a limit on the tool's memory (RLIMIT_AS) in bytes; 0: none
  // Standard output on a socket that keeps the bounds of each write(2), so
  // that Run::writes shows what the tool wrote in which write.
  bool stdout_writes = false;
};

inline void drain(int fd, std::string& to) {
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) to.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
}

// In the forked child, its standard streams in place: runs the tool as
// `launch` says (directory, address-space limit, arguments, environment).
[[noreturn]] inline void exec_cli(const Launch& launch) {
  if (!launch.cwd.empty() && ::chdir(launch.cwd.c_str()) != 0) ::_exit(126);
  if (launch.address_space != 0) {
    const rlimit limit{launch.address_space, launch.address_space};
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(126);
  }
  std::vector<char*> argv{const_cast<char*>(KEYFOLIO_CLI)};
  for (const auto& a : launch.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : launch.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(KEYFOLIO_CLI, argv.data(), envp.data());
  ::_exit(127);
}

// In the parent: closes the child's ends of the pipes, and gives it
// `launch.input` on its standard input, then end of file.
inline void hand_input(const Launch& launch, const int in[2], const int out[2], const int err[2]) {
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  (void)!::write(in[1], launch.input.data(), launch.input.size());
  ::close(in[1]);
}

// Runs the tool with no controlling terminal (so prompts are unreachable),
// `input` on its standard input.
inline Run keyfolio_cli(const Launch& launch) {
  int in[2], out[2], err[2];
  REQUIRE(::pipe(in) == 0);
  if (launch.stdout_writes) {
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, out) == 0);
  } else {
    REQUIRE(::pipe(out) == 0);
  }
  REQUIRE(::pipe(err) == 0);
  int terminal = -1;
  std::string terminal_name;
  if (launch.stderr_on_terminal) {
    terminal = ::posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(terminal >= 0);
    REQUIRE(::grantpt(terminal) == 0);
    REQUIRE(::unlockpt(terminal) == 0);
    terminal_name = ::ptsname(terminal);
  }
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setsid();
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    if (terminal >= 0) {
      const int pts = ::open(terminal_name.c_str(), O_RDWR | O_NOCTTY);
      if (pts < 0) ::_exit(126);
      ::dup2(pts, 2);
      ::close(pts);
      ::close(terminal);
    } else {
      ::dup2(err[1], 2);
    }
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    exec_cli(launch);
  }
  hand_input(launch, in, out, err);
  if (launch.meanwhile) launch.meanwhile(pid);
  Run r;
  if (launch.stdout_writes) {
    std::vector<char> buffer(std::size_t{1} << 20);
    for (ssize_t n; (n = ::recv(out[0], buffer.data(), buffer.size(), 0)) > 0;) {
      r.writes.emplace_back(buffer.data(), static_cast<std::size_t>(n));
      r.out += r.writes.back();
    }
    ::close(out[0]);
  } else {
    drain(out[0], r.out);
  }
  drain(err[0], r.err);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (terminal >= 0) {
    // The child has exited and no one else holds the terminal's other end:
    // reads return what it wrote, then fail with EIO.
    drain(terminal, r.err);
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline Run keyfolio_cli(const std::vector<std::string>& args, const std::string& input, const std::vector<std::string>& env) {
  return keyfolio_cli(Launch{args, input, env, {}, false});
}


inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A file only its owner may read, as keyfolio requires of a passphrase file.
inline void write_private_text(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::fchmod(fd, 0600) == 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Cli {
  keyfolio::test::TempDir dir;
  std::string passphrase_file = (dir / "passphrase").string();
  std::string new_passphrase_file = (dir / "new-passphrase").string();
  std::string bundle_passphrase_file = (dir / "bundle-passphrase").string();
  std::string store = (dir / "store.db").string();  // a SQLite file, or a PostgreSQL store's URI
  std::vector<std::string> more_env{};              // KEYFOLIO_SCHEMA=..., for instance
  Cli() {
    write_private_text(passphrase_file, "correct horse battery staple\n");
    write_private_text(new_passphrase_file, "a new and longer passphrase\n");
    write_private_text(bundle_passphrase_file, "the bundle's own passphrase\n");
  }
  std::vector<std::string> env() const {
    std::vector<std::string> all{"KEYFOLIO_STORE=" + store, "KEYFOLIO_PASSPHRASE_FILE=" + passphrase_file,
                                 "KEYFOLIO_NEW_PASSPHRASE_FILE=" + new_passphrase_file,
                                 "KEYFOLIO_BUNDLE_PASSPHRASE_FILE=" + bundle_passphrase_file,
                                 "HOME=" + dir.path().string()};
    all.insert(all.end(), more_env.begin(), more_env.end());
    return all;
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  Run operator()(const std::vector<std::string>& args, const std::string& input = {}) const {
    return keyfolio_cli(Launch{args, input, env(), dir.path().string()});
  }
};

// Opens the FIFO `path` for writing once a reader has opened it; -1 after
// 30 seconds without one.
inline int open_fifo_when_read(const std::string& path) {
  for (int tries = 0; tries < 3000; ++tries) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      ::fcntl(fd, F_SETFL, 0);
      return fd;
    }
    if (errno != ENXIO) return -1;
    ::usleep(10'000);
  }
  return -1;
}

// The tool started with a pseudo-terminal as its controlling terminal and
// standard streams, as at an operator's shell. The test keeps the terminal's
// own end open too, to read its settings after the tool is gone.
struct OnTerminal {
  pid_t pid = -1;
  int master = -1;
  int terminal = -1;
  std::string shown;  // what the tool wrote to the terminal so far

  OnTerminal(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    const std::string name = ::ptsname(master);
    terminal = ::open(name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(terminal >= 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setsid();
      const int tty = ::open(name.c_str(), O_RDWR);
      if (tty < 0 || ::ioctl(tty, TIOCSCTTY, 0) != 0) ::_exit(126);
      for (int fd = 0; fd < 3; ++fd) ::dup2(tty, fd);
      if (tty > 2) ::close(tty);
      std::vector<char*> argv{const_cast<char*>(KEYFOLIO_CLI)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      std::vector<char*> envp;
      for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
      envp.push_back(nullptr);
      ::execve(KEYFOLIO_CLI, argv.data(), envp.data());
      ::_exit(127);
    }
  }
  ~OnTerminal() {
    if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(terminal);
    ::close(master);
  }
  OnTerminal(const OnTerminal&) = delete;
  OnTerminal& operator=(const OnTerminal&) = delete;

  // Reads what the tool writes until `text` has appeared (true) or 30 seconds passed.
  bool wait_for(const std::string& text) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (shown.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{master, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[256];
      const ssize_t n = ::read(master, buffer, sizeof buffer);
      if (n <= 0) return false;
      shown.append(buffer, static_cast<std::size_t>(n));
    }
    return true;
  }
  bool echo() const {
    termios t{};
    REQUIRE(::tcgetattr(terminal, &t) == 0);
    return (t.c_lflag & ECHO) != 0;
  }
  // Whether echo goes off within 30 seconds (a prompt may be shown first).
  bool echo_goes_off() const {
    for (int tries = 0; tries < 3000; ++tries) {
      if (!echo()) return true;
      ::usleep(10'000);
    }
    return false;
  }
  // The signal that ended the tool; 0 when it exited.
  int end_signal() {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    pid = -1;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
};

inline const std::string canary_key = "CANARY-cli-key-4f2a";
inline const std::string canary_secret = "CANARY-cli-secret-9d1c";

// The tool running in the background (`keyfolio watch`) while a test reads
// what it prints as it comes. Killed when the object goes, if still running.
class Background {
 public:
  explicit Background(const Launch& launch) {
    int in[2], out[2], err[2];
    REQUIRE(::pipe(in) == 0);
    REQUIRE(::pipe(out) == 0);
    REQUIRE(::pipe(err) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::setsid();
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
      exec_cli(launch);
    }
    hand_input(launch, in, out, err);
    out_ = out[0];
    err_ = err[0];
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // What the tool has printed so far.
  const std::string& out() const noexcept { return run_.out; }
  const std::string& err() const noexcept { return run_.err; }

  // Reads what the tool prints until `text` is in its standard output (or
  // error, with `on_err`): true, or false once 30 seconds passed or the
  // tool closed its output.
  bool wait_for(const std::string& text, bool on_err = false) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const std::string& where = on_err ? run_.err : run_.out;
    while (where.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !read_some(static_cast<int>(left.count()))) return false;
    }
    return true;
  }
  // The number of lines of standard output once it holds at least `lines`,
  // or what it has after 30 seconds.
  std::size_t wait_for_lines(std::size_t lines) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const auto count = [&] { return static_cast<std::size_t>(std::count(run_.out.begin(), run_.out.end(), '\n')); };
    while (count() < lines) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !read_some(static_cast<int>(left.count()))) break;
    }
    return count();
  }
  // Sends `signal` (none: 0) and waits up to 30 seconds for the tool to end
  // (then kills it); everything it printed, and its exit status (-1 when a
  // signal ended it).
  Run stop(int signal) {
    if (signal != 0) ::kill(pid_, signal);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out_ >= 0 || err_ >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(pid_, SIGKILL);
        break;
      }
      read_some(static_cast<int>(left.count()));
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    run_.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run_;
  }

 private:
  // Waits up to `ms` for output and appends it; false once both streams are
  // closed or nothing came.
  bool read_some(int ms) {
    pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    if (::poll(p, 2, ms) <= 0) return false;
    bool open = false;
    int* fds[2] = {&out_, &err_};
    std::string* to[2] = {&run_.out, &run_.err};
    for (int i = 0; i < 2; ++i) {
      if (*fds[i] < 0) continue;
      if ((p[i].revents & (POLLIN | POLLHUP)) != 0) {
        char buffer[4096];
        const ssize_t n = ::read(*fds[i], buffer, sizeof buffer);
        if (n > 0) {
          to[i]->append(buffer, static_cast<std::size_t>(n));
        } else {
          ::close(*fds[i]);
          *fds[i] = -1;
        }
      }
      open = open || *fds[i] >= 0;
    }
    return open;
  }

  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  Run run_;
};

// `keyfolio watch ARGS` in `cli`'s store, once it has said that it watches.
inline std::unique_ptr<Background> watching(const Cli& cli, std::vector<std::string> args = {}) {
  args.insert(args.begin(), "watch");
  auto watch = std::make_unique<Background>(Launch{args, "", cli.env(), cli.dir.path().string()});
  INFO(watch->err());
  REQUIRE(watch->wait_for("stop with Ctrl-C\n", true));
  return watch;
}

// The lines of `text`.
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The lines of the first code block after the README's line `marker`,
// comments (from " #" on) and blank lines dropped, trailing blanks trimmed.
inline std::vector<std::string> readme_block(const std::string& marker) {
  std::ifstream in(KEYFOLIO_README);
  REQUIRE(in);
  std::vector<std::string> lines;
  bool marked = false, inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line == marker) {
      marked = true;
      continue;
    }
    if (!marked) continue;
    if (line.starts_with("```")) {
      if (inside) break;
      inside = true;
      continue;
    }
    if (!inside || line.starts_with("#")) continue;
    line = line.substr(0, line.find(" #"));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
  }
  REQUIRE_FALSE(lines.empty());
  return lines;
}

// The words of a command line, split at blanks.
inline std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// The command lines of the README's CLI walkthrough, split into arguments
// (after the leading `keyfolio`), comments dropped.
inline std::vector<std::vector<std::string>> readme_walkthrough() {
  std::vector<std::vector<std::string>> commands;
  for (const auto& line : readme_block("<!-- cli walkthrough -->")) {
    if (!line.starts_with("keyfolio ")) continue;
    auto words = words_of(line);
    words.erase(words.begin());
    commands.push_back(std::move(words));
  }
  return commands;
}

inline std::string joined(const std::vector<std::string>& args) {
  std::string out = "keyfolio";
  for (const auto& a : args) out += " " + a;
  return out;
}

}  // namespace keyfolio::test::cli
