// A hostile peer against a real uvwt Server on loopback (docs/security.md,
// "Fuzzing and adversarial tests"). Each attack runs against a fresh server
// with the echo routes; afterwards the server must still be alive, a
// legitimate client must still echo a stream and a datagram, and the process
// RSS (server and attacker share it) must not have grown by more than the
// attack's stated bound between the warmed-up server and the end of the
// attack. Each test prints one line "adversarial | attack | server's answer |
// RSS" for the record.
//
// The baseline is taken after malloc_trim(0), so memory an earlier attack
// freed but glibc kept does not hide this one's growth. The attacker's own
// buffers are in the same process and count against the bound.
//
// RSS under AddressSanitizer says little (quarantine, shadow memory): there
// the figures are printed but the bounds are not checked.

#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include <uvwt/connection.hpp>
#include <uvwt/session.hpp>
#include <uvwt/stream.hpp>

#include "conformance/wire_peer.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "support/initial_packet.hpp"

namespace uvwt::test {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssChecked = false;
#else
constexpr bool kRssChecked = true;
#endif

// What one half-open connection (an Initial the server accepted, handshake
// not finished) may cost: measured about 39 KiB with garbage CRYPTO and
// about 61 KiB with a real ClientHello (server first flight kept for
// retransmission). There is no cap on their number yet (issue 11 point 1),
// so the bound grows with the flood.
constexpr std::size_t kHalfOpenBudgetKiB = 96;
constexpr std::size_t kSlackKiB = 16 * 1024;

std::size_t rss_kib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

ServerConfig attack_config() {
  ServerConfig c = server_config();
  c.handshake_timeout = std::chrono::milliseconds(1'000);
  c.idle_timeout = std::chrono::milliseconds(3'000);
  c.drain_timeout = std::chrono::milliseconds(0);
  return c;
}

// A plain UDP socket: the attacker below QUIC.
struct RawSocket {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  std::size_t answers = 0, answer_bytes = 0, sent = 0, sent_bytes = 0;
  RawSocket() {
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
  }
  ~RawSocket() { ::close(fd); }
  RawSocket(const RawSocket &) = delete;
  RawSocket &operator=(const RawSocket &) = delete;
  [[nodiscard]] std::uint16_t port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    return ntohs(a.sin_port);
  }
  void send_to(std::uint16_t port, std::span<const std::uint8_t> d) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr *>(&a), sizeof a) > 0) {
      ++sent;
      sent_bytes += d.size();
    }
  }
  // Reads what the server answered; returns the datagrams read.
  std::vector<std::vector<std::uint8_t>> drain() {
    std::vector<std::vector<std::uint8_t>> out;
    std::uint8_t buf[2048];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
      ++answers;
      answer_bytes += static_cast<std::size_t>(n);
      out.emplace_back(buf, buf + n);
    }
    return out;
  }
};

// The server under attack, warmed up by one legitimate echo.
struct Arena {
  TestLoop tl;
  std::shared_ptr<Server> server;
  std::size_t rss_before = 0, rss_peak = 0;

  explicit Arena(const ServerConfig &cfg = attack_config()) {
    server = start_server(tl, cfg);
    server->route("/echo", echo_handler());
    legit_echo();
    malloc_trim(0);
    rss_before = rss_peak = rss_kib();
  }

  void peak() { rss_peak = std::max(rss_peak, rss_kib()); }

