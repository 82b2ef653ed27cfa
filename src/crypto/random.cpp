#include "crypto/random.hpp"

#include "crypto/encoding.hpp"

#include <sodium.h>

#include <stdexcept>

namespace keyfolio::detail::crypto {

void initialize() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialize");
}

void fill_random(void* out, std::size_t size) noexcept { randombytes_buf(out, size); }

std::string random_bytes(std::size_t size) {
  std::string out(size, '\0');
  fill_random(out.data(), size);
  return out;
}

std::string random_hex(std::size_t size) { return to_hex(random_bytes(size)); }

}  // namespace keyfolio::detail::crypto
