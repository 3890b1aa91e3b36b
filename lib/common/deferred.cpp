#include "common/deferred.hpp"

#include <vector>

namespace uvwt::detail {

Deferred::Deferred(uv_loop_t *loop) : loop_(loop), idle_(new uv_idle_t) {
  uv_idle_init(loop_, idle_);
  idle_->data = this;
}

Deferred::~Deferred() {
  uv_idle_stop(idle_);
  idle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(idle_), [](uv_handle_t *h) { delete reinterpret_cast<uv_idle_t *>(h); });
}

void Deferred::post(const void *owner, std::function<void()> fn) {
  tasks_.push_back(Task{owner, std::move(fn)});
  if (tasks_.size() == 1) {
    uv_idle_start(idle_, &Deferred::on_idle);
    // Queued work keeps the queue alive even when its poster let go of it.
    self_ = shared_from_this();
  }
}

void Deferred::cancel(const void *owner) noexcept {
  if (owner == nullptr) return;
  // Only the function is dropped: its slot stays so that run() keeps its
  // count. Captures are destroyed after the walk, since their destructors
  // may post.
  std::vector<std::function<void()>> dropped;
  for (auto &t : tasks_) {
    if (t.owner == owner) {
      t.owner = nullptr;
      dropped.push_back(std::move(t.fn));
      t.fn = nullptr;
    }
  }
}

void Deferred::on_idle(uv_idle_t *h) {
  auto *self = static_cast<Deferred *>(h->data);
  if (self != nullptr) self->run();
}

void Deferred::run() {
  // A task may drop the last reference to this object (its captures hold
  // shared_ptrs to users of it): keep it alive for the whole batch.
  auto keep = shared_from_this();
  // Only run what was queued before this turn: tasks posting tasks must not
  // starve I/O.
  auto n = tasks_.size();
  while (n-- > 0 && !tasks_.empty()) {
    auto fn = std::move(tasks_.front().fn);
    tasks_.pop_front();
    if (fn) fn();
  }
  if (tasks_.empty()) {
    uv_idle_stop(idle_);
    self_.reset();  // `keep` holds us until the end of this call
  }
}

}  // namespace uvwt::detail
