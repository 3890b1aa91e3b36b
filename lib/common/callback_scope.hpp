#pragma once

// The one lifetime and re-entrancy idiom of lib/ (docs/architecture.md,
// "Lifetimes and re-entrancy"):
//
// - ReentryState + CallbackScope: every entry into a library that calls us
//   back (ngtcp2_conn_read_pkt, ngtcp2_conn_write*, nghttp3_conn_read_stream)
//   and every call into user code is wrapped in a CallbackScope of the object
//   whose state those callbacks touch. Work that must not run while any scope
//   of that object is on the stack (a close requested from inside a callback,
//   a flush, the object's destruction) goes through run_or_defer() /
//   destroy_outside() and runs when the outermost scope exits. The scope of a
//   shared_ptr-managed owner also holds a strong reference, so the owner
//   outlives every callback that runs inside it (Node's NgTcp2CallbackScope).
//   An owner held by unique_ptr gets a depth-only scope; whoever owns it
//   destroys it through destroy_outside(), never from inside a scope.
//
// - DeferredTasks: tasks posted to the loop's Deferred on behalf of an object
//   that is not shared_ptr-managed. The object holds a DeferredTasks member;
//   its destructor cancels the tasks still queued, so a task never runs on a
//   destroyed object. This replaces `std::shared_ptr<bool> alive_` tokens
//   (one allocation per object and a weak_ptr per posted lambda). Objects
//   that are shared_ptr-managed keep capturing weak_from_this().

#include <cassert>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/deferred.hpp"

namespace uvwt::detail {

class ReentryState {
 public:
  ReentryState() = default;
  ~ReentryState() { assert(depth_ == 0 && "object destroyed while one of its callback scopes is on the stack"); }
  ReentryState(const ReentryState &) = delete;
  ReentryState &operator=(const ReentryState &) = delete;

  // True while a CallbackScope of the owner is on the stack.
  [[nodiscard]] bool active() const noexcept { return depth_ > 0; }
  [[nodiscard]] int depth() const noexcept { return depth_; }

  // Runs fn now when no scope is on the stack, otherwise right after the
  // outermost scope exits (in the order queued, before any destruction).
  template <class F>
  void run_or_defer(F &&fn) {
    if (depth_ == 0) {
      std::forward<F>(fn)();
      return;
    }
    pending_.emplace_back(std::forward<F>(fn));
  }

  // For owners held by unique_ptr: `destroy` deletes the owner (and so this
  // state). Runs now outside any scope, otherwise as the very last action of
  // the outermost scope's exit. Only the first request counts.
  void destroy_outside(std::function<void()> destroy) {
    if (depth_ == 0 && !draining_) {
      destroy();
      return;
    }
    if (!destroy_) destroy_ = std::move(destroy);
  }

 private:
  friend class CallbackScope;
  void enter() noexcept { ++depth_; }
  void leave() {
    assert(depth_ > 0);
    if (--depth_ > 0 || draining_) return;
    // Queued work runs as if no scope were on the stack (so a deferred close
    // really closes, and scopes it opens nest under this drain), but a
    // destruction it requests waits until the queue is empty.
    draining_ = true;
    while (!pending_.empty()) {
      auto batch = std::exchange(pending_, {});
      for (auto &fn : batch) fn();
    }
    draining_ = false;
    if (destroy_) {
      auto d = std::exchange(destroy_, nullptr);
      d();  // deletes *this: touch nothing afterwards
    }
  }

  int depth_ = 0;
  std::vector<std::function<void()>> pending_;
  std::function<void()> destroy_;
  bool draining_ = false;
};

// An owner opts in by exposing its state as `ReentryState &reentry()`.
template <class Owner>
concept HasReentryState = requires(Owner &o) {
  { o.reentry() } -> std::same_as<ReentryState &>;
};

class CallbackScope {
 public:
  // Depth-only: the owner's lifetime is guaranteed by its owner (unique_ptr).
  explicit CallbackScope(ReentryState &s) noexcept : state_(s) { state_.enter(); }

  // Also keeps a shared_ptr-managed owner alive until the scope exits (and
  // until the work deferred to that exit has run).
  template <HasReentryState Owner>
  explicit CallbackScope(Owner &owner) : keep_(keep_of(owner)), state_(owner.reentry()) {
    state_.enter();
  }

  ~CallbackScope() { state_.leave(); }  // keep_ is released after this body
  CallbackScope(const CallbackScope &) = delete;
  CallbackScope &operator=(const CallbackScope &) = delete;

 private:
  template <class Owner>
  static std::shared_ptr<const void> keep_of(Owner &owner) {
    if constexpr (requires { owner.weak_from_this(); }) {
      // Empty while the owner is being constructed or not shared-managed.
      return owner.weak_from_this().lock();
    } else {
      return nullptr;
    }
  }

  std::shared_ptr<const void> keep_;
  ReentryState &state_;
};

// Tasks posted to a Deferred that are dropped unrun when this object (a
// member of their owner) is destroyed first.
class DeferredTasks {
 public:
  explicit DeferredTasks(std::shared_ptr<Deferred> d) : deferred_(std::move(d)) { assert(deferred_); }
  ~DeferredTasks() { deferred_->cancel(this); }
  DeferredTasks(const DeferredTasks &) = delete;
  DeferredTasks &operator=(const DeferredTasks &) = delete;

  void post(std::function<void()> fn) { deferred_->post(this, std::move(fn)); }
  [[nodiscard]] const std::shared_ptr<Deferred> &deferred() const noexcept { return deferred_; }

 private:
  std::shared_ptr<Deferred> deferred_;
};

}  // namespace uvwt::detail
