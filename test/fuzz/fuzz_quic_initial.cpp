// The QUIC packet path of a real uvwt Server: each input becomes UDP datagrams
// sent on loopback to a fresh Server (its endpoint, ngtcp2, GnuTLS and our
// callbacks), in-process, and the server is closed again before the next.
// Mutations reach the frame parsers because the harness protects the fuzzed
// frames as a valid client Initial (keys from the connection id, RFC 9001
// section 5.2), so the server decrypts them: CRYPTO frames reach the TLS
// ClientHello and transport parameter parsers, ACK/PING/CONNECTION_CLOSE/...
// the Initial frame handling. 1-RTT frames are covered one layer up by
// fuzz-h3_connection.
//
// Input: byte 0 = mode. bit 0: the rest is sent raw as one datagram (header
// parsing, version negotiation, stateless reset, garbage); otherwise the rest
// is the frames of an Initial (bit 1: not padded to 1200 bytes, bit 2: first a
// valid Initial carrying a real ClientHello, then the fuzzed frames in
// packet number 1, so they land on a connection in handshake).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include <uvwt/certificate.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/log.hpp>
#include <uvwt/server.hpp>

#include "fuzz_support.hpp"
#include "support/initial_packet.hpp"

namespace {

constexpr std::uint8_t kDcid[] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};

struct Env {
  uv_loop_t loop{};
  uvwt::ServerConfig cfg;
  int fd = -1;  // the attacker's socket
  std::vector<std::uint8_t> client_hello_frames;
  // The real client's Source Connection ID: its ClientHello's transport
  // parameters name it (initial_source_connection_id), so our packets carry it.
  std::vector<std::uint8_t> scid;

  Env() {
    uvwt::set_log_level(uvwt::LogLevel::off);
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    uvwt::CertificatePair pair;
    FUZZ_CHECK(uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1"}, std::chrono::hours(240), pair).ok());
    cfg.cert_pem = pair.cert_pem;
    cfg.key_pem = pair.key_pem;
    cfg.drain_timeout = std::chrono::milliseconds(0);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    FUZZ_CHECK(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    auto first = capture_client_hello(pair.sha256);
    client_hello_frames = std::move(first.frames);
    scid = std::move(first.scid);
  }

  [[nodiscard]] std::uint16_t local_port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    return ntohs(a.sin_port);
  }

  // Bytes the server sent back.
  std::size_t drain() const {
    std::uint8_t buf[2048];
    std::size_t total = 0;
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) total += static_cast<std::size_t>(n);
    return total;
  }

  // The frames of the first Initial a real uvwt client sends (its ClientHello),
  // caught on our socket and decrypted.
  uvwt::test::OpenedInitial capture_client_hello(const std::array<std::uint8_t, 32> &cert_hash) {
    uvwt::ClientConfig cc;
    cc.server_certificate_hashes = {cert_hash};
    cc.connect_timeout = std::chrono::milliseconds(100);
    bool done = false;
    auto c = uvwt::Connection::create_client(
        &loop, cc, "127.0.0.1", local_port(), "/echo", std::nullopt,
        [&done](const uvwt::Error &, std::shared_ptr<uvwt::Connection>) { done = true; });
    std::optional<uvwt::test::OpenedInitial> first;
    std::uint8_t buf[2048];
    while (!done) {
      uv_run(&loop, UV_RUN_ONCE);
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0 && !first) first = uvwt::test::open_client_initial({buf, static_cast<std::size_t>(n)});
    }
    c.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    drain();
    FUZZ_CHECK(first.has_value() && !first->frames.empty());
    return *first;
  }
};

Env &env() {
  static Env *e = new Env;
  return *e;
}

void send_to(const Env &e, std::uint16_t port, std::span<const std::uint8_t> d) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  sendto(e.fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr *>(&a), sizeof a);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size == 0 || size > 1400) return 0;  // one datagram's worth
  Env &e = env();
  uvwt::Error err;
  auto server = uvwt::Server::create(&e.loop, e.cfg, err);
  FUZZ_CHECK(err.ok() && server);
  FUZZ_CHECK(server->listen("127.0.0.1", 0).ok());
  server->route("/echo", [](std::shared_ptr<uvwt::Session>, const uvwt::SessionRequest &) {});
  const std::uint8_t mode = data[0];
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  if ((mode & 1) != 0) {
    send_to(e, server->port(), rest);
  } else {
    std::uint32_t pn = 0;
    if ((mode & 4) != 0)
      send_to(e, server->port(), uvwt::test::seal_client_initial(kDcid, e.scid, pn++, e.client_hello_frames));
    send_to(e, server->port(), uvwt::test::seal_client_initial(kDcid, e.scid, pn, rest, (mode & 2) != 0 ? 0 : 1200));
  }
  for (int i = 0; i < 4; ++i) uv_run(&e.loop, UV_RUN_NOWAIT);
  bool closed = false;
  server->close([&closed] { closed = true; });
  while (!closed) uv_run(&e.loop, UV_RUN_ONCE);
  server.reset();
  uv_run(&e.loop, UV_RUN_NOWAIT);
  const std::size_t answers = e.drain();
  // The untouched ClientHello must get the server's first flight (ServerHello
  // and a certificate: well over 1500 bytes), or the harness is not reaching
  // the handshake at all.
  if (mode == 0 && std::equal(rest.begin(), rest.end(), e.client_hello_frames.begin(), e.client_hello_frames.end()))
    FUZZ_CHECK(answers > 1500);
  return 0;
}

namespace uvwt_fuzz {
std::vector<std::vector<std::uint8_t>> seeds() {
  const auto &ch = env().client_hello_frames;
  std::vector<std::vector<std::uint8_t>> s;
  auto with_mode = [](std::uint8_t mode, std::span<const std::uint8_t> rest) {
    std::vector<std::uint8_t> v = {mode};
    v.insert(v.end(), rest.begin(), rest.end());
    return v;
  };
  s.push_back(with_mode(0, ch));  // the real ClientHello
  // After it: an ACK of packet 0, a PING, a CONNECTION_CLOSE, a stray STREAM frame.
  s.push_back(with_mode(4, std::vector<std::uint8_t>{0x02, 0x00, 0x00, 0x00, 0x00}));
  s.push_back(with_mode(4, std::vector<std::uint8_t>{0x01}));
  s.push_back(with_mode(4, std::vector<std::uint8_t>{0x1c, 0x0a, 0x00, 0x03, 'b', 'y', 'e'}));
  s.push_back(with_mode(4, std::vector<std::uint8_t>{0x0b, 0x00, 0x03, 'a', 'b', 'c'}));
  // A CRYPTO frame cut short, and a short packet.
  s.push_back(with_mode(0, std::span(ch).first(std::min<std::size_t>(ch.size(), 60))));
  s.push_back(with_mode(2, ch));
  // Raw: the sealed ClientHello itself, a version negotiation trigger, a short header.
  const auto sealed = uvwt::test::seal_client_initial(kDcid, env().scid, 0, ch);
  s.push_back(with_mode(1, std::span(sealed).first(std::min<std::size_t>(sealed.size(), 1399))));
  std::vector<std::uint8_t> vn = {0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0};
  vn.resize(1200, 0);
  s.push_back(with_mode(1, vn));
  s.push_back(with_mode(1, std::vector<std::uint8_t>{0x40, 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                                     16,   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}));
  return s;
}
}  // namespace uvwt_fuzz
