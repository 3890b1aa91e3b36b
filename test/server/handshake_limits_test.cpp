// Handshake and address limits under an Initial flood, over loopback: the
// server keeps at most max_unvalidated_handshakes handshakes for clients that
// never proved their address, answers the rest with Retry (no state), still
// lets a real client in, and reaps handshakes that stall. Plus the rate limit
// on stateless answers (resets, Version Negotiation).

#include <uvwt/uvwt.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "support/initial_flood.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;
using Clock = std::chrono::steady_clock;

namespace {

ServerConfig limited(std::size_t unvalidated, std::size_t total, std::size_t per_address) {
  ServerConfig cfg = server_config();
  cfg.max_unvalidated_handshakes = unvalidated;
  cfg.max_handshakes = total;
  cfg.max_handshakes_per_address = per_address;
  return cfg;
}

void echo_one_datagram(TestLoop &tl, const Connected &c) {
  REQUIRE(c.err.ok());
  bool got = false;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { got = true; });
  REQUIRE(c.session->send_datagram(Bytes{1, 2, 3}).ok());
  REQUIRE(tl.run_until([&] { return got; }));
}

}  // namespace

TEST_CASE("handshake limits: an Initial flood beyond max_unvalidated_handshakes gets Retry, a real client gets in",
          "[server][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl, limited(8, 16, 1000));
  server->route("/echo", echo_handler());
  InitialFlood flood(tl, "127.0.0.1", server->port());
  flood.start(40);
  REQUIRE(tl.run_until([&] { return server->stats().retries_sent >= 32; }));
  CHECK(server->stats().handshakes_active == 8);
  // Retransmitted Initials of the deaf clients: the count stays at the cap.
  tl.run_for(1'500);
  CHECK(server->stats().handshakes_active == 8);
  CHECK(server->stats().connections_active == 8);
  CHECK(server->stats().connections_accepted == 8);

  // A real client is sent a Retry too, returns the token and is let in.
  const auto retries = server->stats().retries_sent;
  auto c = connect(tl, server->port(), "/echo");
  echo_one_datagram(tl, c);
  CHECK(server->stats().retries_sent > retries);
  CHECK(server->stats().connections_accepted == 9);
  CHECK(server->stats().handshakes_active == 8);  // its handshake completed
  flood.close();
  close_all(tl, c.conn, server);
}

TEST_CASE("handshake limits: one source address holds at most max_handshakes_per_address", "[server][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl, limited(100, 100, 4), "localhost");
  server->route("/echo", echo_handler());
  InitialFlood flood(tl, "127.0.0.1", server->port());
  flood.start(10);
  REQUIRE(tl.run_until([&] { return server->stats().retries_sent >= 6; }));
  CHECK(server->stats().handshakes_active == 4);

  // From the same address even a validated client is refused...
  ClientConfig cfg = client_config();
  cfg.connect_timeout = std::chrono::milliseconds(3'000);
  auto refused = connect(tl, server->port(), "/echo", cfg);
  CHECK_FALSE(refused.err.ok());
  CHECK(server->stats().handshakes_refused >= 1);
  CHECK(server->stats().handshakes_active == 4);
  // ...while another address is served as usual.
  auto c = connect(tl, server->port(), "/echo", client_config(), "::1");
  echo_one_datagram(tl, c);
  flood.close();
  close_all(tl, c.conn, server);
}

TEST_CASE("handshake limits: a stalled handshake is reaped after handshake_timeout", "[server][loop][limits]") {
  TestLoop tl;
  ServerConfig cfg = limited(8, 16, 64);
  cfg.handshake_timeout = std::chrono::milliseconds(600);
  auto server = start_server(tl, cfg);
  InitialFlood flood(tl, "127.0.0.1", server->port(), /*mute_after_first=*/true);
  flood.start(5);
  const auto t0 = Clock::now();
  REQUIRE(tl.run_until([&] { return server->stats().handshakes_active == 5; }));
  REQUIRE(tl.run_until([&] { return server->stats().handshakes_active == 0; }, 10'000));
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  CHECK(waited >= 500);  // not before the timeout
  REQUIRE(tl.run_until([&] { return server->stats().connections_active == 0; }, 5'000));
  CHECK(server->stats().connections_accepted == 5);
  flood.close();
  close_all(tl, nullptr, server);
}

TEST_CASE("handshake limits: validate_address sends every token-less Initial a Retry", "[server][loop][limits]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.validate_address = true;
  auto server = start_server(tl, cfg);
  InitialFlood flood(tl, "127.0.0.1", server->port());
  flood.start(5);
  REQUIRE(tl.run_until([&] { return server->stats().retries_sent >= 5; }));
  tl.run_for(100);
  CHECK(server->stats().handshakes_active == 0);
  CHECK(server->stats().connections_accepted == 0);
  flood.close();
  close_all(tl, nullptr, server);
}

TEST_CASE("handshake limits: a genuine Retry token replayed after its lifetime is closed with INVALID_TOKEN",
          "[server][loop][limits]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.validate_address = true;
  cfg.retry_token_lifetime = std::chrono::milliseconds(200);
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  // The client's packets take 300 ms each way: its Initial with the token
  // reaches the server 600 ms after the Retry was made, past 200 ms.
  ClientConfig slow = client_config();
  uvwt::testing::impairment(slow).enabled = true;
  uvwt::testing::impairment(slow).delay_ms = 300;
  slow.connect_timeout = std::chrono::milliseconds(8'000);
  const auto t0 = Clock::now();
  auto c = connect(tl, server->port(), "/echo", slow);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  INFO(c.err.to_string() << " after " << took << " ms");
  // RFC 9000 8.1.2: the client will take no second Retry (17.2.5.2), so the
  // server closes at once with INVALID_TOKEN instead of letting it time out.
  CHECK(c.err.errc == Errc::protocol);
  CHECK(c.err.code == 0x0b);  // INVALID_TOKEN (RFC 9000 20.1)
  CHECK(took < 4'000);
  CHECK_FALSE(c.conn);
  CHECK(server->stats().retries_sent >= 1);
  CHECK(server->stats().expired_retry_tokens >= 1);
  CHECK(server->stats().connections_accepted == 0);

  // The same slow client within a lifetime that covers its round trip gets in.
  close_all(tl, nullptr, server);
  cfg.retry_token_lifetime = std::chrono::milliseconds(5'000);
  server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto ok = connect(tl, server->port(), "/echo", slow);
  REQUIRE(ok.err.ok());
  CHECK(server->stats().expired_retry_tokens == 0);
  close_all(tl, ok.conn, server);
}

namespace {

// A plain UDP socket sending raw datagrams at the server and counting what
// comes back.
struct RawUdp {
  int fd = -1;
  sockaddr_in to{};
  RawUdp(std::uint16_t port) {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~RawUdp() { ::close(fd); }
  void send(const Bytes &b) {
    (void)::sendto(fd, b.data(), b.size(), 0, reinterpret_cast<const sockaddr *>(&to), sizeof to);
  }
  std::size_t drain() {
    std::size_t n = 0;
    std::uint8_t buf[2048];
    while (::recv(fd, buf, sizeof buf, 0) >= 0) ++n;
    return n;
  }
};

Bytes short_header_packet(std::uint32_t i) {
  Bytes b = pattern(60, i + 1);
  b[0] = static_cast<std::uint8_t>(0x40 | (b[0] & 0x3f));  // short header, fixed bit set
  return b;
}

Bytes unknown_version_initial(std::uint32_t i) {
  Bytes b = pattern(1200, i + 7);
  b[0] = 0xc0;
  b[1] = 0x1a, b[2] = 0x2a, b[3] = 0x3a, b[4] = 0x4a;  // a reserved version (RFC 9000 15)
  b[5] = 8;                                            // DCID length
  b[14] = 8;                                           // SCID length
  return b;
}

// A QUIC v1 Initial (RFC 9000 17.2.2) whose token claims to be one of our
// Retry tokens (magic 0xb7, ngtcp2's "retry token 2") but is random bytes;
// padded to 1200 bytes.
Bytes initial_with_forged_token(std::uint32_t seed) {
  Bytes b = {0xc3, 0x00, 0x00, 0x00, 0x01, 8};
  const Bytes ids = pattern(16, seed);
  b.insert(b.end(), ids.begin(), ids.begin() + 8);  // DCID
  b.push_back(8);
  b.insert(b.end(), ids.begin() + 8, ids.end());  // SCID
  Bytes token = pattern(60, seed + 1);
  token[0] = 0xb7;
  b.push_back(static_cast<std::uint8_t>(token.size()));
  b.insert(b.end(), token.begin(), token.end());
  const std::size_t rest = 1200 - b.size() - 2;  // Length (2-byte varint) covers the rest
  b.push_back(static_cast<std::uint8_t>(0x40 | (rest >> 8)));
  b.push_back(static_cast<std::uint8_t>(rest & 0xff));
  const Bytes payload = pattern(rest, seed + 2);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

}  // namespace

TEST_CASE("handshake limits: an Initial with a forged Retry token is dropped and counted", "[server][loop][limits]") {
  // A token that does not decrypt draws no answer (unlike an expired one of ours).
  TestLoop tl;
  auto server = start_server(tl);
  RawUdp raw(server->port());
  for (std::uint32_t i = 0; i < 5; ++i) raw.send(initial_with_forged_token(i * 3));
  REQUIRE(tl.run_until([&] { return server->stats().invalid_retry_tokens == 5; }));
  tl.run_for(50);
  CHECK(raw.drain() == 0);  // no answer at all
  CHECK(server->stats().expired_retry_tokens == 0);
  CHECK(server->stats().connections_accepted == 0);
  CHECK(server->stats().handshakes_active == 0);
  close_all(tl, nullptr, server);
}

TEST_CASE("stateless answers: a flood draws at most the token bucket's allowance", "[server][loop][limits]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.stateless_answers_per_second = 50;
  cfg.stateless_answer_burst = 20;
  auto server = start_server(tl, cfg);
  RawUdp raw(server->port());
  const bool vn = GENERATE(false, true);
  INFO((vn ? "version negotiation" : "stateless resets"));
  constexpr std::uint32_t kFlood = 3'000;
  const auto t0 = Clock::now();
  std::size_t answers = 0;
  for (std::uint32_t i = 0; i < kFlood; ++i) {
    raw.send(vn ? unknown_version_initial(i) : short_header_packet(i));
    if (i % 100 == 99) {
      tl.run_for(5);
      answers += raw.drain();
    }
  }
  tl.run_for(100);
  answers += raw.drain();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto st = server->stats();
  const std::uint64_t sent = vn ? st.version_negotiations_sent : st.stateless_resets_sent;
  const double allowance = 20 + 50 * secs + 1;
  INFO("answers " << answers << " sent " << sent << " in " << secs << " s, allowance " << allowance);
  CHECK(sent >= 20);  // the burst went out: the flood did reach the server
  CHECK(static_cast<double>(sent) <= allowance);
  CHECK(answers <= sent);
  CHECK(st.stateless_answers_limited >= kFlood / 2);
  close_all(tl, nullptr, server);
}

TEST_CASE("ServerConfig validates the handshake and stateless limits", "[server][config][limits]") {
  auto rejects = [](const std::function<void(ServerConfig &)> &edit, const char *field) {
    ServerConfig cfg = server_config();
    REQUIRE(cfg.validate().ok());
    edit(cfg);
    const Error e = cfg.validate();
    INFO(field << ": " << e.to_string());
    CHECK(e.errc == Errc::configuration);
    CHECK(e.message.find(field) != std::string::npos);
  };
  rejects([](ServerConfig &c) { c.max_handshakes = 0; }, "max_handshakes");
  rejects([](ServerConfig &c) { c.max_unvalidated_handshakes = c.max_handshakes + 1; }, "max_unvalidated_handshakes");
  rejects([](ServerConfig &c) { c.max_handshakes_per_address = 0; }, "max_handshakes_per_address");
  rejects([](ServerConfig &c) { c.stateless_answer_burst = 0; }, "stateless_answer_burst");
  rejects([](ServerConfig &c) { c.pending_session_timeout = Duration(0); }, "pending_session_timeout");
  rejects([](ServerConfig &c) { uvwt::testing::impairment(c).corrupt = 1.5; }, "impairment");
  ServerConfig quiet = server_config();
  quiet.stateless_answers_per_second = 0;  // no stateless answers at all
  quiet.stateless_answer_burst = 0;
  quiet.max_unvalidated_handshakes = 0;  // every Initial needs a Retry token
  CHECK(quiet.validate().ok());
}
