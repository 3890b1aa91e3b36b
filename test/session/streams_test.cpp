// Loopback tests of sessions, streams and datagrams over a real QUIC connection.

#include <uvwt/uvwt.hpp>

#include <map>
#include <numeric>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
std::uint64_t checksum(std::span<const std::uint8_t> d, std::uint64_t h = 1469598103934665603ull) {
  for (auto b : d) h = (h ^ b) * 1099511628211ull;
  return h;
}

struct EchoResult {
  Bytes received;
  bool fin = false;
  Error err;
};

// Writes `data` on a new bidi stream with backpressure and collects the echo.
std::shared_ptr<EchoResult> echo_over_stream(const std::shared_ptr<Session> &s, Bytes data) {
  auto r = std::make_shared<EchoResult>();
  s->open_bidi_stream([r, data = std::move(data)](const Error &err, std::shared_ptr<Stream> st) mutable {
    if (err) {
      r->err = err;
      return;
    }
    st->on_data([r](std::span<const std::uint8_t> d, bool fin) {
      r->received.insert(r->received.end(), d.begin(), d.end());
      if (fin) r->fin = true;
    });
    st->on_error([r](const Error &e) { r->err = e; });
    // Feed in 64 KiB pieces, waiting for on_writable when the buffer is full.
    auto src = std::make_shared<Bytes>(std::move(data));
    auto off = std::make_shared<std::size_t>(0);
    auto pump = std::make_shared<std::function<void()>>();
    std::weak_ptr<Stream> ws = st;
    *pump = [ws, src, off, pump] {
      auto st = ws.lock();
      if (!st) return;
      while (*off < src->size() && st->writable()) {
        const std::size_t n = std::min<std::size_t>(64 * 1024, src->size() - *off);
        st->write(Bytes(src->begin() + static_cast<std::ptrdiff_t>(*off),
                        src->begin() + static_cast<std::ptrdiff_t>(*off + n)));
        *off += n;
      }
      if (*off == src->size()) {
        st->end();
        *pump = nullptr;  // breaks the self-reference
      }
    };
    st->on_writable([pump] {
      if (*pump) (*pump)();
    });
    (*pump)();
  });
  return r;
}
}  // namespace

