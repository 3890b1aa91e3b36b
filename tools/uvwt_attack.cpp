// uvwt-attack: hostile loopback traffic against a uvwt-server, to measure
// what the limits in docs/security.md hold (not installed). Only 127.0.0.1
// and ::1 are accepted as targets; every attack is bounded by its count.
//
//   uvwt-attack --port P [--host ::1] [--server-pid PID] [--hold SECS] ATTACK
//   ATTACKS  --initials N        N real handshakes whose answers are never read
//            --resets N          N short-header packets for unknown connection ids
//            --vn N              N 1200-byte Initials of an unknown version
//            --early-streams N   N streams (MIB each) for a session never opened
//            --uni-hoard N       N uni streams (MIB each, no FIN) on /echo, echoes never read
//            --mib M             MiB per stream (default 4)
//
// Prints the server's resident memory (from /proc/PID/status) before the
// attack, when the attack has been sent, and after --hold seconds.
#include <uv.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/uvwt.hpp>

#include "connection/connection_impl.hpp"
#include "h3/h3_connection.hpp"
#include "quic/endpoint.hpp"
#include "quic/quic_app.hpp"
#include "quic/quic_connection.hpp"
#include "quic/null_quic_app.hpp"
#include "quic/tls_context.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"

namespace {

using namespace uvwt;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  long pid = 0;
  double hold = 2;
  std::string attack;
  std::size_t count = 0;
  std::size_t mib = 4;
};

double rss_mib(long pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}

void run_for(uv_loop_t *loop, double secs) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(secs);
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t *) {}, 10, 10);
  while (std::chrono::steady_clock::now() < end) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t *>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

