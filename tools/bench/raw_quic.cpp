// The same bulk and latency measurements over plain QUIC streams: uvwt's own
// Endpoint and QuicConnection (same sockets, batching, TLS, ngtcp2 driving),
// with a minimal QuicApp in place of HTTP/3 + WebTransport. The ratio of the
// two is the cost of the layers above QUIC.
//
// Stream protocol: the first byte of a client bidi stream picks the server's
// behaviour: 'S' sink (answer "bytes sum\n" on FIN), 'E' echo.

#include <deque>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "bench.hpp"
#include "quic/endpoint.hpp"
#include "quic/quic_app.hpp"
#include "quic/quic_connection.hpp"
#include "quic/socket_addr.hpp"
#include "quic/tls_context.hpp"

namespace uvwt::bench {
namespace {

using detail::QuicConnection;

constexpr const char *kAlpn = "uvwt-bench";
// Bytes handed to ngtcp2 must stay put until acknowledged: every stream's
// outgoing text lives in a buffer reserved once and never reallocated.
constexpr std::size_t kOutCapacity = 4u << 20;

struct RawStream {
  std::int64_t sid = -1;
  std::uint64_t pattern_left = 0;  // bulk bytes still to offer, cut from pattern()
  std::uint64_t pattern_off = 0;
  std::string out;  // small payloads (answers, pings), reserved
  std::size_t out_sent = 0;
  bool fin_wanted = false, fin_sent = false, queued = false;
  char mode = 0;  // server: 'S' or 'E' from the first byte
  std::uint64_t rx = 0, rx_sum = 0;
  bool rx_fin = false;
  std::string rx_text;  // client: the sink's answer

  [[nodiscard]] bool has_data() const { return pattern_left > 0 || out_sent < out.size() || (fin_wanted && !fin_sent); }
};

class RawApp final : public detail::QuicApp {
 public:
  explicit RawApp(bool server) : server_(server) {}
  QuicConnection *q = nullptr;
  bool handshake_done = false;
  bool closed = false;
  Error close_err;
  std::function<void(RawStream &, std::span<const std::uint8_t>, bool)> on_data_hook;

  RawStream &stream(std::int64_t sid) {
    auto &p = streams_[sid];
    if (!p) {
      p = std::make_unique<RawStream>();
      p->sid = sid;
    }
    return *p;
  }
  void want_send(RawStream &s) {
    if (!s.queued && s.has_data()) {
      s.queued = true;
      queue_.push_back(s.sid);
    }
    if (q != nullptr) q->resume_stream(s.sid);
  }
  bool append_out(RawStream &s, std::span<const std::uint8_t> d) {
    if (s.out.capacity() < kOutCapacity) s.out.reserve(kOutCapacity);
    if (s.out.size() + d.size() > kOutCapacity) return false;
    s.out.append(reinterpret_cast<const char *>(d.data()), d.size());
    return true;
  }

  void on_handshake_completed() override { handshake_done = true; }
  bool on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) override {
    RawStream &s = stream(sid);
    std::span<const std::uint8_t> d(data, len);
    if (server_ && s.mode == 0 && !d.empty()) {
      s.mode = static_cast<char>(d[0]);
      d = d.subspan(1);
    }
    s.rx += d.size();
    s.rx_sum += byte_sum(d);
    if (fin) s.rx_fin = true;
    if (len > 0) q->extend_stream_offset(sid, len);
    if (server_) {
      if (s.mode == 'E' && !d.empty()) {
        if (!append_out(s, d)) return false;
      }
      if (fin) {
        if (s.mode == 'S') {
          const std::string ans = std::to_string(s.rx) + ' ' + std::to_string(s.rx_sum) + '\n';
          append_out(s, std::span(reinterpret_cast<const std::uint8_t *>(ans.data()), ans.size()));
        }
        s.fin_wanted = true;
      }
      want_send(s);
    } else if (on_data_hook) {
      on_data_hook(s, d, fin);
    }
    return true;
  }
  void on_stream_close(std::int64_t, bool, std::uint64_t) override {}
  void on_stream_reset(std::int64_t, std::uint64_t, std::uint64_t) override {}
  void on_stop_sending(std::int64_t, std::uint64_t) override {}
  void on_acked_stream_data(std::int64_t, std::uint64_t) override {}
  void on_extend_max_stream_data(std::int64_t sid) override {
    if (auto it = streams_.find(sid); it != streams_.end()) want_send(*it->second);
  }
  void on_extend_max_local_streams(bool) override {}
  void on_datagram(const std::uint8_t *, std::size_t) override {}

