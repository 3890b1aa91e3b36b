// The 1-RTT packet path of a real uvwt Server: ngtcp2's frame parsers for an
// established connection, our QuicApp callbacks, HTTP/3 and WebTransport,
// reached with arbitrary frames after a real handshake and a real session.
//
// ngtcp2 1.x has no null-crypto mode, so the harness does what a peer that
// knows the keys does: a uvwt client connects through a relay socket owned by
// the harness, with its TLS secrets logged (SSLKEYLOGFILE); once the session
// on /echo is up the relay stops forwarding the client's packets, and every
// input is protected as one 1-RTT packet with the client's traffic secret
// (RFC 9001 sections 5.1-5.4) and sent to the server from the client's
// address, under the connection id the server chose. The connection is kept
// across inputs and made again when the server has closed it (or after a
// fixed number of inputs, so a crash reproduces from a short sequence).
//
// Input: the frames of one packet (RFC 9000 section 12.4), at most 1200 bytes.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include <uvwt/certificate.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/log.hpp>
#include <uvwt/server.hpp>

#include "fuzz_support.hpp"
#include "support/echo_handler.hpp"
#include "support/initial_packet.hpp"

namespace {

constexpr int kInputsPerConnection = 64;
constexpr std::uint32_t kFirstPacketNumber = 1u << 16;  // above anything the client sent

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  return ntohs(a.sin_port);
}

// The Source Connection ID of a server long-header packet (RFC 9000 section 17.2).
std::optional<std::vector<std::uint8_t>> long_header_scid(std::span<const std::uint8_t> d) {
  if (d.size() < 7 || (d[0] & 0x80) == 0) return std::nullopt;
  std::size_t at = 5;
  at += 1 + d[at];
  if (at >= d.size() || at + 1 + d[at] > d.size()) return std::nullopt;
  return std::vector<std::uint8_t>(d.begin() + static_cast<std::ptrdiff_t>(at + 1),
                                   d.begin() + static_cast<std::ptrdiff_t>(at + 1 + d[at]));
}

std::optional<std::array<std::uint8_t, 32>> newest_client_secret(const std::string &keylog) {
  std::ifstream in(keylog);
  std::string label, random, hex;
  std::optional<std::array<std::uint8_t, 32>> found;
  while (in >> label >> random >> hex) {
    if (label != "CLIENT_TRAFFIC_SECRET_0" || hex.size() != 64) continue;
    std::array<std::uint8_t, 32> s{};
    for (std::size_t i = 0; i < 32; ++i) s[i] = static_cast<std::uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    found = s;
  }
  return found;
}

struct Env {
  uv_loop_t loop{};
  std::string keylog_path;
  uvwt::ServerConfig server_cfg;
  uvwt::ClientConfig client_cfg;
  std::shared_ptr<uvwt::Server> server;
  int relay = -1;  // the client's view of the server, and the server's view of the client
  std::optional<sockaddr_in> client_addr;

  // The connection the inputs land on.
  std::shared_ptr<uvwt::Connection> client;
  std::vector<std::uint8_t> server_cid;
  uvwt::test::PacketKeys keys{};
  std::uint32_t next_pn = kFirstPacketNumber;
  int inputs = 0;

