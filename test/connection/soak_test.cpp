// Bounded soak: rounds of mixed traffic (a fresh connection, sessions with
// bulk echo, datagrams and a uni stream, then closes) for a fixed time, with
// resident memory, file descriptors and loop handles compared between the
// end of the warm-up and the end of the run, each taken in the same state
// (server listening, no connection left). UVWT_SOAK_SECONDS sets the run
// length (default 20 s, 10 s under ASan; e.g. UVWT_SOAK_SECONDS=600 for a
// long run by hand).

#include <uvwt/uvwt.hpp>

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;
using Clock = std::chrono::steady_clock;

namespace {

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR *d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

std::size_t loop_handles(uv_loop_t *loop) {
  std::size_t n = 0;
  uv_walk(
      loop, [](uv_handle_t *, void *arg) { ++*static_cast<std::size_t *>(arg); }, &n);
  return n;
}

double soak_seconds() {
  if (const char *v = std::getenv("UVWT_SOAK_SECONDS")) {
    const double s = std::atof(v);
    if (s > 0) return s;
  }
#if defined(__SANITIZE_ADDRESS__)
  return 10;  // the sanitizer pass runs the same suite a few times slower
#else
  return 20;
#endif
}

// One round: a connection, three sessions each echoing 64 KiB on a bidi
// stream, 10 datagrams and a uni stream, then everything closed.
void round_trip(TestLoop &tl, std::uint16_t port, std::uint32_t round) {
  auto c = connect(tl, port, "/echo");
  REQUIRE(c.err.ok());
  for (int k = 0; k < 3; ++k) {
    std::shared_ptr<Session> s = c.session;
    if (k > 0) {
      c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session> x) {
        REQUIRE(e.ok());
        s = x;
      });
      s = nullptr;
      REQUIRE(tl.run_until([&] { return s != nullptr; }));
    }
    const Bytes data = pattern(64 * 1024, round * 7 + static_cast<std::uint32_t>(k));
    Bytes back, uni_back;
    bool fin = false, uni_fin = false;
    std::size_t dgrams = 0;
    s->on_datagram([&](std::span<const std::uint8_t>) { ++dgrams; });
    s->on_uni_stream([&](std::shared_ptr<Stream> st) {
      st->on_data([&](std::span<const std::uint8_t> d, bool f) {
        uni_back.insert(uni_back.end(), d.begin(), d.end());
        uni_fin = uni_fin || f;
      });
    });
    s->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
      REQUIRE(e.ok());
      st->on_data([&](std::span<const std::uint8_t> d, bool f) {
        back.insert(back.end(), d.begin(), d.end());
        fin = fin || f;
      });
      st->write_and_end(Bytes(data));
    });
    s->open_uni_stream([&](const Error &e, std::shared_ptr<Stream> st) {
      REQUIRE(e.ok());
      st->write_and_end(Bytes(data.begin(), data.begin() + 4096));
    });
    for (int i = 0; i < 10; ++i) (void)s->send_datagram(Bytes(100, static_cast<std::uint8_t>(i)));
    REQUIRE(tl.run_until([&] { return fin && uni_fin && dgrams >= 8; }));
    REQUIRE(back == data);
    REQUIRE(uni_back == Bytes(data.begin(), data.begin() + 4096));
    bool closed = false;
    s->close(0, "round done", [&] { closed = true; });
    REQUIRE(tl.run_until([&] { return closed; }));
  }
  bool done = false;
  c.conn->close(0, "round done", [&] { done = true; });
  REQUIRE(tl.run_until([&] { return done; }));
}

struct Snapshot {
  std::size_t rss, fds, handles;
};

Snapshot settle(TestLoop &tl, const std::shared_ptr<Server> &server) {
  REQUIRE(tl.run_until([&] { return server->stats().connections_active == 0; }));
  tl.run_for(50);  // closing handles finish
  return {rss_bytes(), open_fds(), loop_handles(&tl.loop)};
}

}  // namespace

TEST_CASE("soak: mixed traffic keeps memory flat and leaks no fd or handle", "[connection][loop][soak]") {
  const double secs = soak_seconds();
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  std::uint32_t rounds = 0;
  // Warm-up: a quarter of the run, at least five rounds (allocator pools,
  // the TLS context's caches and the loop's handle table reach their size).
  while (rounds < 5 || elapsed() < secs / 4) round_trip(tl, server->port(), rounds++);
  const Snapshot warm = settle(tl, server);
  const std::uint32_t warm_rounds = rounds;
  while (elapsed() < secs) round_trip(tl, server->port(), rounds++);
  const Snapshot end = settle(tl, server);
  std::printf("soak: %.0f s, %u rounds (%u after warm-up): RSS %.1f -> %.1f MiB, fds %zu -> %zu, handles %zu -> %zu\n",
              elapsed(), rounds, rounds - warm_rounds, warm.rss / 1048576.0, end.rss / 1048576.0, warm.fds, end.fds,
              warm.handles, end.handles);
  CHECK(rounds > warm_rounds);
  CHECK(end.fds == warm.fds);
  CHECK(end.handles == warm.handles);
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine holds freed memory back on purpose: RSS says nothing
  // there, and LeakSanitizer checks what is left at exit instead.
#else
  // Each round moves ~1 MiB through fresh connections: a leak of even one
  // connection per round (~60 KiB) would exceed this within a long run.
  CHECK(end.rss <= warm.rss + 4 * 1048576);
#endif
  close_all(tl, nullptr, server);
}