// Real ClientHellos from one socket; the answers (Retry, handshake) are dropped.
void initials(uv_loop_t *loop, const detail::SockAddr &to, const Options &o) {
  TransportConfig cfg;
  cfg.handshake_timeout = std::chrono::milliseconds(60'000);
  auto ep = std::make_unique<detail::Endpoint>(std::make_shared<detail::Deferred>(loop), cfg);
  detail::UdpSocket *sock = nullptr;
  if (ep->bind(detail::SockAddr::any(to.family(), 0), &sock)) return;
  ImpairmentConfig deaf;
  deaf.enabled = true;
  deaf.receive_blackhole = true;
  ep->set_impairment(deaf);
  detail::TlsClientOptions t;
  t.verify_peer = false;
  Error err;
  auto tls = detail::TlsClientContext::create(t, err);
  detail::NullQuicApp app;
  std::vector<std::unique_ptr<detail::QuicConnection>> conns;
  for (std::size_t i = 0; i < o.count; ++i) {
    auto q =
        detail::QuicConnection::create_client(*ep, *sock, sock->local_addr(), to, *tls, "localhost", cfg, app, err);
    if (!q) break;
    q->write_now();
    conns.push_back(std::move(q));
    if (i % 50 == 49) uv_run(loop, UV_RUN_NOWAIT);
  }
  std::printf("sent %zu handshakes\n", conns.size());
  // Hold the handshakes open (our socket too: closing it would draw ICMP
  // errors that end them early) while the server's memory is measured.
  run_for(loop, 0.5);
  std::printf("server RSS with the handshakes pending: %.1f MiB\n", rss_mib(o.pid));
  run_for(loop, o.hold);
  std::printf("server RSS %.1f s later: %.1f MiB\n", o.hold, rss_mib(o.pid));
  conns.clear();
  bool closed = false;
  ep->close([&] { closed = true; });
  while (!closed) uv_run(loop, UV_RUN_ONCE);
}

// Raw datagrams from a plain socket; counts what comes back.
void raw_flood(const detail::SockAddr &to, const Options &o, bool vn) {
  const int fd = ::socket(to.family(), SOCK_DGRAM | SOCK_NONBLOCK, 0);
  std::uint8_t pkt[1200], buf[2048];
  std::size_t answers = 0;
  std::uint64_t x = 88172645463325252ull;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < o.count; ++i) {
    for (auto &b : pkt) b = static_cast<std::uint8_t>(x ^= x << 13, x ^= x >> 7, x ^= x << 17);
    std::size_t len = 60;
    if (vn) {
      len = sizeof pkt;
      pkt[0] = 0xc0;
      std::memcpy(pkt + 1, "\x1a\x2a\x3a\x4a", 4);  // a reserved version (RFC 9000 15)
      pkt[5] = 8;
      pkt[14] = 8;
    } else {
      pkt[0] = static_cast<std::uint8_t>(0x40 | (pkt[0] & 0x3f));
    }
    (void)::sendto(fd, pkt, len, 0, to.sa(), to.len);
    while (::recv(fd, buf, sizeof buf, 0) >= 0) ++answers;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  usleep(200'000);
  while (::recv(fd, buf, sizeof buf, 0) >= 0) ++answers;
  std::printf("sent %zu packets in %.2f s, %zu answers came back\n", o.count, secs, answers);
  ::close(fd);
}

std::shared_ptr<Connection> connect_echo(uv_loop_t *loop, const Options &o) {
  ClientConfig cfg;
  cfg.verify_peer = false;
  std::shared_ptr<Connection> conn;
  bool done = false;
  Connection::create_client(loop, cfg, o.host, o.port, "/echo", std::nullopt,
                            [&](const Error &e, std::shared_ptr<Connection> c) {
                              if (e) std::fprintf(stderr, "uvwt-attack: connect: %s\n", e.to_string().c_str());
                              conn = c;
                              done = true;
                            });
  while (!done) uv_run(loop, UV_RUN_ONCE);
  return conn;
}

// Streams that name a session id the client never opens, or uni streams
// whose echo is never read: both make the server hold data for us.
void hoard(uv_loop_t *loop, const Options &o, bool early) {
  auto conn = connect_echo(loop, o);
  if (!conn) return;
  auto *impl = dynamic_cast<detail::ConnectionImpl *>(conn.get());
  auto session = std::dynamic_pointer_cast<detail::SessionImpl>(conn->get_session(*conn->get_ready_session_id()));
  std::vector<std::shared_ptr<Stream>> keep;
  std::size_t errors = 0;
  const Bytes chunk(o.mib << 20, 0x5a);
  for (std::size_t i = 0; i < o.count; ++i) {
    auto write = [&](std::shared_ptr<Stream> st) {
      st->on_error([&](const Error &) { ++errors; });
      st->write(Bytes(chunk), {});
      keep.push_back(st);
    };
    if (early) {
      impl->h3()->open_wt_stream_for_test(session, session->id() + 400, true,
                                          [&, write](const Error &e, std::int64_t sid) {
                                            if (!e) write(impl->h3()->wt_stream(sid));
                                          });
    } else {
      session->on_uni_stream([](std::shared_ptr<Stream> st) { st->pause(); });  // never read the echo
      session->open_uni_stream([write](const Error &e, std::shared_ptr<Stream> st) {
        if (!e) write(st);
      });
    }
  }
  run_for(loop, 1.5);
  std::printf("opened %zu streams of %zu MiB, %zu refused so far\n", keep.size(), o.mib, errors);
  // Hold the connection while the caller measures; closed afterwards.
  static std::shared_ptr<Connection> held;
  held = conn;
}

int parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (v == nullptr) return 1;
    ++i;
    if (a == "--host")
      o.host = v;
    else if (a == "--port")
      o.port = static_cast<std::uint16_t>(std::atoi(v));
    else if (a == "--server-pid")
      o.pid = std::atol(v);
    else if (a == "--hold")
      o.hold = std::atof(v);
    else if (a == "--mib")
      o.mib = static_cast<std::size_t>(std::atol(v));
    else if (a == "--initials" || a == "--resets" || a == "--vn" || a == "--early-streams" || a == "--uni-hoard") {
      o.attack = a.substr(2);
      o.count = static_cast<std::size_t>(std::atol(v));
    } else
      return 1;
  }
  if (o.host != "127.0.0.1" && o.host != "::1") {
    std::fprintf(stderr, "uvwt-attack: loopback targets only (127.0.0.1, ::1)\n");
    return 1;
  }
  return o.port == 0 || o.attack.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  if (parse(argc, argv, o) != 0) {
    std::fprintf(stderr,
                 "usage: uvwt-attack --port P [--host 127.0.0.1|::1] [--server-pid PID] [--hold SECS] "
                 "[--mib M] (--initials|--resets|--vn|--early-streams|--uni-hoard) N\n");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  const auto to = *detail::SockAddr::parse(o.host, o.port);
  const double before = rss_mib(o.pid);
  if (o.attack == "initials") initials(&loop, to, o);
  if (o.attack == "resets" || o.attack == "vn") raw_flood(to, o, o.attack == "vn");
  if (o.attack == "early-streams" || o.attack == "uni-hoard") hoard(&loop, o, o.attack == "early-streams");
  const double during = rss_mib(o.pid);
  run_for(&loop, o.hold);
  const double after = rss_mib(o.pid);
  std::printf("attack %s x%zu: server RSS %.1f MiB before, %.1f MiB when sent, %.1f MiB %.1f s later\n",
              o.attack.c_str(), o.count, before, during, after, o.hold);
  // Whatever is still open is abandoned: the process ends here.
  std::fflush(stdout);
  _exit(0);
}
