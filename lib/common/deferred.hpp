#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>

namespace uvwt::detail {

// Runs callbacks on a later turn of the loop, so that no completion callback
// is ever invoked from inside the call that started the work. One per public
// object made from a uv_loop_t* (Server, Client, Connection::create_client),
// handed explicitly to everything that object builds so that their tasks run
// in one order; its idle handle is active only while tasks are queued, and
// closed when the last user lets go, so that uv_loop_close() succeeds once
// every object is closed.
class Deferred : public std::enable_shared_from_this<Deferred> {
 public:
  explicit Deferred(uv_loop_t *loop);
  ~Deferred();
  Deferred(const Deferred &) = delete;
  Deferred &operator=(const Deferred &) = delete;

  void post(std::function<void()> fn) { post(nullptr, std::move(fn)); }
  // A task posted with an owner key is dropped unrun by cancel(owner)
  // (DeferredTasks in common/callback_scope.hpp cancels in its destructor).
  void post(const void *owner, std::function<void()> fn);
  void cancel(const void *owner) noexcept;
  [[nodiscard]] uv_loop_t *loop() const noexcept { return loop_; }

 private:
  static void on_idle(uv_idle_t *h);
  void run();

  uv_loop_t *loop_;
  uv_idle_t *idle_;  // heap: outlives this object until its close callback
  struct Task {
    const void *owner;
    std::function<void()> fn;
  };
  std::deque<Task> tasks_;
  std::shared_ptr<Deferred> self_;  // set while tasks are queued
};

}  // namespace uvwt::detail
