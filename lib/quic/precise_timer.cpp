#include "quic/precise_timer.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <map>
#include <utility>
#include <vector>

namespace uvwt::detail {

namespace {

std::atomic<bool> g_force_fallback{false};

constexpr std::uint64_t kNsPerMs = 1'000'000;

}  // namespace

// One per loop, shared by every PreciseTimer on it (see the header).
class TimerQueue : public std::enable_shared_from_this<TimerQueue> {
 public:
  static std::shared_ptr<TimerQueue> for_loop(uv_loop_t *loop, bool precise);
  TimerQueue(uv_loop_t *loop, bool precise);
  ~TimerQueue();
  TimerQueue(const TimerQueue &) = delete;
  TimerQueue &operator=(const TimerQueue &) = delete;

  void arm(PreciseTimer &t, std::uint64_t deadline);
  void disarm(PreciseTimer &t);
  [[nodiscard]] bool precise() const noexcept { return h_->fd >= 0; }

 private:
  // The libuv handles outlive the queue until their close callbacks.
  struct Handles {
    uv_poll_t poll;
    uv_timer_t timer;
    int fd = -1;
    int pending = 0;
    TimerQueue *owner = nullptr;
  };

  void place(std::size_t i, PreciseTimer *t);
  void sift_up(std::size_t i);
  void sift_down(std::size_t i);
  void remove_at(std::size_t i);
  void program();
  void fire();

  uv_loop_t *loop_;
  bool want_precise_;
  Handles *h_;
  std::vector<PreciseTimer *> heap_;
  std::uint64_t programmed_ = 0;  // deadline the backend will wake us at; 0: none
  bool polling_ = false;
  bool dispatching_ = false;
};

namespace {

// Loops may be driven by different threads; the registry is touched only
// when a connection's timer is created or the last one of a loop goes.
std::mutex g_registry_mutex;
std::map<std::pair<uv_loop_t *, bool>, std::weak_ptr<TimerQueue>> &registry() {
  static std::map<std::pair<uv_loop_t *, bool>, std::weak_ptr<TimerQueue>> r;
  return r;
}

}  // namespace

std::shared_ptr<TimerQueue> TimerQueue::for_loop(uv_loop_t *loop, bool precise) {
  const std::lock_guard<std::mutex> lock(g_registry_mutex);
  auto &slot = registry()[{loop, precise}];
  if (auto q = slot.lock()) return q;
  auto q = std::make_shared<TimerQueue>(loop, precise);
  slot = q;
  return q;
}

TimerQueue::TimerQueue(uv_loop_t *loop, bool precise) : loop_(loop), want_precise_(precise), h_(new Handles) {
  h_->owner = this;
  if (precise && !g_force_fallback.load()) h_->fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (h_->fd >= 0 && uv_poll_init(loop, &h_->poll, h_->fd) != 0) {
    ::close(h_->fd);
    h_->fd = -1;
  }
  if (h_->fd >= 0) {
    h_->poll.data = h_;
  } else {
    uv_timer_init(loop, &h_->timer);
    h_->timer.data = h_;
  }
}

TimerQueue::~TimerQueue() {
  {
    const std::lock_guard<std::mutex> lock(g_registry_mutex);
    auto it = registry().find({loop_, want_precise_});
    if (it != registry().end() && it->second.expired()) registry().erase(it);
  }
  h_->owner = nullptr;
  h_->pending = 1;
  auto on_closed = [](uv_handle_t *handle) {
    auto *h = static_cast<Handles *>(handle->data);
    if (--h->pending > 0) return;
    // Only now: libuv must not poll an fd that was closed under it.
    if (h->fd >= 0) ::close(h->fd);
    delete h;
  };
  if (h_->fd >= 0)
    uv_close(reinterpret_cast<uv_handle_t *>(&h_->poll), on_closed);
  else
    uv_close(reinterpret_cast<uv_handle_t *>(&h_->timer), on_closed);
}

void TimerQueue::place(std::size_t i, PreciseTimer *t) {
  heap_[i] = t;
  t->slot_ = i;
}

void TimerQueue::sift_up(std::size_t i) {
  PreciseTimer *t = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline_ <= t->deadline_) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, t);
}

void TimerQueue::sift_down(std::size_t i) {
  PreciseTimer *t = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->deadline_ < heap_[child]->deadline_) ++child;
    if (t->deadline_ <= heap_[child]->deadline_) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, t);
}

