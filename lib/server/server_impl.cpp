#include <uvwt/server.hpp>

#include <algorithm>
#include <set>

#include "common/clock.hpp"
#include "common/deferred.hpp"
#include "common/log.hpp"
#include "common/timer.hpp"
#include "connection/connection_impl.hpp"
#include "quic/endpoint.hpp"
#include "quic/tls_context.hpp"
#include "server/router.hpp"
#include "server/server_hooks.hpp"
#include "session/session_impl.hpp"

namespace uvwt {

namespace detail {

class ServerImpl final : public Server,
                         public Acceptor,
                         public ConnectionServerHooks,
                         public std::enable_shared_from_this<ServerImpl> {
 public:
  ServerImpl(uv_loop_t *loop, const ServerConfig &cfg, std::shared_ptr<TlsServerContext> tls,
             std::shared_ptr<const CidFactory> cids)
      : loop_(loop),
        cfg_(cfg),
        tls_(std::move(tls)),
        // The server's own queue, handed down to its endpoint and from there
        // to the accepted connections: decide() relies on running in order
        // with their tasks.
        deferred_(std::make_shared<Deferred>(loop)),
        ep_(std::make_shared<Endpoint>(deferred_, cfg)) {
    ep_->set_acceptor(this);
    ep_->set_static_secret(cfg.stateless_reset_secret);
    ep_->set_cid_factory(std::move(cids));
    ep_->set_worker(cfg.worker);
    HandshakeLimitsConfig limits;
    limits.always_retry = cfg.validate_address;
    limits.max_unvalidated = cfg.max_unvalidated_handshakes;
    limits.max_total = cfg.max_handshakes;
    limits.max_per_address = cfg.max_handshakes_per_address;
    limits.retry_token_lifetime_ns = static_cast<std::uint64_t>(cfg.retry_token_lifetime.count()) * 1'000'000;
    ep_->set_admission(limits, cfg.stateless_answers_per_second, cfg.stateless_answer_burst);
  }

  // Dropped without close(): nothing may call back into this object any
  // more, and what it served is closed rather than left running unowned.
  ~ServerImpl() override {
    ep_->set_acceptor(nullptr);
    for (const auto &c : conns_) {
      c->detach_server();
      c->set_linger(false);
      c->close(0, "server gone", {});
    }
  }

  Error listen(const std::string &host, std::uint16_t port) override {
    if (closed_ || closing_) return {Errc::server, "server is closed"};
    if (host == "localhost") {
      // Both loopback families, as browsers may try ::1 first (docs/protocol.md).
      // IPv4 must work; IPv6 is skipped where the host has no ::1.
      if (Error e = listen_one("127.0.0.1", port)) return e;
      if (Error e = listen_one("::1", port_))
        UVWT_DEBUG("listen(localhost): no IPv6 loopback on port %u: %s", port_, e.message.c_str());
      return {};
    }
    return listen_one(host, port);
  }
  [[nodiscard]] std::uint16_t port() const noexcept override { return port_; }
  [[nodiscard]] std::vector<Address> local_addresses() const override {
    std::vector<Address> v;
    for (const auto &a : ep_->local_addrs()) v.push_back(a.to_address());
    return v;
  }
  void route(const std::string &p, SessionHandler h) override { router_.add(p, std::move(h)); }
  void set_default_handler(SessionHandler h) override { router_.set_default(std::move(h)); }
  void set_accept_hook(AcceptHook hook) override { hook_ = std::move(hook); }
  void on_connection(std::function<void(std::shared_ptr<Connection>)> cb) override { on_conn_ = std::move(cb); }
  void set_conn_hook(std::function<void(const std::shared_ptr<ConnectionImpl> &)> hook) {
    conn_hook_ = std::move(hook);
    if (conn_hook_)
      for (const auto &c : conns_) conn_hook_(c);
  }

  void shutdown(CloseCallback cb) override { shutdown(cfg_.shutdown_timeout, std::move(cb)); }

  void shutdown(Duration timeout, CloseCallback cb) override {
    if (closed_ || closing_ || draining_) {
      // Already on its way down: the callback joins the others.
      if (closed_ || closing_)
        close(std::move(cb));
      else if (cb)
        close_cbs_.push_back(std::move(cb));
      return;
    }
    if (cb) close_cbs_.push_back(std::move(cb));
    draining_ = true;
    for (auto &c : conns_) c->shutdown_notice();
    if (conns_.empty()) {
      close({});
      return;
    }
    const Duration total = std::max(Duration(0), timeout);
    const Duration drain = std::min(std::max(Duration(0), cfg_.drain_timeout), total);
    std::weak_ptr<ServerImpl> weak = shared_from_this();
    goaway_timer_ = std::make_unique<Timer>(loop_);
    goaway_timer_->start(ms(goaway_grace(drain)), [weak] {
      if (auto self = weak.lock()) self->final_goaway();
    });
    if (drain < total) {
      drain_timer_ = std::make_unique<Timer>(loop_);
      drain_timer_->start(ms(drain), [weak] {
        if (auto self = weak.lock()) self->drain_expired();
      });
    }
    shutdown_timer_ = std::make_unique<Timer>(loop_);
    shutdown_timer_->start(ms(total), [weak] {
      if (auto self = weak.lock()) self->close({});
    });
  }

  void close(CloseCallback cb) override {
    if (cb) close_cbs_.push_back(std::move(cb));
    if (closed_) {
      flush_close_cbs();
      return;
    }
    if (closing_) return;
    closing_ = true;
    shutdown_timer_.reset();
    drain_timer_.reset();
    goaway_timer_.reset();
    self_ = shared_from_this();
    auto conns = conns_;
    for (auto &c : conns) {
      c->set_linger(false);  // the sockets close next: no closing period to wait out
      c->close(0, "server closing", {});
    }
    maybe_finish();
  }
  [[nodiscard]] bool is_closed() const noexcept override { return closed_; }
  [[nodiscard]] ServerStats stats() const override {
    ServerStats s = stats_;
    s.connections_active = conns_.size();
    const auto &ec = ep_->counters();
    s.stateless_resets_sent = ec.stateless_resets_sent;
    s.retries_sent = ec.retries_sent;
    s.handshakes_active = ep_->handshake_limits().in_progress();
    s.handshakes_refused = ec.handshakes_refused;
    s.invalid_retry_tokens = ec.invalid_tokens;
    s.expired_retry_tokens = ec.expired_tokens;
    s.version_negotiations_sent = ec.version_negotiations_sent;
    s.stateless_answers_limited = ec.stateless_rate_limited;
    return s;
  }
  [[nodiscard]] std::vector<std::shared_ptr<Connection>> connections() const override {
    return {conns_.begin(), conns_.end()};
  }

  // Acceptor
  bool accept_initial(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                      const ngtcp2_cid *original_dcid) override {
    if (closing_ || draining_ || conns_.size() >= cfg_.max_connections) {
      ++stats_.connections_rejected;
      ep_->refuse_initial(sock, pkt, hd, closing_ || draining_ ? "server shutting down" : "too many connections");
      return false;
    }
    Error err;
    auto c = ConnectionImpl::accept(ep_, sock, pkt, hd, original_dcid, cfg_, tls_, this, err);
    if (!c) {
      ++stats_.connections_rejected;
      UVWT_DEBUG("rejecting connection from %s: %s", pkt.remote->to_string().c_str(), err.message.c_str());
      return false;
    }
    ++stats_.connections_accepted;
    conns_.insert(c);
    if (conn_hook_) conn_hook_(c);
    if (on_conn_) {
      auto self = shared_from_this();
      deferred_->post([self, c] {
        if (self->on_conn_) self->on_conn_(c);
      });
    }
    return true;
  }

  // ConnectionServerHooks
  AcceptDecision decide(SessionRequest &req, SessionHandler &handler) override {
    if (draining_ || closing_) return AcceptDecision::reject(429);
    if (stats_.sessions_active + sessions_reserved_ >= cfg_.max_sessions) {
      ++stats_.sessions_rejected;
      return AcceptDecision::reject(429);
    }
    auto m = router_.match(req.path);
    if (!m) {
      ++stats_.sessions_rejected;
      return AcceptDecision::reject(404);
    }
    req.params = m->params;
    AcceptDecision d;
    if (hook_) d = hook_(req);
    if (d.status < 200 || d.status >= 300) {
      ++stats_.sessions_rejected;
      return d;
    }
    if (d.protocol.empty() && !req.offered_protocols.empty() && !cfg_.protocols.empty()) {
      for (const auto &p : cfg_.protocols) {
        if (std::find(req.offered_protocols.begin(), req.offered_protocols.end(), p) != req.offered_protocols.end()) {
          d.protocol = p;
          break;
        }
      }
    }
    handler = *m->handler;
    // Counted in sessions_active only once session_accepted runs (a later
    // turn): until then the slot is held here, so that several CONNECTs read
    // in one turn cannot all pass the limit. The release is queued before
    // the connection queues session_accepted, and the queue runs in order.
    ++sessions_reserved_;
    std::weak_ptr<ServerImpl> weak = shared_from_this();
    deferred_->post([weak] {
      if (auto self = weak.lock()) --self->sessions_reserved_;
    });
    return d;
  }

  void session_accepted(const std::shared_ptr<Session> &s, SessionHandler handler, const SessionRequest &req) override {
    ++stats_.sessions_accepted;
    ++stats_.sessions_active;
    std::weak_ptr<ServerImpl> weak = shared_from_this();
    // Not through on_closed(): that slot belongs to the user's handler, which
    // would replace it and leave the session counted forever.
    if (auto impl = std::dynamic_pointer_cast<SessionImpl>(s)) {
      impl->add_close_listener([weak, wconn = std::weak_ptr<Connection>(s->connection())] {
        auto self = weak.lock();
        if (!self) return;
        if (self->stats_.sessions_active > 0) --self->stats_.sessions_active;
        // A drained connection whose last session has ended has nothing left to wait for.
        if (self->final_goaway_sent_ && !self->closing_) self->close_if_idle(wconn.lock());
      });
    }
    if (handler) handler(s, req);
  }

  void connection_finished(const std::shared_ptr<Connection> &c) override {
    auto it = std::find_if(conns_.begin(), conns_.end(), [&](const auto &p) { return p.get() == c.get(); });
    if (it != conns_.end()) conns_.erase(it);
    if (draining_ && conns_.empty() && !closing_) close({});
    maybe_finish();
  }

 private:
  static std::uint64_t ms(Duration d) { return static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count())); }

