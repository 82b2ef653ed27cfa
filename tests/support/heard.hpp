// What a subscription has delivered so far, for tests that wait on a change
// feed or on account notifications arriving from another thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

namespace keyfolio::test {

template <class Event>
class Heard {
 public:
  // The handler to subscribe with; `this` must outlive the subscription.
  std::function<void(const Event&)> handler() {
    return [this](const Event& e) {
      std::lock_guard lock(mutex_);
      events_.push_back(e);
      changed_.notify_all();
    };
  }

  // Whether an event satisfying `match` arrived within `timeout`.
  template <class Match>
  bool wait_for(Match match, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return std::any_of(events_.begin(), events_.end(), match); });
  }

  std::vector<Event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
};

}  // namespace keyfolio::test