TEST_CASE("16 MiB echoed over one bidi stream arrive intact", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  REQUIRE(c.session);
  const Bytes data = pattern(16u << 20);
  auto r = echo_over_stream(c.session, data);
  REQUIRE(tl.run_until([&] { return r->fin || !r->err.ok(); }, 60'000));
  REQUIRE(r->err.ok());
  REQUIRE(r->received.size() == data.size());
  REQUIRE(checksum(r->received) == checksum(data));
  const auto info = c.conn->info();
  CHECK(info.bytes_sent >= data.size());
  CHECK(info.bytes_received >= data.size());
  close_all(tl, c.conn, server);
}

TEST_CASE("200 concurrent bidi streams each echo their own bytes", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.session);
  std::vector<std::shared_ptr<EchoResult>> results;
  for (std::uint32_t i = 0; i < 200; ++i) results.push_back(echo_over_stream(c.session, pattern(1000 + i, i + 7)));
  REQUIRE(tl.run_until(
      [&] { return std::all_of(results.begin(), results.end(), [](const auto &r) { return r->fin || !r->err.ok(); }); },
      30'000));
  for (std::uint32_t i = 0; i < 200; ++i) {
    INFO("stream " << i);
    REQUIRE(results[i]->err.ok());
    REQUIRE(results[i]->received == pattern(1000 + i, i + 7));
  }
  close_all(tl, c.conn, server);
}

TEST_CASE("uni streams flow in both directions", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.session);
  auto got = std::make_shared<Bytes>();
  bool fin = false;
  c.session->on_uni_stream([got, &fin](std::shared_ptr<Stream> st) {
    CHECK(st->direction() == StreamDirection::receive_only);
    CHECK_FALSE(st->is_local());
    st->on_data([got, &fin](std::span<const std::uint8_t> d, bool f) {
      got->insert(got->end(), d.begin(), d.end());
      fin = fin || f;
    });
  });
  const Bytes msg = pattern(100'000, 3);
  c.session->open_uni_stream([msg](const Error &err, std::shared_ptr<Stream> st) {
    REQUIRE(err.ok());
    CHECK(st->direction() == StreamDirection::send_only);
    st->write_and_end(msg);
  });
  REQUIRE(tl.run_until([&] { return fin; }));
  REQUIRE(*got == msg);
  close_all(tl, c.conn, server);
}

TEST_CASE("server-initiated bidi streams reach the client", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/push", [](std::shared_ptr<Session> s, const SessionRequest &) {
    s->open_bidi_stream([](const Error &err, std::shared_ptr<Stream> st) {
      REQUIRE(err.ok());
      st->write_and_end(Bytes{'h', 'i'});
    });
  });
  auto c = connect(tl, server->port(), "/push");
  REQUIRE(c.session);
  std::string got;
  bool fin = false;
  c.session->on_bidi_stream([&](std::shared_ptr<Stream> st) {
    CHECK_FALSE(st->is_local());
    st->on_data([&](std::span<const std::uint8_t> d, bool f) {
      got.append(d.begin(), d.end());
      fin = fin || f;
    });
  });
  REQUIRE(tl.run_until([&] { return fin; }));
  CHECK(got == "hi");
  close_all(tl, c.conn, server);
}

TEST_CASE("1000 datagrams echo and a too-large one is refused", "[session][loop][datagram]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.session);
  const std::size_t max = c.session->max_datagram_size();
  REQUIRE(max >= 1000);
  const Bytes big(max + 1, 1);
  const Error too_big = c.session->send_datagram(big);
  REQUIRE(too_big.errc == Errc::datagram);
  REQUIRE(too_big.message.find("exceeds") != std::string::npos);
  std::size_t echoed = 0;
  std::size_t bytes = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t> d) {
    ++echoed;
    bytes += d.size();
  });
  std::size_t sent = 0;
  // Send in windows of 64 so the queue bound is never hit.
  REQUIRE(tl.run_until(
      [&] {
        while (sent < 1000 && sent - echoed < 64) {
          Bytes d(100, static_cast<std::uint8_t>(sent));
          REQUIRE(c.session->send_datagram(d).ok());
          ++sent;
        }
        return echoed >= 1000;
      },
      20'000));
  CHECK(bytes == 100 * echoed);
  CHECK(c.session->stats().datagrams_sent == 1000);
  CHECK(c.session->stats().datagrams_received == echoed);
  close_all(tl, c.conn, server);
}

// docs/protocol.md, "Datagrams per packet": a burst queued in one go goes out
// at most max_datagrams_per_packet to a packet.
TEST_CASE("max_datagrams_per_packet caps the datagrams in one packet", "[session][loop][datagram]") {
  std::size_t cap = 0;
  SECTION("one per packet") { cap = 1; }
  SECTION("four per packet") { cap = 4; }
  SECTION("no real cap") { cap = 1024; }
  TestLoop tl;
  // Packing alone, not the acknowledgment clock, on both sides: the server's
  // echoes in more packets would draw more acknowledgments from the client.
  ServerConfig scfg = server_config();
  scfg.max_datagrams_in_flight = 0;
  auto server = start_server(tl, scfg);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.max_datagrams_per_packet = cap;
  cfg.max_datagrams_in_flight = 0;
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.session);
  // Let the handshake's last packets and acks go first.
  tl.run_until([] { return false; }, 300);
  std::size_t echoed = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { ++echoed; });
  const std::uint64_t before = c.conn->info().packets_sent;
  constexpr std::size_t kBurst = 40;
  for (std::size_t i = 0; i < kBurst; ++i) REQUIRE(c.session->send_datagram(Bytes(20, 'd')).ok());
  REQUIRE(tl.run_until([&] { return echoed == kBurst; }, 10'000));
  const std::uint64_t packets = c.conn->info().packets_sent - before;
  INFO("cap " << cap << ": " << packets << " packets for " << kBurst << " datagrams");
  CHECK(packets >= (kBurst + cap - 1) / cap);
  // 40 datagrams of 20 bytes fit in one packet: without a cap they share
  // few packets (the rest are acks), so the bound above is not vacuous.
  if (cap == 1024) CHECK(packets < kBurst / 4);
  close_all(tl, c.conn, server);
}

TEST_CASE("max_datagrams_per_packet is validated", "[session][config][datagram]") {
  ClientConfig cfg = client_config();
  CHECK(cfg.validate().ok());
  cfg.max_datagrams_per_packet = 0;
  CHECK(cfg.validate().errc == Errc::configuration);
  CHECK(cfg.validate().message.find("max_datagrams_per_packet") != std::string::npos);
  cfg.max_datagrams_per_packet = 1025;
  CHECK(cfg.validate().errc == Errc::configuration);
  cfg.max_datagrams_per_packet = 1024;
  CHECK(cfg.validate().ok());
  CHECK(TransportConfig{}.max_datagrams_per_packet == 2);
}

// docs/protocol.md, "Datagrams in flight": with the peer's acknowledgments
// cut off (the client drops everything it receives), exactly
// max_datagrams_in_flight datagrams leave; the rest wait, and go once the
// acknowledgments come back. Without a bound the whole burst leaves at once.
TEST_CASE("max_datagrams_in_flight holds datagrams until acknowledged", "[session][loop][datagram]") {
  std::size_t window = 0;
  SECTION("three in flight") { window = 3; }
  SECTION("TransportConfig's default (a server's)") { window = TransportConfig{}.max_datagrams_in_flight; }
  SECTION("no bound (0, a client's default)") { window = 0; }
  TestLoop tl;
  auto server = start_server(tl);
  std::size_t arrived = 0;
  server->route("/count", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_datagram([&](std::span<const std::uint8_t>) { ++arrived; });
  });
  ClientConfig cfg = client_config();
  cfg.max_datagrams_per_packet = 1024;
  cfg.max_datagrams_in_flight = window;
  auto c = connect(tl, server->port(), "/count", cfg);
  REQUIRE(c.session);
  tl.run_until([] { return false; }, 300);  // the handshake's last packets and acks
  ImpairmentConfig deaf;
  deaf.enabled = true;
  deaf.receive_blackhole = true;
  uvwt::testing::set_impairment(*c.conn, deaf);
  constexpr std::size_t kBurst = 40;
  for (std::size_t i = 0; i < kBurst; ++i) REQUIRE(c.session->send_datagram(Bytes(20, 'd')).ok());
  // Long enough for several PTO probes on loopback: none may carry a datagram.
  tl.run_until([] { return false; }, 500);
  CHECK(arrived == (window == 0 ? kBurst : window));
  uvwt::testing::set_impairment(*c.conn, ImpairmentConfig{});
  REQUIRE(tl.run_until([&] { return arrived == kBurst; }, 10'000));
  close_all(tl, c.conn, server);
}

TEST_CASE("max_datagrams_in_flight is validated", "[session][config][datagram]") {
  // Servers face browsers (Firefox keeps 10 datagrams); clients face servers.
  CHECK(ServerConfig{}.max_datagrams_in_flight == 4);
  CHECK(ClientConfig{}.max_datagrams_in_flight == 0);
  ClientConfig cfg = client_config();
  cfg.max_datagrams_in_flight = 0;
  CHECK(cfg.validate().ok());
  cfg.max_datagrams_in_flight = 65537;
  CHECK(cfg.validate().errc == Errc::configuration);
  CHECK(cfg.validate().message.find("max_datagrams_in_flight") != std::string::npos);
  CHECK(TransportConfig{}.max_datagrams_in_flight == 4);
}

TEST_CASE("two sessions on one connection are isolated", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<std::string> paths;
  server->route("/a", [&](std::shared_ptr<Session> s, const SessionRequest &r) {
    paths.push_back(r.path);
    echo_handler()(s, r);
  });
  server->route("/b", [&](std::shared_ptr<Session> s, const SessionRequest &r) {
    paths.push_back(r.path);
    echo_handler()(s, r);
  });
  auto c = connect(tl, server->port(), "/a");
  REQUIRE(c.session);
  std::shared_ptr<Session> b;
  c.conn->open_session("/b", {}, [&](const Error &err, std::shared_ptr<Session> s) {
    REQUIRE(err.ok());
    b = s;
  });
  REQUIRE(tl.run_until([&] { return b != nullptr; }));
  REQUIRE(b->id() != c.session->id());
  CHECK(c.conn->get_all_sessions().size() == 2);
  std::size_t a_dgrams = 0, b_dgrams = 0;
  c.session->on_datagram([&](std::span<const std::uint8_t> d) { a_dgrams += d[0] == 'a' ? 1 : 100; });
  b->on_datagram([&](std::span<const std::uint8_t> d) { b_dgrams += d[0] == 'b' ? 1 : 100; });
  for (int i = 0; i < 5; ++i) {
    REQUIRE(c.session->send_datagram(Bytes{'a'}).ok());
    REQUIRE(b->send_datagram(Bytes{'b'}).ok());
  }
  auto ra = echo_over_stream(c.session, pattern(5000, 1));
  auto rb = echo_over_stream(b, pattern(7000, 2));
  REQUIRE(tl.run_until([&] { return ra->fin && rb->fin && a_dgrams >= 5 && b_dgrams >= 5; }));
  CHECK(ra->received == pattern(5000, 1));
  CHECK(rb->received == pattern(7000, 2));
  CHECK(a_dgrams == 5);
  CHECK(b_dgrams == 5);
  // Closing one leaves the other working.
  bool a_closed = false;
  c.session->close(7, "only a", [&] { a_closed = true; });
  REQUIRE(tl.run_until([&] { return a_closed; }));
  auto rb2 = echo_over_stream(b, pattern(100, 9));
  REQUIRE(tl.run_until([&] { return rb2->fin; }));
  CHECK(rb2->received == pattern(100, 9));
  CHECK(paths == std::vector<std::string>{"/a", "/b"});
  close_all(tl, c.conn, server);
}

TEST_CASE("session close code and reason reach the other side", "[session][loop]") {
  SECTION("client closes") {
    TestLoop tl;
    auto server = start_server(tl);
    std::optional<SessionCloseInfo> seen;
    server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
      s->on_closed([&](const SessionCloseInfo &ci) { seen = ci; });
    });
    auto c = connect(tl, server->port(), "/x");
    REQUIRE(c.session);
    c.session->close(1234, "client says bye");
    REQUIRE(tl.run_until([&] { return seen.has_value(); }));
    CHECK(seen->code == 1234);
    CHECK(seen->reason == "client says bye");
    CHECK(seen->remote);
    close_all(tl, c.conn, server);
  }
  SECTION("server closes") {
    TestLoop tl;
    auto server = start_server(tl);
    server->route("/x", [](std::shared_ptr<Session> s, const SessionRequest &) { s->close(4242, "bye from server"); });
    auto c = connect(tl, server->port(), "/x");
    REQUIRE(c.session);
    std::optional<SessionCloseInfo> seen;
    c.session->on_closed([&](const SessionCloseInfo &ci) { seen = ci; });
    REQUIRE(tl.run_until([&] { return seen.has_value(); }));
    CHECK(seen->code == 4242);
    CHECK(seen->reason == "bye from server");
    CHECK(c.session->is_closed());
    close_all(tl, c.conn, server);
  }
}