  Error listen_one(const std::string &host, std::uint16_t port) {
    auto addr = SockAddr::parse(host, port);
    if (!addr) return {Errc::configuration, "listen: not an IP address or localhost: " + host};
    if (addr->port() == 0 && port_ != 0) addr->set_port(port_);  // second family on the same port
    UdpSocket *sock = nullptr;
    if (Error e = ep_->bind(*addr, &sock))
      return Error(Errc::server, "listen on " + addr->to_string() + ": " + e.message);
    if (port_ == 0) port_ = sock->local_addr().port();
    return {};
  }

  // Time between the GOAWAY shutdown notice and the final GOAWAY: requests a
  // client sent before the notice reached it arrive within about one round
  // trip, and are answered (429) instead of falling beyond the final id.
  // Two smoothed RTTs of the slowest connection, at least 25 ms, at most half
  // the drain period.
  Duration goaway_grace(Duration drain) const {
    double rtt = 0;
    for (const auto &c : conns_) rtt = std::max(rtt, c->diagnostics().rtt);
    const auto two_rtt = Duration(static_cast<std::int64_t>(rtt * 2000.0) + 1);
    return std::min(std::max(Duration(25), two_rtt), drain / 2);
  }

  void final_goaway() {
    if (closing_) return;
    final_goaway_sent_ = true;
    auto conns = conns_;
    for (auto &c : conns) {
      c->shutdown_final();
      close_if_idle(c);
    }
  }

