// keyfolio/subscription.hpp: Subscription, the handle that keeps a
// change-feed subscription (StorageBackend::subscribe) or a notification
// subscription (AccountManager::subscribe) alive.
//
// Move-only. Destroying it, or reset(), stops the deliveries and waits for
// one in progress to finish, so it must not be destroyed from inside its own
// handler. Not safe for concurrent use of one object.
#pragma once

#include <keyfolio/export.hpp>

#include <functional>

namespace keyfolio {

class KEYFOLIO_EXPORT Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& other) noexcept : cancel_(std::move(other.cancel_)) { other.cancel_ = nullptr; }
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }

  void reset() noexcept;
  bool active() const noexcept { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

}  // namespace keyfolio
