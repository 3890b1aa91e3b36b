#include "common/deferred.hpp"

#include <map>
#include <mutex>
#include <vector>

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
  if (auto it = r.find(loop); it != r.end()) {
    auto sp = it->second.lock();
    // A loop at a recycled address (the old one was abandoned with objects
    // still alive) must not inherit the old idle handle: check it is ours.
    if (sp && sp->owns_handle_in(loop)) return sp;
  }
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
  uv_close(reinterpret_cast<uv_handle_t *>(idle_), [](uv_handle_t *h) { delete reinterpret_cast<uv_idle_t *>(h); });
}

bool Deferred::owns_handle_in(uv_loop_t *loop) const {
  struct Probe {
    const uv_idle_t *idle;
    bool found;
  } probe{idle_, false};
  uv_walk(
      loop,
      [](uv_handle_t *h, void *arg) {
        auto *p = static_cast<Probe *>(arg);
        if (h == reinterpret_cast<const uv_handle_t *>(p->idle)) p->found = true;
      },
      &probe);
  return probe.found;
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
