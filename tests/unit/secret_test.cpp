#include <keyfolio/secret.hpp>

#include "catch.hpp"

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using keyfolio::SecretString;

static_assert(!std::is_convertible_v<SecretString, std::string>, "no implicit conversion to std::string");
static_assert(!std::is_convertible_v<SecretString, std::string_view>, "no implicit conversion to string_view");
static_assert(!std::is_convertible_v<std::string, SecretString>, "construction from text is explicit");
static_assert(!std::is_convertible_v<const char*, SecretString>, "construction from text is explicit");
static_assert(std::is_nothrow_move_constructible_v<SecretString>);

TEST_CASE("a secret is read back only through reveal()") {
  const SecretString secret("s3cr3t-value");
  CHECK(keyfolio::test::reveals(secret, "s3cr3t-value"));
  CHECK(secret.size() == 12);
  CHECK_FALSE(secret.empty());
  // Terminated for C APIs that need it.
  CHECK(secret.reveal().data()[secret.size()] == '\0');
}

TEST_CASE("a secret streams as [redacted]") {
  const SecretString secret("s3cr3t-value");
  std::ostringstream out;
  out << secret;
  CHECK(out.str() == "[redacted]");
  CHECK(keyfolio::test::printed(secret) == "[redacted]");
}

TEST_CASE("an empty secret holds no memory") {
  const auto before = keyfolio::secure_memory_stats().live_secrets;
  const SecretString empty;
  const SecretString also_empty{std::string_view{}};
  CHECK(empty.empty());
  CHECK(empty.reveal().empty());
  CHECK(also_empty.empty());
  CHECK(keyfolio::secure_memory_stats().live_secrets == before);
}

TEST_CASE("copies are independent and moves leave the source empty") {
  SecretString a("alpha");
  SecretString b = a;
  CHECK(keyfolio::test::reveals(b, "alpha"));
  CHECK(b.reveal().data() != a.reveal().data());
  SecretString c = std::move(a);
  CHECK(keyfolio::test::reveals(c, "alpha"));
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  b = SecretString("beta");
  CHECK(keyfolio::test::reveals(b, "beta"));
  const SecretString& same = c;
  c = same;
  CHECK(keyfolio::test::reveals(c, "alpha"));
  c.clear();
  CHECK(c.empty());
}

TEST_CASE("secrets compare by value") {
  CHECK(SecretString("abc") == SecretString("abc"));
  CHECK_FALSE(SecretString("abc") == SecretString("abd"));
  CHECK_FALSE(SecretString("abc") == SecretString("abcd"));
  CHECK(SecretString() == SecretString());
}

TEST_CASE("secrets of any size and content round-trip") {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  for (const std::size_t size : {1u, 31u, 32u, 33u, 4095u, 4096u, 4097u, 100000u}) {
    std::string value;
    while (value.size() < size) value += binary;
    value.resize(size);
    INFO("size " << size);
    const SecretString secret(value);
    CHECK(keyfolio::test::reveals(secret, value));
  }
}

TEST_CASE("a secret beyond max_size is refused") {
  const std::string too_long(SecretString::max_size + 1, 'x');
  CHECK_THROWS_AS(SecretString(too_long), std::length_error);
}

TEST_CASE("the arena pools secrets and gives memory back when they are released") {
  const auto before = keyfolio::secure_memory_stats();
  {
    std::vector<SecretString> many;
    for (int i = 0; i < 10000; ++i) many.emplace_back("secret-number-" + std::to_string(i));
    const auto during = keyfolio::secure_memory_stats();
    CHECK(during.live_secrets == before.live_secrets + 10000);
    // Pooled: 10,000 small secrets fit in a handful of 64 KiB regions.
    CHECK(during.reserved_bytes - before.reserved_bytes <= 8 * 64 * 1024);
    for (int i = 0; i < 10000; i += 997) CHECK(keyfolio::test::reveals(many[i], "secret-number-" + std::to_string(i)));
  }
  const auto after = keyfolio::secure_memory_stats();
  CHECK(after.live_secrets == before.live_secrets);
  CHECK(after.in_use_bytes == before.in_use_bytes);
  CHECK(after.reserved_bytes <= before.reserved_bytes + 64 * 1024);
}

TEST_CASE("the arena reports how much of it is locked in RAM") {
  const SecretString held("x");
  const auto stats = keyfolio::secure_memory_stats();
  CHECK(stats.reserved_bytes > 0);
  CHECK(stats.locked_bytes <= stats.reserved_bytes);
  CHECK(stats.in_use_bytes <= stats.reserved_bytes);
  CHECK(stats.live_secrets >= 1);
}

TEST_CASE("the arena says so when the memory-lock limit stops it from locking") {
  // In a child process: no memory may be locked (a zero RLIMIT_MEMLOCK, and
  // without CAP_IPC_LOCK, which would let root ignore the limit). A secret
  // that needs a new region must still work, and the stats must show it
  // unlocked. Exit codes say which expectation failed.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  WARN("skipped: the sanitizers turn mlock into a no-op that always succeeds");
  return;
#endif
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const rlimit none{0, 0};
    if (setrlimit(RLIMIT_MEMLOCK, &none) != 0) _exit(10);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[2]{};
    if (syscall(SYS_capget, &header, caps) != 0) _exit(11);
    caps[0].effective &= ~(1u << CAP_IPC_LOCK);
    if (syscall(SYS_capset, &header, caps) != 0) _exit(12);
    const auto before = keyfolio::secure_memory_stats();
    const SecretString big(std::string(10000, 'b'));  // larger than any pooled slot: a region of its own
    const auto after = keyfolio::secure_memory_stats();
    if (big.reveal() != std::string(10000, 'b')) _exit(13);
    if (after.lock_failures != before.lock_failures + 1) _exit(14);
    if (after.fully_locked()) _exit(15);
    if (after.reserved_bytes - after.locked_bytes < 10000) _exit(16);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("secrets are safe to create and release from many threads") {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      const auto value = [t](int i) {
        return "t" + std::to_string(t) + "-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 300), 'p');
      };
      std::vector<std::pair<int, SecretString>> mine;
      for (int i = 0; i < 2000; ++i) {
        mine.emplace_back(i, SecretString(value(i)));
        if (i % 3 == 0) mine.erase(mine.begin() + (i % static_cast<int>(mine.size())));
      }
      for (const auto& [i, s] : mine) {
        if (s.reveal() != value(i)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
}