  // The drain period is over: close what is left gracefully (sessions with
  // WT_CLOSE_SESSION, then their connections); the shutdown timer remains
  // the hard limit.
  void drain_expired() {
    if (closing_) return;
    auto conns = conns_;
    for (auto &c : conns) {
      c->shutdown_final();
      for (const auto &info : c->get_all_sessions())
        if (auto s = c->get_session(info.session_id)) s->close(0, "server shutting down");
      c->close(0, "server shutting down", {});
    }
  }

  void close_if_idle(const std::shared_ptr<Connection> &c) {
    if (!c || c->is_closed() || c->is_closing()) return;
    for (const auto &info : c->get_all_sessions())
      if (info.state != SessionState::closed) return;
    c->close(0, "server shutting down", {});
  }

  void maybe_finish() {
    if (!closing_ || !conns_.empty() || endpoint_closing_) return;
    endpoint_closing_ = true;
    auto self = shared_from_this();
    ep_->close([self] {
      self->closed_ = true;
      self->flush_close_cbs();
      self->router_ = Router();
      self->hook_ = nullptr;
      self->on_conn_ = nullptr;
      self->self_.reset();
    });
  }
  void flush_close_cbs() {
    auto cbs = std::move(close_cbs_);
    close_cbs_.clear();
    deferred_->post([cbs = std::move(cbs)] {
      for (const auto &c : cbs) c();
    });
  }

