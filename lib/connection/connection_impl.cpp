#include "connection/connection_impl.hpp"

#include <gnutls/crypto.h>

#include <cinttypes>
#include <cstdio>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "connection/connect_headers.hpp"
#include "connection/proxy_tunnel.hpp"
#include "h3/wt_codes.hpp"
#include "quic/tls_context.hpp"
#include "session/session_impl.hpp"

namespace uvwt::detail {

namespace {
std::string make_connection_id() {
  std::uint8_t b[8];
  gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof b);
  char out[20];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
  return out;
}
}  // namespace

ConnectionImpl::ConnectionImpl(uv_loop_t *loop, bool client, std::variant<ClientConfig, ServerConfig> cfg)
    : loop_(loop),
      client_(client),
      cfg_(std::move(cfg)),
      deferred_(Deferred::for_loop(loop)),
      id_(make_connection_id()) {}

ConnectionImpl::~ConnectionImpl() {
  // Members go in reverse order: QUIC state before the endpoint it is registered with.
  quic_.reset();
  h3_.reset();
}

const TransportConfig &ConnectionImpl::config() const noexcept {
  if (const auto *c = std::get_if<ClientConfig>(&cfg_)) return *c;
  return std::get<ServerConfig>(cfg_);
}

std::shared_ptr<ConnectionImpl> ConnectionImpl::make_client(uv_loop_t *loop, const ClientConfig &cfg) {
  auto c = std::make_shared<ConnectionImpl>(loop, true, cfg);
  c->self_ = c;
  return c;
}

void ConnectionImpl::connect_to(const SockAddr &remote, const std::string &server_name,
                                std::shared_ptr<TlsClientContext> tls) {
  // Closed by the user while the host was being resolved.
  if (closing_started_ || state_ != ConnectionState::idle) return;
  client_tls_ = std::move(tls);
  ep_keep_ = std::make_shared<Endpoint>(loop_, config());
  ep_ = ep_keep_.get();
  own_ep_ = true;
  if (pending_impairment_) ep_->set_impairment(*pending_impairment_);
  UdpSocket *sock = nullptr;
  Error err = ep_->bind(SockAddr::any(remote.family(), 0), &sock);
  if (err) return fail_before_start(err);
  h3_ = std::make_unique<H3Connection>(*this, deferred_, false, config(), nullptr, remote.to_address());
  h3_->set_client_dialects(std::get<ClientConfig>(cfg_).dialects);
  quic_ = QuicConnection::create_client(*ep_, *sock, sock->local_addr(), remote, *client_tls_, server_name, config(),
                                        *h3_, err);
  if (!quic_) {
    h3_.reset();
    return fail_before_start(err);
  }
  h3_->attach(quic_.get());
  set_state(ConnectionState::connecting);
  quic_->write_now();
}

void ConnectionImpl::connect_via(std::shared_ptr<ProxyTunnel> tunnel, const std::string &server_name,
                                 std::shared_ptr<TlsClientContext> tls) {
  if (closing_started_ || state_ != ConnectionState::idle) return;
  client_tls_ = std::move(tls);
  tunnel_ = std::move(tunnel);
  // A socketless endpoint: connection ids, timers' loop and the tunnel's
  // packets (Endpoint::deliver).
  ep_keep_ = std::make_shared<Endpoint>(loop_, config());
  ep_ = ep_keep_.get();
  own_ep_ = true;
  h3_ = std::make_unique<H3Connection>(*this, deferred_, false, config(), nullptr, tunnel_->target().to_address());
  Error err;
  quic_ = QuicConnection::create_client(*ep_, *tunnel_, tunnel_->local(), tunnel_->target(), *client_tls_, server_name,
                                        config(), *h3_, err);
  if (!quic_) {
    h3_.reset();
    return fail_before_start(err);
  }
  tunnel_->attach(ep_, weak_from_this());
  h3_->attach(quic_.get());
  set_state(ConnectionState::connecting);
  quic_->write_now();
}

