#include "progress_bar.hpp"

#include "prompts.hpp"

#include <cstdio>
#include <unistd.h>
#include <utility>

namespace keyfolio::cli {

ProgressBar::ProgressBar(std::string label, std::size_t threshold)
    : label_(std::move(label)), threshold_(threshold), shown_(on_terminal(STDERR_FILENO)) {}

void ProgressBar::update(std::size_t done, std::size_t total, std::string_view note) {
  if (!shown_ || total < threshold_) return;
  constexpr std::size_t width = 30;
  const std::size_t filled = total == 0 ? width : done * width / total;
  std::string line = "\r" + label_ + " [" + std::string(filled, '#') + std::string(width - filled, '-') + "] " +
                     std::to_string(done) + "/" + std::to_string(total);
  if (!note.empty()) line += std::string(" ") + std::string(note);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fputs("\n", stderr);
  drawn_ = false;
}

}  // namespace keyfolio::cli
