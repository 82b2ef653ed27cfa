// What parsing a body that holds secrets leaves behind in memory.
#include "wire/json_input.hpp"

#include "catch.hpp"

#include <boost/json.hpp>

#include <cstring>
#include <new>
#include <string>
#include <string_view>

namespace json = boost::json;
using keyfolio::detail::parse_json;

namespace {

// A secret with escapes, as a PEM key in JSON has them; what is searched for
// is its un-escaped middle, which only a parser's copy contains.
const std::string canary = "pem-canary-7Qx2-body-3f9e";
const std::string body = R"({"privateKey": "-----BEGIN KEY-----\n)" + canary + R"(\u0041\n-----END KEY-----\n"})";

bool holds_canary(const void* p, std::size_t n) {
  return std::string_view(static_cast<const char*>(p), n).find(canary) != std::string_view::npos;
}

// An upstream that looks at each block as it comes back, after the wiping
// resource has had its turn.
class Inspecting final : public json::memory_resource {
 public:
  std::size_t returned = 0;
  std::size_t returned_with_canary = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    return ::operator new(bytes, std::align_val_t(align));
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    ++returned;
    if (holds_canary(p, bytes)) ++returned_with_canary;
    ::operator delete(p, bytes, std::align_val_t(align));
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
};

// Searches the stack below the caller's frame, where a call just made from
// that frame had its frames.
[[gnu::noinline]] bool stack_below_holds_canary() {
  unsigned char area[64 * 1024];
  asm volatile("" : : "r"(area) : "memory");
  return holds_canary(area, sizeof area);
}

}  // namespace

TEST_CASE("a wiping resource zeroes every block of a parsed secret before releasing it") {
  Inspecting upstream;
  keyfolio::detail::WipingResource wiping(&upstream);
  {
    auto parsed = parse_json(body, "the body", {}, json::storage_ptr(&wiping));
    REQUIRE(parsed);
    const bool parsed_whole = parsed->at("privateKey").as_string().find(canary) != json::string::npos;
    CHECK(parsed_whole);
  }
  CHECK(upstream.returned > 0);
  CHECK(upstream.returned_with_canary == 0);
}

TEST_CASE("parsing a body wipes the stack buffer Boost.JSON un-escapes strings through") {
  {
    auto parsed = parse_json(body, "the body", {}, keyfolio::detail::wiping_storage());
    REQUIRE(parsed);
  }
  const bool left_on_stack = stack_below_holds_canary();
  CHECK_FALSE(left_on_stack);
}
