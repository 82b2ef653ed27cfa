// An open-addressing hash table of pointers, for an index whose values live
// elsewhere and stay where they are.
//
// Each slot is a 64-bit hash and a pointer (16 bytes), so a lookup reads
// one run of slots and then the value it wants, instead of walking chained
// nodes. A slot may carry an `Extra` beside the pointer: what a lookup needs
// of the value, kept where the lookup already is. Linear probing from a Fibonacci-hashed home slot, at most 80% full,
// and erasure by backward shift, so no tombstones pile up. The same hash may
// be filed more than once: callers tell values apart with a predicate.
//
// Does not own what it points to. Not synchronized.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace keyfolio::detail {

struct NoExtra {};

template <class T, class Extra = NoExtra>
class PointerTable {
 public:
  struct Slot {
    std::uint64_t hash = 0;
    T* value = nullptr;  // null: empty
    [[no_unique_address]] Extra extra{};
  };

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Room for `n` values without growing.
  void reserve(std::size_t n) {
    std::size_t capacity = slots_.empty() ? min_capacity : slots_.size();
    while (n * 5 > capacity * 4) capacity *= 2;
    if (capacity != slots_.size()) rehash(capacity);
  }

  // Files `value` under `hash`; `value` must not be null.
  void insert(std::uint64_t hash, T* value, Extra extra = {}) {
    reserve(size_ + 1);
    place(Slot{hash, value, std::move(extra)});
    ++size_;
  }

  // The slot of the first value filed under `hash` whose slot `match`
  // accepts; null when none. Valid until the next insert or erase.
  template <class Match>
  Slot* find_slot(std::uint64_t hash, Match&& match) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = home(hash);; i = next(i)) {
      const Slot& slot = slots_[i];
      if (slot.value == nullptr) return nullptr;
      if (slot.hash == hash && match(slot)) return const_cast<Slot*>(&slot);
    }
  }

  // The first value filed under `hash` that `match` accepts; null when none.
  template <class Match>
  T* find(std::uint64_t hash, Match&& match) const {
    const Slot* slot = find_slot(hash, [&](const Slot& s) { return match(*s.value); });
    return slot != nullptr ? slot->value : nullptr;
  }

  // The slot holding `value`, filed under `hash`; null when none.
  Slot* slot_of(std::uint64_t hash, const T* value) const {
    return find_slot(hash, [&](const Slot& s) { return s.value == value; });
  }

  // Calls `visit` with every value filed under `hash`.
  template <class Visit>
  void for_each(std::uint64_t hash, Visit&& visit) const {
    if (slots_.empty()) return;
    for (std::size_t i = home(hash); slots_[i].value != nullptr; i = next(i)) {
      if (slots_[i].hash == hash) visit(*slots_[i].value);
    }
  }

  // Calls `visit` with every value, in no particular order. `visit` must
  // not insert or erase.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const Slot& slot : slots_) {
      if (slot.value != nullptr) visit(*slot.value);
    }
  }

  // Removes `value`, filed under `hash`; false when it is not there.
  bool erase(std::uint64_t hash, const T* value) noexcept {
    if (slots_.empty()) return false;
    std::size_t hole = home(hash);
    for (;; hole = next(hole)) {
      if (slots_[hole].value == nullptr) return false;
      if (slots_[hole].value == value) break;
    }
    // Pull back each later slot of the run whose home is not between the
    // hole and itself, so that every value stays reachable from its home.
    for (std::size_t i = next(hole); slots_[i].value != nullptr; i = next(i)) {
      const std::size_t from_home = (i - home(slots_[i].hash)) & mask();
      if (from_home >= ((i - hole) & mask())) {
        slots_[hole] = std::move(slots_[i]);
        hole = i;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    return true;
  }

  void clear() noexcept {
    slots_.clear();
    slots_.shrink_to_fit();
    size_ = 0;
    shift_ = 64;
  }

 private:
  static constexpr std::size_t min_capacity = 16;

  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t next(std::size_t i) const noexcept { return (i + 1) & mask(); }
  // Fibonacci hashing: the high bits of the product, which depend on every
  // bit of the hash.
  std::size_t home(std::uint64_t hash) const noexcept {
    return static_cast<std::size_t>((hash * 0x9e3779b97f4a7c15ULL) >> shift_);
  }

  void place(Slot slot) noexcept {
    std::size_t i = home(slot.hash);
    while (slots_[i].value != nullptr) i = next(i);
    slots_[i] = std::move(slot);
  }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(capacity));
    for (Slot& slot : old) {
      if (slot.value != nullptr) place(std::move(slot));
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace keyfolio::detail