  void next_stream_write(detail::StreamWrite &w) override {
    while (!queue_.empty()) {
      auto it = streams_.find(queue_.front());
      if (it == streams_.end() || !it->second->has_data()) {
        if (it != streams_.end()) it->second->queued = false;
        queue_.pop_front();
        continue;
      }
      RawStream &s = *it->second;
      w.stream_id = s.sid;
      // Small payloads first (the client's mode byte precedes its bulk).
      if (s.out_sent < s.out.size())
        w.vec[w.vec_count++] = {reinterpret_cast<std::uint8_t *>(s.out.data() + s.out_sent), s.out.size() - s.out_sent};
      const Bytes &p = pattern();
      std::uint64_t left = s.pattern_left, off = s.pattern_off;
      while (left > 0 && w.vec_count < detail::StreamWrite::kMaxVecs) {
        const std::size_t at = static_cast<std::size_t>(off % p.size());
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, p.size() - at));
        w.vec[w.vec_count++] = {const_cast<std::uint8_t *>(p.data() + at), n};
        left -= n;
        off += n;
      }
      // FIN only rides on the chunk that carries the last byte.
      w.fin = s.fin_wanted && left == 0;
      return;
    }
  }
  void on_stream_written(std::int64_t sid, std::size_t n, bool fin_sent) override {
    auto it = streams_.find(sid);
    if (it == streams_.end()) return;
    RawStream &s = *it->second;
    const std::size_t from_out = std::min(n, s.out.size() - s.out_sent);
    s.out_sent += from_out;
    s.pattern_left -= n - from_out;
    s.pattern_off += n - from_out;
    if (fin_sent) s.fin_sent = true;
    if (!queue_.empty() && queue_.front() == sid) {
      queue_.pop_front();
      if (s.has_data())
        queue_.push_back(sid);
      else
        s.queued = false;
    }
  }
  void on_stream_blocked(std::int64_t sid, bool) override {
    if (!queue_.empty() && queue_.front() == sid) queue_.pop_front();
    if (auto it = streams_.find(sid); it != streams_.end()) it->second->queued = false;
  }
  const ngtcp2_vec *next_datagram() override { return nullptr; }
  void on_datagram_written(bool) override {}
  void on_quic_closed(const Error &err) override {
    closed = true;
    close_err = err;
  }

 private:
  bool server_;
  std::unordered_map<std::int64_t, std::unique_ptr<RawStream>> streams_;
  std::deque<std::int64_t> queue_;
};

