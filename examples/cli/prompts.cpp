#include "prompts.hpp"

#include "cli.hpp"
#include "files.hpp"

#include <sodium.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iterator>
#include <signal.h>
#include <string_view>
#include <termios.h>
#include <unistd.h>

namespace keyfolio::cli {

bool on_terminal(int fd) { return ::isatty(fd) == 1; }

namespace {

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

// The terminal whose echo a prompt has turned off, and its settings before,
// for the handler of the signals that end the process: a prompt left by
// Ctrl-C or a kill must not leave the operator's shell without echo.
volatile std::sig_atomic_t quiet_terminal = -1;
termios terminal_before{};
constexpr int ending_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};

void restore_terminal_and_end(int signal) {
  const int tty = quiet_terminal;
  if (tty >= 0) {
    ::tcsetattr(tty, TCSANOW, &terminal_before);
    (void)!::write(tty, "\n", 1);
  }
  // SA_RESETHAND has put the default action back; the signal, blocked until
  // this returns, then ends the process as it would have without a prompt.
  ::raise(signal);
}

// Echo off on a terminal for the lifetime of the object, and back on when it
// ends or a signal ends the process meanwhile. One at a time.
class EchoOff {
 public:
  explicit EchoOff(int tty) : tty_(tty) {
    if (::tcgetattr(tty, &terminal_before) != 0) return;
    active_ = true;
    quiet_terminal = tty;
    struct sigaction restoring {};
    restoring.sa_handler = restore_terminal_and_end;
    sigemptyset(&restoring.sa_mask);
    for (int s : ending_signals) sigaddset(&restoring.sa_mask, s);
    restoring.sa_flags = SA_RESETHAND;
    for (std::size_t i = 0; i < std::size(ending_signals); ++i) {
      ::sigaction(ending_signals[i], nullptr, &previous_[i]);
      // A signal the caller ignores stays ignored.
      if (previous_[i].sa_handler != SIG_IGN) ::sigaction(ending_signals[i], &restoring, nullptr);
    }
    termios quiet = terminal_before;
    quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  ~EchoOff() {
    if (!active_) return;
    ::tcsetattr(tty_, TCSAFLUSH, &terminal_before);
    quiet_terminal = -1;
    for (std::size_t i = 0; i < std::size(ending_signals); ++i) ::sigaction(ending_signals[i], &previous_[i], nullptr);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  int tty_;
  bool active_ = false;
  struct sigaction previous_[std::size(ending_signals)] {};
};

// A line from the terminal with echo off; nullopt without a terminal.
std::optional<keyfolio::SecretString> prompt_secret(const std::string& prompt) {
  const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{tty};
  std::optional<keyfolio::SecretString> value;
  {
    // Echo goes off before the prompt shows, so nothing typed at it is shown.
    EchoOff quiet(tty);
    (void)!::write(tty, prompt.data(), prompt.size());
    value = read_line(tty, "the terminal");
  }
  (void)!::write(tty, "\n", 1);
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

}  // namespace

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

keyfolio::Result<keyfolio::SecretString> read_passphrase(const PassphraseSource& source) {
  if (source.fd) {
    if (auto p = line_from_fd(*source.fd)) return std::move(*p);
    return invalid("no " + source.what + " could be read from file descriptor " + std::to_string(*source.fd) +
                   " (" + source.fd_option + ")");
  }
  if (const char* file = std::getenv(source.file_variable); file != nullptr && *file != '\0') {
    const int fd = ::open(file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      // Checked on the open file, so that what is checked is what is read.
      if (auto ok = check_private(fd, "the file " + std::string(file) + " named by " + source.file_variable); !ok) {
        ::close(fd);
        return ok.error();
      }
    }
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

bool confirm(const std::string& question) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr) return false;
  std::fputs((question + " [y/N] ").c_str(), tty);
  std::fflush(tty);
  const int c = std::fgetc(tty);
  std::fclose(tty);
  return c == 'y' || c == 'Y';
}

}  // namespace keyfolio::cli
