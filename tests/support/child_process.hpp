// Runs a function in a forked child process and reports what it said, for
// tests that change process-wide state (resource limits, user id) or that
// need a second process.
#pragma once

#include <csignal>
#include <cstdlib>
#include <functional>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace keyfolio::test {

struct ChildOutcome {
  bool exited = false;  // exited normally (not killed)
  int status = -1;      // exit status when exited
  std::string said;     // what the child wrote through `say`
};

// A child started by spawn_child(), collected by collect().
struct Child {
  pid_t pid = -1;
  int from_child = -1;
};

// Like run_in_child, without waiting: several children can run at once. Call
// it from a single-threaded process (forking while other threads run can
// leave locks held in the child).
inline Child spawn_child(const std::function<int(const std::function<void(const std::string&)>&)>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    ::close(fds[0]);
    const int out = fds[1];
    auto say = [out](const std::string& text) {
      std::size_t at = 0;
      while (at < text.size()) {
        const ssize_t n = ::write(out, text.data() + at, text.size() - at);
        if (n <= 0) break;
        at += static_cast<std::size_t>(n);
      }
    };
    int code = 99;
    try {
      code = body(say);
    } catch (...) {
      say("child threw");
    }
    ::_exit(code);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}

inline ChildOutcome collect(const Child& child) {
  ChildOutcome outcome;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(child.from_child, buffer, sizeof buffer);
    if (n <= 0) break;
    outcome.said.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(child.from_child);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  outcome.exited = WIFEXITED(status);
  outcome.status = outcome.exited ? WEXITSTATUS(status) : -1;
  return outcome;
}

// Runs `body(say)` in a child and waits for it. `say` writes text back to
// the parent; the child exits with body's return value.
inline ChildOutcome run_in_child(const std::function<int(const std::function<void(const std::string&)>&)>& body) {
  const Child child = spawn_child(body);
  if (child.pid < 0) return {};
  return collect(child);
}

// Drops root to the unprivileged `nobody` (65534) so that file permissions
// apply; does nothing for other users. Returns false when it could not.
inline bool drop_root() {
  if (::geteuid() != 0) return true;
  return ::setgid(65534) == 0 && ::setuid(65534) == 0;
}

}  // namespace keyfolio::test
