// The list of handlers behind a change feed or a notification subscription.
//
// Handlers run outside the owner's locks. Each handler's `running` lock is held
// while it runs, so that cancelling waits for a delivery in progress; it is
// recursive because a handler may cause another delivery (by writing) or cancel
// its own subscription. A throwing handler is ignored: a committed change must
// not turn into a failure.
#pragma once

#include <keyfolio/subscription.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace keyfolio::detail {

template <class Event>
class Subscribers : public std::enable_shared_from_this<Subscribers<Event>> {
 public:
  Subscription add(std::function<void(const Event&)> handler) {
    auto entry = std::make_shared<Entry>();
    entry->handler = std::move(handler);
    {
      std::lock_guard lock(mutex_);
      entries_.push_back(entry);
    }
    std::weak_ptr<Subscribers> weak = this->shared_from_this();
    return Subscription([weak, entry] {
      {
        std::lock_guard running(entry->running);
        entry->active = false;
      }
      if (auto self = weak.lock()) {
        std::lock_guard lock(self->mutex_);
        std::erase(self->entries_, entry);
      }
    });
  }

  // Whether no handler is subscribed: events then need not be built.
  bool empty() {
    std::lock_guard lock(mutex_);
    return entries_.empty();
  }

  void deliver(const std::vector<Event>& events) {
    if (events.empty()) return;
    std::vector<std::shared_ptr<Entry>> targets;
    {
      std::lock_guard lock(mutex_);
      targets = entries_;
    }
    for (const auto& entry : targets) {
      std::lock_guard running(entry->running);
      if (!entry->active) continue;
      for (const auto& event : events) {
        try {
          entry->handler(event);
        } catch (...) {
        }
      }
    }
  }

 private:
  struct Entry {
    std::recursive_mutex running;
    bool active = true;
    std::function<void(const Event&)> handler;
  };

  std::mutex mutex_;
  std::vector<std::shared_ptr<Entry>> entries_;
};

}  // namespace keyfolio::detail
