// Connection over loopback: states and events through a whole life,
// diagnostics from the live QUIC connection, issues(), health monitoring and
// session bookkeeping.

#include <uvwt/uvwt.hpp>

#include <set>

#include "catch.hpp"
#include "common/clock.hpp"
#include "connection/connection_impl.hpp"
#include "quic/quic_connection.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

// Connects without a session (path ""), runs the loop until done.
Connected connect_bare(TestLoop &tl, std::uint16_t port, const ClientConfig &cfg = client_config(),
                       const std::string &host = "127.0.0.1") {
  return connect(tl, port, "", cfg, host);
}

void set_blackhole(const std::shared_ptr<Connection> &c, bool on) {
  ImpairmentConfig imp;
  imp.enabled = on;
  imp.blackhole = on;
  uvwt::testing::set_impairment(*c, imp);
}

// Sends `n` bytes on a bidi stream to the echo route and waits for the echo;
// `while_open` runs at every loop turn until the echo's FIN arrives (the
// stream is still open then).
bool echo_bytes(TestLoop &tl, const std::shared_ptr<Session> &s, std::size_t n, int timeout_ms,
                const std::function<void()> &while_open = {}) {
  auto got = std::make_shared<std::size_t>(0);
  auto fin = std::make_shared<bool>(false);
  auto failed = std::make_shared<bool>(false);
  s->open_bidi_stream([=](const Error &err, std::shared_ptr<Stream> st) {
    if (err) {
      *failed = true;
      return;
    }
    st->on_data([got, fin](std::span<const std::uint8_t> d, bool f) {
      *got += d.size();
      *fin = *fin || f;
    });
    st->on_error([failed](const Error &) { *failed = true; });
    auto off = std::make_shared<std::size_t>(0);
    auto pump = std::make_shared<std::function<void()>>();
    std::weak_ptr<Stream> ws = st;
    *pump = [ws, off, n, pump] {
      auto st = ws.lock();
      if (!st) return;
      while (*off < n && st->writable()) {
        const std::size_t k = std::min<std::size_t>(64 * 1024, n - *off);
        st->write(pattern(k, static_cast<std::uint32_t>(*off)));
        *off += k;
      }
      if (*off == n) {
        st->end();
        *pump = nullptr;
      }
    };
    st->on_writable([pump] {
      if (*pump) (*pump)();
    });
    (*pump)();
  });
  return tl.run_until(
             [&] {
               if (*fin || *failed) return true;
               if (while_open) while_open();
               return false;
             },
             timeout_ms) &&
         !*failed && *got == n;
}

// Moves the library's wall clock (last_activity, issues()) ahead for one scope.
struct WallClockAhead {
  explicit WallClockAhead(double seconds) { detail::wall_clock_offset = seconds; }
  ~WallClockAhead() { detail::wall_clock_offset = 0.0; }
  WallClockAhead(const WallClockAhead &) = delete;
  WallClockAhead &operator=(const WallClockAhead &) = delete;
};

// Collects log lines for one scope (info and above).
struct LogCapture {
  std::vector<std::pair<LogLevel, std::string>> lines;
  LogLevel old = log_level();
  LogCapture() {
    set_log_hook([this](LogLevel l, std::string_view m) { lines.emplace_back(l, std::string(m)); });
    set_log_level(LogLevel::info);
  }
  ~LogCapture() {
    set_log_level(old);
    set_log_hook(nullptr);
  }
  LogCapture(const LogCapture &) = delete;
  LogCapture &operator=(const LogCapture &) = delete;
  [[nodiscard]] std::size_t count(LogLevel l, const std::string &part) const {
    std::size_t n = 0;
    for (const auto &[lv, m] : lines) n += (lv == l && m.find(part) != std::string::npos) ? 1 : 0;
    return n;
  }
};

std::uint64_t probes_sent(const std::shared_ptr<Connection> &c) {
  auto impl = std::dynamic_pointer_cast<detail::ConnectionImpl>(c);
  REQUIRE(impl);
  return impl->health_probes_sent();
}

}  // namespace

