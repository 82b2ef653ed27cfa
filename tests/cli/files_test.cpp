// The keyfolio tool's input and output files: read_input hands over what it
// read and leaves no other copy of it in ordinary memory, on its stack or in
// memory it frees, however the read ends; write_file leaves nothing of what it
// was writing behind when it is killed midway.
#include "catch.hpp"
#include "child_process.hpp"
#include "temp_dir.hpp"

#include "files.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <malloc.h>
#include <new>
#include <optional>
#include <pthread.h>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

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

// The other forms, so that every allocation and release passes the same pair
// (a sanitizer checks that what one form allocates, the matching one frees).
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return ::operator new(size, tag); }
void operator delete[](void* p) noexcept { ::operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { ::operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { ::operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { ::operator delete(p); }

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

namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file in `dir` (hidden ones too), each marked when it holds the
// canary.
std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const bool holds = read_text(entry.path()).find(canary) != std::string::npos;
    out.push_back(entry.path().filename().string() + (holds ? " (holding the canary)" : ""));
  }
  return out;
}

// Runs write_file(path, {canaries, "...rest"}, replace) in a child, kills it
// (SIGKILL) once the first piece is written, and says whether it got there.
bool killed_while_writing(const std::string& path, bool replace) {
  const std::string secret = canaries(chunk);
  const keyfolio::test::Child child = keyfolio::test::spawn_child([&](const auto& say) {
    keyfolio::cli::write_file_seams().after_piece = [&](std::size_t written) {
      if (written != 1) return;
      say("paused");
      for (;;) ::pause();
    };
    return keyfolio::cli::write_file(path, {secret, "and the rest\n"}, replace) ? 0 : 1;
  });
  if (child.pid < 0) return false;
  std::string said;
  char buffer[16];
  while (said != "paused") {
    const ssize_t n = ::read(child.from_child, buffer, sizeof buffer);
    if (n <= 0) break;
    said.append(buffer, static_cast<std::size_t>(n));
  }
  ::kill(child.pid, SIGKILL);
  const auto outcome = keyfolio::test::collect(child);
  return said == "paused" && !outcome.exited;
}

}  // namespace

TEST_CASE("write_file killed midway leaves no file with what it was writing") {
  keyfolio::test::TempDir dir;
  const std::string path = (dir / "accounts.json").string();
  SECTION("a new file") {
    REQUIRE(killed_while_writing(path, false));
    CHECK(files_in(dir.path()).empty());
  }
  SECTION("replacing a file (--force): the old one stays as it was") {
    write_text(path, "the old export\n");
    REQUIRE(killed_while_writing(path, true));
    CHECK(files_in(dir.path()) == std::vector<std::string>{"accounts.json"});
    CHECK(read_text(path) == "the old export\n");
  }
}

TEST_CASE("write_file writes a private file whole, and replaces one only when asked") {
  // Through an unnamed file, and through a named temporary one as where the
  // file system has no unnamed files.
  const bool named = GENERATE(false, true);
  INFO((named ? "named temporary file" : "unnamed file"));
  keyfolio::cli::write_file_seams().named_temporary_only = named;
  struct Reset {
    ~Reset() { keyfolio::cli::write_file_seams().named_temporary_only = false; }
  } reset;
  keyfolio::test::TempDir dir;
  const std::string path = (dir / "accounts.json").string();
  const std::string secret = canaries(chunk + 7);
  REQUIRE(keyfolio::cli::write_file(path, {secret, "\n"}, false));
  CHECK(read_text(path) == secret + "\n");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(files_in(dir.path()).size() == 1);

  auto again = keyfolio::cli::write_file(path, {"other"}, false);
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == keyfolio::errc::conflict);
  CHECK(read_text(path) == secret + "\n");

  REQUIRE(keyfolio::cli::write_file(path, {"replaced", "\n"}, true));
  CHECK(read_text(path) == "replaced\n");
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(files_in(dir.path()).size() == 1);

  // A new file with replace allowed, and one in a directory that is not there.
  REQUIRE(keyfolio::cli::write_file((dir / "new.json").string(), {"new"}, true));
  CHECK(read_text(dir / "new.json") == "new");
  auto nowhere = keyfolio::cli::write_file((dir / "missing" / "x.json").string(), {"x"}, false);
  REQUIRE_FALSE(nowhere);
  CHECK(nowhere.error().code() == keyfolio::errc::storage_error);
  CHECK(files_in(dir.path()).size() == 2);
}

TEST_CASE("write_file names its file without privileges, and still leaves nothing when killed midway") {
  // Run as root, the test runs this part as `nobody`, without root's
  // capabilities (CAP_DAC_READ_SEARCH among them).
  keyfolio::test::TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0777) == 0);
  const std::string path = (dir / "accounts.json").string();
  const auto outcome = keyfolio::test::run_in_child([&](const auto& say) {
    if (!keyfolio::test::drop_root()) return 2;
    if (!keyfolio::cli::write_file(path, {"written as ", ::geteuid() == 0 ? "root" : "a user"}, false)) return 3;
    if (!killed_while_writing((dir / "killed.json").string(), false)) return 4;
    say(read_text(path));
    return 0;
  });
  REQUIRE(outcome.exited);
  CHECK(outcome.status == 0);
  CHECK(outcome.said.starts_with("written as "));
  CHECK(files_in(dir.path()) == std::vector<std::string>{"accounts.json"});
}
