#pragma once

// Runs a test's loop until it has nothing left, but never forever: a leaked
// handle or a missing close fails the test with a message instead of hanging
// the whole run.

#include <uv.h>

#include <cstdint>
#include <cstdio>

#include "catch.hpp"

namespace uvwt::test {

// Generous: closing periods and backoff timers of a loaded machine end well before.
inline constexpr int kDrainMs = 30'000;

// Runs `loop` until no referenced handle or request is left, or timeout_ms
// pass; true if it ran dry in time.
inline bool drain_loop(uv_loop_t *loop, int timeout_ms = kDrainMs) {
  // An unreferenced watchdog wakes a blocked UV_RUN_ONCE without keeping the
  // loop alive itself.
  bool expired = false;
  uv_timer_t dog;
  uv_timer_init(loop, &dog);
  dog.data = &expired;
  uv_timer_start(
      &dog, [](uv_timer_t *h) { *static_cast<bool *>(h->data) = true; }, static_cast<std::uint64_t>(timeout_ms), 0);
  uv_unref(reinterpret_cast<uv_handle_t *>(&dog));
  while (!expired && uv_run(loop, UV_RUN_ONCE) != 0) {
  }
  uv_close(reinterpret_cast<uv_handle_t *>(&dog), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // the watchdog's close
  return !expired && uv_loop_alive(loop) == 0;
}

// drain_loop() that fails the current test (and lists the live handles on
// stderr) when the loop does not run dry.
inline bool require_drained(uv_loop_t *loop, int timeout_ms = kDrainMs) {
  if (drain_loop(loop, timeout_ms)) return true;
  FAIL_CHECK("the loop still has live handles " << timeout_ms / 1000
                                                << " s after the test: a leak or a missing close (listed on stderr)");
  uv_print_all_handles(loop, stderr);
  return false;
}

}  // namespace uvwt::test
