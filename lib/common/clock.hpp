#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>

namespace uvwt::detail {

// Monotonic nanoseconds, the timestamp ngtcp2 runs on.
inline std::uint64_t now_ns() noexcept { return uv_hrtime(); }

// Wall-clock seconds since the epoch, for user-facing timestamps.
inline double wall_seconds() noexcept {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace uvwt::detail
