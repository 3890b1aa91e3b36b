// The endpoint's stateless answers and socket backpressure, end to end over
// loopback: stateless reset of connections a server no longer knows, and
// connections parking on EAGAIN and resuming once the socket drains. Reaches
// the endpoint and QUIC connection behind the public objects through
// ConnectionImpl.

#include <uvwt/uvwt.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "catch.hpp"
#include "connection/connection_impl.hpp"
#include "quic/endpoint.hpp"
#include "quic/quic_connection.hpp"
#include "quic/udp_socket.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;
using Clock = std::chrono::steady_clock;

namespace {

detail::ConnectionImpl &impl(const std::shared_ptr<Connection> &c) {
  return *std::static_pointer_cast<detail::ConnectionImpl>(c);
}

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

struct Closed {
  bool done = false;
  Error err;
  Clock::time_point at;
};

std::shared_ptr<Closed> watch_close(const std::shared_ptr<Connection> &c) {
  auto r = std::make_shared<Closed>();
  c->on_closed([r](const Error &e) {
    r->done = true;
    r->err = e;
    r->at = Clock::now();
  });
  return r;
}

// Sends a datagram every 50 ms until `stop` holds or the deadline passes:
// each one is a packet the server has to answer.
bool poke_until(TestLoop &tl, const std::shared_ptr<Session> &s, const std::function<bool()> &stop, int timeout_ms) {
  auto last = Clock::now() - std::chrono::seconds(1);
  const Bytes payload = pattern(200);
  return tl.run_until(
      [&] {
        if (stop()) return true;
        if (ms_since(last) >= 50) {
          (void)s->send_datagram(payload);
          last = Clock::now();
        }
        return false;
      },
      timeout_ms);
}

// The server forgets `server_conn` without sending anything, as a crash would.
void drop_silently(TestLoop &tl, const std::shared_ptr<Server> &server, std::shared_ptr<Connection> &server_conn) {
  REQUIRE(server_conn);
  impl(server_conn).quic()->abandon(Error(Errc::closed, "test: state lost"));
  server_conn.reset();
  REQUIRE(tl.run_until([&] { return server->stats().connections_active == 0; }));
}

}  // namespace