TEST_CASE("connection: states and events through a whole life, closed with a code", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  std::shared_ptr<Connection> server_conn;
  Error server_closed_err;
  bool server_closed = false;
  server->on_connection([&](std::shared_ptr<Connection> c) {
    if (server_conn) return;  // the first connection is the one under test
    server_conn = c;
    CHECK_FALSE(c->is_client());
    CHECK(c->state() == ConnectionState::connecting);  // handed out at the first Initial
    c->on_closed([&](const Error &e) {
      server_closed_err = e;
      server_closed = true;
    });
  });

  bool established = false;
  auto r = std::make_shared<Connected>();
  Connection::create_client(&tl.loop, client_config(), "127.0.0.1", server->port(), "", std::nullopt,
                            [&, r](const Error &e, std::shared_ptr<Connection> c) {
                              r->err = e;
                              r->conn = c;
                              r->done = true;
                              REQUIRE(c);
                              CHECK(c->state() == ConnectionState::connected);
                              c->on_established([&] { established = true; });
                            });
  CHECK_FALSE(r->done);
  REQUIRE(tl.run_until([&] { return r->done && established; }));
  REQUIRE(r->err.ok());
  auto conn = r->conn;
  CHECK(conn->is_client());
  CHECK(conn->is_connected());
  CHECK_FALSE(conn->is_closing());
  CHECK_FALSE(conn->is_closed());
  CHECK(conn->connection_id().size() == 16);
  CHECK(conn->close_error().ok());
  REQUIRE(conn->remote_address());
  CHECK(conn->remote_address()->host == "127.0.0.1");
  CHECK(conn->remote_address()->port == server->port());
  REQUIRE(conn->local_address());
  CHECK(conn->local_address()->port != 0);
  CHECK(conn->config().idle_timeout == client_config().idle_timeout);
  const auto ph = conn->protocol_handler().peer_settings();
  CHECK(ph.received);
  CHECK(ph.connect_protocol);
  CHECK(ph.h3_datagram);
  CHECK(conn->protocol_handler().session_count() == 0);

  auto info = conn->info();
  CHECK(info.connection_id == conn->connection_id());
  CHECK(info.state == ConnectionState::connected);
  REQUIRE(info.established_at);
  CHECK_FALSE(info.closed_at);
  REQUIRE(info.last_activity);
  CHECK(info.packets_sent > 0);
  CHECK(info.packets_received > 0);
  CHECK(info.error_count == 0);
  CHECK(info.uptime() >= 0.0);

  // record_activity() moves the activity clock the stale rule reads.
  const double before = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  tl.run_for(20);
  conn->record_activity();
  REQUIRE(conn->info().last_activity);
  CHECK(*conn->info().last_activity >= before);

  // A second connection has its own id.
  auto other = connect_bare(tl, server->port());
  REQUIRE(other.err.ok());
  CHECK(other.conn->connection_id() != conn->connection_id());

  Error ready_err(Errc::timeout, "not called");
  conn->wait_ready(std::chrono::milliseconds(1000), [&](const Error &e) { ready_err = e; });
  REQUIRE(tl.run_until([&] { return ready_err.errc != Errc::timeout; }));
  CHECK(ready_err.ok());

  // No session yet: waiting for one times out.
  Error ws_err;
  bool ws_done = false;
  conn->wait_for_ready_session(std::chrono::milliseconds(100), [&](const Error &e, SessionId) {
    ws_err = e;
    ws_done = true;
  });
  REQUIRE(tl.run_until([&] { return ws_done; }));
  CHECK(ws_err.errc == Errc::timeout);
  // With a session opening, the wait ends with its id.
  ws_done = false;
  SessionId ready_id = 1;
  conn->wait_for_ready_session(std::chrono::milliseconds(5000), [&](const Error &e, SessionId id) {
    ws_err = e;
    ready_id = id;
    ws_done = true;
  });
  std::shared_ptr<Session> session;
  conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session> s) {
    CHECK(e.ok());
    session = s;
  });
  REQUIRE(tl.run_until([&] { return ws_done && session; }));
  CHECK(ws_err.ok());
  CHECK(ready_id == session->id());
  CHECK(conn->get_ready_session_id() == session->id());

  REQUIRE(echo_bytes(tl, session, 100'000, 10'000));
  CHECK(conn->info().bytes_received >= 100'000);
  // Sent bytes count once acknowledged.
  CHECK(tl.run_until([&] { return conn->info().bytes_sent >= 100'000; }, 2'000));

  Error closed_err(Errc::timeout, "not called");
  bool closed_event = false, close_done = false, wait_closed_done = false, lost = false;
  conn->on_lost([&](const Error &) { lost = true; });
  conn->on_closed([&](const Error &e) {
    closed_err = e;
    closed_event = true;
  });
  conn->wait_closed([&] { wait_closed_done = true; });
  conn->close(0x2a, "bye", [&] { close_done = true; });
  CHECK(conn->state() == ConnectionState::closing);
  CHECK(conn->is_closing());
  CHECK_FALSE(close_done);
  REQUIRE(tl.run_until([&] { return closed_event && close_done && wait_closed_done && server_closed; }));
  CHECK(closed_err.ok());
  CHECK_FALSE(lost);  // an orderly close is not a loss
  CHECK(conn->state() == ConnectionState::closed);
  CHECK(conn->is_closed());
  CHECK_FALSE(conn->is_connected());
  CHECK(conn->close_error().ok());
  info = conn->info();
  REQUIRE(info.closed_at);
  CHECK(*info.closed_at >= *info.established_at);
  const double up = info.uptime();
  CHECK(up > 0.0);
  CHECK(conn->info().uptime() == up);  // frozen once closed

  // The server saw the application code and reason.
  CHECK(server_closed_err.errc == Errc::connection);
  CHECK(server_closed_err.code == 0x2a);
  CHECK(server_closed_err.message.find("bye") != std::string::npos);
  REQUIRE(server_conn);
  CHECK(server_conn->state() == ConnectionState::closed);
  CHECK(server_conn->close_error().code == 0x2a);

  // Waiting on a closed connection answers at once (on a later turn).
  bool late = false;
  conn->wait_closed([&] { late = true; });
  CHECK_FALSE(late);
  REQUIRE(tl.run_until([&] { return late; }));
  Error late_ready;
  bool late_ready_done = false;
  conn->wait_ready(std::chrono::milliseconds(100), [&](const Error &e) {
    late_ready = e;
    late_ready_done = true;
  });
  REQUIRE(tl.run_until([&] { return late_ready_done; }));
  CHECK(late_ready.errc == Errc::connection);

  close_all(tl, other.conn, server);
}

TEST_CASE("connection: a server that goes away closes the client connection", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  Error closed_err;
  bool closed = false;
  c.conn->on_closed([&](const Error &e) {
    closed_err = e;
    closed = true;
  });
  std::set<ConnectionState> seen;
  bool server_done = false;
  server->close([&] { server_done = true; });
  REQUIRE(tl.run_until([&] {
    seen.insert(c.conn->state());
    return closed && server_done;
  }));
  // The peer's CONNECTION_CLOSE starts the draining period, then it is closed.
  CHECK(seen.count(ConnectionState::draining) == 1);
  CHECK(c.conn->state() == ConnectionState::closed);
  CHECK(closed_err.errc == Errc::connection);
  CHECK(closed_err.message.find("server closing") != std::string::npos);
  CHECK(c.conn->close_error().errc == Errc::connection);
  CHECK(c.session->is_closed());
  close_all(tl, c.conn, nullptr);
}

TEST_CASE("connection: GOAWAY puts the connection in DRAINING", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  bool server_done = false;
  server->shutdown(std::chrono::milliseconds(2000), [&] { server_done = true; });
  REQUIRE(tl.run_until([&] { return c.conn->state() == ConnectionState::draining; }));
  CHECK(c.conn->protocol_handler().goaway_received());
  CHECK(c.conn->is_closing());
  CHECK_FALSE(c.conn->is_connected());
  close_all(tl, c.conn, nullptr);
  REQUIRE(tl.run_until([&] { return server_done; }));
}

TEST_CASE("connection: a peer that vanishes is lost (FAILED) after the idle timeout", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  ClientConfig cfg = client_config();
  cfg.idle_timeout = std::chrono::milliseconds(600);
  auto c = connect_bare(tl, server->port(), cfg);
  REQUIRE(c.err.ok());
  Error closed_err, lost_err;
  bool closed = false, lost = false, lost_first = false;
  c.conn->on_lost([&](const Error &e) {
    lost_err = e;
    lost = true;
    lost_first = !closed;
  });
  c.conn->on_closed([&](const Error &e) {
    closed_err = e;
    closed = true;
  });
  set_blackhole(c.conn, true);
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  CHECK(lost);
  CHECK(lost_first);
  CHECK(lost_err.errc == Errc::timeout);
  CHECK(c.conn->state() == ConnectionState::failed);
  CHECK(c.conn->is_closed());
  CHECK(closed_err.errc == Errc::timeout);
  CHECK(c.conn->close_error().errc == Errc::timeout);
  CHECK(c.conn->info().error_count >= 1);
  const auto issues = c.conn->diagnostics().issues();
  REQUIRE_FALSE(issues.empty());
  CHECK(issues.front() == "Connection not established");
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: connecting to nothing fails and reaches no CONNECTED state", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  const std::uint16_t port = server->port();
  close_all(tl, nullptr, server);
  ClientConfig cfg = client_config();
  cfg.connect_timeout = std::chrono::milliseconds(1'000);
  auto c = connect_bare(tl, port, cfg);
  CHECK_FALSE(c.err.ok());
  CHECK((c.err.errc == Errc::refused || c.err.errc == Errc::timeout));
  CHECK_FALSE(c.conn);
}

TEST_CASE("connection: diagnostics come from the live QUIC connection", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  // Packets in flight follow bytes in flight during the transfer: never zero
  // while bytes are unacknowledged, never fewer than the bytes need.
  std::uint64_t max_in_flight = 0, inconsistent = 0, samples = 0;
  const std::uint64_t max_pkt = 1452;  // the largest packet uvwt sends
  REQUIRE(echo_bytes(tl, c.session, 2u << 20, 20'000, [&] {
    const auto s = c.conn->diagnostics();
    ++samples;
    max_in_flight = std::max(max_in_flight, s.packets_in_flight);
    if ((s.bytes_in_flight > 0) != (s.packets_in_flight > 0) || s.packets_in_flight * max_pkt < s.bytes_in_flight ||
        s.packets_in_flight > s.bytes_in_flight)
      ++inconsistent;
  }));
  INFO(samples << " samples during the transfer");
  CHECK(max_in_flight > 1);
  CHECK(inconsistent == 0);
  // Idle once everything is acknowledged: nothing in flight.
  REQUIRE(tl.run_until([&] { return c.conn->diagnostics().bytes_in_flight == 0; }, 5'000));
  CHECK(c.conn->diagnostics().packets_in_flight == 0);
  const auto d = c.conn->diagnostics();
  CHECK(d.rtt > 0.0);
  CHECK(d.rtt < 0.2);  // loopback
  CHECK(d.min_rtt > 0.0);
  CHECK(d.min_rtt <= d.rtt + 1e-9);
  CHECK(d.cwnd >= 2 * 1200);
  CHECK(d.stats.packets_sent > 100);
  CHECK(d.stats.packets_received > 100);
  CHECK(d.stats.bytes_sent >= 2u << 20);
  CHECK(d.packet_loss_rate < 0.01);
  CHECK(d.issues().empty());
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: packet loss is measured under impairment", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  const ClientConfig cfg = lossy_client_config(0.05, 11);
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  // Losses show while the stream is still open, not only once it closed.
  std::uint64_t lost_while_open = 0;
  double rate_while_open = 0;
  REQUIRE(echo_bytes(tl, c.session, 3u << 20, 60'000, [&] {
    const auto s = c.conn->diagnostics();
    lost_while_open = std::max(lost_while_open, s.stats.packets_lost);
    rate_while_open = std::max(rate_while_open, s.packet_loss_rate);
  }));
  CHECK(lost_while_open > 0);
  CHECK(rate_while_open > 0.0);
  const auto d = c.conn->diagnostics();
  INFO("lost " << d.stats.packets_lost << " of " << d.stats.packets_sent);
  CHECK(d.stats.packets_lost > 0);
  CHECK(d.stats.packets_lost >= lost_while_open);
  CHECK(d.packet_loss_rate > 0.005);
  CHECK(d.packet_loss_rate < 0.3);
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: datagram losses count as packet loss under impairment", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  const ClientConfig cfg = lossy_client_config(0.05, 23);
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  const auto at_start = c.conn->diagnostics().stats.packets_lost;
  // Datagrams only: 20 per loop turn, 600 in all, each in its own packet
  // (a datagram of 1000 bytes leaves no room for a second).
  int echoed = 0, sent = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { ++echoed; });
  const Bytes payload = pattern(1000);
  REQUIRE(tl.run_until(
      [&] {
        for (int i = 0; i < 20 && sent < 600; ++i)
          if (c.session->send_datagram(payload).ok()) ++sent;
        return sent == 600;
      },
      30'000));
  // Let the last acknowledgements (and loss detections) arrive.
  tl.run_for(500);
  const auto d = c.conn->diagnostics();
  const auto qs = std::static_pointer_cast<detail::ConnectionImpl>(c.conn)->quic()->stats();
  INFO("lost " << d.stats.packets_lost << " of " << d.stats.packets_sent << ", " << qs.datagrams_lost
               << " with datagrams; " << echoed << " of " << sent << " echoed");
  CHECK(echoed > 0);
  CHECK(echoed < sent);  // the impairment did drop some
  CHECK(qs.datagrams_lost > 0);
  CHECK(d.stats.packets_lost > at_start);
  CHECK(d.packet_loss_rate > 0.005);
  CHECK(d.packet_loss_rate < 0.3);
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: diagnostics issues follow the reference rules", "[connection]") {
  ConnectionDiagnostics d;
  d.stats.state = ConnectionState::connected;
  d.rtt = 0.010;
  CHECK(d.issues().empty());

  SECTION("not established") {
    for (auto s : {ConnectionState::idle, ConnectionState::connecting, ConnectionState::closing,
                   ConnectionState::draining, ConnectionState::closed, ConnectionState::failed}) {
      d.stats.state = s;
      REQUIRE(d.issues() == std::vector<std::string>{"Connection not established"});
    }
  }
  SECTION("error count") {
    d.stats.error_count = 10;
    CHECK(d.issues().empty());
    d.stats.error_count = 11;
    CHECK(d.issues() == std::vector<std::string>{"High error count: 11"});
  }
  SECTION("stale") {
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    d.stats.last_activity = now - 299;
    CHECK(d.issues().empty());
    d.stats.last_activity = now - 301;
    CHECK(d.issues() == std::vector<std::string>{"Connection appears stale (no activity in 5+ minutes)"});
  }
  // Checked on a snapshot only: a real connection cannot get there. Every
  // QUIC packet counts, handshake packets included, so a connection that
  // ever received anything is out, and one that never did cannot complete
  // its handshake: the client repeats its Initial only on PTO, with
  // exponential backoff (about ten packets before the default 10 s
  // handshake timeout; a thousand would take ages), and a server connection
  // exists only because it received a packet. (Until the handshake is
  // confirmed there is no congestion window to speak of either: the
  // initial window and PTO probes only.)
  SECTION("sending without receiving") {
    d.stats.packets_sent = 1000;
    CHECK(d.issues().empty());
    d.stats.packets_sent = 1001;
    CHECK(d.issues() == std::vector<std::string>{"Data is being sent, but no packets are being received"});
    d.stats.packets_received = 1;
    CHECK(d.issues().empty());
  }
  SECTION("latency") {
    d.rtt = 1.0;
    CHECK(d.issues().empty());
    d.rtt = 1.2345;
    CHECK(d.issues() == std::vector<std::string>{"High latency (RTT): 1234.5ms"});
  }
  SECTION("several at once, in the reference order") {
    d.stats.state = ConnectionState::failed;
    d.stats.error_count = 12;
    d.rtt = 2.0;
    CHECK(d.issues() == std::vector<std::string>{"Connection not established", "High error count: 12",
                                                 "High latency (RTT): 2000.0ms"});
  }
}

TEST_CASE("connection: issues from real conditions (latency, error count)", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  ClientConfig cfg = client_config();
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).delay_ms = 520;  // each way: RTT above one second
  cfg.connect_timeout = std::chrono::milliseconds(15'000);
  cfg.handshake_timeout = std::chrono::milliseconds(15'000);
  auto c = connect_bare(tl, server->port(), cfg);
  REQUIRE(c.err.ok());
  auto issues = c.conn->diagnostics().issues();
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].rfind("High latency (RTT): ", 0) == 0);
  CHECK(c.conn->diagnostics().rtt > 1.0);

  // Every unanswered health probe counts as an error.
  auto fast = connect_bare(tl, server->port());
  REQUIRE(fast.err.ok());
  set_blackhole(fast.conn, true);
  fast.conn->monitor_health(std::chrono::milliseconds(20), std::chrono::milliseconds(20), [](const HealthReport &) {});
  REQUIRE(tl.run_until([&] { return fast.conn->info().error_count > 10; }, 5'000));
  fast.conn->stop_health_monitor();
  const auto d = fast.conn->diagnostics();
  issues = d.issues();
  REQUIRE(issues.size() == 1);
  CHECK(issues[0] == "High error count: " + std::to_string(d.stats.error_count));
  set_blackhole(fast.conn, false);
  set_blackhole(c.conn, false);  // no delayed close handshake
  close_all(tl, c.conn, nullptr);
  close_all(tl, fast.conn, server);
}

TEST_CASE("connection: monitor_health detects a blackholed peer and its recovery", "[connection][loop][health]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto c = connect_bare(tl, server->port());
  REQUIRE(c.err.ok());
  LogCapture log;
  std::vector<HealthReport> reports;
  c.conn->monitor_health(std::chrono::milliseconds(100), std::chrono::milliseconds(150),
                         [&](const HealthReport &r) { reports.push_back(r); });
  tl.run_for(400);
  CHECK(reports.empty());  // healthy and unchanged: nothing to report
  CHECK(probes_sent(c.conn) >= 1);
  CHECK(log.count(LogLevel::warning, "unhealthy") == 0);

  set_blackhole(c.conn, true);
  REQUIRE(tl.run_until([&] { return !reports.empty(); }, 3'000));
  CHECK_FALSE(reports.back().healthy);
  CHECK_FALSE(reports.back().reason.empty());
  CHECK(c.conn->is_connected());  // unhealthy is not closed
  CHECK(log.count(LogLevel::warning, c.conn->connection_id() + " unhealthy: no answer to PING") >= 1);

  set_blackhole(c.conn, false);
  REQUIRE(tl.run_until([&] { return reports.back().healthy; }, 3'000));
  CHECK(reports.back().rtt > 0.0);
  CHECK(reports.back().rtt < 1.0);
  CHECK(log.count(LogLevel::info, c.conn->connection_id() + " recovered (rtt ") == 1);

  // The monitor stops with the connection: the server stays up, and several
  // check intervals later no probe has gone out and nothing was reported.
  const auto n = reports.size();
  bool closed = false;
  c.conn->close(0, "done", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  const auto probes = probes_sent(c.conn);
  tl.run_for(500);
  CHECK(probes_sent(c.conn) == probes);
  CHECK(reports.size() == n);
  close_all(tl, nullptr, server);
}

TEST_CASE("connection: monitor_health restarted while a probe is outstanding probes again",
          "[connection][loop][health]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto c = connect_bare(tl, server->port());
  REQUIRE(c.err.ok());
  set_blackhole(c.conn, true);
  // A long rtt_timeout keeps the first probe outstanding (unanswered, not yet judged).
  std::vector<HealthReport> first, second;
  c.conn->monitor_health(std::chrono::milliseconds(20), std::chrono::milliseconds(60'000),
                         [&](const HealthReport &r) { first.push_back(r); });
  REQUIRE(tl.run_until([&] { return probes_sent(c.conn) == 1; }, 3'000));
  tl.run_for(100);
  CHECK(probes_sent(c.conn) == 1);  // one outstanding probe blocks the next

  SECTION("restarted directly") {}
  SECTION("stopped, then started again") { c.conn->stop_health_monitor(); }
  c.conn->monitor_health(std::chrono::milliseconds(20), std::chrono::milliseconds(50),
                         [&](const HealthReport &r) { second.push_back(r); });
  REQUIRE(tl.run_until([&] { return !second.empty(); }, 3'000));
  CHECK(probes_sent(c.conn) >= 2);
  CHECK_FALSE(second.front().healthy);
  CHECK(first.empty());  // the replaced monitor's callback is gone
  c.conn->stop_health_monitor();
  set_blackhole(c.conn, false);
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: session info for several sessions on one connection", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  server->route("/other", echo_handler());
  auto c = connect_bare(tl, server->port());
  REQUIRE(c.err.ok());
  CHECK(c.conn->get_all_sessions().empty());
  CHECK_FALSE(c.conn->get_ready_session_id());

  std::vector<std::shared_ptr<Session>> sessions;
  const std::vector<std::string> paths{"/echo", "/other", "/echo"};
  for (const auto &p : paths) {
    c.conn->open_session(p, {{"x-test", p}}, [&](const Error &e, std::shared_ptr<Session> s) {
      REQUIRE(e.ok());
      sessions.push_back(s);
    });
  }
  REQUIRE(tl.run_until([&] { return sessions.size() == 3; }));
  const auto all = c.conn->get_all_sessions();
  REQUIRE(all.size() == 3);
  std::set<SessionId> ids;
  for (const auto &i : all) {
    CHECK(i.session_id % 4 == 0);
    CHECK(i.state == SessionState::connected);
    CHECK(i.ready_at >= i.created_at);
    CHECK_FALSE(i.dialect.empty());
    ids.insert(i.session_id);
  }
  CHECK(ids.size() == 3);
  CHECK(c.conn->protocol_handler().session_count() == 3);
  const auto handled = c.conn->protocol_handler().sessions();
  REQUIRE(handled.size() == 3);
  for (const auto &s : sessions) CHECK(std::find(handled.begin(), handled.end(), s) != handled.end());
  for (const auto &s : sessions) {
    auto i = c.conn->get_session_info(s->id());
    REQUIRE(i);
    CHECK(i->session_id == s->id());
    CHECK(i->path == s->info().path);
    CHECK(c.conn->get_session(s->id()) == s);
  }
  CHECK(c.conn->get_session_info(sessions[1]->id())->path == "/other");
  REQUIRE(c.conn->get_ready_session_id());
  CHECK(ids.count(*c.conn->get_ready_session_id()) == 1);
  CHECK_FALSE(c.conn->get_session_info(2));  // not a session id
  CHECK_FALSE(c.conn->get_session(1000));

  bool closed = false;
  sessions[0]->close(7, "done", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  const auto gone = c.conn->get_session_info(sessions[0]->id());
  CHECK((!gone || gone->state == SessionState::closed));
  REQUIRE(c.conn->get_ready_session_id());
  CHECK(*c.conn->get_ready_session_id() != sessions[0]->id());
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: create_server accepts connections and reports their sessions", "[connection][loop]") {
  TestLoop tl;
  Error err;
  std::vector<std::shared_ptr<Connection>> accepted;
  std::vector<std::shared_ptr<Session>> sessions;
  auto server = Connection::create_server(
      &tl.loop, server_config(), "127.0.0.1", 0,
      [&](std::shared_ptr<Connection> c) {
        CHECK_FALSE(c->is_client());
        c->on_session([&](std::shared_ptr<Session> s) { sessions.push_back(s); });
        accepted.push_back(c);
      },
      err);
  REQUIRE(err.ok());
  REQUIRE(server);
  auto c = connect(tl, server->port(), "/any/path?x=1");
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return accepted.size() == 1 && sessions.size() == 1; }));
  CHECK(accepted[0]->state() == ConnectionState::connected);
  CHECK(sessions[0]->info().path == "/any/path?x=1");
  CHECK(accepted[0]->get_all_sessions().size() == 1);
  // A bad listen address fails with an error and leaves nothing behind.
  Error bad;
  auto none = Connection::create_server(&tl.loop, server_config(), "not-an-ip", 0, {}, bad);
  CHECK_FALSE(none);
  CHECK(bad.errc == Errc::configuration);
  sessions.clear();
  accepted.clear();
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: create_client hands the connection over at once; every state is reported",
          "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<ConnectionState> states;
  bool done = false, lost = false;
  Error cb_err(Errc::timeout, "not called");
  std::shared_ptr<Connection> cb_conn;
  auto conn = Connection::create_client(&tl.loop, client_config(), "127.0.0.1", server->port(), "", std::nullopt,
                                        [&](const Error &e, std::shared_ptr<Connection> c) {
                                          cb_err = e;
                                          cb_conn = c;
                                          done = true;
                                        });
  REQUIRE(conn);
  CHECK(conn->state() == ConnectionState::idle);  // resolving: nothing on the wire yet
  CHECK_FALSE(conn->local_address());
  CHECK(conn->is_client());
  conn->on_state_change([&](ConnectionState s) { states.push_back(s); });
  conn->on_lost([&](const Error &) { lost = true; });

  // wait_ready on a connection that is not connected yet: a short wait times
  // out, a longer one ends when it connects.
  Error short_wait(Errc::closed, "not called"), long_wait(Errc::closed, "not called");
  conn->wait_ready(std::chrono::milliseconds(1), [&](const Error &e) { short_wait = e; });
  conn->wait_ready(std::chrono::milliseconds(5'000), [&](const Error &e) {
    long_wait = e;
    CHECK(conn->state() == ConnectionState::connected);
  });
  REQUIRE(tl.run_until([&] { return states.size() >= 1; }));
  CHECK(states.front() == ConnectionState::connecting);
  CHECK(conn->state() == ConnectionState::connecting);
  CHECK_FALSE(conn->is_connected());
  CHECK(conn->local_address());
  REQUIRE(tl.run_until([&] { return done && long_wait.errc != Errc::closed; }));
  CHECK(short_wait.errc == Errc::timeout);
  CHECK(long_wait.ok());
  REQUIRE(cb_err.ok());
  CHECK(cb_conn == conn);
  CHECK(states == std::vector<ConnectionState>{ConnectionState::connecting, ConnectionState::connected});

  bool closed = false;
  conn->close(0, "bye", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  CHECK(states == std::vector<ConnectionState>{ConnectionState::connecting, ConnectionState::connected,
                                               ConnectionState::closing, ConnectionState::closed});
  CHECK_FALSE(lost);
  close_all(tl, nullptr, server);
}

TEST_CASE("connection: closed while IDLE, the connect callback gets the error", "[connection][loop]") {
  TestLoop tl;
  std::vector<ConnectionState> states;
  Error cb_err;
  bool done = false, closed = false;
  auto conn = Connection::create_client(&tl.loop, client_config(), "127.0.0.1", 9, "/x", std::nullopt,
                                        [&](const Error &e, std::shared_ptr<Connection> c) {
                                          cb_err = e;
                                          done = true;
                                          CHECK_FALSE(c);
                                        });
  REQUIRE(conn);
  conn->on_state_change([&](ConnectionState s) { states.push_back(s); });
  conn->close(0, "changed my mind", [&] { closed = true; });
  CHECK(conn->state() == ConnectionState::closed);
  REQUIRE(tl.run_until([&] { return done && closed; }));
  CHECK(cb_err.errc == Errc::connection);
  CHECK(states == std::vector<ConnectionState>{ConnectionState::closed});
}

TEST_CASE("connection: a host that cannot be resolved is FAILED and lost", "[connection][loop]") {
  TestLoop tl;
  Error cb_err, lost_err;
  bool done = false, lost = false;
  auto conn = Connection::create_client(&tl.loop, client_config(), "no-such-host.invalid", 4433, "", std::nullopt,
                                        [&](const Error &e, std::shared_ptr<Connection>) {
                                          cb_err = e;
                                          done = true;
                                        });
  REQUIRE(conn);
  conn->on_lost([&](const Error &e) {
    lost_err = e;
    lost = true;
  });
  REQUIRE(tl.run_until([&] { return done && lost; }, 20'000));
  CHECK(cb_err.errc == Errc::dns);
  CHECK(lost_err.errc == Errc::dns);
  CHECK(conn->state() == ConnectionState::failed);
  bool finished = false;
  conn->wait_closed([&] { finished = true; });
  REQUIRE(tl.run_until([&] { return finished; }));
}

TEST_CASE("connection: proxy_addr nobody answers fails on the proxy leg, never directly", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->set_default_handler(echo_handler());
  uv_udp_t u;  // a loopback port nobody listens on
  uv_udp_init(&tl.loop, &u);
  sockaddr_in a{};
  uv_ip4_addr("127.0.0.1", 0, &a);
  REQUIRE(uv_udp_bind(&u, reinterpret_cast<const sockaddr *>(&a), 0) == 0);
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_udp_getsockname(&u, reinterpret_cast<sockaddr *>(&ss), &len);
  const auto nobody = ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
  uv_close(reinterpret_cast<uv_handle_t *>(&u), nullptr);
  Error err;
  bool done = false;
  std::shared_ptr<Connection> got;
  auto conn =
      Connection::create_client(&tl.loop, client_config(), "127.0.0.1", server->port(), "/",
                                Address{"127.0.0.1", nobody}, [&](const Error &e, std::shared_ptr<Connection> c) {
                                  err = e;
                                  got = c;
                                  done = true;
                                });
  CHECK(conn);
  CHECK_FALSE(done);  // answered on a later turn
  REQUIRE(tl.run_until([&] { return done; }));
  CHECK(err.errc == Errc::proxy_connection);
  CHECK_FALSE(got);
  CHECK(server->stats().connections_accepted == 0);
  bool closed = false;
  server->close([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
}

TEST_CASE("connection: server-side events: session request, session, established", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  std::shared_ptr<Connection> sc;
  std::vector<std::string> events;
  ConnectionState state_at_established = ConnectionState::idle;
  server->on_connection([&](std::shared_ptr<Connection> c) {
    sc = c;
    CHECK(c->state() == ConnectionState::connecting);
    c->on_established([&, c] {
      events.push_back("established");
      state_at_established = c->state();
    });
    c->on_session_request([&](const SessionRequest &r) { events.push_back("request " + r.path + "?" + r.query); });
    c->on_session([&](std::shared_ptr<Session> s) { events.push_back("session " + s->info().path); });
  });
  auto c = connect(tl, server->port(), "/echo?a=1");
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return events.size() == 3; }));
  CHECK(events == std::vector<std::string>{"established", "request /echo?a=1", "session /echo?a=1"});
  CHECK(state_at_established == ConnectionState::connected);
  // A rejected request is still a request, with no session after it.
  bool rejected = false;
  c.conn->open_session("/nowhere", {}, [&](const Error &e, std::shared_ptr<Session> s) {
    CHECK(e.errc == Errc::http_status);
    CHECK_FALSE(s);
    rejected = true;
  });
  REQUIRE(tl.run_until([&] { return rejected; }));
  tl.run_for(50);
  REQUIRE(events.size() == 4);
  CHECK(events[3] == "request /nowhere?");
  sc.reset();
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: create_server does not hand over a connection whose handshake failed", "[connection][loop]") {
  TestLoop tl;
  Error err;
  ServerConfig scfg = server_config();
  scfg.handshake_timeout = std::chrono::milliseconds(300);
  std::size_t accepted = 0;
  auto server = Connection::create_server(
      &tl.loop, scfg, "127.0.0.1", 0, [&](std::shared_ptr<Connection>) { ++accepted; }, err);
  REQUIRE(err.ok());
  // Each way 400 ms: the server has the client's Initial at 400 ms and its
  // next flight not before 1200 ms, long after its 300 ms handshake timeout.
  ClientConfig cfg = client_config();
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).delay_ms = 400;
  cfg.connect_timeout = std::chrono::milliseconds(2'000);
  auto c = connect_bare(tl, server->port(), cfg);
  CHECK_FALSE(c.err.ok());
  // (A retransmitted Initial may start another server connection after the
  // first timed out: it fails the same way.)
  REQUIRE(tl.run_until([&] { return server->stats().connections_accepted >= 1 && server->connections().empty(); }));
  tl.run_for(50);
  CHECK(accepted == 0);
  // A healthy connection is still handed over.
  auto good = connect_bare(tl, server->port());
  REQUIRE(good.err.ok());
  REQUIRE(tl.run_until([&] { return accepted == 1; }));
  close_all(tl, good.conn, server);
}

TEST_CASE("connection: the idle policy closes a connection without application activity", "[connection][loop][idle]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());

  SECTION("no activity: closed after the period") {
    auto c = connect_bare(tl, server->port());
    REQUIRE(c.err.ok());
    Error closed_err;
    bool closed = false, lost = false;
    c.conn->on_closed([&](const Error &e) {
      closed_err = e;
      closed = true;
    });
    c.conn->on_lost([&](const Error &) { lost = true; });
    const auto start = std::chrono::steady_clock::now();
    c.conn->set_idle_timeout(std::chrono::milliseconds(300));
    REQUIRE(tl.run_until([&] { return closed; }, 5'000));
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= std::chrono::milliseconds(300));
    CHECK(c.conn->state() == ConnectionState::closed);  // closed by policy, not lost
    CHECK_FALSE(lost);
    CHECK(closed_err.errc == Errc::timeout);
    CHECK(closed_err.message.find("no application activity for 300 ms") != std::string::npos);
    CHECK(c.conn->close_error().errc == Errc::timeout);
    close_all(tl, c.conn, nullptr);
  }
  SECTION("record_activity() keeps it open beyond the period (on the test's clock)") {
    auto c = connect_bare(tl, server->port());
    REQUIRE(c.err.ok());
    // The policy reads the test's clock and the test makes its timer's
    // checks: minutes pass without waiting, and no loop stall can make a
    // record come late.
    auto clock = std::make_shared<std::uint64_t>(1'000'000'000);
    testing::set_idle_clock(*c.conn, [clock] { return *clock; });
    constexpr std::uint64_t kMinuteNs = 60'000'000'000ULL;
    c.conn->set_idle_timeout(std::chrono::minutes(10));  // its real timer never fires during the test
    for (int i = 0; i < 15; ++i) {                       // 135 minutes of records 9 minutes apart: many periods
      *clock += 9 * kMinuteNs;
      testing::run_idle_check(*c.conn);
      REQUIRE(c.conn->is_connected());
      c.conn->record_activity();
    }
    // Then idle: open one nanosecond short of a period, closed at the period.
    *clock += 10 * kMinuteNs - 1;
    testing::run_idle_check(*c.conn);
    REQUIRE(c.conn->is_connected());
    *clock += 1;
    testing::run_idle_check(*c.conn);
    CHECK_FALSE(c.conn->is_connected());
    REQUIRE(tl.run_until([&] { return c.conn->is_closed(); }, 5'000));
    CHECK(c.conn->close_error().errc == Errc::timeout);
    CHECK(c.conn->close_error().message.find("no application activity for 600000 ms") != std::string::npos);
    close_all(tl, c.conn, nullptr);
  }
  SECTION("sending alone keeps it open") {
    // The server takes the session and never answers: only our sends are activity.
    std::vector<std::shared_ptr<Session>> held;  // kept open, never answered
    server->route("/silent",
                  [&held](std::shared_ptr<Session> s, const SessionRequest &) { held.push_back(std::move(s)); });
    auto c = connect(tl, server->port(), "/silent");
    REQUIRE(c.err.ok());
    REQUIRE(c.session);
    // A period well above the 100 ms between sends: sanitizer builds on a busy
    // machine can stall a loop turn for a good part of it.
    c.conn->set_idle_timeout(std::chrono::milliseconds(1'000));
    const Bytes ping(32, 7);
    for (int i = 0; i < 15; ++i) {  // 1.5 s of datagrams, longer than a period
      tl.run_for(100);
      const Error sent = c.session->send_datagram(ping);
      const auto ci = c.session->info().close_info;
      INFO("round " << i << ": " << sent.to_string()
                    << "; session closed: " << (ci ? std::to_string(ci->code) + " " + ci->reason : std::string("no")));
      REQUIRE(sent.ok());
      REQUIRE(c.conn->is_connected());
    }
    std::shared_ptr<Stream> st;
    c.session->open_uni_stream([&](const Error &, std::shared_ptr<Stream> s) { st = std::move(s); });
    REQUIRE(tl.run_until([&] { return st != nullptr; }, 2'000));
    for (int i = 0; i < 12; ++i) {  // and stream writes, longer than a period
      tl.run_for(100);
      st->write(Bytes(100, 1));
      REQUIRE(c.conn->is_connected());
    }
    REQUIRE(tl.run_until([&] { return c.conn->is_closed(); }, 5'000));
    CHECK(c.conn->close_error().errc == Errc::timeout);
    close_all(tl, c.conn, nullptr);
  }
  SECTION("WebTransport traffic keeps it open; 0 turns the policy off") {
    auto c = connect(tl, server->port(), "/echo");
    REQUIRE(c.err.ok());
    c.conn->set_idle_timeout(std::chrono::milliseconds(300));
    for (int i = 0; i < 6; ++i) {  // about four periods of echoed stream data
      REQUIRE(echo_bytes(tl, c.session, 1000, 5'000));
      tl.run_for(100);
      REQUIRE(c.conn->is_connected());
    }
    c.conn->set_idle_timeout(Duration(0));
    tl.run_for(700);
    CHECK(c.conn->is_connected());
    close_all(tl, c.conn, nullptr);
  }
  close_all(tl, nullptr, server);
}

TEST_CASE("connection: a connection without activity for 5+ minutes is reported stale", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto c = connect_bare(tl, server->port());
  REQUIRE(c.err.ok());
  c.conn->record_activity();
  CHECK(c.conn->diagnostics().issues().empty());
  {
    WallClockAhead ahead(290);
    CHECK(c.conn->diagnostics().issues().empty());
  }
  {
    WallClockAhead ahead(301);
    CHECK(c.conn->diagnostics().issues() ==
          std::vector<std::string>{"Connection appears stale (no activity in 5+ minutes)"});
    // Activity ends it.
    c.conn->record_activity();
    CHECK(c.conn->diagnostics().issues().empty());
  }
  close_all(tl, c.conn, server);
}

TEST_CASE("connection: ClientConfig::max_streams bounds sessions made by Connection::create_client too",
          "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.max_streams = 1;
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  REQUIRE(c.session);
  Error first(Errc::closed, "not called"), second(Errc::closed, "not called");
  std::shared_ptr<Stream> st;
  int done = 0;
  c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> s) {
    first = e;
    st = std::move(s);
    ++done;
  });
  c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream>) {
    second = e;
    ++done;
  });
  REQUIRE(tl.run_until([&] { return done == 2; }, 5'000));
  CHECK(first.ok());
  CHECK(st != nullptr);
  CHECK(second.errc == Errc::flow_control);
  CHECK(second.message.find("max_streams") != std::string::npos);
  close_all(tl, c.conn, server);
}
