// WebTransport scenarios through the public API (plus the endpoint's socket
// counters, read through the internal ConnectionImpl, to report which
// batching path ran).

#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include <uvwt/connection.hpp>
#include <uvwt/server.hpp>
#include <uvwt/udp_proxy.hpp>

#include "bench.hpp"
#include "connection/connection_impl.hpp"
#include "quic/endpoint.hpp"

namespace uvwt::bench {
namespace {

constexpr std::size_t kChunk = 64 * 1024;

void add_socket_figures(Report &r, const std::string &side, detail::Endpoint *ep) {
  if (ep == nullptr) return;
  r.kv[side + "_gso"] = ep->gso() ? 1 : 0;
  r.kv[side + "_gro"] = ep->gro() ? 1 : 0;
  if (auto *s = ep->first_socket()) {
    const auto &c = s->counters();
    r.kv[side + "_packets_sent"] = static_cast<double>(c.packets_sent);
    r.kv[side + "_send_syscalls"] = static_cast<double>(c.send_syscalls);
    r.kv[side + "_gso_batches"] = static_cast<double>(c.gso_batches);
    r.kv[side + "_packets_received"] = static_cast<double>(c.packets_received);
    r.kv[side + "_recv_syscalls"] = static_cast<double>(c.recv_syscalls);
    r.kv[side + "_gro_batches"] = static_cast<double>(c.gro_batches);
  }
}

detail::Endpoint *endpoint_of(const std::shared_ptr<Connection> &c) {
  if (!c) return nullptr;
  return std::static_pointer_cast<detail::ConnectionImpl>(c)->endpoint();
}

Bytes text_bytes(const std::string &s) { return Bytes(s.begin(), s.end()); }

// Echo with backpressure: reading pauses while the echo's send buffer is full.
void echo_stream(const std::shared_ptr<Stream> &st) {
  std::weak_ptr<Stream> w = st;
  st->on_writable([w] {
    if (auto s = w.lock()) s->resume();
  });
  st->on_data([w](std::span<const std::uint8_t> data, bool fin) {
    auto s = w.lock();
    if (!s) return;
    if (!data.empty()) s->write(Bytes(data.begin(), data.end()));
    if (fin) s->end();
    if (!s->writable()) s->pause();
  });
}

// Discards a stream's bytes and, on FIN, answers "bytes sum datagrams\n":
// what arrived on it and how many datagrams the session has received so far.
void sink_stream(const std::shared_ptr<Stream> &st, const std::shared_ptr<std::uint64_t> &datagrams) {
  struct Acc {
    std::uint64_t bytes = 0, sum = 0;
  };
  auto acc = std::make_shared<Acc>();
  std::weak_ptr<Stream> w = st;
  st->on_data([w, acc, datagrams](std::span<const std::uint8_t> d, bool fin) {
    acc->bytes += d.size();
    acc->sum += byte_sum(d);
    if (!fin) return;
    if (auto s = w.lock())
      s->write_and_end(text_bytes(std::to_string(acc->bytes) + ' ' + std::to_string(acc->sum) + ' ' +
                                  std::to_string(*datagrams) + '\n'));
  });
}

struct ClientCtx {
  uv_loop_t loop{};
  ClientConfig cfg;
  // via=proxy: a uvwt CONNECT-UDP proxy on this process's loop, and every
  // connection of the run goes through it (the "proxy" scenario).
  std::shared_ptr<Server> proxy_server;
  std::shared_ptr<UdpProxy> proxy;
  explicit ClientCtx(const Job &job) {
    uv_loop_init(&loop);
    cfg.server_certificate_hashes = {job.cert.sha256};
    cfg.use_system_trust = false;
    cfg.precise_timers = precise_timers;
    apply_datagram_window(cfg);
    cfg.connect_timeout = std::chrono::milliseconds(10'000);
    cfg.idle_timeout = std::chrono::milliseconds(120'000);
    if (job.str("via") == "proxy") start_proxy(job);
  }
  void start_proxy(const Job &job) {
    ServerConfig sc;
    sc.cert_pem = job.cert.cert_pem;
    sc.key_pem = job.cert.key_pem;
    sc.assume_full_mtu = true;
    sc.idle_timeout = std::chrono::milliseconds(120'000);
    sc.max_sessions_per_connection = 10'000;
    Error err;
    proxy_server = Server::create(&loop, sc, err);
    if (!proxy_server || proxy_server->listen("127.0.0.1", 0)) std::abort();
    UdpProxyConfig pc;
    pc.policy.allow_private_targets = true;  // loopback target
    pc.max_tunnels_per_connection = 100'000;
    proxy = UdpProxy::create(proxy_server, pc, err);
    if (!proxy) std::abort();
    cfg.proxy.url = "https://127.0.0.1:" + std::to_string(proxy_server->port());
    cfg.proxy.server_certificate_hashes = {job.cert.sha256};
  }
};

struct Connected {
  bool done = false;
  Error err;
  std::shared_ptr<Connection> conn;
  std::shared_ptr<Session> session;
};

std::shared_ptr<Connected> connect_async(ClientCtx &ctx, std::uint16_t port, const std::string &path) {
  auto r = std::make_shared<Connected>();
  Connection::create_client(&ctx.loop, ctx.cfg, "127.0.0.1", port, path, std::nullopt,
                            [r](const Error &e, std::shared_ptr<Connection> c) {
                              r->err = e;
                              r->conn = c;
                              if (c)
                                if (auto id = c->get_ready_session_id()) r->session = c->get_session(*id);
                              r->done = true;
                            });
  return r;
}

// Connects and waits; nullptr session (with r.error set) on failure.
std::shared_ptr<Connected> connect_wait(ClientCtx &ctx, std::uint16_t port, const std::string &path, Report &r) {
  auto c = connect_async(ctx, port, path);
  if (!run_until(
          &ctx.loop, [&] { return c->done; }, 15))
    r.fail("connect timed out");
  else if (c->err || !c->session)
    r.fail("connect failed: " + c->err.to_string());
  return c;
}

}  // namespace

void add_bench_routes(Server &server, std::function<void()> count) {
  server.route("/echo", [count](std::shared_ptr<Session> s, const SessionRequest &) {
    count();
    std::weak_ptr<Session> ws = s;
    s->on_bidi_stream([](std::shared_ptr<Stream> st) { echo_stream(st); });
    s->on_datagram([ws](std::span<const std::uint8_t> d) {
      if (auto s = ws.lock()) (void)s->send_datagram(d);
    });
  });
  server.route("/sink", [count](std::shared_ptr<Session> s, const SessionRequest &) {
    count();
    auto datagrams = std::make_shared<std::uint64_t>(0);
    s->on_bidi_stream([datagrams](std::shared_ptr<Stream> st) { sink_stream(st, datagrams); });
    s->on_datagram([datagrams](std::span<const std::uint8_t>) { ++*datagrams; });
  });
}

ServerConfig bench_server_config(const Job &job) {
  ServerConfig cfg;
  cfg.cert_pem = job.cert.cert_pem;
  cfg.key_pem = job.cert.key_pem;
  cfg.idle_timeout = std::chrono::milliseconds(120'000);
  cfg.max_sessions_per_connection = job.num("per_conn", 16);
  cfg.precise_timers = precise_timers;
  apply_datagram_window(cfg);
  cfg.max_connections = 100'000;
  cfg.early_data = job.num("resume", 0) == 2;  // resume=2: the 0-RTT run
  return cfg;
}

Report wt_server(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce) {
  Report r;
  uv_loop_t loop;
  uv_loop_init(&loop);
  Error err;
  auto server = Server::create(&loop, bench_server_config(job), err);
  if (!server || server->listen("127.0.0.1", 0)) {
    r.fail("server: " + err.to_string());
    announce(0);
    return r;
  }
  detail::Endpoint *ep = nullptr;
  server->on_connection([&ep](std::shared_ptr<Connection> c) {
    if (ep == nullptr) ep = endpoint_of(c);
  });
  std::uint64_t sessions = 0;
  const std::uint64_t step = job.num("mem_step", 0);
  add_bench_routes(*server, [&] {
    ++sessions;
    if (step > 0 && sessions % step == 0) {
      r.samples["mem_sessions"].push_back(static_cast<double>(sessions));
      r.samples["mem_rss_server"].push_back(static_cast<double>(rss_kib()));
    }
  });
  const long rss0 = rss_kib();
  const double cpu0 = cpu_seconds(), sys0 = sys_seconds();
  announce(server->port());
  stop_loop_on_readable(&loop, ctl_fd);
  uv_run(&loop, UV_RUN_DEFAULT);
  r.kv["server_cpu_s"] = cpu_seconds() - cpu0;
  r.kv["server_sys_s"] = sys_seconds() - sys0;
  r.kv["server_rss_base_kib"] = static_cast<double>(rss0);
  r.kv["server_rss_kib"] = static_cast<double>(rss_kib());
  r.kv["server_sessions"] = static_cast<double>(sessions);
  r.kv["server_connections"] = static_cast<double>(server->stats().connections_accepted);
  add_socket_figures(r, "server", ep);
  return r;
}

Report wt_client_setup(const Job &job, std::uint16_t port) {
  Report r;
  ClientCtx ctx(job);
  const std::uint64_t n = job.num("n", 10), par = std::max<std::uint64_t>(1, job.num("par", 1));
  std::uint64_t started = 0, done = 0, failed = 0;
  std::vector<double> lat_us;
  std::string first_error;
  // resume=0: every setup a full handshake; 1: resumed with the previous
  // setup's ticket; 2: resumed with 0-RTT offered (and accepted).
  const std::uint64_t resume = job.num("resume", 0);
  ctx.cfg.session_resumption = resume > 0;
  ctx.cfg.early_data = resume == 2;
  if (resume > 0) ctx.cfg.ticket_cache = TicketCache::create();
  std::uint64_t resumed = 0;
  std::function<void()> start_one = [&] {
    if (started >= n) return;
    ++started;
    const auto t0 = Clock::now();
    Connection::create_client(&ctx.loop, ctx.cfg, "127.0.0.1", port, "/echo", std::nullopt,
                              [&, t0](const Error &e, std::shared_ptr<Connection> c) {
                                ++done;
                                if (e || !c || !c->get_ready_session_id()) {
                                  ++failed;
                                  if (first_error.empty()) first_error = e.to_string();
                                } else {
                                  lat_us.push_back(seconds_since(t0) * 1e6);
                                  resumed += c->info().resumed ? 1 : 0;
                                  c->close(0, {}, {});
                                }
                                start_one();
                              });
  };
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < par; ++i) start_one();
  if (!run_until(
          &ctx.loop, [&] { return done == n; }, job.time_limit_s))
    r.fail("setup did not finish in time");
  const double elapsed = seconds_since(t0);
  if (failed > 0) r.fail(std::to_string(failed) + " setups failed: " + first_error);
  r.kv["sessions"] = static_cast<double>(lat_us.size());
  r.kv["resumed"] = static_cast<double>(resumed);
  r.kv["rate"] = static_cast<double>(lat_us.size()) / elapsed;
  r.kv["p50_us"] = percentile(lat_us, 50);
  r.kv["p99_us"] = percentile(lat_us, 99);
  r.samples["setup_us"] = std::move(lat_us);
  return r;
}

Report wt_client_bulk(const Job &job, std::uint16_t port) {
  Report r;
  ClientCtx ctx(job);
  const bool echo = job.str("mode") == "echo";
  const std::uint64_t nstreams = std::max<std::uint64_t>(1, job.num("streams", 1));
  const std::uint64_t total = job.num("bytes", 1 << 20);
  auto c = connect_wait(ctx, port, echo ? "/echo" : "/sink", r);
  if (!c->session) return r;
  const std::uint64_t full_chunk_sum = byte_sum(std::span(pattern().data(), kChunk));

  struct St {
    std::shared_ptr<Stream> s;
    std::uint64_t to_send = 0, want = 0, sent_sum = 0, rx = 0, rx_sum = 0;
    std::string text;
    bool ended = false, finished = false;
  };
  std::vector<St> sts(nstreams);
  std::uint64_t finished = 0;
  for (std::uint64_t i = 0; i < nstreams; ++i) {
    sts[i].want = total / nstreams + (i == 0 ? total % nstreams : 0);
    sts[i].to_send = sts[i].want;
  }
  auto pump = [&](St &st) {
    while (st.to_send > 0 && st.s->writable()) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(st.to_send, kChunk));
      // Borrowed from the static pattern, as raw-quic sends: no copy per write.
      const std::span<const std::uint8_t> b(pattern().data(), n);
      st.sent_sum += n == kChunk ? full_chunk_sum : byte_sum(b);
      st.s->write_borrowed(b, {});
      st.to_send -= n;
    }
    if (st.to_send == 0 && !st.ended) {
      st.ended = true;
      st.s->end();
    }
  };
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < nstreams; ++i) {
    c->session->open_bidi_stream([&, i](const Error &e, std::shared_ptr<Stream> s) {
      if (e || !s) return r.fail("open stream: " + e.to_string());
      St &st = sts[i];
      st.s = s;
      s->on_data([&st, &finished, echo](std::span<const std::uint8_t> d, bool fin) {
        if (echo) {
          st.rx += d.size();
          st.rx_sum += byte_sum(d);
        } else {
          st.text.append(reinterpret_cast<const char *>(d.data()), d.size());
        }
        if (fin && !st.finished) {
          st.finished = true;
          ++finished;
        }
      });
      s->on_writable([&st, &pump] { pump(st); });
      pump(st);
    });
  }
  if (!run_until(
          &ctx.loop, [&] { return finished == nstreams || !r.error.empty(); }, job.time_limit_s))
    r.fail("bulk did not finish in time (" + std::to_string(finished) + "/" + std::to_string(nstreams) + " streams)");
  const double elapsed = seconds_since(t0);
  std::uint64_t checked = 0;
  for (auto &st : sts) {
    if (!st.finished) continue;
    if (echo) {
      if (st.rx != st.want || st.rx_sum != st.sent_sum) r.fail("echo bytes/sum mismatch");
    } else {
      std::istringstream in(st.text);
      std::uint64_t bytes = 0, sum = 0;
      in >> bytes >> sum;
      if (bytes != st.want || sum != st.sent_sum)
        r.fail("sink saw " + std::to_string(bytes) + " bytes, sent " + std::to_string(st.want));
    }
    checked += st.want;
  }
  r.kv["bytes_checked"] = static_cast<double>(checked);
  r.kv["mib_s"] = static_cast<double>(total) / elapsed / (1 << 20);
  r.kv["elapsed_s"] = elapsed;
  r.kv["client_cpu_s"] = cpu_seconds();
  r.kv["client_sys_s"] = sys_seconds();
  add_socket_figures(r, "client", endpoint_of(c->conn));
  return r;
}

Report wt_client_datagrams(const Job &job, std::uint16_t port) {
  Report r;
  ClientCtx ctx(job);
  const bool oneway = job.str("mode") == "oneway";
  const std::uint64_t window = std::max<std::uint64_t>(1, job.num("window", 1));
  const std::size_t size = std::max<std::size_t>(8, job.num("size", 256));
  const double duration = static_cast<double>(job.num("ms", 1000)) / 1000.0;
  auto c = connect_wait(ctx, port, oneway ? "/sink" : "/echo", r);
  if (!c->session) return r;
  auto &session = *c->session;
  if (size > session.max_datagram_size()) {
    r.fail("datagram size above the path's limit");
    return r;
  }
  Bytes buf(pattern().begin(), pattern().begin() + static_cast<std::ptrdiff_t>(size));
  std::uint64_t sent = 0, recv = 0, bad = 0, outstanding = 0, lost = 0, queue_full = 0;
  const auto t0 = Clock::now();
  const auto tend = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  auto last_rx = t0;
  auto send_one = [&] {
    std::memcpy(buf.data(), &sent, sizeof sent);
    if (session.send_datagram(buf)) {
      ++queue_full;
      return false;
    }
    ++sent;
    ++outstanding;
    return true;
  };
  auto refill = [&] {
    while (outstanding < window && Clock::now() < tend && send_one()) {
    }
  };
  if (!oneway) {
    session.on_datagram([&](std::span<const std::uint8_t> d) {
      std::uint64_t seq = UINT64_MAX;
      if (d.size() == size) std::memcpy(&seq, d.data(), sizeof seq);
      if (seq >= sent) ++bad;
      ++recv;
      last_rx = Clock::now();
      if (outstanding > 0) --outstanding;
      refill();
    });
  }
  // Echo: a window whose datagrams were all lost would stall; after 20 ms of
  // silence its datagrams count as lost and the window refills.
  uv_timer_t tick;
  uv_timer_init(&ctx.loop, &tick);
  std::uint64_t recv_at_tick = 0;
  std::function<void()> on_tick = [&] {
    if (oneway) return;
    if (recv == recv_at_tick && outstanding > 0 && Clock::now() - last_rx > std::chrono::milliseconds(20)) {
      lost += outstanding;
      outstanding = 0;
    }
    recv_at_tick = recv;
    refill();
  };
  tick.data = &on_tick;
  uv_timer_start(
      &tick, [](uv_timer_t *t) { (*static_cast<std::function<void()> *>(t->data))(); }, 10, 10);
  // One-way: blast from an idle handle, as fast as the send queue takes them.
  uv_idle_t idle;
  uv_idle_init(&ctx.loop, &idle);
  std::function<void()> on_idle = [&] {
    for (int i = 0; i < 256 && Clock::now() < tend; ++i)
      if (!send_one()) break;
  };
  idle.data = &on_idle;
  if (oneway)
    uv_idle_start(&idle, [](uv_idle_t *h) { (*static_cast<std::function<void()> *>(h->data))(); });
  else
    refill();
  run_until(
      &ctx.loop, [&] { return Clock::now() >= tend; }, duration + 5);
  uv_idle_stop(&idle);
  if (oneway) {
    run_until(
        &ctx.loop, [] { return false; }, 0.3);  // let the tail arrive
    std::string text;
    bool fin = false;
    session.open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> s) {
      if (e || !s) return r.fail("open stream: " + e.to_string());
      s->on_data([&](std::span<const std::uint8_t> d, bool f) {
        text.append(reinterpret_cast<const char *>(d.data()), d.size());
        fin = fin || f;
      });
      s->end();
    });
    if (!run_until(
            &ctx.loop, [&] { return fin || !r.error.empty(); }, 10))
      r.fail("no datagram count from the server");
    std::istringstream in(text);
    std::uint64_t b = 0, s = 0;
    in >> b >> s >> recv;
    if (recv > sent || recv == 0) r.fail("server received " + std::to_string(recv) + " of " + std::to_string(sent));
    r.kv["rate"] = static_cast<double>(recv) / duration;
    r.kv["sent_rate"] = static_cast<double>(sent) / duration;
    r.kv["loss_pct"] =
        sent > 0 ? 100.0 * static_cast<double>(sent - std::min(recv, sent)) / static_cast<double>(sent) : 0;
  } else {
    run_until(
        &ctx.loop, [&] { return outstanding == 0; }, 0.3);
    const double span = std::chrono::duration<double>(last_rx - t0).count();
    if (recv == 0) r.fail("no datagram echoed");
    if (bad > 0) r.fail(std::to_string(bad) + " malformed echoes");
    r.kv["rate"] = span > 0 ? static_cast<double>(recv) / span : 0;
    r.kv["loss_pct"] =
        sent > 0 ? 100.0 * static_cast<double>(sent - std::min(recv, sent)) / static_cast<double>(sent) : 0;
  }
  r.kv["sent"] = static_cast<double>(sent);
  r.kv["received"] = static_cast<double>(recv);
  r.kv["queue_full"] = static_cast<double>(queue_full);
  r.kv["lost_windows"] = static_cast<double>(lost);
  add_socket_figures(r, "client", endpoint_of(c->conn));
  uv_timer_stop(&tick);
  return r;
}

