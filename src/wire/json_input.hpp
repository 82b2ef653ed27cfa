// Reading JSON documents that come from outside (request bodies, import
// files): a size limit, a depth limit, duplicate member names rejected, errors
// placed by line and column, and a memory resource that wipes what it frees,
// because such documents carry secret values.
#pragma once

#include <keyfolio/error.hpp>

#include <boost/json/memory_resource.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace keyfolio::detail {

struct JsonLimits {
  std::size_t max_size = 1 << 20;  // bytes
  std::size_t max_depth = 16;
};

// A memory resource that zeroes every block before handing it back to its
// upstream (the heap by default). Thread-safe when its upstream is.
class WipingResource final : public boost::json::memory_resource {
 public:
  WipingResource() noexcept;
  explicit WipingResource(boost::json::memory_resource* upstream) noexcept;

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override;
  bool do_is_equal(const memory_resource& other) const noexcept override;

  boost::json::memory_resource* upstream_;
};

// Storage whose blocks are zeroed when released; for values that hold secrets.
boost::json::storage_ptr wiping_storage();

// Parses `text`, a `what` ("request body", "import file") for messages.
// Errors are `invalid_argument`; messages never quote string values.
Result<boost::json::value> parse_json(std::string_view text, std::string_view what, const JsonLimits& limits,
                                      boost::json::storage_ptr storage);

// A JSON member or field name as messages show it: quoted when it looks like
// an identifier, else only its length (it may be a misplaced secret).
std::string shown_name(std::string_view name);

// The JSON type of `v` for messages: "a string", "a number", "null", ...
std::string_view kind_of(const boost::json::value& v) noexcept;

}  // namespace keyfolio::detail