  Env() {
    uvwt::set_log_level(uvwt::LogLevel::off);
    char dir[] = "/tmp/uvwt-fuzz-1rtt-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != nullptr);
    keylog_path = std::string(dir) + "/keylog";
    // Read once by the TLS layer, at the first session that asks for a key log.
    setenv("SSLKEYLOGFILE", keylog_path.c_str(), 1);
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    uvwt::CertificatePair pair;
    FUZZ_CHECK(uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1"}, std::chrono::hours(240), pair).ok());
    server_cfg.cert_pem = pair.cert_pem;
    server_cfg.key_pem = pair.key_pem;
    server_cfg.drain_timeout = std::chrono::milliseconds(0);
    client_cfg.server_certificate_hashes = {pair.sha256};
    client_cfg.keylog = true;
    client_cfg.connect_timeout = std::chrono::milliseconds(3000);
    uvwt::Error err;
    server = uvwt::Server::create(&loop, server_cfg, err);
    FUZZ_CHECK(err.ok() && server);
    FUZZ_CHECK(server->listen("127.0.0.1", 0).ok());
    server->route("/echo", uvwt::test::echo_handler());
    relay = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    FUZZ_CHECK(relay >= 0);
    const sockaddr_in any = loopback(0);
    FUZZ_CHECK(bind(relay, reinterpret_cast<const sockaddr *>(&any), sizeof any) == 0);
  }

  // Moves what arrived at the relay: the client's packets to the server while
  // `forward_client` (otherwise they are dropped: the harness speaks for the
  // client now), the server's to the client only during the set-up.
  void pump(bool forward_client, bool forward_server) {
    std::uint8_t buf[2048];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    for (ssize_t n; (n = recvfrom(relay, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &len)) > 0;
         len = sizeof from) {
      const std::span<const std::uint8_t> d(buf, static_cast<std::size_t>(n));
      if (ntohs(from.sin_port) == server->port()) {
        if (server_cid.empty())
          if (auto scid = long_header_scid(d)) server_cid = *scid;
        if (forward_server && client_addr)
          sendto(relay, buf, d.size(), 0, reinterpret_cast<const sockaddr *>(&*client_addr), sizeof *client_addr);
      } else {
        client_addr = from;
        if (forward_client) send_to_server(d);
      }
    }
  }

  void send_to_server(std::span<const std::uint8_t> d) const {
    const sockaddr_in to = loopback(server->port());
    sendto(relay, d.data(), d.size(), 0, reinterpret_cast<const sockaddr *>(&to), sizeof to);
  }

  void connect() {
    server_cid.clear();
    client_addr.reset();
    bool done = false;
    uvwt::Error result;
    client = uvwt::Connection::create_client(&loop, client_cfg, "127.0.0.1", port_of(relay), "/echo", std::nullopt,
                                             [&done, &result](const uvwt::Error &e, std::shared_ptr<uvwt::Connection>) {
                                               result = e;
                                               done = true;
                                             });
    FUZZ_CHECK(client != nullptr);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      pump(true, true);
    }
    FUZZ_CHECK(done && result.ok());
    // Let the last handshake and SETTINGS packets land on both sides.
    for (int i = 0; i < 20; ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
      pump(true, true);
    }
    const auto secret = newest_client_secret(keylog_path);
    FUZZ_CHECK(secret.has_value() && !server_cid.empty() && client_addr.has_value());
    keys = uvwt::test::keys_from_traffic_secret(*secret);
    next_pn = kFirstPacketNumber;
    inputs = 0;
    probe();
  }

  // A datagram sealed by the harness must reach the server's session, or the
  // inputs would only exercise the decryption failure path.
  void probe() {
    const std::uint8_t frame[] = {0x31, 0x06, 0x00, 'p', 'r', 'o', 'b', 'e'};  // DATAGRAM, quarter id 0
    send_to_server(uvwt::test::seal_short_packet(server_cid, next_pn++, frame, keys));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (server_datagrams() == 0 && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      pump(false, false);
    }
    FUZZ_CHECK(server_datagrams() > 0);
  }

  [[nodiscard]] std::uint64_t server_datagrams() const {
    std::uint64_t n = 0;
    for (const auto &c : server->connections())
      for (const auto &info : c->get_all_sessions())
        if (auto s = c->get_session(info.session_id)) n += s->stats().datagrams_received;
    return n;
  }

  [[nodiscard]] bool server_connection_open() const {
    for (const auto &c : server->connections())
      if (c->state() == uvwt::ConnectionState::connected) return true;
    return false;
  }

  void disconnect() {
    if (!client) return;
    bool closed = false;
    client->close(0, {}, [&closed] { closed = true; });
    client.reset();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!closed && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      pump(true, true);
    }
    FUZZ_CHECK(closed);
    // The server forgets the connection after its closing or draining period.
    while (!server->connections().empty() && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      pump(false, false);
    }
  }
};

Env &env() {
  static Env *e = new Env;
  return *e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size > 1200) return 0;
  Env &e = env();
  if (!e.client || e.inputs >= kInputsPerConnection || !e.server_connection_open()) {
    e.disconnect();
    e.connect();
  }
  ++e.inputs;
  e.send_to_server(uvwt::test::seal_short_packet(e.server_cid, e.next_pn++, {data, size}, e.keys));
  for (int i = 0; i < 4; ++i) {
    uv_run(&e.loop, UV_RUN_NOWAIT);
    e.pump(false, false);
  }
  return 0;
}