Report wt_client_latency(const Job &job, std::uint16_t port) {
  Report r;
  ClientCtx ctx(job);
  const bool dgram = job.str("transport") == "datagram";
  const std::uint64_t n = job.num("n", 100);
  constexpr std::size_t kSize = 64;
  auto c = connect_wait(ctx, port, "/echo", r);
  if (!c->session) return r;
  std::vector<double> lat;
  lat.reserve(n);
  std::uint64_t seq = 0, lost = 0;
  auto t_send = Clock::now();
  Bytes msg(pattern().begin(), pattern().begin() + kSize);
  bool done = false;
  if (dgram) {
    auto send = [&] {
      std::memcpy(msg.data(), &seq, sizeof seq);
      t_send = Clock::now();
      if (c->session->send_datagram(msg)) r.fail("send_datagram failed");
    };
    c->session->on_datagram([&](std::span<const std::uint8_t> d) {
      std::uint64_t got = UINT64_MAX;
      if (d.size() == kSize) std::memcpy(&got, d.data(), sizeof got);
      if (got != seq) return;  // a late echo of a datagram already counted lost
      lat.push_back(seconds_since(t_send) * 1e6);
      ++seq;
      if (lat.size() >= n)
        done = true;
      else
        send();
    });
    uv_timer_t t;
    uv_timer_init(&ctx.loop, &t);
    std::function<void()> on_t = [&] {
      if (!done && Clock::now() - t_send > std::chrono::milliseconds(200)) {
        ++lost;
        ++seq;
        send();
      }
    };
    t.data = &on_t;
    uv_timer_start(
        &t, [](uv_timer_t *h) { (*static_cast<std::function<void()> *>(h->data))(); }, 50, 50);
    send();
    if (!run_until(
            &ctx.loop, [&] { return done || !r.error.empty(); }, job.time_limit_s))
      r.fail("latency run timed out");
    uv_timer_stop(&t);
  } else {
    std::shared_ptr<Stream> st;
    std::size_t pending = 0;
    c->session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> s) {
      if (e || !s) return r.fail("open stream: " + e.to_string());
      st = s;
      auto ping = [&] {
        t_send = Clock::now();
        st->write(Bytes(msg));
      };
      s->on_data([&, ping](std::span<const std::uint8_t> d, bool) {
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
      });
      ping();
    });
    if (!run_until(
            &ctx.loop, [&] { return done || !r.error.empty(); }, job.time_limit_s))
      r.fail("latency run timed out");
  }
  if (lat.size() < n) r.fail("only " + std::to_string(lat.size()) + " of " + std::to_string(n) + " round trips");
  r.kv["p50_us"] = percentile(lat, 50);
  r.kv["p99_us"] = percentile(lat, 99);
  r.kv["p999_us"] = percentile(lat, 99.9);
  r.kv["lost"] = static_cast<double>(lost);
  r.samples["lat_us"] = std::move(lat);
  return r;
}