TransportConfig raw_transport() {
  TransportConfig t;
  t.idle_timeout = std::chrono::milliseconds(120'000);
  t.precise_timers = precise_timers;
  apply_datagram_window(t);
  return t;
}

class RawAcceptor final : public detail::Acceptor {
 public:
  RawAcceptor(detail::Endpoint &ep, detail::TlsServerContext &tls) : ep_(ep), tls_(tls) {}
  bool accept_initial(detail::UdpSocket &sock, const detail::RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                      const ngtcp2_cid *original_dcid) override {
    auto app = std::make_unique<RawApp>(true);
    Error err;
    const detail::SockAddr local = pkt.local != nullptr ? *pkt.local : sock.local_addr();
    auto q = QuicConnection::create_server(ep_, sock, local, *pkt.remote, hd, original_dcid, tls_, raw_transport(),
                                           *app, err);
    if (!q) return false;
    app->q = q.get();
    q->on_packet(pkt);
    conns_.push_back({std::move(app), std::move(q)});
    return true;
  }

 private:
  detail::Endpoint &ep_;
  detail::TlsServerContext &tls_;
  // Kept for the life of the process: the bench child leaves with _exit.
  std::vector<std::pair<std::unique_ptr<RawApp>, std::unique_ptr<QuicConnection>>> conns_;
};

struct RawClient {
  uv_loop_t loop{};
  std::unique_ptr<detail::Endpoint> ep;
  std::shared_ptr<detail::TlsClientContext> tls;
  RawApp app{false};
  std::unique_ptr<QuicConnection> q;

  bool connect(const Job &job, std::uint16_t port, Report &r) {
    uv_loop_init(&loop);
    ep = std::make_unique<detail::Endpoint>(std::make_shared<detail::Deferred>(&loop), raw_transport());
    detail::UdpSocket *sock = nullptr;
    if (Error e = ep->bind(detail::SockAddr::any(AF_INET, 0), &sock)) {
      r.fail("bind: " + e.to_string());
      return false;
    }
    detail::TlsClientOptions o;
    o.pinned_sha256 = {job.cert.sha256};
    o.use_system_trust = false;
    o.alpn = {kAlpn};
    Error err;
    tls = detail::TlsClientContext::create(o, err);
    if (!tls) {
      r.fail("tls: " + err.to_string());
      return false;
    }
    q = QuicConnection::create_client(*ep, *sock, sock->local_addr(), *detail::SockAddr::parse("127.0.0.1", port), *tls,
                                      "localhost", raw_transport(), app, err);
    if (!q) {
      r.fail("quic: " + err.to_string());
      return false;
    }
    app.q = q.get();
    q->write_now();
    if (!run_until(
            &loop, [&] { return app.handshake_done || app.closed; }, 10) ||
        !app.handshake_done) {
      r.fail("raw QUIC handshake failed: " + app.close_err.to_string());
      return false;
    }
    return true;
  }
  RawStream *open(char mode) {
    std::int64_t sid = -1;
    if (q->open_bidi_stream(sid) != 0) return nullptr;
    RawStream &s = app.stream(sid);
    const std::uint8_t m = static_cast<std::uint8_t>(mode);
    app.append_out(s, std::span(&m, 1));
    return &s;
  }
};

}  // namespace

Report raw_server(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce) {
  Report r;
  uv_loop_t loop;
  uv_loop_init(&loop);
  detail::TlsServerOptions o;
  o.cert_pem = job.cert.cert_pem;
  o.key_pem = job.cert.key_pem;
  o.alpn = {kAlpn};
  Error err;
  auto tls = detail::TlsServerContext::create(o, err);
  if (!tls) {
    r.fail("tls: " + err.to_string());
    announce(0);
    return r;
  }
  detail::Endpoint ep(std::make_shared<detail::Deferred>(&loop), raw_transport());
  RawAcceptor acceptor(ep, *tls);
  ep.set_acceptor(&acceptor);
  detail::UdpSocket *sock = nullptr;
  if (Error e = ep.bind(*detail::SockAddr::parse("127.0.0.1", 0), &sock)) {
    r.fail("bind: " + e.to_string());
    announce(0);
    return r;
  }
  const double cpu0 = cpu_seconds(), sys0 = sys_seconds();
  announce(sock->local_addr().port());
  stop_loop_on_readable(&loop, ctl_fd);
  uv_run(&loop, UV_RUN_DEFAULT);
  r.kv["server_cpu_s"] = cpu_seconds() - cpu0;
  r.kv["server_sys_s"] = sys_seconds() - sys0;
  r.kv["server_gso"] = ep.gso() ? 1 : 0;
  r.kv["server_gro"] = ep.gro() ? 1 : 0;
  const auto &c = sock->counters();
  r.kv["server_packets_sent"] = static_cast<double>(c.packets_sent);
  r.kv["server_send_syscalls"] = static_cast<double>(c.send_syscalls);
  r.kv["server_packets_received"] = static_cast<double>(c.packets_received);
  r.kv["server_recv_syscalls"] = static_cast<double>(c.recv_syscalls);
  r.kv["server_gro_batches"] = static_cast<double>(c.gro_batches);
  return r;
}

