#include "memory/secure_arena.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace keyfolio::detail {
namespace {

// Slot sizes. API keys and secrets are 32..128 bytes (36, 44, 64 and 88 are
// common, hence the steps of 16 and 32 there), passphrases shorter, PEM keys
// a few hundred to a few thousand; larger values get a chunk each.
constexpr std::array<std::size_t, 11> slot_sizes = {32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096};

// sodium_malloc places the region so that it ends at a page boundary followed
// by a guard page, with a 16-byte canary before that; asking for a whole
// number of pages less the canary keeps the region page-sized.
constexpr std::size_t canary_bytes = 16;
constexpr std::size_t chunk_request = 64 * 1024 - canary_bytes;

struct Chunk {
  char* base = nullptr;
  std::size_t bytes = 0;
  std::size_t slot_size = 0;
  std::size_t capacity = 0;  // slots
  std::size_t used = 0;
  std::size_t bumped = 0;    // slots handed out at least once
  char* free_list = nullptr; // released slots, linked through their first bytes
  std::size_t size_class = 0;
  bool locked = false;
};

std::size_t class_of(std::size_t size) noexcept {
  for (std::size_t i = 0; i < slot_sizes.size(); ++i) {
    if (size <= slot_sizes[i]) return i;
  }
  return slot_sizes.size();  // large: a chunk of its own
}

}  // namespace

struct SecureArena::State {
  mutable std::mutex mutex;
  std::map<std::uintptr_t, Chunk> chunks;                    // by base address
  // Chunks with free slots. Each vector's capacity covers every chunk of its
  // class, so that deallocate() can add to it without allocating.
  std::array<std::vector<Chunk*>, slot_sizes.size()> partial;
  std::array<std::size_t, slot_sizes.size()> chunk_count{};
  SecureMemoryStats stats;

  Chunk& new_chunk(std::size_t bytes, std::size_t size_class, std::size_t slot_size) {
    auto* base = static_cast<char*>(sodium_malloc(bytes));
    if (base == nullptr) throw std::bad_alloc();
    Chunk chunk;
    chunk.base = base;
    chunk.bytes = bytes;
    chunk.size_class = size_class;
    chunk.slot_size = slot_size;
    chunk.capacity = bytes / slot_size;
    // sodium_malloc tries to lock too but does not say whether it could.
    chunk.locked = sodium_mlock(base, bytes) == 0;
    stats.reserved_bytes += bytes;
    if (chunk.locked) {
      stats.locked_bytes += bytes;
    } else {
      ++stats.lock_failures;
    }
    try {
      auto it = chunks.emplace(reinterpret_cast<std::uintptr_t>(base), chunk).first;
      if (size_class < slot_sizes.size()) {
        try {
          partial[size_class].reserve(chunk_count[size_class] + 1);
        } catch (...) {
          chunks.erase(it);
          throw;
        }
        ++chunk_count[size_class];
      }
      return it->second;
    } catch (...) {
      stats.reserved_bytes -= bytes;
      if (chunk.locked) stats.locked_bytes -= bytes;
      sodium_free(base);
      throw;
    }
  }

  void release_chunk(Chunk& chunk) noexcept {
    if (chunk.size_class < slot_sizes.size()) --chunk_count[chunk.size_class];
    stats.reserved_bytes -= chunk.bytes;
    if (chunk.locked) stats.locked_bytes -= chunk.bytes;
    char* base = chunk.base;
    chunks.erase(reinterpret_cast<std::uintptr_t>(base));
    sodium_free(base);  // zeroes, unlocks and unmaps
  }

  Chunk* owner(const char* p) noexcept {
    auto it = chunks.upper_bound(reinterpret_cast<std::uintptr_t>(p));
    if (it == chunks.begin()) return nullptr;
    --it;
    Chunk& chunk = it->second;
    return p < chunk.base + chunk.bytes ? &chunk : nullptr;
  }
};

SecureArena& SecureArena::instance() {
  static SecureArena* arena = new SecureArena();
  return *arena;
}

SecureArena::SecureArena() : state_(new State()) {
  if (sodium_init() < 0) throw std::bad_alloc();
}

char* SecureArena::allocate(std::size_t size) {
  const std::size_t size_class = class_of(size);
  std::lock_guard lock(state_->mutex);
  if (size_class == slot_sizes.size()) {
    Chunk& chunk = state_->new_chunk(size, size_class, size);
    chunk.used = chunk.bumped = 1;
    ++state_->stats.live_secrets;
    state_->stats.in_use_bytes += size;
    return chunk.base;
  }
  auto& partial = state_->partial[size_class];
  if (partial.empty()) {
    partial.push_back(&state_->new_chunk(chunk_request, size_class, slot_sizes[size_class]));
  }
  Chunk& chunk = *partial.back();
  char* slot;
  if (chunk.free_list != nullptr) {
    slot = chunk.free_list;
    std::memcpy(&chunk.free_list, slot, sizeof(char*));
    sodium_memzero(slot, sizeof(char*));
  } else {
    slot = chunk.base + chunk.bumped * chunk.slot_size;
    ++chunk.bumped;
  }
  if (++chunk.used == chunk.capacity) partial.pop_back();
  ++state_->stats.live_secrets;
  state_->stats.in_use_bytes += chunk.slot_size;
  return slot;
}

void SecureArena::deallocate(char* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  std::lock_guard lock(state_->mutex);
  Chunk* chunk = state_->owner(p);
  if (chunk == nullptr) return;  // not ours; cannot happen through SecretString
  --state_->stats.live_secrets;
  state_->stats.in_use_bytes -= chunk->slot_size;
  if (chunk->size_class == slot_sizes.size()) {
    state_->release_chunk(*chunk);
    return;
  }
  (void)size;
  sodium_memzero(p, chunk->slot_size);
  auto& partial = state_->partial[chunk->size_class];
  const bool was_full = chunk->used == chunk->capacity;
  --chunk->used;
  if (chunk->used == 0 && partial.size() > 1 && !was_full) {
    partial.erase(std::find(partial.begin(), partial.end(), chunk));
    state_->release_chunk(*chunk);
    return;
  }
  std::memcpy(p, &chunk->free_list, sizeof(char*));
  chunk->free_list = p;
  if (was_full) partial.push_back(chunk);
}

void secure_wipe(void* p, std::size_t size) noexcept { sodium_memzero(p, size); }

SecureMemoryStats SecureArena::stats() const noexcept {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

}  // namespace keyfolio::detail