  // A legitimate client still gets a stream and a datagram echoed.
  void legit_echo() {
    auto c = connect(tl, server->port(), "/echo");
    REQUIRE(c.err.ok());
    REQUIRE(c.session);
    std::string got;
    bool fin = false;
    std::shared_ptr<Stream> keep;
    c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
      REQUIRE(e.ok());
      keep = st;
      st->on_data([&](std::span<const std::uint8_t> d, bool f) {
        got.append(d.begin(), d.end());
        fin = fin || f;
      });
      st->write_and_end(Bytes{'l', 'e', 'g', 'i', 't'});
    });
    REQUIRE(tl.run_until([&] { return fin; }));
    CHECK(got == "legit");
    bool dgram = false;
    c.session->on_datagram([&](std::span<const std::uint8_t> d) { dgram = dgram || d.size() == 3; });
    const std::uint8_t ping[] = {'d', 'g', '!'};
    for (int i = 0; i < 10 && !dgram; ++i) {  // datagrams may be lost; a few tries
      REQUIRE(c.session->send_datagram(ping).ok());
      tl.run_until([&] { return dgram; }, 300);
    }
    CHECK(dgram);
    keep.reset();
    close_all(tl, c.conn, nullptr);
  }

  // The record line, the liveness check and the RSS bound.
  void finish(const char *attack, const std::string &answer, std::size_t bound_kib) {
    peak();
    legit_echo();
    const std::size_t after = rss_kib();
    const std::size_t growth = rss_peak > rss_before ? rss_peak - rss_before : 0;
    std::printf(
        "adversarial | %-26s | %s | RSS %zu KiB before, %zu peak, %zu after legit echo; growth %zu KiB, bound %zu%s\n",
        attack, answer.c_str(), rss_before, rss_peak, after, growth, bound_kib,
        kRssChecked ? "" : " (not checked under ASan)");
    if (kRssChecked) CHECK(growth <= bound_kib);
    close_all(tl, nullptr, server);
  }

  bool wait_idle(int ms) {
    return tl.run_until([&] { return server->stats().connections_active == 0; }, ms);
  }
};

// The frames of a real uvwt client's first Initial (its ClientHello) and its
// Source Connection ID, caught on a raw socket.
OpenedInitial capture_client_hello(TestLoop &tl) {
  RawSocket sink;
  ClientConfig cc = client_config();
  cc.connect_timeout = std::chrono::milliseconds(200);
  bool done = false;
  std::optional<OpenedInitial> first;
  auto c = Connection::create_client(&tl.loop, cc, "127.0.0.1", sink.port(), "/echo", std::nullopt,
                                     [&done](const Error &, std::shared_ptr<Connection>) { done = true; });
  REQUIRE(tl.run_until([&] {
    for (auto &d : sink.drain())
      if (!first) first = open_client_initial(d);
    return done;
  }));
  c.reset();
  REQUIRE(first.has_value());
  return *first;
}

