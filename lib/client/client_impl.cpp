#include "client/client_impl.hpp"

#include "client/close_watch.hpp"
#include "connection/dialer.hpp"
#include "connection/connect_headers.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/timer.hpp"
#include "connection/connection_impl.hpp"
#include "quic/tls_context.hpp"

namespace uvwt {

namespace detail {

// One Client::connect from URL to ready session.
struct ConnectOp : std::enable_shared_from_this<ConnectOp> {
  std::shared_ptr<ClientImpl> client;
  std::string url_text;
  WebTransportUrl url;
  Headers headers;
  Duration timeout{0};
  Client::SessionCallback cb;
  std::unique_ptr<Timer> timer;
  std::shared_ptr<Dialer> dialer;
  std::function<void()> cancel_tunnel;                  // proxied: the tunnel being opened
  std::shared_ptr<ConnectionImpl> conn;                 // the winner, once there is one
  std::vector<std::weak_ptr<ConnectionImpl>> attempts;  // every connection the dialer started
  std::uint64_t started_ns = 0;
  bool done = false;
  bool pooled = false;  // conn is a pooled connection other sessions share

  void start() {
    started_ns = now_ns();
    timer = std::make_unique<Timer>(client->loop());
    std::weak_ptr<ConnectOp> weak = weak_from_this();
    timer->start(static_cast<std::uint64_t>(timeout.count()), [weak] {
      if (auto self = weak.lock())
        self->finish(Error(Errc::timeout, "connect to " + self->url_text + " timed out after " +
                                              std::to_string(self->timeout.count()) + " ms"),
                     nullptr);
    });
    if (client->proxy_) return start_proxied();
    if (client->config().pool_connections) {
      if (auto c = client->pool_.find(url.authority())) {
        pooled = true;
        return on_connected(Error(), std::move(c));
      }
    }
    start_dial();
  }

  void start_dial() {
    std::weak_ptr<ConnectOp> weak = weak_from_this();
    auto client_weak = std::weak_ptr<ClientImpl>(client);
    dialer = Dialer::start(
        client->deferred(), client->config(), client->tls_, url.host, url.port,
        [client_weak, weak](const std::shared_ptr<ConnectionImpl> &c) {
          if (auto self = weak.lock()) self->attempts.push_back(c);
          if (auto cl = client_weak.lock()) cl->adopt(c);
        },
        [weak](const Error &err, std::shared_ptr<ConnectionImpl> c) {
          if (auto self = weak.lock()) self->on_connected(err, std::move(c));
        });
  }

  // Through the proxy: a CONNECT-UDP tunnel first, then the QUIC connection
  // to the target inside it (the proxy resolves the target's name).
  void start_proxied() {
    std::weak_ptr<ConnectOp> weak = weak_from_this();
    cancel_tunnel =
        open_proxy_tunnel(client->deferred(), *client->proxy_, client->proxy_pool_, url.host, url.port,
                          [weak](const Error &err, std::shared_ptr<ProxyTunnel> t) {
                            auto self = weak.lock();
                            if (!self || self->done) return;
                            self->cancel_tunnel = nullptr;
                            if (err) return self->finish(err, nullptr);
                            auto c = ConnectionImpl::make_client(self->client->deferred(), self->client->config());
                            self->attempts.push_back(c);
                            self->client->adopt(c);
                            c->connect_cb = [weak, wc = std::weak_ptr<ConnectionImpl>(c)](const Error &e) {
                              if (auto s = weak.lock()) s->on_connected(e, e ? nullptr : wc.lock());
                            };
                            c->connect_via(std::move(t), self->url.host, self->client->tls_);
                          });
  }

  void on_connected(const Error &err, std::shared_ptr<ConnectionImpl> c) {
    if (done) {
      shut_connection(c, Error(Errc::cancelled, "connect abandoned"));
      return;
    }
    if (err) return finish(err, nullptr);
    conn = std::move(c);
    Headers hs = headers;
    hs.insert(hs.begin(), {":authority", url.authority()});
    std::weak_ptr<ConnectOp> weak = weak_from_this();
    conn->open_session(url.path, hs, [weak](const Error &e, std::shared_ptr<Session> s) {
      auto self = weak.lock();
      if (!self) return;
      if (e || !s) return self->session_failed(e ? e : Error(Errc::session, "no session"));
      self->finish(Error(), std::move(s));
    });
  }

  // A pooled connection that could not take the session without the
  // server having answered it (its session limit, GOAWAY) is not used for
  // more; the session goes on a new connection instead.
  void session_failed(const Error &err) {
    if (!pooled || done || err.errc == Errc::http_status || err.errc == Errc::authentication)
      return finish(err, nullptr);
    UVWT_DEBUG("client: pooled connection refused a session (%s): dialling", err.to_string().c_str());
    client->pool_.mark_full(conn);
    pooled = false;
    conn = nullptr;
    start_dial();
  }

