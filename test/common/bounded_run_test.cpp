#include "support/bounded_run.hpp"

#include <uv.h>

#include <chrono>

#include "catch.hpp"

TEST_CASE("drain_loop: a leaked handle fails within the bound instead of hanging", "[common][test-support]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  uv_timer_t leaked;  // a repeating timer nobody closes
  uv_timer_init(&loop, &leaked);
  uv_timer_start(
      &leaked, [](uv_timer_t *) {}, 10, 10);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(uvwt::test::drain_loop(&loop, 300));
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= std::chrono::milliseconds(250));  // libuv counts whole milliseconds
  CHECK(took < std::chrono::seconds(10));
  // Once closed, the same loop drains at once and closes.
  uv_close(reinterpret_cast<uv_handle_t *>(&leaked), nullptr);
  CHECK(uvwt::test::drain_loop(&loop, 300));
  CHECK(uv_loop_close(&loop) == 0);
}
