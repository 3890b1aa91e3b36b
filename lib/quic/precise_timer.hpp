#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace uvwt::detail {

class TimerQueue;

// A one-shot timer with nanosecond deadlines on uv_hrtime()'s clock
// (CLOCK_MONOTONIC), for ngtcp2's expiry and pacing. libuv's timers count
// whole milliseconds from a clock cached once per loop iteration, so a
// deadline 100 us away fires 1-2 ms late: a pacing gap or a loss timer on a
// sub-millisecond path turns into a millisecond stall (docs/performance.md,
// "Timer precision").
//
// Every timer of a loop (and precision) shares one TimerQueue: a binary min-heap of the armed
// timers (intrusive: each timer knows its heap slot, so re-arming is
// O(log n) and allocates nothing once the heap has grown) driving one
// timerfd under a uv_poll_t, programmed with the earliest deadline. Where
// timerfd is unavailable the queue falls back to one uv_timer_t with the old
// millisecond rounding, so behaviour is the same, only coarser.
//
// The callback runs on the loop thread from the queue's poll callback, never
// from inside start()/stop(). It may start, stop or destroy any timer,
// including its own. An armed timer keeps the loop alive, as a libuv timer
// does; a stopped one does not.
class PreciseTimer {
 public:
  using Callback = void (*)(void *arg);

  // precise false: the millisecond uv_timer_t backend, on purpose (see
  // TransportConfig::precise_timers for why that is the default).
  PreciseTimer(uv_loop_t *loop, Callback cb, void *arg, bool precise = true);
  ~PreciseTimer();
  PreciseTimer(const PreciseTimer &) = delete;
  PreciseTimer &operator=(const PreciseTimer &) = delete;

  // Fires once at `deadline_ns` (uv_hrtime() scale) or as soon as possible
  // if that has passed. Re-arming replaces the previous deadline.
  void start_at(std::uint64_t deadline_ns);
  void stop();
  [[nodiscard]] bool armed() const noexcept { return slot_ != kNoSlot; }
  [[nodiscard]] std::uint64_t deadline() const noexcept { return deadline_; }

  // Which backend this loop's queue runs on: true for the timerfd.
  [[nodiscard]] bool precise() const noexcept;

  // Test hook: queues created while set use the uv_timer_t fallback.
  static void force_fallback(bool on) noexcept;

 private:
  friend class TimerQueue;
  static constexpr std::size_t kNoSlot = static_cast<std::size_t>(-1);

  std::shared_ptr<TimerQueue> queue_;
  Callback cb_;
  void *arg_;
  std::uint64_t deadline_ = 0;
  std::size_t slot_ = kNoSlot;  // index in the queue's heap while armed
};

}  // namespace uvwt::detail