  // The connection's bookkeeping once the session is there: without pooling
  // the connection goes when the session goes; pooled, when its last one does.
  void watch_session(const std::shared_ptr<Session> &s) {
    std::weak_ptr<ConnectionImpl> wc = conn;
    if (!client->config().pool_connections) {
      return watch_session_close(s, [wc](const SessionCloseInfo &) {
        if (auto c = wc.lock()) shut_connection(c, Error(Errc::session, "session closed"));
      });
    }
    client->pool_.session_started(url.authority(), conn);
    std::weak_ptr<ClientImpl> wcl = client;
    watch_session_close(s, [wcl, wc](const SessionCloseInfo &) {
      auto cl = wcl.lock();
      auto c = wc.lock();
      if (cl && c)
        cl->pool_.session_ended(c);
      else if (c)
        shut_connection(c, Error(Errc::session, "session closed"));
    });
  }

  void finish(const Error &err, std::shared_ptr<Session> s) {
    if (done) return;
    done = true;
    timer.reset();
    if (dialer) dialer->cancel(err ? err : Error(Errc::cancelled, "connected"));
    if (cancel_tunnel) std::exchange(cancel_tunnel, nullptr)();
    if (err && !conn)
      for (auto &w : attempts) shut_connection(w.lock(), err);  // a proxied attempt still connecting
    std::shared_ptr<Session> out;
    if (err) {
      if (!pooled) shut_connection(conn, err);  // a pooled one carries other sessions
      UVWT_INFO("client: connect to %s failed: %s", url_text.c_str(), err.to_string().c_str());
    } else {
      watch_session(s);
      out = std::move(s);
    }
    const double seconds = static_cast<double>(now_ns() - started_ns) / 1e9;
    auto self = shared_from_this();
    client->op_finished(self, err, seconds, pooled);
    auto user_cb = std::move(cb);
    cb = nullptr;
    client->deferred()->post([user_cb = std::move(user_cb), err, out = std::move(out)] { user_cb(err, out); });
  }
};

ClientImpl::ClientImpl(uv_loop_t *loop, const ClientConfig &config, std::shared_ptr<TlsClientContext> tls)
    : loop_(loop),
      config_(config),
      tls_(std::move(tls)),
      deferred_(std::make_shared<Deferred>(loop)),
      pool_(loop, config) {
  user_agent_ = connect_user_agent(config_);
  // Every connection this client makes files its tickets here (and config()
  // shows the cache, so the user can share it).
  if (config_.session_resumption && !config_.ticket_cache) config_.ticket_cache = TicketCache::create();
  stats_.created_at = wall_seconds();
}

// Dropped without close(): what it owned is closed rather than left running
// unowned (as ~ServerImpl does). A pending connect holds the client, so only
// connections remain here.
ClientImpl::~ClientImpl() {
  for (const auto &c : conns_) shut_connection(c, Error(Errc::cancelled, "client gone"));
}

void ClientImpl::set_default_headers(Headers headers) { default_headers_ = lower_case_names(std::move(headers)); }

CancelConnect ClientImpl::connect_cancellable(const std::string &url, const ConnectOptions &options,
                                              SessionCallback cb) {
  auto fail = [this, &cb](Error e) {
    deferred_->post([cb = std::move(cb), e = std::move(e)] { cb(e, nullptr); });
    return CancelConnect([] {});
  };
  if (closed_) return fail(Error(Errc::closed, "client is closed"));
  WebTransportUrl parsed;
  if (Error e = parse_webtransport_url(url, parsed)) return fail(e);
  ++stats_.connections_attempted;
  auto count_failure = [this](Error e) {
    ++stats_.connections_failed;
    return e;
  };
  if (connections_in_use() >= config_.max_connections)
    return fail(count_failure(Error(
        Errc::client, "connection limit reached (max_connections " + std::to_string(config_.max_connections) + ")")));
  // 0 falls back to the config as in the reference (`timeout or config.connect_timeout`).
  Duration timeout = options.timeout.value_or(config_.connect_timeout);
  if (timeout.count() == 0) timeout = config_.connect_timeout;
  if (timeout.count() < 0)
    return fail(count_failure(Error(Errc::configuration, "invalid timeout: must not be negative")));
  Headers headers;
  if (Error e = merge_connect_headers(user_agent_, config_.headers, default_headers_, options.headers, headers))
    return fail(count_failure(e));

  auto op = std::make_shared<ConnectOp>();
  op->client = shared_from_this();
  op->url_text = url;
  op->url = std::move(parsed);
  op->headers = std::move(headers);
  op->timeout = timeout;
  op->cb = std::move(cb);
  ops_.insert(op);
  UVWT_DEBUG("client: connecting to %s", url.c_str());
  op->start();
  std::weak_ptr<ConnectOp> weak = op;
  return [weak] {
    if (auto op = weak.lock()) op->finish(Error(Errc::cancelled, "connect cancelled"), nullptr);
  };
}

std::size_t ClientImpl::connections_in_use() const {
  // A pending connect holds one slot from the start, DNS included, however
  // many addresses it races: connects started in the same turn count too.
  std::size_t racing = 0;
  for (const auto &op : ops_)
    for (const auto &w : op->attempts)
      if (auto c = w.lock(); c && conns_.count(c) != 0) ++racing;
  return conns_.size() - racing + ops_.size();
}

void ClientImpl::connect(const std::string &url, const ConnectOptions &options, SessionCallback cb) {
  (void)connect_cancellable(url, options, std::move(cb));
}

void ClientImpl::op_finished(const std::shared_ptr<ConnectOp> &op, const Error &err, double seconds, bool pooled) {
  ops_.erase(op);
  if (err) {
    ++stats_.connections_failed;
    return;
  }
  ++stats_.connections_successful;
  if (pooled) ++stats_.pooled_sessions;
  stats_.total_connect_time += seconds;
  stats_.min_connect_time = std::min(stats_.min_connect_time, seconds);
  stats_.max_connect_time = std::max(stats_.max_connect_time, seconds);
}

void ClientImpl::adopt(const std::shared_ptr<ConnectionImpl> &c) {
  conns_.insert(c);
  std::weak_ptr<ClientImpl> weak = weak_from_this();
  std::weak_ptr<ConnectionImpl> wc = c;
  c->wait_closed([weak, wc] {
    auto self = weak.lock();
    if (!self) return;
    if (auto c = wc.lock()) self->conns_.erase(c);
    self->maybe_closed();
  });
}

void ClientImpl::close(CloseCallback cb) {
  if (cb) close_cbs_.push_back(std::move(cb));
  if (!closed_) {
    closed_ = true;
    UVWT_DEBUG("client: closing (%zu connects pending, %zu connections)", ops_.size(), conns_.size());
    auto ops = ops_;
    for (const auto &op : ops) op->finish(Error(Errc::cancelled, "client closed"), nullptr);
    auto conns = conns_;
    for (const auto &c : conns) shut_connection(c, Error(Errc::cancelled, "client closed"));
  }
  maybe_closed();
}

void ClientImpl::maybe_closed() {
  if (!closed_ || !conns_.empty() || close_cbs_.empty()) return;
  auto cbs = std::move(close_cbs_);
  close_cbs_.clear();
  deferred_->post([cbs = std::move(cbs)] {
    for (const auto &c : cbs) c();
  });
}

std::size_t ClientImpl::proxy_connections() const { return proxy_pool_->live_links(); }

void ClientImpl::set_proxy(ProxySpec spec) { proxy_ = std::move(spec); }

ClientDiagnostics ClientImpl::diagnostics() const {
  ClientDiagnostics d;
  d.stats = stats_;
  for (const auto &c : conns_) ++d.connection_states[c->state()];
  return d;
}

std::shared_ptr<Deferred> queue_of(const std::shared_ptr<Client> &client) {
  if (auto impl = std::dynamic_pointer_cast<ClientImpl>(client)) return impl->deferred();
  return std::make_shared<Deferred>(client->loop());
}

CancelConnect connect_cancellable(const std::shared_ptr<Client> &client, const std::string &url,
                                  const ConnectOptions &options, Client::SessionCallback cb) {
  if (auto impl = std::dynamic_pointer_cast<ClientImpl>(client))
    return impl->connect_cancellable(url, options, std::move(cb));
  auto live = std::make_shared<bool>(true);
  auto shared_cb = std::make_shared<Client::SessionCallback>(std::move(cb));
  client->connect(url, options, [live, shared_cb](const Error &e, std::shared_ptr<Session> s) {
    if (*live) {
      *live = false;
      (*shared_cb)(e, std::move(s));
    } else if (s) {
      s->close(0, "connect cancelled", {});
    }
  });
  auto deferred = queue_of(client);
  return [live, shared_cb, deferred] {
    if (!*live) return;
    *live = false;
    deferred->post([shared_cb] { (*shared_cb)(Error(Errc::cancelled, "connect cancelled"), nullptr); });
  };
}

}  // namespace detail

std::shared_ptr<Client> Client::create(uv_loop_t *loop, const ClientConfig &config, Error &err) {
  err = config.validate();
  if (err) return nullptr;
  auto tls = detail::TlsClientContext::create(detail::tls_options(config), err);
  if (!tls) {
    if (!err) err = Error(Errc::configuration, "cannot set up TLS");
    return nullptr;
  }
  auto client = std::make_shared<detail::ClientImpl>(loop, config, std::move(tls));
  if (config.proxy.enabled()) {
    detail::ProxySpec spec;
    err = detail::make_proxy_spec(config, std::nullopt, spec);
    if (err) return nullptr;
    client->set_proxy(std::move(spec));
  }
  return client;
}

}  // namespace uvwt
