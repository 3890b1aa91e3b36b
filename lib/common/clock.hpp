#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace uvwt::detail {

// Monotonic nanoseconds, the timestamp ngtcp2 runs on.
inline std::uint64_t now_ns() noexcept { return uv_hrtime(); }

// Test hook, not public API: seconds added to wall_seconds(), so a test can
// move the user-facing clock (last_activity, the stale rule of issues())
// minutes ahead without waiting. Timers and ngtcp2 (now_ns) are unaffected.
inline std::atomic<double> wall_clock_offset{0.0};

// Wall-clock seconds since the epoch, for user-facing timestamps.
inline double wall_seconds() noexcept {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count() +
         wall_clock_offset.load(std::memory_order_relaxed);
}

}  // namespace uvwt::detail
