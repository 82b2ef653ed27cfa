// keyfolio/secret.hpp: SecretString, a string that keeps a secret.
//
// A SecretString holds an API secret, passphrase or private key in secure
// memory: a pooled arena (built on libsodium) whose pages are locked in RAM
// where the process's memory-lock limit allows, excluded from core dumps, and
// zeroed when a secret is released. It never converts to std::string on its
// own, and streams as "[redacted]", so that putting one in a log line, an
// exception message or a test assertion shows nothing. The value is read
// through one explicit call, `reveal()`.
//
// Thread safety: distinct SecretStrings can be used from any threads; the
// arena behind them is internally synchronized. One SecretString is a value
// like std::string: do not modify it while another thread reads it.
#pragma once

#include <keyfolio/export.hpp>

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string_view>

namespace keyfolio {

class KEYFOLIO_EXPORT SecretString {
 public:
  // What streaming a SecretString prints.
  static constexpr std::string_view redacted = "[redacted]";
  // Longest value a SecretString holds (16 MiB); longer input throws std::length_error.
  static constexpr std::size_t max_size = std::size_t{1} << 24;

  SecretString() noexcept = default;
  // Copies `value` into secure memory. The caller remains responsible for
  // wiping its own copy. Throws std::bad_alloc when secure memory cannot be
  // had and std::length_error beyond max_size.
  explicit SecretString(std::string_view value);

  SecretString(const SecretString& other);
  SecretString& operator=(const SecretString& other);
  // Moves leave the source empty.
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  // Zeroes the value and returns its memory to the arena.
  ~SecretString();

  // The secret itself. Valid until this SecretString is modified or destroyed.
  // Whatever the caller copies it into is no longer protected.
  std::string_view reveal() const noexcept { return {data_ != nullptr ? data_ : "", size_}; }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Zeroes and releases the value; afterwards empty().
  void clear() noexcept;

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Compares in time that depends only on the lengths, not on the contents.
KEYFOLIO_EXPORT bool operator==(const SecretString& a, const SecretString& b) noexcept;

// Prints "[redacted]", never the value.
KEYFOLIO_EXPORT std::ostream& operator<<(std::ostream& os, const SecretString& secret);

// A snapshot of the secure arena, for hosts that want to report whether
// secrets could be kept out of swap. Memory-lock limits are often small
// (RLIMIT_MEMLOCK defaults to 8 MiB on many systems): beyond the limit the
// arena still hands out memory, excluded from core dumps and zeroed on
// release, but unlocked; `fully_locked()` then turns false.
struct SecureMemoryStats {
  std::size_t reserved_bytes = 0;    // memory the arena holds for secrets
  std::size_t locked_bytes = 0;      // the part of it locked in RAM
  std::size_t in_use_bytes = 0;      // bytes of live secrets, rounded to their size class
  std::size_t live_secrets = 0;      // SecretStrings currently holding a value
  std::uint64_t lock_failures = 0;   // times locking a new region failed since start

  bool fully_locked() const noexcept { return locked_bytes == reserved_bytes; }
};

KEYFOLIO_EXPORT SecureMemoryStats secure_memory_stats();

}  // namespace keyfolio
