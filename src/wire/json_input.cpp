#include "wire/json_input.hpp"

#include "memory/secure_arena.hpp"

#include "detail/text.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parser.hpp>

#include <algorithm>
#include <new>
#include <set>
#include <vector>

namespace keyfolio::detail {
namespace {

// Plain heap blocks, the default under WipingResource.
class HeapResource final : public boost::json::memory_resource {
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    return ::operator new(bytes, std::align_val_t(align));
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    ::operator delete(p, bytes, std::align_val_t(align));
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
};

HeapResource heap_resource;

// A first pass over the document that only checks structure: syntax, depth
// and duplicate member names, which Boost.JSON's value parser would silently
// collapse to the last one.
struct StructureCheck {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::size_t max_depth = 16;
  std::vector<std::set<std::string>> objects;  // member names seen, per open object
  std::size_t depth = 0;
  std::string key;
  std::string problem;

  bool fail(boost::system::error_code& ec, std::string message) {
    problem = std::move(message);
    ec = make_error_code(errc::invalid_argument);
    return false;
  }
  bool open(boost::system::error_code& ec) {
    if (++depth > max_depth) return fail(ec, "nested deeper than " + std::to_string(max_depth) + " levels");
    return true;
  }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code& ec) {
    objects.emplace_back();
    return open(ec);
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    objects.pop_back();
    --depth;
    return true;
  }
  bool on_array_begin(boost::system::error_code& ec) { return open(ec); }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth;
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
    key.append(s.data(), s.size());
    if (objects.back().contains(key)) return fail(ec, "has the member " + shown_name(key) + " twice in one object");
    objects.back().insert(std::move(key));
    key.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }
};

}  // namespace

WipingResource::WipingResource() noexcept : upstream_(&heap_resource) {}

WipingResource::WipingResource(boost::json::memory_resource* upstream) noexcept : upstream_(upstream) {}

void* WipingResource::do_allocate(std::size_t bytes, std::size_t align) { return upstream_->allocate(bytes, align); }

void WipingResource::do_deallocate(void* p, std::size_t bytes, std::size_t align) {
  secure_wipe(p, bytes);
  upstream_->deallocate(p, bytes, align);
}

bool WipingResource::do_is_equal(const memory_resource& other) const noexcept { return this == &other; }

boost::json::storage_ptr wiping_storage() {
  static WipingResource resource;
  return boost::json::storage_ptr(&resource);
}

std::string shown_name(std::string_view name) { return shown_field_name(name); }

std::string_view kind_of(const boost::json::value& v) noexcept {
  switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "true or false";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: return "a number";
    case boost::json::kind::string: return "a string";
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
  }
  return "a value";
}

namespace {

// Both parse passes, in a frame of their own below parse_json's, so that the
// stack they used can be wiped once they return.
[[gnu::noinline]] Result<boost::json::value> parse_on_stack(std::string_view text, std::string_view what,
                                                            const JsonLimits& limits,
                                                            boost::json::storage_ptr storage) {
  const auto invalid = [&](const std::string& message) {
    return Error(errc::invalid_argument, std::string(what) + " " + message);
  };
  if (text.size() > limits.max_size) {
    return invalid("is " + std::to_string(text.size()) + " bytes; at most " + std::to_string(limits.max_size) +
                   " are accepted");
  }
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return invalid("is empty; expected JSON");

  boost::json::parse_options options;
  options.max_depth = limits.max_depth + 1;
  {
    boost::json::basic_parser<StructureCheck> check(options);
    check.handler().max_depth = limits.max_depth;
    boost::system::error_code ec;
    std::size_t consumed = check.write_some(false, text.data(), text.size(), ec);
    if (!ec && text.find_first_not_of(" \t\r\n", consumed) != std::string_view::npos) {
      consumed = text.find_first_not_of(" \t\r\n", consumed);
      return invalid("has more after the end of its JSON value at " + place_of(text, consumed));
    }
    if (ec) {
      const std::string& problem = check.handler().problem;
      return invalid((problem.empty() ? "is not valid JSON (" + ec.message() + ")" : problem) + " at " +
                     place_of(text, consumed));
    }
  }
  // The constructor's storage is only the parser's scratch space; reset()
  // chooses where the value itself lives.
  boost::json::parser parser(storage, options);
  parser.reset(std::move(storage));
  boost::system::error_code ec;
  parser.write(text.data(), text.size(), ec);
  if (ec) return invalid("is not valid JSON (" + ec.message() + ")");
  return parser.release();
}

// Boost.JSON 1.81 un-escapes a string that holds an escape (a PEM key's \n,
// a \u sequence) through a buffer on the stack, BOOST_JSON_STACK_BUFFER_SIZE
// (4 KiB) bytes in basic_parser::parse_unescaped, and never clears it; its
// frames recurse once per nesting level, at most max_depth (<= 17 here) deep.
// Called from the frame that called parse_on_stack, this overwrites the
// stack below that frame, where those frames lived. 64 KiB covers the 4 KiB
// buffer plus every frame of the deepest parse with a wide margin, and is
// small next to any thread's stack.
[[gnu::noinline]] void wipe_stack_below() noexcept {
  unsigned char area[64 * 1024];
  secure_wipe(area, sizeof area);
  // Keeps the array (and the call) from being optimised away.
  asm volatile("" : : "r"(area) : "memory");
}

}  // namespace

Result<boost::json::value> parse_json(std::string_view text, std::string_view what, const JsonLimits& limits,
                                      boost::json::storage_ptr storage) {
  auto parsed = parse_on_stack(text, what, limits, std::move(storage));
  wipe_stack_below();
  return parsed;
}

}  // namespace keyfolio::detail