TEST_CASE("endpoint: a client of a connection the server dropped sees a stateless reset", "[quic][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  std::shared_ptr<Connection> server_conn;
  server->on_connection([&](std::shared_ptr<Connection> c) { server_conn = std::move(c); });
  ClientConfig cfg = client_config();
  cfg.idle_timeout = std::chrono::milliseconds(30'000);
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return server_conn != nullptr; }));
  auto closed = watch_close(c.conn);

  drop_silently(tl, server, server_conn);
  const auto t0 = Clock::now();
  REQUIRE(poke_until(
      tl, c.session, [&] { return closed->done; }, 10'000));
  // Well before the 30 s idle timeout: the first packet after the drop was
  // answered with a reset the client could verify.
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(closed->at - t0).count() < 5'000);
  CHECK(closed->err.errc == Errc::connection);
  CHECK(closed->err.message.find("stateless reset") != std::string::npos);
  CHECK(c.conn->is_closed());
  CHECK(server->stats().stateless_resets_sent >= 1);
  close_all(tl, c.conn, server);
}

TEST_CASE("endpoint: a restarted server resets its old connections only with the same secret", "[quic][loop]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.stateless_reset_secret = Bytes(32, 0x5a);
  auto a = start_server(tl, scfg);
  a->route("/echo", echo_handler());
  std::shared_ptr<Connection> a_conn;
  a->on_connection([&](std::shared_ptr<Connection> c) { a_conn = std::move(c); });
  ClientConfig cfg = client_config();
  cfg.idle_timeout = std::chrono::milliseconds(30'000);
  auto c = connect(tl, a->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return a_conn != nullptr; }));
  auto closed = watch_close(c.conn);
  const std::uint16_t port = a->port();

  // The first run goes away without a word to its client.
  drop_silently(tl, a, a_conn);
  close_all(tl, nullptr, a);
  REQUIRE_FALSE(closed->done);

  const bool same = GENERATE(true, false);
  INFO("same secret: " << same);
  if (!same) scfg.stateless_reset_secret = Bytes(32, 0xa5);
  Error err;
  auto b = Server::create(&tl.loop, scfg, err);
  REQUIRE(err.ok());
  REQUIRE(b->listen("127.0.0.1", port).ok());
  const auto t0 = Clock::now();
  if (same) {
    REQUIRE(poke_until(
        tl, c.session, [&] { return closed->done; }, 10'000));
    CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(closed->at - t0).count() < 5'000);
    CHECK(closed->err.errc == Errc::connection);
    CHECK(closed->err.message.find("stateless reset") != std::string::npos);
  } else {
    // Resets go out, but with tokens the client never received: it must
    // ignore them (they could come from anyone).
    poke_until(
        tl, c.session, [&] { return closed->done || ms_since(t0) > 1'500; }, 10'000);
    CHECK_FALSE(closed->done);
  }
  CHECK(b->stats().stateless_resets_sent >= 1);
  close_all(tl, c.conn, b);
}

TEST_CASE("endpoint: a connection parks on EAGAIN and resumes when the socket drains", "[quic][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  int echoed = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { ++echoed; });
  detail::Endpoint *ep = impl(c.conn).endpoint();
  detail::QuicConnection *q = impl(c.conn).quic();
  REQUIRE(ep != nullptr);
  REQUIRE(q != nullptr);
  detail::UdpSocket *sock = ep->first_socket();
  REQUIRE(sock != nullptr);
  const auto before = ep->counters();

  sock->set_send_stalled(true);
  REQUIRE(c.session->send_datagram(pattern(100)).ok());
  // The write the datagram scheduled, done now: it meets EAGAIN, and the
  // connection must be waiting for writability on return, before any timer
  // or incoming packet could have woken it.
  q->write_now();
  CHECK(ep->blocked());
  CHECK(ep->is_waiting(q));
  CHECK(ep->counters().sends_blocked == before.sends_blocked + 1);

  // Nothing leaves while the socket stays full.
  tl.run_for(100);
  CHECK(ep->blocked());
  CHECK(echoed == 0);
  CHECK(ep->counters().writable_wakeups == before.writable_wakeups);

  sock->set_send_stalled(false);
  REQUIRE(tl.run_until([&] { return echoed == 1; }, 5'000));
  CHECK_FALSE(ep->blocked());
  CHECK_FALSE(ep->is_waiting(q));
  CHECK(ep->counters().writable_wakeups >= before.writable_wakeups + 1);
  close_all(tl, c.conn, server);
}

TEST_CASE("endpoint: a bulk transfer continues after the socket stalls and drains", "[quic][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  detail::Endpoint *ep = impl(c.conn).endpoint();
  detail::UdpSocket *sock = ep->first_socket();
  REQUIRE(sock != nullptr);

  constexpr std::size_t kTotal = 4u << 20;
  const Bytes data = pattern(kTotal, 7);
  Bytes got;
  bool fin = false, failed = false;
  std::shared_ptr<Stream> stream;
  std::size_t off = 0;
  std::function<void()> pump = [&] {
    while (stream && off < kTotal && stream->writable()) {
      const std::size_t k = std::min<std::size_t>(64 * 1024, kTotal - off);
      stream->write(
          Bytes(data.begin() + static_cast<std::ptrdiff_t>(off), data.begin() + static_cast<std::ptrdiff_t>(off + k)));
      off += k;
    }
    if (stream && off == kTotal) stream->end();
  };
  c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
    if (e) {
      failed = true;
      return;
    }
    stream = st;
    st->on_data([&](std::span<const std::uint8_t> d, bool f) {
      got.insert(got.end(), d.begin(), d.end());
      fin = fin || f;
    });
    st->on_error([&](const Error &) { failed = true; });
    st->on_writable([&] {
      if (off < kTotal) pump();
    });
    pump();
  });

  // Stall the client's socket for 300 ms once a quarter of the echo is back.
  bool stalled = false, released = false;
  Clock::time_point stalled_at;
  const bool ok = tl.run_until(
      [&] {
        if (!stalled && got.size() >= kTotal / 4) {
          sock->set_send_stalled(true);
          stalled = true;
          stalled_at = Clock::now();
        }
        if (stalled && !released && ms_since(stalled_at) >= 300) {
          sock->set_send_stalled(false);
          released = true;
        }
        return fin || failed;
      },
      60'000);
  REQUIRE(ok);
  REQUIRE_FALSE(failed);
  CHECK(released);
  CHECK(sock->counters().would_block > 0);
  CHECK(ep->counters().sends_blocked > 0);
  CHECK(ep->counters().writable_wakeups > 0);
  REQUIRE(got.size() == kTotal);
  CHECK(got == data);
  stream.reset();
  close_all(tl, c.conn, server);
}

TEST_CASE("endpoint: the bytes a full socket refused are held within a bound, the rest dropped and counted",
          "[quic][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  detail::Endpoint *ep = impl(c.conn).endpoint();
  detail::UdpSocket *sock = ep->first_socket();
  REQUIRE(sock != nullptr);
  // A sink for the flood: a bound UDP socket nobody reads.
  const int sink = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  REQUIRE(sink >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(sink, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) == 0);
  socklen_t salen = sizeof sa;
  REQUIRE(::getsockname(sink, reinterpret_cast<sockaddr *>(&sa), &salen) == 0);
  const auto to = detail::SockAddr::from(reinterpret_cast<const sockaddr *>(&sa), salen);

  // 6000 packets of 1200 bytes (7 MB) at a socket that takes nothing: the
  // endpoint keeps at most kMaxHeldPackets / kMaxHeldBytes, drops the rest.
  const auto before = ep->counters();
  sock->set_send_stalled(true);
  const Bytes pkt = pattern(1200, 3);
  constexpr std::size_t kFlood = 6000;
  for (std::size_t i = 0; i < kFlood; ++i) ep->send(*sock, sock->local_addr(), to, 0, pkt.data(), pkt.size(), 0);
  const std::size_t held = ep->held_packets();
  CHECK(held <= detail::Endpoint::kMaxHeldPackets);
  CHECK(ep->held_bytes() <= detail::Endpoint::kMaxHeldBytes);
  CHECK(ep->held_bytes() == held * pkt.size());
  CHECK(held == std::min(detail::Endpoint::kMaxHeldPackets, detail::Endpoint::kMaxHeldBytes / pkt.size()));
  CHECK(ep->counters().held_dropped_packets - before.held_dropped_packets == kFlood - held);
  CHECK(ep->counters().held_dropped_bytes - before.held_dropped_bytes == (kFlood - held) * pkt.size());

  // Once the socket drains, what was held goes out and the connection works.
  sock->set_send_stalled(false);
  REQUIRE(tl.run_until([&] { return !ep->blocked(); }, 5'000));
  CHECK(ep->held_bytes() == 0);
  CHECK(ep->held_packets() == 0);
  bool echoed = false;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { echoed = true; });
  REQUIRE(c.session->send_datagram(pattern(100)).ok());
  REQUIRE(tl.run_until([&] { return echoed; }, 5'000));
  ::close(sink);
  close_all(tl, c.conn, server);
}