std::vector<std::uint8_t> random_bytes(std::mt19937_64 &rng, std::size_t n) {
  std::vector<std::uint8_t> b(n);
  for (auto &x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

// A WirePeer with a draft-13 session on /echo (request stream 0).
std::unique_ptr<WirePeer> session_peer(Arena &a, WirePeer::Options o = {}) {
  auto peer = WirePeer::connect(&a.tl.loop, a.server->port(), std::move(o));
  REQUIRE(a.tl.run_until([&] { return peer->peer_settings().has_value(); }));
  const auto sid = peer->send_request(wire_connect_request(WireDialect::draft13, "localhost", "/echo"));
  REQUIRE(sid == 0);
  REQUIRE(a.tl.run_until([&] { return peer->status(0).has_value(); }));
  REQUIRE(peer->status(0) == 200);
  return peer;
}

std::string hex(std::uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

TEST_CASE("initial packets: sealed and opened with RFC 9001 keys", "[adversarial]") {
  // RFC 9001 appendix A.1: keys of the client's first Initial for DCID 8394c8f03e515708.
  const std::uint8_t dcid[] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
  const InitialKeys k = initial_keys(dcid, true);
  const std::uint8_t key[] = {0x1f, 0x36, 0x96, 0x13, 0xdd, 0x76, 0xd5, 0x46,
                              0x77, 0x30, 0xef, 0xcb, 0xe3, 0xb1, 0xa2, 0x2d};
  const std::uint8_t iv[] = {0xfa, 0x04, 0x4b, 0x2f, 0x42, 0xa3, 0xfd, 0x3b, 0x46, 0xfb, 0x25, 0x5c};
  const std::uint8_t hp[] = {0x9f, 0x50, 0x44, 0x9e, 0x04, 0xa0, 0xe8, 0x10,
                             0x28, 0x3a, 0x1e, 0x99, 0x33, 0xad, 0xed, 0xd2};
  CHECK(std::equal(std::begin(key), std::end(key), k.key));
  CHECK(std::equal(std::begin(iv), std::end(iv), k.iv));
  CHECK(std::equal(std::begin(hp), std::end(hp), k.hp));
  const std::uint8_t scid[] = {1, 2, 3};
  const std::vector<std::uint8_t> frames = {0x06, 0x00, 0x03, 'a', 'b', 'c'};
  const auto pkt = seal_client_initial(dcid, scid, 7, frames);
  CHECK(pkt.size() == 1200);
  const auto opened = open_client_initial(pkt);
  REQUIRE(opened.has_value());
  CHECK(opened->scid == std::vector<std::uint8_t>(std::begin(scid), std::end(scid)));
  REQUIRE(opened->frames.size() >= frames.size());
  CHECK(std::equal(frames.begin(), frames.end(), opened->frames.begin()));
  auto bad = pkt;
  bad[bad.size() - 1] ^= 1;  // the AEAD tag no longer matches
  CHECK_FALSE(open_client_initial(bad).has_value());
}

TEST_CASE("adversarial: 10 000 garbage UDP datagrams", "[adversarial]") {
  Arena a;
  RawSocket s;
  std::mt19937_64 rng(1);
  for (int burst = 0; burst < 20; ++burst) {
    for (int i = 0; i < 500; ++i) s.send_to(a.server->port(), random_bytes(rng, 1 + rng() % 1400));
    a.tl.run_for(5);
    s.drain();
  }
  a.tl.run_for(100);
  s.drain();
  a.peak();
  // Whatever it answers (version negotiation, stateless resets) is never more than it got.
  CHECK(s.answer_bytes <= s.sent_bytes);
  CHECK(a.server->stats().connections_active == 0);
  a.finish("garbage UDP x10000",
           std::to_string(s.answers) + " answers (" + std::to_string(s.answer_bytes) + " B for " +
               std::to_string(s.sent_bytes) + " B), " + std::to_string(a.server->stats().stateless_resets_sent) +
               " stateless resets, no connection",
           8 * 1024);
}

TEST_CASE("adversarial: 2000 forged Initials with garbage CRYPTO", "[adversarial]") {
  Arena a;
  RawSocket s;
  std::mt19937_64 rng(2);
  std::size_t closes = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto dcid = random_bytes(rng, 8 + rng() % 13);
    std::vector<std::uint8_t> frames = {0x06, 0x00, 0x41, 0x00};  // CRYPTO offset 0, 256 bytes of garbage
    auto junk = random_bytes(rng, 256);
    junk[0] = 0x01;  // a ClientHello type byte, then nonsense
    frames.insert(frames.end(), junk.begin(), junk.end());
    s.send_to(a.server->port(), seal_client_initial(dcid, random_bytes(rng, 8), 0, frames));
    if (i % 200 == 199) {
      a.tl.run_for(5);
      closes += s.drain().size();
    }
  }
  a.tl.run_for(50);
  closes += s.drain().size();
  a.peak();
  CHECK(s.answer_bytes <= 3 * s.sent_bytes);  // RFC 9000 section 8.1
  REQUIRE(a.wait_idle(5'000));
  a.finish("forged Initials x2000", std::to_string(closes) + " answers (CONNECTION_CLOSE), all connections gone",
           2000 * kHalfOpenBudgetKiB + kSlackKiB);
}

TEST_CASE("adversarial: handshake flood, 600 real ClientHellos from 20 ports, never finished", "[adversarial]") {
  Arena a;
  const auto ch = capture_client_hello(a.tl);
  std::vector<std::unique_ptr<RawSocket>> socks;
  for (int i = 0; i < 20; ++i) socks.push_back(std::make_unique<RawSocket>());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 600; ++i) {
    auto &s = *socks[static_cast<std::size_t>(i) % socks.size()];
    s.send_to(a.server->port(), seal_client_initial(random_bytes(rng, 8), ch.scid, 0, ch.frames));
    if (i % 50 == 49) a.tl.run_for(2);
  }
  a.tl.run_for(50);
  a.peak();
  std::size_t answered = 0, sent = 0;
  for (auto &s : socks) {
    s->drain();
    answered += s->answer_bytes;
    sent += s->sent_bytes;
  }
  const auto active = a.server->stats().connections_active;
  // Unvalidated addresses get at most three times what they sent (RFC 9000 section 8.1).
  CHECK(answered <= 3 * sent);
  // The handshake timeout (1 s here) reaps every half-open connection.
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(a.wait_idle(5'000));
  const auto reap_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  for (auto &s : socks) s->drain();
  a.finish("handshake flood x600",
           std::to_string(active) + " half-open, first flights " + std::to_string(answered) + " B for " +
               std::to_string(sent) + " B, all reaped in " + std::to_string(reap_ms) + " ms",
           600 * kHalfOpenBudgetKiB + kSlackKiB);
}

TEST_CASE("adversarial: malformed HTTP/3 frames close the connection with the RFC 9114 code", "[adversarial]") {
  Arena a;
  struct Case {
    const char *name;
    bool send_control;
    std::function<void(WirePeer &)> attack;
    std::uint64_t code;
  };
  const auto settings = wire_dialect_settings(WireDialect::draft13);
  const std::vector<Case> cases = {
      {"DATA on the control stream", false,
       [&](WirePeer &p) {
         p.send(p.open_uni(), wire_cat({wire_control_stream(settings), wire_data_frame(wire_bytes("x"))}));
       },
       0x105},  // H3_FRAME_UNEXPECTED, RFC 9114 section 7.2.1
      {"SETTINGS twice", false,
       [&](WirePeer &p) {
         p.send(p.open_uni(), wire_cat({wire_control_stream(settings), wire_frame(0x04, {})}));
       },
       0x105},  // section 7.2.4
      {"HTTP/2 PRIORITY type on a request", true,
       [](WirePeer &p) { p.send(p.open_bidi(), wire_frame(0x02, wire_bytes("x"))); }, 0x105},  // section 7.2.8
      {"second control stream", true, [&](WirePeer &p) { p.send(p.open_uni(), wire_control_stream(settings)); },
       0x103},  // section 6.2.1
      {"control stream closed", false, [&](WirePeer &p) { p.send(p.open_uni(), wire_control_stream(settings), true); },
       0x104},  // section 6.2.1
      {"truncated GOAWAY", false,
       [&](WirePeer &p) {
         const std::uint8_t cut[] = {0xc0, 0x00};  // an 8-byte varint in a 2-byte frame
         p.send(p.open_uni(), wire_cat({wire_control_stream(settings), wire_frame(0x07, cut)}));
       },
       0x106},  // H3_FRAME_ERROR, section 7.1
  };
  std::string answer;
  for (const auto &c : cases) {
    WirePeer::Options o;
    o.send_control = c.send_control;
    auto peer = WirePeer::connect(&a.tl.loop, a.server->port(), o);
    REQUIRE(a.tl.run_until([&] { return peer->handshake_done(); }));
    c.attack(*peer);
    REQUIRE(a.tl.run_until([&] { return peer->close_log().closed; }));
    INFO(c.name);
    CHECK(peer->close_log().application);
    CHECK(peer->close_log().code == c.code);
    answer += std::string(answer.empty() ? "" : ", ") + c.name + " -> " + hex(peer->close_log().code);
    peer->close(a.tl);
  }
  a.peak();
  a.finish("malformed HTTP/3 frames", answer, 8 * 1024);
}

TEST_CASE("adversarial: malformed and oversized capsules", "[adversarial]") {
  Arena a;
  std::string answer;
  // A malformed capsule must end the session on the server, and streams the
  // peer opens for it later are refused with WT_SESSION_GONE. What the CONNECT
  // stream gets on the wire is recorded (issue 10 point 2 wants a reset with
  // the draft's code; today the server sends nothing there).
  auto bad_capsule = [&](const char *name, std::uint64_t type, const WireBytes &value) {
    auto peer = session_peer(a);
    peer->send_capsule(0, type, value);
    REQUIRE(a.tl.run_until([&] { return a.server->stats().sessions_active == 0; }));
    const auto late = peer->open_wt_stream(true, 0, wire_bytes("late"));
    REQUIRE(a.tl.run_until([&] { return peer->stream(late).reset_code.has_value(); }));
    CHECK(peer->stream(late).reset_code == 0x170d7b68u);  // WT_SESSION_GONE
    const auto &c = peer->stream(0);
    answer += std::string(answer.empty() ? "" : ", ") + name + " -> session ended, later streams " +
              hex(*peer->stream(late).reset_code) + ", CONNECT stream " +
              (c.reset_code ? "reset " + hex(*c.reset_code)
               : c.fin      ? std::string("FIN")
                            : std::string("untouched"));
    peer->close(a.tl);
  };
  const std::uint8_t not_utf8[] = {0xff, 0xfe};
  bad_capsule("non-UTF-8 WT_CLOSE_SESSION reason", 0x2843, wire_close_session_value(7, not_utf8));
  bad_capsule("WT_MAX_DATA of 9 bytes", 0x190B4D3D, wire_cat({wire_varint_len(1, 8), wire_bytes("x")}));
  {  // An unknown capsule claiming 1 GiB, 4 MiB of it sent, then 10 000 small unknown capsules:
    // skipped as they arrive, never buffered; the session keeps working.
    auto peer = session_peer(a);
    peer->send(0, wire_data_frame(wire_capsule_header(0x3a3a, 1ull << 30)));
    const std::vector<std::uint8_t> chunk(64 * 1024, 0x5a);
    for (int i = 0; i < 64; ++i) peer->send(0, wire_data_frame(chunk));
    a.tl.run_for(200);
    a.peak();
    peer->reset_stream(0, 0x10c);  // the only way out of a 1 GiB capsule
    peer->close(a.tl);
    auto peer2 = session_peer(a);
    const std::vector<std::uint8_t> tiny = {1, 2, 3};
    WireBytes many;
    for (int i = 0; i < 10'000; ++i) {
      const auto c = wire_capsule(0x3a3a, tiny);
      many.insert(many.end(), c.begin(), c.end());
    }
    peer2->send(0, wire_data_frame(many));
    const auto bidi = peer2->open_wt_stream(true, 0, wire_bytes("still here"), true);
    REQUIRE(a.tl.run_until([&] { return peer2->stream(bidi).fin; }));
    CHECK(peer2->stream(bidi).data == wire_bytes("still here"));
    CHECK_FALSE(peer2->stream(0).reset_code.has_value());
    answer += ", 1 GiB unknown capsule (4 MiB sent) and 10 000 tiny ones -> skipped, session still echoes";
    peer2->close(a.tl);
  }
  a.finish("capsules", answer, 16 * 1024);
}

TEST_CASE("adversarial: header floods", "[adversarial]") {
  Arena a;
  std::string answer;
  // Both are over max_field_section_size (16 KiB): each request is refused
  // on its own stream (RFC 9114 4.2.2), the connection stays.
  {  // One CONNECT whose field section is 1 MiB (16 384 fields of 64 bytes).
    auto peer = WirePeer::connect(&a.tl.loop, a.server->port());
    REQUIRE(a.tl.run_until([&] { return peer->peer_settings().has_value(); }));
    auto fields = wire_connect_request(WireDialect::draft13, "localhost", "/echo");
    for (int i = 0; i < 16'384; ++i) fields.emplace_back("x-flood-" + std::to_string(i), std::string(48, 'v'));
    const auto sid = peer->send_request(fields);
    REQUIRE(a.tl.run_until([&] {
      return peer->status(sid).has_value() || peer->stream(sid).reset_code.has_value() || peer->close_log().closed;
    }));
    a.peak();
    answer += "1 MiB field section -> " + (peer->close_log().closed ? "connection closed " + hex(peer->close_log().code)
                                           : peer->stream(sid).reset_code.has_value()
                                               ? "stream reset " + hex(*peer->stream(sid).reset_code)
                                               : "status " + std::to_string(*peer->status(sid)));
    peer->close(a.tl);
  }
  {  // 200 requests with 32 KiB of headers each, all in flight together.
    auto peer = WirePeer::connect(&a.tl.loop, a.server->port());
    REQUIRE(a.tl.run_until([&] { return peer->peer_settings().has_value(); }));
    WireFields f = {{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/"}};
    for (int i = 0; i < 512; ++i) f.emplace_back("x-h" + std::to_string(i), std::string(56, 'v'));
    std::vector<std::int64_t> sids;
    for (int i = 0; i < 200; ++i) sids.push_back(peer->send_request(f, true));
    std::size_t answered = 0;
    a.tl.run_until([&] {
      answered = 0;
      for (auto sid : sids) answered += peer->status(sid).has_value() || peer->stream(sid).reset_code ? 1 : 0;
      return answered == sids.size() || peer->close_log().closed;
    });
    a.peak();
    // Every refused request gets its answer (RFC 9114 4.2.2: 431; 8.1:
    // H3_REQUEST_REJECTED when it was not processed): none may be left with
    // only the STOP_SENDING that stops reading it, or with nothing.
    std::size_t stopped_only = 0, unanswered = 0;
    for (auto sid : sids) {
      const bool refused = peer->status(sid) == 431 || peer->stream(sid).reset_code == 0x10bu;
      if (!refused) ++unanswered;
      if (!peer->status(sid) && !peer->stream(sid).reset_code && peer->stream(sid).stop_sending_code) ++stopped_only;
    }
    CHECK_FALSE(peer->close_log().closed);
    CHECK(unanswered == 0);
    CHECK(stopped_only == 0);
    answer += ", 200 x 32 KiB GET -> " + std::to_string(answered) + " answered" +
              (peer->status(sids[0]) ? " (" + std::to_string(*peer->status(sids[0])) + ")" : std::string()) +
              (stopped_only != 0 ? ", " + std::to_string(stopped_only) + " only stopped (STOP_SENDING, no response)"
                                 : std::string()) +
              (peer->close_log().closed
                   ? ", then connection closed " + hex(peer->close_log().code) + " " + peer->close_log().reason
                   : std::string());
    peer->close(a.tl);
  }
  // 200 x 32 KiB of headers held by the peer until it closes, the server's frame
  // buffers and decoded copies: about 20 MiB.
  a.finish("header floods", answer, 48 * 1024);
}

TEST_CASE("adversarial: bad QPACK references", "[adversarial]") {
  Arena a;
  std::string answer;
  {  // Static table index 127: the table has 99 entries (RFC 9204 appendix A).
    auto peer = WirePeer::connect(&a.tl.loop, a.server->port());
    REQUIRE(a.tl.run_until([&] { return peer->peer_settings().has_value(); }));
    const std::uint8_t section[] = {0x00, 0x00, 0xff, 0x40};  // indexed field line, static, index 63 + 64
    peer->send(peer->open_bidi(), wire_frame(0x01, section));
    REQUIRE(a.tl.run_until([&] { return peer->close_log().closed; }));
    CHECK(peer->close_log().code == 0x200u);  // QPACK_DECOMPRESSION_FAILED
    answer += "static index 127 -> " + hex(peer->close_log().code);
    peer->close(a.tl);
  }
  {  // 150 requests referencing a dynamic entry that is never inserted: the
     // server allows 100 blocked streams (its SETTINGS), the 101st is an error.
    auto peer = WirePeer::connect(&a.tl.loop, a.server->port());
    REQUIRE(a.tl.run_until([&] { return peer->peer_settings().has_value(); }));
    // Required Insert Count 1 (encoded 2 with 128 entries, RFC 9204 section 4.5.1.1),
    // base 0 + 1, dynamic index 0 (post-base 0x10).
    const std::uint8_t section[] = {0x02, 0x00, 0x10};
    for (int i = 0; i < 150 && !peer->close_log().closed; ++i) peer->send(peer->open_bidi(), wire_frame(0x01, section));
    a.tl.run_until([&] { return peer->close_log().closed; }, 3'000);
    a.peak();
    answer += ", 150 blocked requests -> " +
              (peer->close_log().closed ? hex(peer->close_log().code) : std::string("held, connection open"));
    CHECK(peer->close_log().closed);
    peer->close(a.tl);
  }
  {  // The encoder stream sets a capacity above the 4096 the server allows.
    auto peer = WirePeer::connect(&a.tl.loop, a.server->port());
    REQUIRE(a.tl.run_until([&] { return peer->peer_settings().has_value(); }));
    const std::uint8_t set_capacity[] = {0x3f, 0xe1, 0xff, 0x03};  // Set Dynamic Table Capacity 65535
    peer->send(6, set_capacity);  // stream 6: the peer's encoder stream (after control 2)
    REQUIRE(a.tl.run_until([&] { return peer->close_log().closed; }));
    CHECK(peer->close_log().code == 0x201u);  // QPACK_ENCODER_STREAM_ERROR
    answer += ", capacity 65535 on the encoder stream -> " + hex(peer->close_log().code);
    peer->close(a.tl);
  }
  a.finish("bad QPACK references", answer, 8 * 1024);
}

TEST_CASE("adversarial: 10 000 streams on one session", "[adversarial]") {
  Arena a;
  auto peer = session_peer(a);
  const auto payload = wire_bytes("s");
  std::vector<std::int64_t> sids;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (sids.size() < 10'000 && std::chrono::steady_clock::now() < deadline) {
    const auto sid = peer->open_wt_stream(true, 0, payload, true);
    if (sid >= 0) {
      sids.push_back(sid);
      if (sids.size() % 200 != 0) continue;
    }
    a.tl.run_for(1);  // out of stream credit (or a batch sent): let the server work
  }
  REQUIRE(sids.size() == 10'000);
  std::size_t echoed = 0;
  REQUIRE(a.tl.run_until(
      [&] {
        echoed = 0;
        for (auto sid : sids) echoed += peer->stream(sid).fin && peer->stream(sid).data == payload ? 1 : 0;
        return echoed == sids.size();
      },
      30'000));
  a.peak();
  peer->close(a.tl);
  a.finish("10 000 streams", "all " + std::to_string(echoed) + " echoed with FIN", 64 * 1024);
}

TEST_CASE("adversarial: 100 000 datagrams", "[adversarial]") {
  Arena a;
  auto peer = session_peer(a);
  const auto d = wire_cat({wire_varint(0), std::vector<std::uint8_t>(40, 0x64)});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int sent = 0;
  while (sent < 100'000 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1000; ++i, ++sent) peer->send_datagram(d);
    a.tl.run_for(2);
  }
  a.tl.run_for(200);
  a.peak();
  const auto echoed = peer->datagrams().size();
  CHECK(sent == 100'000);
  CHECK(echoed > 0);
  CHECK_FALSE(peer->close_log().closed);
  peer->close(a.tl);
  a.finish("100 000 datagrams",
           std::to_string(sent) + " sent, " + std::to_string(echoed) + " echoed, the rest dropped (unreliable)",
           32 * 1024);
}

TEST_CASE("adversarial: never-reading client", "[adversarial]") {
  Arena a;
  auto c = connect(a.tl, a.server->port(), "/echo");
  REQUIRE(c.session);
  // 8 streams each trying to push 16 MiB through the echo route while the
  // client never reads the echo: the server can send back only what flow
  // control allows, its echo pauses, it stops reading, and the client stalls.
  // Nothing grows with what the attacker would like to send.
  constexpr std::size_t kWant = 16u << 20, kChunk = 256u << 10;
  struct Pusher {
    std::shared_ptr<Stream> st;
    std::size_t written = 0;
  };
  std::vector<std::shared_ptr<Pusher>> pushers;
  for (int i = 0; i < 8; ++i) {
    c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
      REQUIRE(e.ok());
      auto p = std::make_shared<Pusher>();
      p->st = st;
      st->pause();
      std::weak_ptr<Pusher> wp = p;
      auto pump = [wp, kWant, kChunk] {
        auto p = wp.lock();
        while (p && p->written < kWant && p->st->writable()) {
          p->st->write(pattern(kChunk, static_cast<std::uint32_t>(p->written)));
          p->written += kChunk;
        }
      };
      st->on_writable(pump);
      pump();
      pushers.push_back(p);
    });
  }
  REQUIRE(a.tl.run_until([&] { return pushers.size() == 8; }));
  a.tl.run_for(1'500);
  a.peak();
  std::size_t written = 0;
  for (auto &p : pushers) written += p->written;
  CHECK(written < 8 * kWant);  // stalled by flow control, not drained by the server
  close_all(a.tl, c.conn, nullptr);
  pushers.clear();
  REQUIRE(a.wait_idle(5'000));
  a.finish("never-reading client",
           "8 streams wanted 128 MiB, stalled after " + std::to_string(written >> 10) +
               " KiB (server echo paused, flow control)",
           // Per stream, all in this process: the client's 1 MiB send buffer and
           // receive window, the server's receive window and 1 MiB echo buffer.
           8 * 8 * 1024 + kSlackKiB);
}

TEST_CASE("adversarial: resets of WebTransport streams and of the CONNECT stream", "[adversarial]") {
  Arena a;
  auto peer = session_peer(a);
  std::vector<std::int64_t> first, second;
  for (int i = 0; i < 100; ++i) first.push_back(peer->open_wt_stream(true, 0, wire_bytes("abc")));
  REQUIRE(a.tl.run_until([&] {
    return std::all_of(first.begin(), first.end(), [&](auto sid) { return peer->stream(sid).data.size() == 3; });
  }));
  for (auto sid : first) {
    peer->reset_stream(sid, 0x52e4a40fa8db);  // WebTransport application error 0
    peer->stop_sending(sid, 0x52e4a40fa8db);
  }
  for (int i = 0; i < 100; ++i) second.push_back(peer->open_wt_stream(true, 0, wire_bytes("def")));
  REQUIRE(a.tl.run_until([&] {
    return std::all_of(second.begin(), second.end(), [&](auto sid) { return peer->stream(sid).data.size() == 3; });
  }));
  // The CONNECT stream reset in both directions ends the session: the server
  // must end every stream of it (draft-13 section 6) and forget the session.
  peer->reset_stream(0, 0x10c);
  peer->stop_sending(0, 0x10c);
  REQUIRE(a.tl.run_until([&] {
    return std::all_of(second.begin(), second.end(),
                       [&](auto sid) { return peer->stream(sid).reset_code.has_value(); });
  }));
  const auto code = *peer->stream(second[0]).reset_code;
  CHECK(code == 0x170d7b68u);  // WT_SESSION_GONE
  REQUIRE(a.tl.run_until([&] { return a.server->stats().sessions_active == 0; }));
  a.peak();
  peer->close(a.tl);
  a.finish("resets of WT and CONNECT",
           "100 WT streams reset + STOP_SENDING, then CONNECT reset: the other 100 reset with " + hex(code) +
               ", session gone",
           16 * 1024);
}

TEST_CASE("adversarial: abrupt closes with streams and datagrams in flight", "[adversarial]") {
  Arena a;
  for (int round = 0; round < 20; ++round) {
    auto peer = session_peer(a);
    for (int i = 0; i < 10; ++i) peer->open_wt_stream(true, 0, std::vector<std::uint8_t>(16 * 1024, 0x61));
    peer->send_datagram(wire_cat({wire_varint(0), wire_bytes("x")}));
    a.tl.run_for(5);
    peer->close_connection(round % 2 == 0 ? 0x0 : 0x10c, "gone");
    peer->close(a.tl);
  }
  a.peak();
  REQUIRE(a.tl.run_until([&] { return a.server->stats().sessions_active == 0; }, 5'000));
  REQUIRE(a.wait_idle(5'000));
  a.finish("abrupt closes x20", "every session and connection released", 16 * 1024);
}

}  // namespace uvwt::test