void ConnectionImpl::path_lost(const Error &err) {
  if (!quic_ || quic_->is_closed()) return;
  quic_->set_linger(false);
  abandon(err);
}

std::shared_ptr<ConnectionImpl> ConnectionImpl::start_client(uv_loop_t *loop, const ClientConfig &cfg,
                                                             const SockAddr &remote, const std::string &server_name,
                                                             std::shared_ptr<TlsClientContext> tls, Error &err) {
  auto c = make_client(loop, cfg);
  c->connect_to(remote, server_name, std::move(tls));
  if (c->state_ == ConnectionState::connecting) return c;
  err = c->close_error_;  // it finishes closing on its own
  return nullptr;
}

void ConnectionImpl::fail_before_start(const Error &err) {
  if (finished_ || is_closed()) return;
  close_error_ = err;
  closed_at_ = wall_seconds();
  ++error_count_;
  set_state(ConnectionState::failed);
  auto self = shared_from_this();
  deferred_->post([self] { self->finish_close(); });
}

void ConnectionImpl::set_impairment(const ImpairmentConfig &cfg) {
  if (ep_ != nullptr)
    ep_->set_impairment(cfg);
  else
    pending_impairment_ = cfg;
}

std::shared_ptr<ConnectionImpl> ConnectionImpl::accept(const std::shared_ptr<Endpoint> &epp, UdpSocket &sock,
                                                       const RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                                                       const ngtcp2_cid *original_dcid, const ServerConfig &cfg,
                                                       std::shared_ptr<TlsServerContext> tls,
                                                       ConnectionServerHooks *hooks, Error &err) {
  Endpoint &ep = *epp;
  auto c = std::make_shared<ConnectionImpl>(ep.loop(), false, cfg);
  c->server_tls_ = std::move(tls);
  c->ep_keep_ = epp;
  c->ep_ = &ep;
  c->hooks_ = hooks;
  const SockAddr local = pkt.local != nullptr ? *pkt.local : sock.local_addr();
  c->h3_ = std::make_unique<H3Connection>(*c, c->deferred_, true, c->config(), &std::get<ServerConfig>(c->cfg_),
                                          pkt.remote->to_address());
  c->quic_ = QuicConnection::create_server(ep, sock, local, *pkt.remote, hd, original_dcid, *c->server_tls_,
                                           c->config(), *c->h3_, err);
  if (!c->quic_) return nullptr;
  c->h3_->attach(c->quic_.get());
  c->self_ = c;
  c->set_state(ConnectionState::connecting);
  c->on_activity();
  c->quic_->on_packet(pkt);
  return c;
}

void ConnectionImpl::set_state(ConnectionState s) {
  if (s == state_) return;
  state_ = s;
  // Reported on a later turn (state changes happen inside ngtcp2 and nghttp3
  // callbacks); the queue keeps them in order.
  auto self = shared_from_this();
  deferred_->post([self, s] {
    if (self->on_state_change_) self->on_state_change_(s);
  });
}

ConnectionState ConnectionImpl::state() const noexcept {
  if (state_ != ConnectionState::connected && state_ != ConnectionState::closing) return state_;
  if (quic_ && !quic_->is_closed() && quic_->in_draining_period()) return ConnectionState::draining;
  if (state_ == ConnectionState::connected && h3_ && h3_->goaway_received() != 0) return ConnectionState::draining;
  return state_;
}

std::optional<Address> ConnectionImpl::local_address() const {
  if (!quic_) return std::nullopt;
  return quic_->local_addr().to_address();
}

std::optional<Address> ConnectionImpl::remote_address() const {
  if (!quic_) return std::nullopt;
  return quic_->remote_addr().to_address();
}

void ConnectionImpl::on_activity() {
  last_activity_ = wall_seconds();
  last_activity_ns_ = now_ns();
}

void ConnectionImpl::record_activity() { on_activity(); }

