// The pool behind SecretString: secure memory in chunks, carved into slots of
// a few size classes, so that 100,000 accounts cost a few hundred locked
// regions instead of 300,000 guarded allocations.
//
// Each chunk comes from sodium_malloc (guard pages on both sides, a canary,
// excluded from core dumps) and is then locked with sodium_mlock, whose result
// is recorded: when the memory-lock limit is reached, chunks stay unlocked and
// the stats say so. Slots are zeroed when released; a chunk whose slots are all
// free is returned to the system unless it is the last one of its class.
//
// Internally synchronized; never destroyed, so that secrets held by static
// objects can still be released at exit.
#pragma once

#include <keyfolio/secret.hpp>

#include <cstddef>

namespace keyfolio::detail {

class SecureArena {
 public:
  static SecureArena& instance();

  // At least `size` bytes of secure memory; throws std::bad_alloc.
  char* allocate(std::size_t size);
  // Zeroes and releases what allocate() returned. `size` is the size asked for.
  void deallocate(char* p, std::size_t size) noexcept;

  SecureMemoryStats stats() const noexcept;

  SecureArena(const SecureArena&) = delete;
  SecureArena& operator=(const SecureArena&) = delete;

 private:
  SecureArena();
  ~SecureArena() = default;
  struct State;
  State* state_;
};

}  // namespace keyfolio::detail
