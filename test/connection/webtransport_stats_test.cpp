// get_webtransport_stats: the W3C WebTransportConnectionStats and
// WebTransportDatagramStats figures of a session, checked against what the
// connection's own diagnostics and the peer saw.

#include <uvwt/uvwt.hpp>

#include <chrono>
#include <cmath>

#include "catch.hpp"
#include "common/clock.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

// A bidi stream of `text`, waited for until its echo has come back whole.
bool echo_once(TestLoop &tl, const std::shared_ptr<Session> &s, std::size_t n) {
  auto got = std::make_shared<std::size_t>(0);
  auto fin = std::make_shared<bool>(false);
  s->open_bidi_stream([=](const Error &err, std::shared_ptr<Stream> st) {
    if (err) return;
    st->on_data([got, fin](std::span<const std::uint8_t> d, bool f) {
      *got += d.size();
      *fin = *fin || f;
    });
    st->write_and_end(pattern(n));
  });
  return tl.run_until([&] { return *fin; }, 15'000) && *got == n;
}

}  // namespace

TEST_CASE("webtransport stats: connection figures match the diagnostics, in W3C units", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  int echoed = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { ++echoed; });
  REQUIRE(echo_once(tl, c.session, 64 * 1024));
  for (int i = 0; i < 20; ++i) REQUIRE(c.session->send_datagram(pattern(100)).ok());
  REQUIRE(tl.run_until([&] { return echoed == 20; }, 10'000));

  const auto w = get_webtransport_stats(*c.session);
  const auto d = c.conn->diagnostics();  // same turn of the loop: same counters
  const double now_ms = detail::wall_seconds() * 1000.0;
  CHECK(std::abs(w.timestamp - now_ms) < 5000);
  CHECK(w.datagrams.timestamp == w.timestamp);
  CHECK(w.packets_sent == d.stats.packets_sent);
  CHECK(w.packets_received == d.stats.packets_received);
  CHECK(w.packets_lost == d.stats.packets_lost);
  // UDP payload, so above the application bytes it carried.
  CHECK(w.bytes_sent > 64 * 1024 + 20 * 100);
  CHECK(w.bytes_received > 64 * 1024 + 20 * 100);
  CHECK(w.bytes_sent < 2 * (64 * 1024) + 100 * 1500);  // no runaway counting on a lossless path
  // RTTs in milliseconds, as the W3C's DOMHighResTimeStamp.
  CHECK(w.smoothed_rtt == Approx(d.rtt * 1000.0));
  CHECK(w.min_rtt == Approx(d.min_rtt * 1000.0));
  CHECK(w.min_rtt > 0);
  CHECK(w.min_rtt <= w.smoothed_rtt + 1e-9);
  CHECK(w.smoothed_rtt < 200);  // loopback
  CHECK(w.rtt_variation >= 0);
  CHECK(w.rtt_variation < 200);
  REQUIRE(w.estimated_send_rate.has_value());
  CHECK(static_cast<double>(*w.estimated_send_rate) ==
        Approx(static_cast<double>(d.cwnd) * 8.0 / d.rtt).epsilon(0.001));
  CHECK(w.num_outgoing_streams_created == 1);
  CHECK(w.num_incoming_streams_created == 0);
  CHECK(w.datagrams.dropped_incoming == 0);
  CHECK(w.datagrams.expired_incoming == 0);
  CHECK(w.datagrams.expired_outgoing == 0);
  CHECK(w.datagrams.lost_outgoing == 0);
  close_all(tl, c.conn, server);
}

TEST_CASE("webtransport stats: dropped_incoming counts received datagrams the application never got",
          "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::shared_ptr<Session> server_session;
  server->route("/push", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    server_session = s;
    std::weak_ptr<Session> ws = s;
    // The client's stream asks for 40 datagrams in one burst.
    s->on_bidi_stream([ws](std::shared_ptr<Stream> st) {
      st->on_data([ws](std::span<const std::uint8_t>, bool fin) {
        auto s = ws.lock();
        if (!fin || !s) return;
        for (int i = 0; i < 40; ++i) (void)s->send_datagram(pattern(50));
      });
    });
  });
  ClientConfig cfg = client_config();
  cfg.max_pending_datagrams = 8;  // without on_datagram, 8 are held and the rest dropped
  cfg.datagram_send_queue = 16;
  auto c = connect(tl, server->port(), "/push", cfg);
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return server_session != nullptr; }));

  // Outgoing refusals (a full send queue) are not incoming drops.
  int refused = 0;
  for (int i = 0; i < 64; ++i)
    if (c.session->send_datagram(pattern(50)).errc == Errc::flow_control) ++refused;
  CHECK(refused > 0);

  c.session->open_bidi_stream([](const Error &err, std::shared_ptr<Stream> st) {
    if (!err) st->write_and_end(Bytes{'g', 'o'});
  });
  REQUIRE(tl.run_until([&] { return server_session->stats().datagrams_sent == 40; }));
  REQUIRE(tl.run_until([&] { return c.session->stats().datagrams_received >= 40; }, 5'000));
  const auto ss = c.session->stats();
  const auto w = get_webtransport_stats(*c.session);
  INFO(ss.datagrams_received << " received, " << ss.datagrams_dropped << " dropped in all, " << refused << " refused");
  CHECK(w.datagrams.dropped_incoming == ss.datagrams_received - 8);
  CHECK(w.datagrams.dropped_incoming == ss.incoming_datagrams_dropped);
  CHECK(ss.datagrams_dropped == ss.incoming_datagrams_dropped + static_cast<std::uint64_t>(refused));
  // The 8 held ones are still delivered once the application asks.
  int delivered = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { ++delivered; });
  REQUIRE(tl.run_until([&] { return delivered == 8; }, 5'000));
  CHECK(get_webtransport_stats(*c.session).num_outgoing_streams_created == 1);
  close_all(tl, c.conn, server);
}

TEST_CASE("webtransport stats: lost_outgoing follows the datagrams the impairment dropped", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::shared_ptr<Session> server_session;
  server->route("/sink", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    server_session = s;
    s->on_datagram([](std::span<const std::uint8_t>) {});
  });
  auto c = connect(tl, server->port(), "/sink", lossy_client_config(0.1, 29));
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return server_session != nullptr; }));
  // 300 datagrams of 1000 bytes (one per packet), 10 per loop turn.
  int sent = 0;
  REQUIRE(tl.run_until(
      [&] {
        for (int i = 0; i < 10 && sent < 300; ++i)
          if (c.session->send_datagram(pattern(1000)).ok()) ++sent;
        return sent == 300;
      },
      30'000));
  // A few round trips of acknowledgements (and probes) to declare the last losses.
  (void)echo_once(tl, c.session, 1000);  // traffic whose acks also cover the last datagrams
  tl.run_for(1000);
  const std::uint64_t arrived = server_session->stats().datagrams_received;
  const std::uint64_t really_lost = static_cast<std::uint64_t>(sent) - arrived;
  const auto w = get_webtransport_stats(*c.session);
  INFO(sent << " sent, " << arrived << " arrived, " << w.datagrams.lost_outgoing << " declared lost");
  REQUIRE(really_lost > 0);
  CHECK(w.datagrams.lost_outgoing > 0);
  // Loss detection finds what the path dropped, give or take the last few
  // packets and a rare spurious declaration.
  const double diff = std::abs(static_cast<double>(w.datagrams.lost_outgoing) - static_cast<double>(really_lost));
  CHECK(diff <= std::max(3.0, 0.15 * static_cast<double>(really_lost)));
  CHECK(w.packets_lost >= w.datagrams.lost_outgoing);
  close_all(tl, c.conn, server);
}