  uv_loop_t *loop_;
  ServerConfig cfg_;
  std::shared_ptr<TlsServerContext> tls_;
  std::shared_ptr<Deferred> deferred_;
  std::shared_ptr<Endpoint> ep_;
  Router router_;
  AcceptHook hook_;
  std::function<void(std::shared_ptr<Connection>)> on_conn_;
  std::function<void(const std::shared_ptr<ConnectionImpl> &)> conn_hook_;
  std::set<std::shared_ptr<ConnectionImpl>> conns_;
  ServerStats stats_;
  std::uint16_t port_ = 0;
  bool draining_ = false, closing_ = false, closed_ = false, endpoint_closing_ = false;
  std::vector<CloseCallback> close_cbs_;
  bool final_goaway_sent_ = false;
  std::uint64_t sessions_reserved_ = 0;
  std::unique_ptr<Timer> shutdown_timer_, drain_timer_, goaway_timer_;
  std::shared_ptr<ServerImpl> self_;
};

}  // namespace detail

std::shared_ptr<Server> Connection::create_server(uv_loop_t *loop, const ServerConfig &config, const std::string &host,
                                                  std::uint16_t port,
                                                  std::function<void(std::shared_ptr<Connection>)> on_accept,
                                                  Error &err) {
  auto server = Server::create(loop, config, err);
  if (!server) return nullptr;
  if ((err = server->listen(host, port))) {
    server->close({});
    return nullptr;
  }
  // Every path is accepted: the connection's on_session() is where sessions go.
  server->set_default_handler([](const std::shared_ptr<Session> &, const SessionRequest &) {});
  server->on_connection([on_accept = std::move(on_accept)](const std::shared_ptr<Connection> &c) {
    // Hand the connection over once it is established; one whose handshake
    // fails is dropped here, like a failed accept() that never returns.
    c->wait_ready(Duration::max(), [c, on_accept](const Error &err) {
      if (!err && on_accept) on_accept(c);
    });
  });
  return server;
}

namespace detail {
bool set_connection_hook(Server &server, std::function<void(const std::shared_ptr<ConnectionImpl> &)> hook) {
  auto *impl = dynamic_cast<ServerImpl *>(&server);
  if (impl == nullptr) return false;
  impl->set_conn_hook(std::move(hook));
  return true;
}
}  // namespace detail

std::shared_ptr<Server> Server::create(uv_loop_t *loop, const ServerConfig &config, Error &err) {
  if ((err = config.validate())) return nullptr;
  detail::TlsServerOptions o;
  o.cert_file = config.certfile;
  o.key_file = config.keyfile;
  o.cert_pem = config.cert_pem;
  o.key_pem = config.key_pem;
  o.alpn = config.alpn;
  o.keylog = config.keylog;
  o.client_ca_file = config.client_ca_file;
  o.client_ca_pem = config.client_ca_pem;
  o.require_client_cert = config.require_client_certificate;
  o.session_tickets = config.session_tickets;
  o.ticket_key = config.session_ticket_key;
  o.ticket_lifetime_s = static_cast<std::uint32_t>(config.session_ticket_lifetime.count() / 1000);
  o.early_data = config.early_data;
  auto tls = detail::TlsServerContext::create(o, err);
  if (!tls) return nullptr;
  auto cids = detail::CidFactory::create(config.quic_lb, config.worker, err);
  if (!cids) return nullptr;
  return std::make_shared<detail::ServerImpl>(loop, config, std::move(tls), std::move(cids));
}

}  // namespace uvwt