TEST_CASE("stream reset and stop-sending codes round-trip", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::optional<Error> server_saw_reset;
  std::shared_ptr<Stream> server_stream;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&](std::shared_ptr<Stream> st) {
      server_stream = st;
      st->on_error([&](const Error &e) { server_saw_reset = e; });
      st->on_data([](std::span<const std::uint8_t>, bool) {});
    });
  });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  std::shared_ptr<Stream> st;
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) { st = s; });
  REQUIRE(tl.run_until([&] { return st != nullptr; }));
  st->write(std::string_view("x"));
  REQUIRE(tl.run_until([&] { return server_stream != nullptr; }));
  st->reset(0xffffffffu);
  REQUIRE(tl.run_until([&] { return server_saw_reset.has_value(); }));
  CHECK(server_saw_reset->errc == Errc::stream);
  CHECK(server_saw_reset->code == 0xffffffffu);
  // Stop-sending from the server: the client's send side fails with the code.
  std::optional<Error> client_saw;
  std::shared_ptr<Stream> st2;
  server_saw_reset.reset();
  server_stream.reset();
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) { st2 = s; });
  REQUIRE(tl.run_until([&] { return st2 != nullptr; }));
  st2->on_error([&](const Error &e) { client_saw = e; });
  st2->write(std::string_view("y"));
  REQUIRE(tl.run_until([&] { return server_stream != nullptr; }));
  server_stream->stop_sending(0x1e);
  server_stream->end();  // the stream closes once both sides are done
  REQUIRE(tl.run_until([&] { return client_saw.has_value(); }));
  CHECK(client_saw->code == 0x1e);
  close_all(tl, c.conn, server);
}

