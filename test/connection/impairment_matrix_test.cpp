// Impairment matrix: loss, reordering, duplication, delay, a short blackhole
// and payload corruption on the client's socket (both directions), each
// moving checksummed bulk, datagrams and a run of short sessions. Every byte
// that arrives must be intact; what does not arrive must fail with a clean
// error within its deadline, never hang or crash. Sizes are chosen so the
// whole matrix stays within a few tens of seconds, also under ASan.

#include <uvwt/uvwt.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Scenario {
  const char *name;
  ImpairmentConfig im;
  bool blackhole_midway = false;  // 400 ms of silence during the bulk transfer
  bool must_succeed = true;       // false: clean failures are acceptable
};

ImpairmentConfig im(double loss, double reorder = 0, double dup = 0, std::uint32_t delay = 0, std::uint32_t jitter = 0,
                    double corrupt = 0) {
  ImpairmentConfig c;
  c.enabled = true;
  c.loss = loss;
  c.reorder = reorder;
  c.duplicate = dup;
  c.delay_ms = delay;
  c.jitter_ms = jitter;
  c.corrupt = corrupt;
  c.seed = 0x5eed;
  return c;
}

std::uint64_t fnv(std::span<const std::uint8_t> d, std::uint64_t h = 1469598103934665603ull) {
  for (auto b : d) h = (h ^ b) * 1099511628211ull;
  return h;
}

bool clean(const Error &e) {
  switch (e.errc) {
    case Errc::timeout:
    case Errc::connection:
    case Errc::stream:
    case Errc::session:
    case Errc::closed:
    case Errc::cancelled:
    case Errc::handshake:
    case Errc::flow_control:
      return !e.message.empty();
    default:
      return false;
  }
}

struct Outcome {
  bool done = false;
  Error err;
};