void TimerQueue::remove_at(std::size_t i) {
  heap_[i]->slot_ = PreciseTimer::kNoSlot;
  PreciseTimer *last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  place(i, last);
  sift_up(i);
  sift_down(last->slot_);
}

void TimerQueue::arm(PreciseTimer &t, std::uint64_t deadline) {
  // 0 would disarm an absolute timerfd; 1 ns is long past either way.
  t.deadline_ = std::max<std::uint64_t>(deadline, 1);
  if (t.slot_ == PreciseTimer::kNoSlot) {
    heap_.push_back(&t);
    t.slot_ = heap_.size() - 1;
    sift_up(t.slot_);
  } else {
    sift_up(t.slot_);
    sift_down(t.slot_);
  }
  program();
}

void TimerQueue::disarm(PreciseTimer &t) {
  if (t.slot_ == PreciseTimer::kNoSlot) return;
  remove_at(t.slot_);
  program();
}

// Points the backend at the earliest deadline. A later deadline than the one
// programmed is left alone: the early wake-up finds nothing due and programs
// the next one, which costs less than a syscall on every re-arm (each packet
// written moves the connection's expiry).
void TimerQueue::program() {
  if (dispatching_) return;  // fire() programs once at the end
  if (heap_.empty()) {
    // Nothing armed: let the loop exit, as with stopped libuv timers.
    if (h_->fd >= 0 && polling_) uv_poll_stop(&h_->poll);
    if (h_->fd < 0) uv_timer_stop(&h_->timer);
    polling_ = false;
    programmed_ = 0;
    return;
  }
  const std::uint64_t deadline = heap_.front()->deadline_;
  if (programmed_ != 0 && programmed_ <= deadline) return;
  programmed_ = deadline;
  if (h_->fd >= 0) {
    const std::uint64_t wake = deadline;
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(wake / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(wake % 1'000'000'000);
    ::timerfd_settime(h_->fd, TFD_TIMER_ABSTIME, &spec, nullptr);
    if (!polling_) {
      uv_poll_start(&h_->poll, UV_READABLE, [](uv_poll_t *p, int, int) {
        auto *h = static_cast<Handles *>(p->data);
        if (h->owner != nullptr) h->owner->fire();
      });
      polling_ = true;
    }
    return;
  }
  // Fallback: whole milliseconds, rounded up so we never wake before time.
  const std::uint64_t now = uv_hrtime();
  const std::uint64_t ms = deadline <= now ? 0 : (deadline - now + kNsPerMs - 1) / kNsPerMs;
  uv_timer_start(
      &h_->timer,
      [](uv_timer_t *t) {
        auto *h = static_cast<Handles *>(t->data);
        if (h->owner != nullptr) h->owner->fire();
      },
      ms, 0);
}

void TimerQueue::fire() {
  if (h_->fd >= 0) {
    std::uint64_t expirations = 0;
    while (::read(h_->fd, &expirations, sizeof expirations) < 0 && errno == EINTR) {
    }
  }
  programmed_ = 0;
  // A callback may destroy the last timer, and with it this queue.
  const auto self = shared_from_this();
  dispatching_ = true;
  const std::uint64_t now = uv_hrtime();
  // Bounded by the timers armed now: one that re-arms itself in the past
  // runs again on the next loop iteration, not in a loop here.
  for (std::size_t budget = heap_.size(); budget > 0 && !heap_.empty() && heap_.front()->deadline_ <= now; --budget) {
    PreciseTimer *t = heap_.front();
    remove_at(0);
    t->cb_(t->arg_);
  }
  dispatching_ = false;
  program();
}

PreciseTimer::PreciseTimer(uv_loop_t *loop, Callback cb, void *arg, bool precise)
    : queue_(TimerQueue::for_loop(loop, precise)), cb_(cb), arg_(arg) {}

PreciseTimer::~PreciseTimer() { stop(); }

void PreciseTimer::start_at(std::uint64_t deadline_ns) { queue_->arm(*this, deadline_ns); }

void PreciseTimer::stop() { queue_->disarm(*this); }

bool PreciseTimer::precise() const noexcept { return queue_->precise(); }

void PreciseTimer::force_fallback(bool on) noexcept { g_force_fallback.store(on); }

}  // namespace uvwt::detail