void ConnectionImpl::set_idle_timeout(Duration period) {
  idle_period_ = period;
  idle_timer_.reset();
  if (period.count() <= 0 || closing_started_ || is_closed()) return;
  // The period runs from now or from the last activity, whichever is later.
  last_activity_ns_ = std::max(last_activity_ns_, now_ns());
  idle_timer_ = std::make_unique<Timer>(loop_);
  arm_idle_timer(static_cast<std::uint64_t>(period.count()));
}

// One timer per period rather than one restart per activity: activity only
// stamps last_activity_ns_, and the timer re-arms for what is left of the
// period when it fires early.
void ConnectionImpl::arm_idle_timer(std::uint64_t ms) {
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  idle_timer_->start(std::max<std::uint64_t>(1, ms), [weak] {
    auto self = weak.lock();
    if (!self || self->closing_started_ || self->is_closed()) return;
    const std::uint64_t period_ns = static_cast<std::uint64_t>(self->idle_period_.count()) * 1'000'000;
    const std::uint64_t now = now_ns();
    // The policy is about open connections: the connect timeout covers the rest.
    if (self->state_ != ConnectionState::connected) self->last_activity_ns_ = now;
    const std::uint64_t idle = now - std::min(now, self->last_activity_ns_);
    if (idle < period_ns) return self->arm_idle_timer((period_ns - idle + 999'999) / 1'000'000);
    const std::string msg =
        "idle timeout: no application activity for " + std::to_string(self->idle_period_.count()) + " ms";
    UVWT_INFO("connection %s: %s", self->id_.c_str(), msg.c_str());
    self->close_with(0, "idle timeout", Error(Errc::timeout, msg), {});
  });
}

void ConnectionImpl::on_h3_ready() {
  if (state_ != ConnectionState::connecting) return;
  set_state(ConnectionState::connected);
  established_at_ = wall_seconds();
  on_activity();
  connect_timer_.reset();
  auto self = shared_from_this();
  deferred_->post([self] {
    if (self->connect_cb) {
      auto cb = std::move(self->connect_cb);
      self->connect_cb = nullptr;
      cb(Error());
    }
    if (self->on_established_) self->on_established_();
    self->resolve_waiters(self->ready_waiters_, Error());
  });
}

void ConnectionImpl::start_connect_timer(Duration timeout) {
  if (timeout.count() <= 0) return;
  connect_timer_ = std::make_unique<Timer>(loop_);
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  connect_timer_->start(static_cast<std::uint64_t>(timeout.count()), [weak, timeout] {
    if (auto self = weak.lock()) {
      if (self->state_ == ConnectionState::connecting)
        self->abandon(Error(Errc::timeout, "connect timed out after " + std::to_string(timeout.count()) + " ms"));
    }
  });
}

AcceptDecision ConnectionImpl::on_session_request(SessionRequest &req, Server::SessionHandler &handler) {
  if (on_session_request_) {
    // A copy, reported on a later turn (never from inside nghttp3); it
    // precedes the on_session() of the same request, which is queued later.
    auto self = shared_from_this();
    deferred_->post([self, req] {
      if (self->on_session_request_) self->on_session_request_(req);
    });
  }
  if (hooks_ == nullptr) return AcceptDecision::reject(404);
  return hooks_->decide(req, handler);
}

void ConnectionImpl::on_session_accepted(const std::shared_ptr<SessionImpl> &s, Server::SessionHandler handler,
                                         const SessionRequest &req) {
  auto self = shared_from_this();
  resolve_waiters(session_waiters_, Error());
  // The handler and the event run on a later turn, never from inside nghttp3.
  deferred_->post([self, s, handler = std::move(handler), req] {
    if (self->hooks_ != nullptr) self->hooks_->session_accepted(s, handler, req);
    if (self->on_session_) self->on_session_(s);
  });
}

void ConnectionImpl::open_session(const std::string &path, const Headers &headers, SessionCallback cb) {
  if (!client_) {
    deferred_->post([cb = std::move(cb)] { cb(Error(Errc::configuration, "only clients open sessions"), nullptr); });
    return;
  }
  if (state_ != ConnectionState::connecting && state_ != ConnectionState::connected) {
    deferred_->post([cb = std::move(cb)] { cb(Error(Errc::connection, "connection is not open"), nullptr); });
    return;
  }
  const auto &cc = std::get<ClientConfig>(cfg_);
  std::string authority;
  Headers own;
  for (const auto &h : headers) {
    if (h.first == ":authority")
      authority = h.second;
    else
      own.push_back(h);
  }
  // The client's headers go on every CONNECT, whoever opens the session
  // (merging again what Client::connect already merged changes nothing).
  Headers hs;
  if (Error e = merge_connect_headers(connect_user_agent(cc), cc.headers, {}, own, hs)) {
    deferred_->post([cb = std::move(cb), e] { cb(e, nullptr); });
    return;
  }
  if (authority.empty() && quic_) authority = quic_->remote_addr().to_string();
  auto self = shared_from_this();
  h3_->open_session(
      authority, path, hs, cc.protocols,
      [self, cb = std::move(cb), max_streams = cc.max_streams](const Error &err, std::shared_ptr<Session> s) {
        // Every client session, from Client or Connection::create_client.
        if (auto impl = std::dynamic_pointer_cast<SessionImpl>(s)) impl->set_max_local_streams(max_streams);
        if (s) {
          self->resolve_waiters(self->session_waiters_, Error());
        } else {
          // Refused, reset or closed before it was ready: a waiter learns it
          // now rather than at its timeout (the reference fails it at once).
          const Error why = err ? err : Error(Errc::session, "session ended before it was ready");
          self->deferred_->post([self, why] { self->resolve_waiters(self->session_waiters_, why); });
        }
        cb(err, std::move(s));
      });
}

void ConnectionImpl::close(std::uint64_t code, std::string reason, CloseCallback cb) {
  close_with(code, std::move(reason), Error(), std::move(cb));
}

void ConnectionImpl::close_with(std::uint64_t code, std::string reason, const Error &why, CloseCallback cb) {
  if (cb) close_cbs_.push_back(std::move(cb));
  if (finished_) {
    auto cbs = std::move(close_cbs_);
    close_cbs_.clear();
    deferred_->post([cbs = std::move(cbs)] {
      for (const auto &c : cbs) c();
    });
    return;
  }
  if (closing_started_ || is_closed()) return;
  closing_started_ = true;
  idle_timer_.reset();
  if (state_ == ConnectionState::idle) {
    // Nothing on the wire yet: the pending resolution finds it closed.
    close_error_ = why;
    closed_at_ = wall_seconds();
    set_state(ConnectionState::closed);
    auto self = shared_from_this();
    deferred_->post([self] { self->finish_close(); });
    return;
  }
  if (state_ == ConnectionState::connecting || state_ == ConnectionState::connected)
    set_state(ConnectionState::closing);
  auto self = shared_from_this();
  deferred_->post([self, code, reason = std::move(reason), why] {
    if (self->quic_ && !self->quic_->is_closed()) {
      // Sessions first: they tell the peer their own codes.
      if (self->h3_) self->h3_->close_all_sessions(0, "connection closing");
      self->quic_->write_now();  // let the sessions' close capsules out first
      self->quic_->set_close_error(why);
      // Application code 0 is HTTP/3's H3_NO_ERROR on the wire.
      self->quic_->close(code == 0 ? kH3NoError : code, reason);
    }
  });
}

void ConnectionImpl::abandon(const Error &err) {
  if (quic_ && !quic_->is_closed()) {
    quic_->set_close_error(err);
    // Tell the peer when we can (handshake done); otherwise just stop.
    if (quic_->handshake_completed())
      quic_->close(kH3NoError, err.message);
    else
      quic_->abandon(err);
  }
}

void ConnectionImpl::on_transport_closed(const Error &err) {
  close_error_ = err;
  closed_at_ = wall_seconds();
  // Closed: we or the peer closed it (whatever the code). Failed: it was
  // lost (timeout, unreachable) or broken (TLS, protocol).
  const bool closed = err.ok() || closing_started_ || err.errc == Errc::connection;
  set_state(closed ? ConnectionState::closed : ConnectionState::failed);
  if (!closed) ++error_count_;
  auto self = shared_from_this();
  deferred_->post([self] { self->finish_close(); });
}

void ConnectionImpl::finish_close() {
  if (finished_) return;
  auto self = shared_from_this();
  connect_timer_.reset();
  health_timer_.reset();
  probe_timer_.reset();
  idle_timer_.reset();
  health_probe_outstanding_ = false;
  const Error err = close_error_;
  if (connect_cb) {
    auto cb = std::move(connect_cb);
    connect_cb = nullptr;
    cb(err ? err : Error(Errc::connection, "connection closed before it was established"));
  }
  resolve_waiters(ready_waiters_, err ? err : Error(Errc::connection, "connection closed"));
  resolve_waiters(session_waiters_, err ? err : Error(Errc::connection, "connection closed"));
  if (state_ == ConnectionState::failed && on_lost_) {
    auto cb = std::move(on_lost_);
    on_lost_ = nullptr;
    cb(err);
  }
  if (on_closed_) {
    auto cb = std::move(on_closed_);
    on_closed_ = nullptr;
    cb(err);
  }
  auto finalize = [self] {
    self->finished_ = true;
    auto cbs = std::move(self->close_cbs_);
    self->close_cbs_.clear();
    for (const auto &c : cbs) c();
    self->resolve_waiters(self->closed_waiters_, Error());
    if (self->hooks_ != nullptr) self->hooks_->connection_finished(self);
    self->on_established_ = nullptr;
    self->on_session_ = nullptr;
    self->on_session_request_ = nullptr;
    self->on_state_change_ = nullptr;
    self->on_lost_ = nullptr;
    self->self_.reset();
  };
  if (tunnel_) tunnel_->release();  // the proxy connection may go now
  auto close_endpoint = [self, finalize] {
    if (self->own_ep_ && self->ep_ != nullptr)
      self->ep_->close(finalize);
    else
      finalize();
  };
  if (quic_)
    quic_->close_handles(close_endpoint);
  else
    close_endpoint();  // a client that never got to connect
}

void ConnectionImpl::add_waiter(LazyDeque<std::shared_ptr<Waiter>> &list, Duration timeout,
                                std::function<void(const Error &)> cb, const char *what) {
  if (timeout.count() <= 0) {
    // No wait, as asyncio's timeout 0: what did not hold already is a timeout.
    deferred_->post([cb = std::move(cb), msg = std::string(what) + " timed out (timeout 0: no wait)"] {
      cb(Error(Errc::timeout, msg));
    });
    return;
  }
  auto w = std::make_shared<Waiter>();
  w->cb = std::move(cb);
  if (timeout != Duration::max()) {
    w->timer = std::make_unique<Timer>(loop_);
    std::weak_ptr<Waiter> weak = w;
    std::string msg = std::string(what) + " timed out";
    w->timer->start(static_cast<std::uint64_t>(timeout.count()), [weak, msg, &list, this] {
      auto sp = weak.lock();
      if (!sp || !sp->cb) return;
      auto cb = std::move(sp->cb);
      sp->cb = nullptr;
      erase(list, sp);
      cb(Error(Errc::timeout, msg));
    });
  }
  list.push_back(std::move(w));
}

void ConnectionImpl::resolve_waiters(LazyDeque<std::shared_ptr<Waiter>> &list, const Error &err) {
  auto all = std::move(list);
  list.clear();
  for (auto &w : all) {
    if (!w->cb) continue;
    auto cb = std::move(w->cb);
    w->cb = nullptr;
    w->timer.reset();
    cb(err);
  }
}

void ConnectionImpl::wait_ready(Duration timeout, DoneCallback cb) {
  if (state_ == ConnectionState::connected || is_closed()) {
    const Error err = state_ == ConnectionState::connected ? Error() : Error(Errc::connection, "connection is closed");
    deferred_->post([cb = std::move(cb), err] { cb(err); });
    return;
  }
  add_waiter(ready_waiters_, timeout, std::move(cb), "wait_ready");
}

void ConnectionImpl::wait_for_ready_session(Duration timeout, SessionIdCallback cb) {
  auto self = shared_from_this();
  auto deliver = [self, cb = std::move(cb)](const Error &err) {
    if (err) return cb(err, 0);
    auto id = self->get_ready_session_id();
    if (!id) return cb(Error(Errc::session, "no ready session"), 0);
    cb(Error(), *id);
  };
  if (get_ready_session_id() || is_closed()) {
    const Error err =
        is_closed() && !get_ready_session_id() ? Error(Errc::connection, "connection is closed") : Error();
    deferred_->post([deliver, err] { deliver(err); });
    return;
  }
  add_waiter(session_waiters_, timeout, deliver, "wait_for_ready_session");
}

void ConnectionImpl::wait_closed(CloseCallback cb) {
  if (finished_) {
    deferred_->post(std::move(cb));
    return;
  }
  add_waiter(
      closed_waiters_, Duration::max(), [cb = std::move(cb)](const Error &) { cb(); }, "wait_closed");
}

std::vector<SessionInfo> ConnectionImpl::get_all_sessions() const {
  std::vector<SessionInfo> v;
  if (h3_)
    for (const auto &s : h3_->sessions()) v.push_back(s->info());
  return v;
}

std::optional<SessionId> ConnectionImpl::get_ready_session_id() const {
  if (!h3_) return std::nullopt;
  for (const auto &s : h3_->sessions())
    if (s->is_ready()) return s->id();
  return std::nullopt;
}

std::optional<SessionInfo> ConnectionImpl::get_session_info(SessionId id) const {
  if (!h3_) return std::nullopt;
  if (auto s = h3_->session(id)) return s->info();
  return std::nullopt;
}

std::shared_ptr<Session> ConnectionImpl::get_session(SessionId id) const { return h3_ ? h3_->session(id) : nullptr; }

std::vector<std::shared_ptr<Session>> ConnectionImpl::sessions() const {
  std::vector<std::shared_ptr<Session>> v;
  if (h3_)
    for (const auto &s : h3_->sessions()) v.push_back(s);
  return v;
}

std::size_t ConnectionImpl::session_count() const { return h3_ ? h3_->sessions().size() : 0; }

PeerWebTransportSettings ConnectionImpl::peer_settings() const {
  PeerWebTransportSettings p;
  if (!h3_) return p;
  const auto &ps = h3_->peer_settings();
  p.received = ps.received;
  p.connect_protocol = ps.enable_connect_protocol;
  p.h3_datagram = ps.h3_datagram;
  p.dialect = dialect_name(h3_->dialect());
  return p;
}

bool ConnectionImpl::goaway_received() const { return h3_ && h3_->goaway_received() != 0; }

std::uint64_t ConnectionImpl::datagrams_dropped() const { return h3_ ? h3_->datagrams_dropped() : 0; }

ConnectionInfo ConnectionImpl::info() const {
  ConnectionInfo ci;
  ci.connection_id = id_;
  ci.state = state();
  ci.local_address = local_address();
  ci.remote_address = remote_address();
  ci.established_at = established_at_;
  ci.closed_at = closed_at_;
  ci.error_count = error_count_;
  ci.last_activity = last_activity_;
  if (h3_) {
    ci.bytes_sent = h3_->wt_bytes_sent;
    ci.bytes_received = h3_->wt_bytes_received;
  }
  if (quic_) {
    const QuicStats qs = quic_->stats();
    ci.packets_sent = qs.packets_sent;
    ci.packets_received = qs.packets_received;
    ci.packets_lost = qs.packets_lost;
  }
  return ci;
}

ConnectionDiagnostics ConnectionImpl::diagnostics() const {
  ConnectionDiagnostics d;
  d.stats = info();
  if (quic_) {
    const QuicStats qs = quic_->stats();
    d.rtt = qs.smoothed_rtt;
    d.min_rtt = qs.min_rtt;
    d.cwnd = qs.cwnd;
    d.bytes_in_flight = qs.bytes_in_flight;
    d.packets_in_flight = qs.packets_in_flight;
    d.packet_loss_rate =
        qs.packets_sent > 0 ? static_cast<double>(qs.packets_lost) / static_cast<double>(qs.packets_sent) : 0.0;
  }
  if (ep_ != nullptr) {
    d.gso = ep_->gso();
    d.gro = ep_->gro();
    if (const UdpSocket *s = ep_->first_socket()) {
      d.gso_batches = s->counters().gso_batches;
      d.gro_batches = s->counters().gro_batches;
    }
  }
  return d;
}

// ---------------------------------------------------------------- health

void ConnectionImpl::monitor_health(Duration check_interval, Duration rtt_timeout,
                                    std::function<void(const HealthReport &)> cb) {
  health_interval_ = check_interval;
  health_timeout_ = rtt_timeout;
  health_cb_ = std::move(cb);
  // A probe of a previous monitor dies with its timer: without this reset
  // the new monitor would wait for it forever and never probe.
  health_probe_outstanding_ = false;
  health_timer_ = std::make_unique<Timer>(loop_);
  probe_timer_ = std::make_unique<Timer>(loop_);
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(1, check_interval.count()));
  health_timer_->start(
      ms,
      [weak] {
        if (auto self = weak.lock()) self->health_tick();
      },
      ms);
}

void ConnectionImpl::stop_health_monitor() {
  health_timer_.reset();
  probe_timer_.reset();
  health_probe_outstanding_ = false;
  health_cb_ = nullptr;
}

void ConnectionImpl::health_tick() {
  if (!quic_ || quic_->is_closed() || state_ != ConnectionState::connected) {
    stop_health_monitor();
    return;
  }
  if (health_probe_outstanding_) return;  // the previous probe is still being judged
  health_probe_outstanding_ = true;
  health_probe_sent_ns_ = now_ns();
  health_rx_at_probe_ = quic_->stats().packets_received;
  ++health_probes_sent_;
  quic_->ping();
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  // Judge the probe after rtt_timeout: any packet from the peer since the
  // PING (its ACK at least) proves the path works.
  probe_timer_->start(static_cast<std::uint64_t>(std::max<std::int64_t>(1, health_timeout_.count())), [weak] {
    auto self = weak.lock();
    if (!self || !self->quic_ || self->quic_->is_closed()) return;
    self->health_probe_outstanding_ = false;
    const QuicStats qs = self->quic_->stats();
    HealthReport r;
    r.rtt = qs.smoothed_rtt;
    r.healthy = qs.packets_received > self->health_rx_at_probe_;
    if (!r.healthy) {
      r.reason = "no answer to PING within " + std::to_string(self->health_timeout_.count()) + " ms";
      UVWT_WARN("connection %s unhealthy: %s", self->id_.c_str(), r.reason.c_str());
      ++self->error_count_;
    } else if (self->unhealthy_) {
      UVWT_INFO("connection %s recovered (rtt %.1f ms)", self->id_.c_str(), r.rtt * 1e3);
    }
    const bool changed = self->unhealthy_ == r.healthy;
    self->unhealthy_ = !r.healthy;
    if (self->health_cb_ && (changed || !r.healthy)) self->health_cb_(r);
  });
}

}  // namespace uvwt::detail
