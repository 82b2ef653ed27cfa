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
  // Zeroes the whole slot and releases what allocate() returned. `size` is
  // the size asked for.
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

// Zeroes `size` bytes at `p` in a way the compiler cannot elide: for plaintext
// that had to pass through ordinary memory (a stack buffer, a parser's pages).
void secure_wipe(void* p, std::size_t size) noexcept;

// A writable buffer of secure memory for plaintext on its way into or out of
// encryption; zeroed and released on destruction.
class SecureBuffer {
 public:
  SecureBuffer() noexcept = default;
  explicit SecureBuffer(std::size_t size)
      : data_(size == 0 ? nullptr : SecureArena::instance().allocate(size)), size_(size), capacity_(size) {}
  SecureBuffer(SecureBuffer&& other) noexcept
      : data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
  }
  SecureBuffer& operator=(SecureBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = other.data_;
      size_ = other.size_;
      capacity_ = other.capacity_;
      other.data_ = nullptr;
      other.size_ = other.capacity_ = 0;
    }
    return *this;
  }
  ~SecureBuffer() { release(); }

  char* data() noexcept { return data_; }
  const char* data() const noexcept { return data_; }
  unsigned char* bytes() noexcept { return reinterpret_cast<unsigned char*>(data_); }
  std::size_t size() const noexcept { return size_; }
  // Shrinks the visible size (the memory stays until release).
  void shrink(std::size_t size) noexcept {
    if (size < size_) size_ = size;
  }
  std::string_view view() const noexcept { return {data_ != nullptr ? data_ : "", size_}; }

 private:
  void release() noexcept {
    if (data_ != nullptr) SecureArena::instance().deallocate(data_, capacity_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace keyfolio::detail
