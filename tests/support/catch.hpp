// The one place that knows which Catch2 is in use: Debian 12 ships Catch2 2
// (single header <catch2/catch.hpp>), newer systems Catch2 3 (split headers).
// Tests include this header and use only what both versions spell alike.
#pragma once

#if defined(KEYFOLIO_CATCH2_MAJOR) && KEYFOLIO_CATCH2_MAJOR >= 3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>
#include <string_view>

namespace keyfolio::test {

// What Catch2 prints for `value` in a failure message.
template <class T>
std::string printed(const T& value) {
  return Catch::Detail::stringify(value);
}

// Whether `secret` holds `expected`. Tests compare through this so that a
// failure prints "false" rather than either value.
template <class Secret>
bool reveals(const Secret& secret, std::string_view expected) {
  return secret.reveal() == expected;
}

// Whether `text` (a message, an output) contains `part`.
inline bool mentions(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

}  // namespace keyfolio::test

// Results print as their error (never a value: values may hold secrets), so
// that REQUIRE(result) works for any value type.
#include <boost/system/result.hpp>
#include <sstream>

namespace keyfolio {
class Error;
}

template <class T, class E>
struct Catch::StringMaker<boost::system::result<T, E>> {
  static std::string convert(const boost::system::result<T, E>& r) {
    if (r.has_value()) return "a value";
    std::ostringstream os;
    os << "error " << r.error();
    return os.str();
  }
};
