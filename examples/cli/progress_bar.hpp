// A progress bar for long commands, on standard error so that it never mixes
// with a command's output.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace keyfolio::cli {

// A progress bar on standard error, drawn only when it is a terminal, and
// only for a task of at least `threshold` steps. The line is ended by
// finish() or the destructor once anything was drawn.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t threshold);
  ~ProgressBar() { finish(); }

  // Redraws the bar at `done` of `total`, followed by `note`.
  void update(std::size_t done, std::size_t total, std::string_view note = {});
  void finish();

 private:
  std::string label_;
  std::size_t threshold_;
  bool shown_;
  bool drawn_ = false;
};

}  // namespace keyfolio::cli