Report wt_client_sessions(const Job &job, std::uint16_t port) {
  Report r;
  ClientCtx ctx(job);
  const std::uint64_t n = job.num("n", 100), per_conn = std::max<std::uint64_t>(1, job.num("per_conn", 16));
  const std::uint64_t step = job.num("mem_step", 0), concurrency = 16;
  const std::uint64_t nconn = (n + per_conn - 1) / per_conn;
  std::vector<std::shared_ptr<Connection>> conns;
  std::vector<std::shared_ptr<Session>> sessions;
  conns.reserve(nconn);
  sessions.reserve(n);
  std::uint64_t started = 0, ready = 0, failed = 0;
  std::string first_error;
  const long rss0 = rss_kib();
  auto on_ready = [&](std::shared_ptr<Session> s) {
    sessions.push_back(std::move(s));
    ++ready;
    if (step > 0 && ready % step == 0) {
      r.samples["mem_sessions_client"].push_back(static_cast<double>(ready));
      r.samples["mem_rss_client"].push_back(static_cast<double>(rss_kib()));
    }
  };
  std::function<void()> start_conn = [&] {
    if (started >= nconn) return;
    const std::uint64_t k = std::min(per_conn, n - started * per_conn);
    ++started;
    Connection::create_client(&ctx.loop, ctx.cfg, "127.0.0.1", port, "/echo", std::nullopt,
                              [&, k](const Error &e, std::shared_ptr<Connection> c) {
                                std::shared_ptr<Session> s;
                                if (c)
                                  if (auto id = c->get_ready_session_id()) s = c->get_session(*id);
                                if (e || !s) {
                                  failed += k;
                                  if (first_error.empty()) first_error = e.to_string();
                                  return start_conn();
                                }
                                conns.push_back(c);
                                on_ready(std::move(s));
                                if (k == 1) return start_conn();
                                auto left = std::make_shared<std::uint64_t>(k - 1);
                                for (std::uint64_t j = 1; j < k; ++j) {
                                  c->open_session("/echo", {}, [&, left](const Error &e2, std::shared_ptr<Session> s2) {
                                    if (e2 || !s2) {
                                      ++failed;
                                      if (first_error.empty()) first_error = e2.to_string();
                                    } else {
                                      on_ready(std::move(s2));
                                    }
                                    if (--*left == 0) start_conn();
                                  });
                                }
                              });
  };
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < concurrency; ++i) start_conn();
  if (!run_until(
          &ctx.loop, [&] { return ready + failed == n; }, job.time_limit_s))
    r.fail("only " + std::to_string(ready) + " of " + std::to_string(n) + " sessions in time");
  const double elapsed = seconds_since(t0);
  if (failed > 0) r.fail(std::to_string(failed) + " sessions failed: " + first_error);
  run_until(
      &ctx.loop, [] { return false; }, 0.2);  // let the server see every last packet
  std::uint64_t open = 0;
  for (const auto &s : sessions) open += s->is_ready() ? 1 : 0;
  if (open != n) r.fail(std::to_string(open) + " of " + std::to_string(n) + " sessions still open");
  r.kv["sessions"] = static_cast<double>(ready);
  r.kv["connections"] = static_cast<double>(conns.size());
  r.kv["setup_s"] = elapsed;
  r.kv["rate"] = static_cast<double>(ready) / elapsed;
  r.kv["client_rss_base_kib"] = static_cast<double>(rss0);
  r.kv["client_rss_kib"] = static_cast<double>(rss_kib());
  r.kv["client_kib_per_session"] =
      static_cast<double>(rss_kib() - rss0) / static_cast<double>(std::max<std::uint64_t>(1, ready));
  return r;
}

}  // namespace uvwt::bench