TEST_CASE("closing a session resets its streams", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::optional<Error> server_stream_err;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&](std::shared_ptr<Stream> st) {
      st->on_data([](std::span<const std::uint8_t>, bool) {});
      st->on_error([&](const Error &e) { server_stream_err = e; });
    });
  });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  std::shared_ptr<Stream> st;
  std::optional<Error> local_err;
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) {
    st = s;
    s->on_error([&](const Error &e) { local_err = e; });
    s->write(std::string_view("hello"));
  });
  REQUIRE(tl.run_until([&] { return st != nullptr; }));
  tl.run_for(50);
  c.session->close(5, "done");
  REQUIRE(tl.run_until([&] { return local_err.has_value() && server_stream_err.has_value(); }));
  CHECK(local_err->errc == Errc::session);
  CHECK(local_err->code == 5);
  // The peer sees its session end or the stream reset first, whichever frame came first.
  CHECK((server_stream_err->errc == Errc::session || server_stream_err->errc == Errc::stream));
  bool write_failed = false;
  st->write(std::string_view("late"), [&](const Error &e) { write_failed = !e.ok(); });
  REQUIRE(tl.run_until([&] { return write_failed; }));
  close_all(tl, c.conn, server);
}

TEST_CASE("a paused reader stops the sender at the flow-control window", "[session][loop][flow]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.initial_max_stream_data = 64 * 1024;
  auto server = start_server(tl, scfg);
  std::shared_ptr<Stream> server_stream;
  std::size_t received = 0;
  bool fin = false;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&](std::shared_ptr<Stream> st) {
      server_stream = st;
      st->pause();
      st->on_data([&](std::span<const std::uint8_t> d, bool f) {
        received += d.size();
        fin = fin || f;
      });
    });
  });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  std::shared_ptr<Stream> st;
  bool acked = false;
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) {
    st = s;
    s->write_and_end(pattern(1u << 20), [&](const Error &e) { acked = e.ok(); });
  });
  REQUIRE(tl.run_until([&] { return server_stream != nullptr; }));
  tl.run_for(300);
  // Nothing delivered while paused; the sender is held at the window.
  CHECK(received == 0);
  CHECK_FALSE(acked);
  CHECK(st->buffered_amount() >= (1u << 20) - 2 * 64 * 1024);
  server_stream->resume();
  const bool done = tl.run_until([&] { return fin && acked; }, 20'000);
  INFO("received " << received << " fin " << fin << " acked " << acked << " buffered " << st->buffered_amount());
  REQUIRE(done);
  CHECK(received == (1u << 20));
  CHECK(st->buffered_amount() == 0);
  close_all(tl, c.conn, server);
}

