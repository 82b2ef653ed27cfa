#include "detail/text.hpp"

#include <algorithm>
#include <vector>

namespace keyfolio::detail {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::optional<char32_t> decode_utf8(std::string_view s, std::size_t& pos) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(pos);
  std::size_t length;
  char32_t cp;
  char32_t min;
  if (lead < 0x80) {
    ++pos;
    return lead;
  } else if ((lead & 0xe0) == 0xc0) {
    length = 2, cp = lead & 0x1f, min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, cp = lead & 0x0f, min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (pos + length > s.size()) return std::nullopt;
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char b = byte(pos + i);
    if ((b & 0xc0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
  pos += length;
  return cp;
}

bool is_unicode_space_or_invisible(char32_t cp) noexcept {
  if (cp >= 0x80 && cp <= 0xa0) return true;             // C1 controls, no-break space
  if (cp >= 0x2000 && cp <= 0x200f) return true;         // spaces, zero-width, LRM/RLM
  if (cp >= 0x2028 && cp <= 0x202f) return true;         // separators, bidi embeddings
  if (cp >= 0x2060 && cp <= 0x206f) return true;         // word joiner, invisible operators
  if (cp >= 0xfff0 && cp <= 0xfffb) return true;         // specials, interlinear annotation
  if (cp >= 0xfe00 && cp <= 0xfe0f) return true;         // variation selectors
  if (cp >= 0x180b && cp <= 0x180f) return true;         // Mongolian selectors and separator
  if (cp >= 0x1d173 && cp <= 0x1d17a) return true;       // musical formatting controls
  if (cp >= 0xe0000 && cp <= 0xe0fff) return true;       // tag characters, variation selectors
  if (cp == 0x115f || cp == 0x1160 || cp == 0x3164 || cp == 0xffa0) return true;  // Hangul fillers
  if (cp == 0x17b4 || cp == 0x17b5) return true;         // Khmer inherent vowels
  switch (cp) {
    case 0x00ad:  // soft hyphen
    case 0x034f:  // combining grapheme joiner
    case 0x061c:  // Arabic letter mark
    case 0x1680:  // Ogham space mark
    case 0x180e:  // Mongolian vowel separator
    case 0x205f:  // medium mathematical space
    case 0x3000:  // ideographic space
    case 0xfeff:  // byte order mark
      return true;
    default:
      return false;
  }
}

std::string quote(std::string_view text, std::size_t max_bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  const bool cut = text.size() > max_bytes;
  if (cut) text = text.substr(0, max_bytes);
  std::string out;
  out.reserve(text.size() + 8);
  out += '"';
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  if (cut) out += "...";
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t cap) {
  const std::size_t gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (gap > cap) return cap + 1;
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    std::size_t best = row[0];
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitute = diagonal + (ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]) ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
      best = std::min(best, row[j]);
    }
    if (best > cap) return cap + 1;
  }
  return std::min(row[b.size()], cap + 1);
}

std::string quote_abbreviated(std::string_view text, std::size_t whole) {
  if (text.size() <= whole) return quote(text);
  return quote(text.substr(0, 3)) + "... (" + std::to_string(text.size()) + " bytes)";
}

namespace {

// Looks like an identifier: 1 to 24 bytes; an ASCII letter first; then ASCII
// letters, '_', '-' and '.'; digits only as a run of at most two at the very
// end ("apikey2", "key_v10"); and either no lower-case letter at all
// ("API_KEY") or at most four upper-case ones ("PublicApiKey"). Real field
// names (apiKey, secret, password, uid, privateKey, walletAddress, api_key,
// PassPhrase) pass. Typical secrets do not: random mixed-case alphanumerics
// have digits inside or many upper-case letters, base64 has '+', '/' or '=',
// hex has digits throughout, and a passphrase usually has a digit or a
// symbol. A short lower-case word cannot be told from a name and is quoted.
bool looks_like_identifier(std::string_view name) noexcept {
  if (name.empty() || name.size() > 24) return false;
  auto is_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!is_letter(name.front())) return false;
  std::size_t end = name.size();
  while (end > 0 && is_digit(name[end - 1])) --end;
  if (name.size() - end > 2) return false;
  std::size_t upper = 0;
  std::size_t lower = 0;
  for (std::size_t i = 0; i < end; ++i) {
    const char c = name[i];
    if (c >= 'A' && c <= 'Z') {
      ++upper;
    } else if (c >= 'a' && c <= 'z') {
      ++lower;
    } else if (c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return lower == 0 || upper <= 4;
}

}  // namespace

std::string shown_field_name(std::string_view name) {
  if (looks_like_identifier(name)) return quote(name);
  return "a field name of " + std::to_string(name.size()) + " bytes";
}

std::string place_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const auto before = text.substr(0, offset);
  const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const auto line_start = before.rfind('\n');
  const std::size_t column = offset - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

}  // namespace keyfolio::detail
