// Fixed-size bytes kept inline in a larger object (no allocation of their
// own), or none: a record's nonce tag, an account's fingerprint.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <string_view>

namespace keyfolio::detail {

template <std::size_t N>
class InlineBytes {
 public:
  static constexpr std::size_t size = N;

  InlineBytes() = default;
  // Empty unless `s` is exactly N bytes.
  explicit InlineBytes(std::string_view s) {
    if (s.size() != N) return;
    std::memcpy(bytes_.data(), s.data(), N);
    set_ = true;
  }
  std::string_view view() const noexcept { return set_ ? std::string_view(bytes_.data(), N) : std::string_view(); }
  bool empty() const noexcept { return !set_; }
  friend bool operator==(const InlineBytes& a, const InlineBytes& b) noexcept { return a.view() == b.view(); }

 private:
  std::array<char, N> bytes_{};
  bool set_ = false;
};

}  // namespace keyfolio::detail