TEST_CASE("the connection-wide send budget gates writable() on every stream and hands out turns", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto cfg = client_config();
  cfg.connection_send_buffer = 64 * 1024;
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.session);
  std::shared_ptr<Stream> a, b;
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> st) { a = std::move(st); });
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> st) { b = std::move(st); });
  REQUIRE(tl.run_until([&] { return a && b; }, 5'000));
  std::size_t echoed = 0;
  a->on_data([&](std::span<const std::uint8_t> d, bool) { echoed += d.size(); });
  b->on_data([&](std::span<const std::uint8_t> d, bool) { echoed += d.size(); });
  CHECK(a->writable());
  CHECK(b->writable());

  // Within its own bound a stream takes the write whole, budget or not ...
  a->write(Bytes(200 * 1024, 1));
  CHECK(a->buffered_amount() == 200 * 1024);
  // ... but then no stream of the connection reports itself writable.
  CHECK_FALSE(a->writable());
  CHECK_FALSE(b->writable());
  bool b_write_done = false;
  Error b_write_err(Errc::closed, "not called");
  b->write(Bytes(1000, 2), [&](const Error &e) {
    b_write_done = true;
    b_write_err = e;
  });

  int b_turns = 0;
  bool b_writable_in_turn = false;
  std::size_t a_buffered_at_turn = 0;
  b->on_writable([&] {
    ++b_turns;
    b_writable_in_turn = b->writable();
    a_buffered_at_turn = a->buffered_amount();
  });
  REQUIRE(tl.run_until([&] { return b_turns > 0 && b_write_done; }, 10'000));
  CHECK(b_write_err.ok());
  CHECK(b_writable_in_turn);
  // Turns are handed out once half the budget is free again.
  CHECK(a_buffered_at_turn <= 32 * 1024);
  REQUIRE(tl.run_until([&] { return echoed == 200 * 1024 + 1000; }, 10'000));
  CHECK(b_turns == 1);
  close_all(tl, c.conn, server);
}

TEST_CASE("write_borrowed sends the caller's bytes in place and completes when they are acknowledged",
          "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.session);
  const Bytes data = pattern(3u << 20, 9);  // lives until the end of the test
  std::shared_ptr<Stream> st;
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) { st = std::move(s); });
  REQUIRE(tl.run_until([&] { return st != nullptr; }, 5'000));
  Bytes echoed;
  bool fin = false;
  st->on_data([&](std::span<const std::uint8_t> d, bool f) {
    echoed.insert(echoed.end(), d.begin(), d.end());
    fin = fin || f;
  });
  std::size_t off = 0, completed = 0, failed = 0;
  bool called_inside = false, in_call = false;
  std::function<void()> pump = [&] {
    while (off < data.size() && st->writable()) {
      const std::size_t n = std::min<std::size_t>(256 * 1024, data.size() - off);
      in_call = true;
      st->write_borrowed(std::span<const std::uint8_t>(data.data() + off, n), [&](const Error &e) {
        called_inside = called_inside || in_call;
        if (e)
          ++failed;
        else
          ++completed;
      });
      in_call = false;
      off += n;
    }
    if (off == data.size()) st->end();
  };
  st->on_writable([&] { pump(); });
  pump();
  REQUIRE(tl.run_until([&] { return fin; }, 30'000));
  CHECK(echoed.size() == data.size());
  CHECK(checksum(echoed) == checksum(data));
  REQUIRE(tl.run_until([&] { return completed == (data.size() + 256 * 1024 - 1) / (256 * 1024); }, 5'000));
  CHECK(failed == 0);
  CHECK_FALSE(called_inside);
  CHECK(st->stats().bytes_sent == data.size());

  // After the send side is finished a borrowed write fails, on a later turn.
  Error late;
  bool late_done = false;
  in_call = true;
  st->write_borrowed(std::span<const std::uint8_t>(data.data(), 10), [&](const Error &e) {
    late = e;
    late_done = true;
    called_inside = called_inside || in_call;
  });
  in_call = false;
  REQUIRE(tl.run_until([&] { return late_done; }, 5'000));
  CHECK(late.errc == Errc::stream);
  CHECK_FALSE(called_inside);
  close_all(tl, c.conn, server);
}
