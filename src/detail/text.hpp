// Text helpers shared by the parsers: ASCII case folding, character classes,
// UTF-8 checks and quoting of user input for error messages.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace keyfolio::detail {

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string ascii_lower(std::string_view s);

bool iequals(std::string_view a, std::string_view b) noexcept;

// Printable ASCII other than space: '!' .. '~'.
constexpr bool is_visible_ascii(char c) noexcept { return c > ' ' && c < 0x7f; }

// ASCII control characters, space and DEL.
constexpr bool is_ascii_space_or_control(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

// Decodes the UTF-8 sequence starting at s[pos]; returns the code point and
// advances pos, or nullopt (pos unchanged) for an invalid, overlong,
// surrogate or truncated sequence.
std::optional<char32_t> decode_utf8(std::string_view s, std::size_t& pos) noexcept;

// Unicode whitespace, C1 controls and invisible formatting characters
// (zero-width spaces and joiners, directional marks and overrides, BOM) that
// make two ids look alike while differing.
bool is_unicode_space_or_invisible(char32_t cp) noexcept;

// `text` in double quotes, fit for an error message: control and non-ASCII
// bytes escaped as \xNN, quotes and backslashes escaped, and cut to
// `max_bytes` input bytes with "..." appended. Only for non-secret text.
std::string quote(std::string_view text, std::size_t max_bytes = 80);

// `text` quoted whole when it is at most `whole` bytes, else its first three
// bytes and its length: for input that may be a secret pasted into the wrong
// place.
std::string quote_abbreviated(std::string_view text, std::size_t whole);

// A name from input (a JSON member name, a credential field name) as
// messages show it: quoted when it looks like an identifier, else "a field
// name of N bytes", because a name that does not may be a secret pasted into
// the wrong place. See the .cpp for the rule.
std::string shown_field_name(std::string_view name);

// "line L, column C" of byte `offset` in `text`.
std::string place_of(std::string_view text, std::size_t offset);

// Levenshtein distance, case-insensitive, capped at `cap` + 1.
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t cap);

}  // namespace keyfolio::detail
