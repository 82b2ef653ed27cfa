// The one compare-and-set retry loop. Every write of keyfolio's reads the
// versions it expects, stages a batch that names them, and commits it; when
// another writer got there first the commit fails with `conflict` and the
// write starts again from fresh state, up to a bound.
#pragma once

#include <keyfolio/error.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace keyfolio::detail {

// What one attempt at a write gives: its result, or try_again when it lost
// to a concurrent writer and should start over.
template <class T>
using Attempt = std::optional<Result<T>>;
inline constexpr std::nullopt_t try_again = std::nullopt;

// try_again for a lost compare-and-set, the error itself otherwise.
template <class T>
Attempt<T> again_on_conflict(const Error& error) {
  if (error.code() == errc::conflict) return try_again;
  return Result<T>(error);
}

// The error of a write that lost `attempts` times in a row; `what` names the
// write ("upsert of account \"binance/main\"").
inline Error lost_to_concurrent_writers(const std::string& what, int attempts) {
  return Error(errc::conflict,
               what + " lost to concurrent writers " + std::to_string(attempts) + " times in a row");
}

// Runs `attempt` (returning Attempt<T>) until it gives a result, at most
// `max_attempts` times; then lost_to_concurrent_writers(what(), ...). `what`
// is called only then.
template <class What, class Try>
auto retry_writes(int max_attempts, What&& what, Try&& attempt) -> typename std::invoke_result_t<Try&>::value_type {
  for (int i = 0; i < max_attempts; ++i) {
    if (auto done = attempt()) return std::move(*done);
  }
  return lost_to_concurrent_writers(what(), max_attempts);
}

}  // namespace keyfolio::detail
