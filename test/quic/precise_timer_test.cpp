#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "catch.hpp"
#include "quic/precise_timer.hpp"

using uvwt::detail::PreciseTimer;

namespace {

// Every test runs on both backends: the timerfd and the uv_timer_t fallback.
struct Backend {
  bool fallback;
  explicit Backend(bool f) : fallback(f) { PreciseTimer::force_fallback(f); }
  ~Backend() { PreciseTimer::force_fallback(false); }
};

struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // the queue's handle closes here
    CHECK(uv_loop_close(&loop) == 0);
  }
};

struct Fired {
  std::vector<int> order;
  std::vector<std::int64_t> early_ns;  // now - deadline at the call; < 0 is early
};

struct Probe {
  Fired *log;
  int id;
  std::unique_ptr<PreciseTimer> timer;
  std::function<void(Probe &)> then;
};

void on_probe(void *arg) {
  auto &p = *static_cast<Probe *>(arg);
  p.log->order.push_back(p.id);
  p.log->early_ns.push_back(static_cast<std::int64_t>(uv_hrtime()) - static_cast<std::int64_t>(p.timer->deadline()));
  if (p.then) p.then(p);
}

std::unique_ptr<Probe> probe(uv_loop_t *loop, Fired &log, int id) {
  auto p = std::make_unique<Probe>();
  p->log = &log;
  p->id = id;
  p->timer = std::make_unique<PreciseTimer>(loop, &on_probe, p.get());
  return p;
}

constexpr std::uint64_t kUs = 1000;

}  // namespace

TEST_CASE("PreciseTimer fires in deadline order, never early, and once", "[quic][timer]") {
  for (bool fallback : {false, true}) {
    INFO("fallback " << fallback);
    Backend b(fallback);
    Loop L;
    Fired log;
    auto a = probe(&L.loop, log, 1), c = probe(&L.loop, log, 2), d = probe(&L.loop, log, 3), e = probe(&L.loop, log, 4);
    CHECK(a->timer->precise() == !fallback);
    const std::uint64_t now = uv_hrtime();
    a->timer->start_at(now + 900 * kUs);
    c->timer->start_at(now + 300 * kUs);
    d->timer->start_at(now + 5000 * kUs);
    d->timer->start_at(now + 600 * kUs);  // re-arming replaces the deadline
    e->timer->start_at(now + 100 * kUs);
    e->timer->stop();                 // a stopped timer never fires
    CHECK(log.order.empty());         // never from inside start_at()
    uv_run(&L.loop, UV_RUN_DEFAULT);  // returns once nothing is armed
    CHECK(log.order == std::vector<int>{2, 3, 1});
    for (auto early : log.early_ns) CHECK(early >= 0);
    CHECK_FALSE(a->timer->armed());
  }
}

TEST_CASE("PreciseTimer callbacks may re-arm, stop and destroy timers", "[quic][timer]") {
  for (bool fallback : {false, true}) {
    INFO("fallback " << fallback);
    Backend b(fallback);
    Loop L;
    Fired log;
    auto a = probe(&L.loop, log, 1), c = probe(&L.loop, log, 2), d = probe(&L.loop, log, 3);
    int rearmed = 0;
    // 1 destroys 2 (due at the same moment) and re-arms itself in the past
    // twice: each re-run waits for the next loop turn instead of spinning.
    a->then = [&](Probe &self) {
      c.reset();
      if (rearmed++ < 2) self.timer->start_at(1);
    };
    // 3 destroys itself from its own callback.
    d->then = [&](Probe &) { d.reset(); };
    const std::uint64_t now = uv_hrtime();
    a->timer->start_at(now + 200 * kUs);
    c->timer->start_at(now + 200 * kUs);
    d->timer->start_at(now + 100 * kUs);
    uv_run(&L.loop, UV_RUN_DEFAULT);
    CHECK(log.order == std::vector<int>{3, 1, 1, 1});
    CHECK(c == nullptr);
    CHECK(d == nullptr);
  }
}

TEST_CASE("PreciseTimer: the last timer of a loop may go from its own callback", "[quic][timer]") {
  Loop L;
  Fired log;
  auto a = probe(&L.loop, log, 1);
  a->then = [&](Probe &) { a.reset(); };
  a->timer->start_at(uv_hrtime() + 50 * kUs);
  uv_run(&L.loop, UV_RUN_DEFAULT);
  CHECK(log.order == std::vector<int>{1});
  CHECK(a == nullptr);
  // ~Loop runs the loop once more and requires every handle closed.
}

TEST_CASE("PreciseTimer keeps the heap ordered through many re-arms", "[quic][timer]") {
  Loop L;
  Fired log;
  std::vector<std::unique_ptr<Probe>> ps;
  for (int i = 0; i < 64; ++i) ps.push_back(probe(&L.loop, log, i));
  const std::uint64_t now = uv_hrtime();
  // Arm in a scrambled order, then move every third one later and stop every
  // fifth: the expected order follows from the final deadlines alone.
  std::vector<std::pair<std::uint64_t, int>> want;
  for (int i = 0; i < 64; ++i) ps[(i * 37) % 64]->timer->start_at(now + (1 + (i * 11) % 64) * 20 * kUs);
  for (int i = 0; i < 64; i += 3) ps[i]->timer->start_at(ps[i]->timer->deadline() + 2000 * kUs + i);
  for (int i = 0; i < 64; i += 5) ps[i]->timer->stop();
  for (int i = 0; i < 64; ++i)
    if (ps[i]->timer->armed()) want.emplace_back(ps[i]->timer->deadline(), i);
  std::sort(want.begin(), want.end());
  uv_run(&L.loop, UV_RUN_DEFAULT);
  REQUIRE(log.order.size() == want.size());
  // Equal deadlines may fire in either order; compare deadlines, not ids.
  for (std::size_t k = 0; k < want.size(); ++k) CHECK(ps[log.order[k]]->timer->deadline() == want[k].first);
  for (auto early : log.early_ns) CHECK(early >= 0);
}
