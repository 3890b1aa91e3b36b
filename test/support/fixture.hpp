#pragma once

// Loopback test scaffolding: a private uv loop, a server with an ephemeral
// certificate, and client configs pinned to it.

#include <uv.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include <uvwt/certificate.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/server.hpp>

#include "catch.hpp"
#include "support/bounded_run.hpp"
#include "testing/testing.hpp"

namespace uvwt::test {

inline const CertificatePair &test_certificate() {
  static CertificatePair pair = [] {
    CertificatePair p;
    const Error e = generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, std::chrono::hours(240), p);
    REQUIRE(e.ok());
    return p;
  }();
  return pair;
}

struct TestLoop {
  // On the heap: a loop abandoned after a failed REQUIRE (below) is leaked
  // and never reused, so the per-loop registries of lib/quic (timer queue,
  // receive buffers), keyed by the loop's address, cannot hand its dead
  // state to the next test's loop and fail every test after the first.
  uv_loop_t *const storage = new uv_loop_t{};
  uv_loop_t &loop = *storage;
  TestLoop() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~TestLoop() {
    if (std::uncaught_exceptions() > 0) {
      // A REQUIRE failed and the test's frame is unwinding: its locals, which
      // callbacks still queued on this loop may hold by reference ([&]), are
      // gone. Running the loop now would call into freed memory and take the
      // whole binary down; the test has already failed, so the loop and what
      // is left on it are abandoned (leaked) instead.
      std::fprintf(stderr, "TestLoop: a REQUIRE failed, the loop is abandoned without running it\n");
      return;
    }
    // Everything must have been closed by the test: the loop runs dry (within
    // kDrainMs, else the test fails instead of hanging) and closes.
    require_drained(&loop);
    const int rv = uv_loop_close(&loop);
    CHECK(rv == 0);
    if (rv == 0) delete storage;
  }
  TestLoop(const TestLoop &) = delete;
  TestLoop &operator=(const TestLoop &) = delete;

  // Runs the loop until pred() holds or the deadline passes; returns pred().
  bool run_until(const std::function<bool()> &pred, int timeout_ms = 10'000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    // A ticking timer keeps UV_RUN_ONCE from blocking forever when nothing happens.
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t *) {}, 20, 20);
    bool ok = true;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ok = false;
        break;
      }
      uv_run(&loop, UV_RUN_ONCE);
    }
    uv_close(reinterpret_cast<uv_handle_t *>(&tick), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
  }
  // Runs for `ms` milliseconds (or until the loop has nothing left).
  void run_for(int ms) {
    bool done = false;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &done;
    uv_timer_start(
        &t, [](uv_timer_t *h) { *static_cast<bool *>(h->data) = true; }, static_cast<std::uint64_t>(ms), 0);
    while (!done) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t *>(&t), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
};

inline ServerConfig server_config() {
  ServerConfig c;
  c.cert_pem = test_certificate().cert_pem;
  c.key_pem = test_certificate().key_pem;
  c.idle_timeout = std::chrono::milliseconds(10'000);
  return c;
}

inline ClientConfig client_config() {
  ClientConfig c;
  c.server_certificate_hashes = {test_certificate().sha256};
  c.connect_timeout = std::chrono::milliseconds(5'000);
  c.idle_timeout = std::chrono::milliseconds(10'000);
  return c;
}

// A client whose own socket loses (and reorders) a seeded, repeatable share of
// its packets in both directions: the impairment layer's loss tests.
inline ClientConfig lossy_client_config(double loss, std::uint64_t seed, double reorder = 0) {
  ClientConfig c = client_config();
  uvwt::testing::impairment(c).enabled = true;
  uvwt::testing::impairment(c).loss = loss;
  uvwt::testing::impairment(c).reorder = reorder;
  uvwt::testing::impairment(c).seed = seed;
  return c;
}

inline std::shared_ptr<Server> start_server(TestLoop &tl, const ServerConfig &cfg = server_config(),
                                            const std::string &host = "127.0.0.1") {
  Error err;
  auto s = Server::create(&tl.loop, cfg, err);
  REQUIRE(err.ok());
  REQUIRE(s);
  REQUIRE(s->listen(host, 0).ok());
  REQUIRE(s->port() != 0);
  return s;
}

struct Connected {
  Error err;
  std::shared_ptr<Connection> conn;
  std::shared_ptr<Session> session;
  bool done = false;
};

// Connects and opens a session on `path`; runs the loop until it completes.
inline Connected connect(TestLoop &tl, std::uint16_t port, const std::string &path,
                         const ClientConfig &cfg = client_config(), const std::string &host = "127.0.0.1") {
  auto r = std::make_shared<Connected>();
  Connection::create_client(&tl.loop, cfg, host, port, path, std::nullopt,
                            [r](const Error &e, std::shared_ptr<Connection> c) {
                              r->err = e;
                              r->conn = c;
                              if (c) {
                                if (auto id = c->get_ready_session_id()) r->session = c->get_session(*id);
                              }
                              r->done = true;
                            });
  REQUIRE(tl.run_until([&] { return r->done; }, 15'000));
  if (!r->err.ok()) std::fprintf(stderr, "connect error: %s\n", r->err.to_string().c_str());
  return *r;
}

// Closes a connection and a server and lets the loop finish.
inline void close_all(TestLoop &tl, const std::shared_ptr<Connection> &c, const std::shared_ptr<Server> &s) {
  bool c_done = c == nullptr, s_done = s == nullptr;
  if (c) c->close(0, "test done", [&] { c_done = true; });
  if (s) s->close([&] { s_done = true; });
  REQUIRE(tl.run_until([&] { return c_done && s_done; }, 10'000));
}

inline Bytes pattern(std::size_t n, std::uint32_t seed = 1) {
  Bytes b(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto &v : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = static_cast<std::uint8_t>(x);
  }
  return b;
}

}  // namespace uvwt::test