// Echoes `n` bytes over one bidi stream; compares the checksum. Returns false
// on a clean failure; a corrupted byte or a hang fails the test.
bool bulk(TestLoop &tl, const std::shared_ptr<Connection> &conn, const std::shared_ptr<Session> &s, std::size_t n,
          bool blackhole_midway, const ImpairmentConfig &base) {
  const Bytes data = pattern(n, 77);
  const std::uint64_t want = fnv(data);
  auto out = std::make_shared<Outcome>();
  std::uint64_t h = 1469598103934665603ull;
  std::size_t got = 0;
  std::shared_ptr<Stream> keep;
  s->open_bidi_stream([&, out](const Error &e, std::shared_ptr<Stream> st) {
    if (e) {
      out->err = e, out->done = true;
      return;
    }
    keep = st;
    st->on_error([out](const Error &x) { out->err = x, out->done = true; });
    st->on_data([&, out](std::span<const std::uint8_t> d, bool fin) {
      h = fnv(d, h);
      got += d.size();
      if (fin) out->done = true;
    });
    st->write_and_end(Bytes(data));
  });
  if (blackhole_midway) {
    REQUIRE(tl.run_until([&] { return got >= n / 4 || out->done; }, 30'000));
    ImpairmentConfig dark = base;
    dark.blackhole = true;
    uvwt::testing::set_impairment(*conn, dark);
    tl.run_for(400);
    uvwt::testing::set_impairment(*conn, base);
  }
  REQUIRE(tl.run_until([&] { return out->done || conn->is_closed(); }, 60'000));
  if (!out->err.ok() || got != n) {
    INFO("bulk failed after " << got << " bytes: " << out->err.to_string());
    CHECK((out->err.ok() ? conn->is_closed() : clean(out->err)));
    return false;
  }
  CHECK(h == want);
  return true;
}

// Sends `n` numbered datagrams; every echo must be one of them, unaltered.
std::size_t datagrams(TestLoop &tl, const std::shared_ptr<Session> &s, std::size_t n) {
  std::size_t echoed = 0, bad = 0;
  s->on_datagram([&](std::span<const std::uint8_t> d) {
    if (d.size() != 200) return (void)++bad;
    const Bytes want = pattern(200, d[0] + 1000u);
    if (!std::equal(d.begin() + 1, d.end(), want.begin() + 1)) ++bad;
    ++echoed;
  });
  for (std::size_t i = 0; i < n; ++i) {
    Bytes d = pattern(200, static_cast<std::uint32_t>(i) + 1000u);
    d[0] = static_cast<std::uint8_t>(i);
    (void)s->send_datagram(d);
    tl.run_for(2);
  }
  tl.run_until([&] { return echoed == n; }, 1'500);
  CHECK(bad == 0);
  CHECK(echoed <= n * 2);  // duplicates may double, never more
  s->on_datagram({});
  return echoed;
}

// Opens, uses and closes `n` short sessions on the connection.
std::size_t short_sessions(TestLoop &tl, const std::shared_ptr<Connection> &conn, std::size_t n) {
  std::size_t ok = 0;
  for (std::size_t i = 0; i < n && !conn->is_closed(); ++i) {
    auto out = std::make_shared<Outcome>();
    std::string echoed;
    std::shared_ptr<Session> sess;
    conn->open_session("/echo", {}, [&, out](const Error &e, std::shared_ptr<Session> s) {
      if (e) {
        out->err = e, out->done = true;
        return;
      }
      sess = s;
      s->open_bidi_stream([&, out](const Error &e2, std::shared_ptr<Stream> st) {
        if (e2) {
          out->err = e2, out->done = true;
          return;
        }
        st->on_error([out](const Error &x) { out->err = x, out->done = true; });
        st->on_data([&, out](std::span<const std::uint8_t> d, bool fin) {
          echoed.append(d.begin(), d.end());
          if (fin) out->done = true;
        });
        st->write_and_end(Bytes(3000, static_cast<std::uint8_t>('a' + i % 26)));
      });
    });
    REQUIRE(tl.run_until([&] { return out->done || conn->is_closed(); }, 30'000));
    if (out->err.ok() && out->done) {
      CHECK(echoed == std::string(3000, static_cast<char>('a' + i % 26)));
      ok += echoed.size() == 3000 ? 1 : 0;
    } else if (!out->err.ok()) {
      INFO("session " << i << ": " << out->err.to_string());
      CHECK(clean(out->err));
    }
    if (sess) {
      bool closed = false;
      sess->close(0, "done", [&] { closed = true; });
      REQUIRE(tl.run_until([&] { return closed; }, 15'000));
    }
  }
  return ok;
}

}  // namespace

TEST_CASE("impairment matrix: bulk, datagrams and short sessions arrive intact or fail cleanly",
          "[connection][loop][impairment]") {
  const Scenario sc =
      GENERATE(Scenario{"loss 1%", im(0.01)}, Scenario{"loss 5%", im(0.05)}, Scenario{"loss 10%", im(0.10)},
               Scenario{"loss 20%", im(0.20), false, false}, Scenario{"reorder 10%", im(0, 0.10)},
               Scenario{"duplicate 10%", im(0, 0, 0.10)}, Scenario{"delay 30 ms jitter 10", im(0, 0, 0, 30, 10)},
               Scenario{"blackhole 400 ms", im(0), true}, Scenario{"corrupt 5%", im(0, 0, 0, 0, 0, 0.05)},
               Scenario{"mixed", im(0.03, 0.03, 0.03, 5, 5, 0.02)});
  INFO("scenario: " << sc.name);
  const auto t0 = Clock::now();
  TestLoop tl;
  ServerConfig scfg = server_config();
  auto server = start_server(tl, scfg);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  uvwt::testing::impairment(cfg) = sc.im;
  cfg.connect_timeout = std::chrono::milliseconds(20'000);
  cfg.handshake_timeout = std::chrono::milliseconds(20'000);
  auto c = connect(tl, server->port(), "/echo", cfg);
  if (!c.err.ok()) {
    CHECK_FALSE(sc.must_succeed);
    CHECK(clean(c.err));
    close_all(tl, c.conn, server);
    return;
  }
  const bool bulk_ok = bulk(tl, c.conn, c.session, 384 * 1024, sc.blackhole_midway, sc.im);
  const std::size_t echoed = c.conn->is_closed() ? 0 : datagrams(tl, c.session, 40);
  const std::size_t sessions = short_sessions(tl, c.conn, 4);
  std::printf("impairment matrix %-22s bulk %s, datagrams %zu/40, sessions %zu/4, %.1f s\n", sc.name,
              bulk_ok ? "intact" : "failed cleanly", echoed, sessions,
              std::chrono::duration<double>(Clock::now() - t0).count());
  if (sc.must_succeed) {
    CHECK(bulk_ok);
    CHECK(sessions == 4);
    CHECK(echoed > 0);
  }
  close_all(tl, c.conn, server);
}