namespace uvwt_fuzz {

namespace {

void put_varint(std::vector<std::uint8_t> &out, std::uint64_t v) {
  if (v < 64) {
    out.push_back(static_cast<std::uint8_t>(v));
  } else if (v < 16384) {
    out.push_back(static_cast<std::uint8_t>(0x40 | (v >> 8)));
    out.push_back(static_cast<std::uint8_t>(v));
  } else {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>((i == 3 ? 0x80 : 0) | (v >> (8 * i))));
  }
}

// A STREAM frame with LEN (and FIN when asked), offset 0 (RFC 9000 section 19.8).
std::vector<std::uint8_t> stream_frame(std::uint64_t id, std::vector<std::uint8_t> payload, bool fin) {
  std::vector<std::uint8_t> f = {static_cast<std::uint8_t>(fin ? 0x0b : 0x0a)};
  put_varint(f, id);
  put_varint(f, payload.size());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

std::vector<std::uint8_t> bytes(std::initializer_list<std::uint8_t> b) { return b; }

std::vector<std::uint8_t> with_text(std::vector<std::uint8_t> head, const std::string &text) {
  head.insert(head.end(), text.begin(), text.end());
  return head;
}

// An HTTP/3 HEADERS frame (RFC 9114 section 7.2.2) whose field section uses
// the QPACK static table only (RFC 9204 section 4.5: Required Insert Count 0).
std::vector<std::uint8_t> headers_frame(std::vector<std::uint8_t> fields) {
  std::vector<std::uint8_t> block = {0x00, 0x00};
  block.insert(block.end(), fields.begin(), fields.end());
  std::vector<std::uint8_t> f = {0x01};
  put_varint(f, block.size());
  f.insert(f.end(), block.begin(), block.end());
  return f;
}

}  // namespace

std::vector<std::vector<std::uint8_t>> seeds() {
  // Client stream ids in use after the set-up: bidi 0 (the CONNECT stream),
  // uni 2, 6, 10 (control, QPACK encoder and decoder); the seeds open the next.
  const auto authority = with_text({0x50, 0x09}, "localhost");  // literal, static name :authority
  std::vector<std::vector<std::uint8_t>> s;
  s.push_back(bytes({0x01}));                                                  // PING
  s.push_back(stream_frame(4, with_text({0x40, 0x41, 0x00}, "hello"), true));  // WT bidi stream, session 0
  s.push_back(stream_frame(14, with_text({0x40, 0x54, 0x00}, "data"), true));  // WT uni stream, session 0
  s.push_back(with_text({0x31, 0x03, 0x00}, "dg"));                            // DATAGRAM, quarter id 0
  s.push_back(with_text({0x30, 0x00}, "dg-no-length"));                        // DATAGRAM without length
  s.push_back(bytes({0x05, 0x04, 0x00}));                                      // STOP_SENDING stream 4
  s.push_back(bytes({0x04, 0x04, 0x00, 0x00}));                                // RESET_STREAM stream 4
  s.push_back(bytes({0x10, 0x80, 0x10, 0x00, 0x00}));                          // MAX_DATA
  s.push_back(bytes({0x12, 0x40, 0x64}));                                      // MAX_STREAMS bidi
  s.push_back(bytes({0x1a, 1, 2, 3, 4, 5, 6, 7, 8}));                          // PATH_CHALLENGE
  s.push_back(bytes({0x18, 0x01, 0x00, 0x08, 1, 2, 3, 4, 5,  6,  7,  8,  0,  1,
                     2,    3,    4,    5,    6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));  // NEW_CONNECTION_ID
  s.push_back(bytes({0x1c, 0x0a, 0x00, 0x00}));                                      // CONNECTION_CLOSE
  s.push_back(bytes({0x1d, 0x00, 0x00}));                                            // application close
  s.push_back(bytes({0x02, 0x00, 0x00, 0x00, 0x00}));                                // ACK
  s.push_back(bytes({0x1e}));                                                        // HANDSHAKE_DONE from a client
  // Stream 2 (our control stream) data far ahead, and a new control stream.
  s.push_back(bytes({0x0e, 0x02, 0x44, 0x00, 0x03, 0x07, 0x01, 0x00}));
  s.push_back(stream_frame(14, bytes({0x00, 0x04, 0x00}), false));
  // GET / and a second extended CONNECT on new request streams.
  auto get = bytes({0xd1, 0xd7, 0xc1});  // :method GET, :scheme https, :path /
  get.insert(get.end(), authority.begin(), authority.end());
  s.push_back(stream_frame(4, headers_frame(get), true));
  auto connect = bytes({0xcf, 0xd7});  // :method CONNECT, :scheme https
  const auto protocol = with_text(with_text({0x27, 0x02}, ":protocol"), "\x0cwebtransport");
  connect.insert(connect.end(), protocol.begin(), protocol.end());
  const auto path = with_text({0x51, 0x05}, "/echo");
  connect.insert(connect.end(), path.begin(), path.end());
  connect.insert(connect.end(), authority.begin(), authority.end());
  s.push_back(stream_frame(8, headers_frame(connect), false));
  // Several frames in one packet: a WT stream, a datagram and a ping.
  auto mixed = stream_frame(12, with_text({0x40, 0x41, 0x00}, "x"), false);
  const auto dg = with_text({0x31, 0x02, 0x00}, "y");
  mixed.insert(mixed.end(), dg.begin(), dg.end());
  mixed.push_back(0x01);
  s.push_back(mixed);
  return s;
}

}  // namespace uvwt_fuzz
