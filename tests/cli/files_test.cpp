// The keyfolio tool's input files: read_input hands over what it read and
// leaves no other copy of it in ordinary memory, on its stack or in memory it
// frees, however the read ends.
#include "catch.hpp"
#include "temp_dir.hpp"

#include "files.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <malloc.h>
#include <new>
#include <optional>
#include <pthread.h>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <unistd.h>

namespace {

constexpr std::string_view canary = "CANARY-input-buffer-7e1d;";
constexpr std::size_t chunk = 65536;  // what read_input reads at a time

// While a read is watched: the `fail_at`-th allocation of at least one chunk
// (counting from 1; 0 for none) throws bad_alloc, and every block freed is
// searched for the canary.
struct Watch {
  bool on = false;
  std::size_t fail_at = 0;
  std::size_t large = 0;
  std::size_t freed_with_canary = 0;
};
Watch watch;

bool holds_canary(const void* p, std::size_t n) {
  return ::memmem(p, n, canary.data(), canary.size()) != nullptr;
}

}  // namespace

void* operator new(std::size_t size) {
  if (watch.on && size >= chunk && ++watch.large == watch.fail_at) throw std::bad_alloc();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void operator delete(void* p) noexcept {
  if (p != nullptr && watch.on && holds_canary(p, ::malloc_usable_size(p))) ++watch.freed_with_canary;
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept { ::operator delete(p); }

namespace {

// What one read_input call gave.
struct Reading {
  std::string path;
  std::string expected;  // the input
  std::optional<bool> read_whole;  // whether the text read is the input
  std::optional<keyfolio::errc> error;
  bool out_of_memory = false;
};

void* read_and_wipe(void* arg) {
  auto& r = *static_cast<Reading*>(arg);
  try {
    auto text = keyfolio::cli::read_input(r.path);
    if (text) {
      keyfolio::cli::Wiped wipe{*text};
      r.read_whole = *text == r.expected;
    } else {
      r.error = text.error().code();
    }
  } catch (const std::bad_alloc&) {
    r.out_of_memory = true;
  }
  return nullptr;
}

// `size` bytes of canaries.
std::string canaries(std::size_t size) {
  std::string text;
  while (text.size() < size) text += canary;
  text.resize(size);
  return text;
}

// What watched_read saw.
struct Watched {
  Reading reading;
  bool stack_holds_input = false;
  std::size_t freed_with_canary = 0;
};

// Runs read_input(path) on a thread of its own, on a stack this test owns so
// that it can search what read_input left there once the thread is gone.
// The stack is searched for a piece of the input longer than all of the
// vector registers: memcpy leaves slices of the input in them, and the
// dynamic linker saves them on the stack when it binds a symbol on first
// call, which no code of the tool can wipe; a read buffer left as it was
// holds a far longer piece.
Watched watched_read(const std::string& path, const std::string& input, std::size_t fail_at = 0) {
  constexpr std::size_t stack_size = std::size_t{1} << 20;
  void* stack = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(stack != MAP_FAILED);
  pthread_attr_t attr;
  REQUIRE(::pthread_attr_init(&attr) == 0);
  REQUIRE(::pthread_attr_setstack(&attr, stack, stack_size) == 0);
  Watched w;
  w.reading.path = path;
  w.reading.expected = input;
  watch = Watch{true, fail_at, 0, 0};
  pthread_t thread;
  const int started = ::pthread_create(&thread, &attr, read_and_wipe, &w.reading);
  if (started == 0) ::pthread_join(thread, nullptr);
  watch.on = false;
  ::pthread_attr_destroy(&attr);
  REQUIRE(started == 0);
  const std::string piece = canaries(4096);
  w.stack_holds_input = ::memmem(stack, stack_size, piece.data(), piece.size()) != nullptr;
  w.freed_with_canary = watch.freed_with_canary;
  ::munmap(stack, stack_size);
  return w;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// Standard input replaced by the read end of a non-blocking pipe holding
// `text`: once it is read, the next read fails (EAGAIN) as a read error.
class FailingStdin {
 public:
  explicit FailingStdin(const std::string& text) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    write_end_ = fds[1];
    REQUIRE(::write(write_end_, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    REQUIRE(::fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
    saved_ = ::dup(STDIN_FILENO);
    REQUIRE(saved_ >= 0);
    REQUIRE(::dup2(fds[0], STDIN_FILENO) == STDIN_FILENO);
    ::close(fds[0]);
  }
  ~FailingStdin() {
    ::dup2(saved_, STDIN_FILENO);
    ::close(saved_);
    ::close(write_end_);
  }
  FailingStdin(const FailingStdin&) = delete;
  FailingStdin& operator=(const FailingStdin&) = delete;

 private:
  int write_end_ = -1;
  int saved_ = -1;
};

}  // namespace

TEST_CASE("read_input returns the whole input and leaves no other copy of it on its stack or in freed memory") {
  keyfolio::test::TempDir dir;
  const std::string path = (dir / "accounts.json").string();
  const std::string input = canaries(5 * chunk / 2);
  write_text(path, input);
  const auto w = watched_read(path, input);
  REQUIRE(w.reading.read_whole);
  CHECK(*w.reading.read_whole);
  CHECK_FALSE(w.stack_holds_input);
  CHECK(w.freed_with_canary == 0);
}

TEST_CASE("read_input wipes its read buffer when a read fails midway") {
  const std::string input = canaries(chunk / 2);
  const FailingStdin failing(input);
  const auto w = watched_read("-", input);
  REQUIRE(w.reading.error);
  CHECK(*w.reading.error == keyfolio::errc::storage_error);
  CHECK_FALSE(w.stack_holds_input);
  CHECK(w.freed_with_canary == 0);
}

TEST_CASE("read_input wipes its read buffer when memory runs out for the text") {
  keyfolio::test::TempDir dir;
  const std::string path = (dir / "accounts.json").string();
  const std::string input = canaries(3 * chunk);
  write_text(path, input);
  const auto w = watched_read(path, input, 1);  // the text's first allocation, for the first chunk
  CHECK(w.reading.out_of_memory);
  CHECK_FALSE(w.stack_holds_input);
  CHECK(w.freed_with_canary == 0);
}

TEST_CASE("read_input wipes the text read so far when memory runs out for more of it") {
  keyfolio::test::TempDir dir;
  const std::string path = (dir / "accounts.json").string();
  const std::string input = canaries(3 * chunk);
  write_text(path, input);
  const auto w = watched_read(path, input, 2);  // growing the text for the second chunk
  CHECK(w.reading.out_of_memory);
  CHECK_FALSE(w.stack_holds_input);
  CHECK(w.freed_with_canary == 0);
}
