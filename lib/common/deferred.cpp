#include "common/deferred.hpp"

#include <map>
#include <mutex>

namespace uvwt::detail {

namespace {
// Single-threaded by contract: every loop is driven by one thread, and uvwt
// objects are created on that thread. Different loops may live on different
// threads, so the registry itself is guarded.
std::mutex g_mu;
std::map<uv_loop_t *, std::weak_ptr<Deferred>> &registry() {
  static std::map<uv_loop_t *, std::weak_ptr<Deferred>> r;
  return r;
}
}  // namespace

std::shared_ptr<Deferred> Deferred::for_loop(uv_loop_t *loop) {
  std::lock_guard lk(g_mu);
  auto &r = registry();
  if (auto it = r.find(loop); it != r.end())
    if (auto sp = it->second.lock()) return sp;
  auto sp = std::make_shared<Deferred>(loop);
  r[loop] = sp;
  return sp;
}

Deferred::Deferred(uv_loop_t *loop) : loop_(loop), idle_(new uv_idle_t) {
  uv_idle_init(loop_, idle_);
  idle_->data = this;
}

Deferred::~Deferred() {
  {
    std::lock_guard lk(g_mu);
    auto &r = registry();
    if (auto it = r.find(loop_); it != r.end() && it->second.expired()) r.erase(it);
  }
  uv_idle_stop(idle_);
  idle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(idle_),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_idle_t *>(h); });
}

void Deferred::post(std::function<void()> fn) {
  tasks_.push_back(std::move(fn));
  if (tasks_.size() == 1) {
    uv_idle_start(idle_, &Deferred::on_idle);
    // Queued work keeps the queue alive even when its poster let go of it.
    self_ = shared_from_this();
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
    auto fn = std::move(tasks_.front());
    tasks_.pop_front();
    fn();
  }
  if (tasks_.empty()) {
    uv_idle_stop(idle_);
    self_.reset();  // `keep` holds us until the end of this call
  }
}

}  // namespace uvwt::detail