Report raw_client_bulk(const Job &job, std::uint16_t port) {
  Report r;
  RawClient c;
  if (!c.connect(job, port, r)) return r;
  const std::uint64_t nstreams = std::max<std::uint64_t>(1, job.num("streams", 1));
  const std::uint64_t total = job.num("bytes", 1 << 20);
  std::vector<RawStream *> sts;
  std::vector<std::uint64_t> want, sums;
  std::uint64_t finished = 0;
  c.app.on_data_hook = [&](RawStream &s, std::span<const std::uint8_t> d, bool fin) {
    s.rx_text.append(reinterpret_cast<const char *>(d.data()), d.size());
    if (fin) ++finished;
  };
  const Bytes &p = pattern();
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < nstreams; ++i) {
    RawStream *s = c.open('S');
    if (s == nullptr) {
      r.fail("cannot open stream");
      return r;
    }
    const std::uint64_t n = total / nstreams + (i == 0 ? total % nstreams : 0);
    // The sink counts what follows the mode byte: the pattern, repeated.
    std::uint64_t sum = (n / p.size()) * byte_sum(p) + byte_sum(std::span(p.data(), n % p.size()));
    s->pattern_left = n;
    s->fin_wanted = true;
    c.app.want_send(*s);
    sts.push_back(s);
    want.push_back(n);
    sums.push_back(sum);
  }
  if (!run_until(
          &c.loop, [&] { return finished == nstreams || c.app.closed; }, job.time_limit_s))
    r.fail("raw bulk did not finish in time");
  const double elapsed = seconds_since(t0);
  std::uint64_t checked = 0;
  for (std::size_t i = 0; i < sts.size(); ++i) {
    std::istringstream in(sts[i]->rx_text);
    std::uint64_t bytes = 0, sum = 0;
    in >> bytes >> sum;
    if (bytes != want[i] || sum != sums[i])
      r.fail("raw sink saw " + std::to_string(bytes) + " bytes, sent " + std::to_string(want[i]));
    else
      checked += bytes;
  }
  r.kv["bytes_checked"] = static_cast<double>(checked);
  r.kv["mib_s"] = static_cast<double>(total) / elapsed / (1 << 20);
  r.kv["elapsed_s"] = elapsed;
  r.kv["client_cpu_s"] = cpu_seconds();
  r.kv["client_sys_s"] = sys_seconds();
  r.kv["client_gso"] = c.ep->gso() ? 1 : 0;
  r.kv["client_gro"] = c.ep->gro() ? 1 : 0;
  if (auto *s = c.ep->first_socket()) {
    r.kv["client_packets_sent"] = static_cast<double>(s->counters().packets_sent);
    r.kv["client_send_syscalls"] = static_cast<double>(s->counters().send_syscalls);
    r.kv["client_gso_batches"] = static_cast<double>(s->counters().gso_batches);
  }
  return r;
}

Report raw_client_latency(const Job &job, std::uint16_t port) {
  Report r;
  RawClient c;
  if (!c.connect(job, port, r)) return r;
  const std::uint64_t n = job.num("n", 100);
  constexpr std::size_t kSize = 64;
  if (n * kSize + 1 > kOutCapacity) {
    r.fail("too many round trips for the raw stream's buffer");
    return r;
  }
  RawStream *s = c.open('E');
  if (s == nullptr) {
    r.fail("cannot open stream");
    return r;
  }
  std::vector<double> lat;
  lat.reserve(n);
  std::size_t pending = 0;
  bool done = false;
  auto t_send = Clock::now();
  const std::span<const std::uint8_t> msg(pattern().data(), kSize);
  auto ping = [&] {
    t_send = Clock::now();
    c.app.append_out(*s, msg);
    c.app.want_send(*s);
  };
  c.app.on_data_hook = [&](RawStream &, std::span<const std::uint8_t> d, bool) {
    pending += d.size();
    while (pending >= kSize) {
      pending -= kSize;
      lat.push_back(seconds_since(t_send) * 1e6);
      if (lat.size() >= n) {
        done = true;
        return;
      }
      ping();
    }
  };
  ping();
  if (!run_until(
          &c.loop, [&] { return done || c.app.closed; }, job.time_limit_s))
    r.fail("raw latency timed out");
  if (lat.size() < n) r.fail("only " + std::to_string(lat.size()) + " of " + std::to_string(n) + " round trips");
  r.kv["p50_us"] = percentile(lat, 50);
  r.kv["p99_us"] = percentile(lat, 99);
  r.kv["p999_us"] = percentile(lat, 99.9);
  r.samples["lat_us"] = std::move(lat);
  return r;
}

}  // namespace uvwt::bench
