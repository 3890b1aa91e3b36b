#include "connection/proxy_tunnel.hpp"

#include "common/log.hpp"
#include "common/timer.hpp"
#include "connection/connection_impl.hpp"
#include "connection/dialer.hpp"
#include "quic/tls_context.hpp"

namespace uvwt::detail {

// One QUIC connection to a proxy, shared by the tunnels on it and closed
// once the last of them (and every pending open) lets go of it.
class ProxyLink : public std::enable_shared_from_this<ProxyLink> {
 public:
  ProxyLink(std::shared_ptr<Deferred> deferred, const ProxySpec &spec)
      : spec_(spec), deferred_(std::move(deferred)), authority_(spec.url.authority()) {}
  ~ProxyLink() {
    if (dialer_) dialer_->cancel(Error(Errc::cancelled, "no tunnel needs the proxy any more"));
    if (!conn_) return;
    if (conn_->state() == ConnectionState::connecting || conn_->state() == ConnectionState::idle)
      conn_->abandon(Error(Errc::cancelled, "no tunnel needs the proxy any more"));
    else if (conn_->is_connected())
      conn_->close(0, "no tunnels left", {});
  }

  // The proxy's addresses raced as Client::connect races a server's (Happy Eyeballs).
  void start() {
    std::weak_ptr<ProxyLink> weak = weak_from_this();
    dialer_ = Dialer::start(deferred_, spec_.outer, spec_.tls, spec_.url.host, spec_.url.port, nullptr,
                            [weak](const Error &err, std::shared_ptr<ConnectionImpl> c) {
                              auto self = weak.lock();
                              if (!self)
                                return shut_connection(c, Error(Errc::cancelled, "no tunnel needs the proxy any more"));
                              self->dialer_.reset();
                              self->conn_ = std::move(c);
                              self->finish(err);
                            });
  }

  // cb(error) once the connection is ready or failed; on a later turn.
  void when_ready(std::function<void(const Error &)> cb) {
    if (done_) {
      deferred_->post([cb = std::move(cb), e = error_] { cb(e); });
      return;
    }
    waiters_.push_back(std::move(cb));
  }

  [[nodiscard]] bool usable() const noexcept {
    return !done_ || (error_.ok() && conn_ && conn_->is_connected() && conn_->h3() != nullptr &&
                      conn_->h3()->goaway_received() == 0);
  }
  [[nodiscard]] const std::shared_ptr<ConnectionImpl> &conn() const noexcept { return conn_; }
  [[nodiscard]] const std::string &authority() const noexcept { return authority_; }

 private:
  void finish(const Error &err) {
    if (done_) return;
    done_ = true;
    error_ = err ? proxy_leg_error(err, authority_) : Error();
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto &w : waiters) w(error_);
  }

  ProxySpec spec_;
  std::shared_ptr<Deferred> deferred_;
  std::string authority_;
  std::shared_ptr<Dialer> dialer_;
  std::shared_ptr<ConnectionImpl> conn_;
  std::vector<std::function<void(const Error &)>> waiters_;
  Error error_;
  bool done_ = false;
};

Error proxy_leg_error(const Error &e, const std::string &authority) {
  Errc c = Errc::proxy_connection;
  if (e.errc == Errc::dns || e.errc == Errc::proxy_dns) c = Errc::proxy_dns;
  if (e.errc == Errc::certificate || e.errc == Errc::proxy_certificate) c = Errc::proxy_certificate;
  if (e.errc == Errc::cancelled) c = Errc::cancelled;
  Error out = e;  // keeps the code, its space and the HTTP status
  out.errc = c;
  out.message = "proxy " + authority + ": " + e.message;
  return out;
}

Error make_proxy_spec(const ClientConfig &cfg, const std::optional<Address> &proxy_addr, ProxySpec &out) {
  ProxySpec s;
  if (proxy_addr) {
    s.url.host = proxy_addr->host;
    s.url.port = proxy_addr->port;
    s.url.tmpl = std::string(kDefaultUdpTemplate);
    if (s.url.host.empty() || s.url.port == 0) return {Errc::configuration, "proxy_addr needs a host and a port"};
  } else if (Error e = parse_proxy_url(cfg.proxy.url, s.url)) {
    return e;
  }
  s.headers = cfg.proxy.headers;
  for (auto &[k, v] : s.headers)
    for (auto &ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  s.connect_timeout = cfg.proxy.connect_timeout;
  s.outer = cfg;
  s.outer.proxy = ProxyConfig{};
  s.outer.alpn = {"h3"};
  // The outer connection carries whole QUIC packets as datagrams: accept
  // large DATAGRAM frames and queue enough of them for a full window.
  s.outer.max_datagram_frame_size = std::max<std::size_t>(cfg.max_datagram_frame_size, 65535);
  s.outer.datagram_send_queue = std::max<std::size_t>(cfg.datagram_send_queue, 1024);
  s.outer.assume_full_mtu = true;
  // The tunnelled connections pace themselves (their own congestion control):
  // an acknowledgment clock on the outer one would cap them at a few packets
  // per round trip (docs/protocol.md, "Datagrams in flight").
  s.outer.max_datagrams_in_flight = 0;
  TlsClientOptions o = tls_options(cfg);
  o.verify_peer = cfg.proxy.verify_peer;
  if (!cfg.proxy.ca_file.empty()) o.ca_file = cfg.proxy.ca_file;
  o.pinned_sha256 = cfg.proxy.server_certificate_hashes;
  o.alpn = {"h3"};
  Error err;
  s.tls = TlsClientContext::create(o, err);
  if (!s.tls) return err ? err : Error(Errc::configuration, "cannot set up TLS for the proxy");
  out = std::move(s);
  return {};
}

std::shared_ptr<ProxyLink> ProxyPool::find(const std::string &key) {
  auto it = links_.find(key);
  if (it == links_.end()) return nullptr;
  auto link = it->second.lock();
  if (!link || !link->usable()) {
    links_.erase(it);
    return nullptr;
  }
  return link;
}

std::size_t ProxyPool::live_links() {
  std::erase_if(links_, [](const auto &kv) { return kv.second.expired(); });
  return links_.size();
}

// ---------------------------------------------------------------- tunnel

ProxyTunnel::ProxyTunnel(std::shared_ptr<ProxyLink> link, std::shared_ptr<Deferred> deferred,
                         const std::string &target_host, std::uint16_t target_port)
    : link_(std::move(link)), deferred_(std::move(deferred)) {
  // ngtcp2 sees one fixed path: the proxy connection's local address, and the
  // target as named (an IP literal) or an unspecified address with its port
  // when the proxy resolves a name. Every tunnelled packet uses these, so
  // ngtcp2 never sees a migration.
  if (auto *q = link_->conn()->quic()) local_ = q->local_addr();
  if (auto lit = SockAddr::parse(target_host, target_port))
    target_ = *lit;
  else
    target_ = SockAddr::any(local_.family() == AF_UNSPEC ? AF_INET : local_.family(), target_port);
}

ProxyTunnel::~ProxyTunnel() { release(); }

ConnectionImpl *ProxyTunnel::proxy_connection() const noexcept { return link_ ? link_->conn().get() : nullptr; }

SendStatus ProxyTunnel::send(const SockAddr &, const SockAddr &, std::uint8_t, const std::uint8_t *data,
                             std::size_t len, std::size_t gso) {
  if (closed_ || !link_) return SendStatus::error;
  H3Connection *h3 = link_->conn()->h3();
  if (h3 == nullptr) return SendStatus::error;
  const std::size_t step = gso == 0 ? len : gso;
  for (std::size_t off = 0; off < len; off += step) {
    // A full datagram queue drops the packet, as a full router queue would:
    // the inner connection's loss recovery and congestion control react.
    if (h3->send_udp_datagram(sid_, std::span<const std::uint8_t>(data + off, std::min(step, len - off)))) ++dropped_;
  }
  return SendStatus::ok;
}

void ProxyTunnel::on_tunnel_response(int status, const Headers &headers) {
  if (status >= 200 && status < 300) {
    open_ = true;
    // RFC 9298 §5 and docs/proxy.md: one inner packet per datagram, so the
    // outer connection's datagram room bounds the inner packet size.
    max_payload_ = std::min(PacketPath::kUdpPayload, link_->conn()->h3()->max_udp_payload(sid_));
  }
  if (!on_response) return;
  deferred_->post([cb = std::move(on_response), status, headers] { cb(status, headers); });
  on_response = nullptr;
}

void ProxyTunnel::on_tunnel_datagram(std::span<const std::uint8_t> udp_payload) {
  if (inner_ep_ == nullptr || udp_payload.empty()) return;
  RecvPacket pkt;
  pkt.remote = &target_;
  pkt.local = &local_;
  pkt.data = udp_payload;
  inner_ep_->deliver(pkt);
}

void ProxyTunnel::on_tunnel_closed(const Error &err) {
  if (closed_) return;
  closed_ = true;
  Error why(Errc::proxy_connection,
            "proxy " + (link_ ? link_->authority() : std::string()) + ": tunnel closed (" + err.message + ")",
            err.space, err.code);
  if (!open_ && on_failed) {
    deferred_->post([cb = std::move(on_failed), why] { cb(why); });
    on_failed = nullptr;
    return;
  }
  deferred_->post([inner = inner_, why] {
    if (auto c = inner.lock()) c->path_lost(why);
  });
}

void ProxyTunnel::attach(Endpoint *ep, std::weak_ptr<ConnectionImpl> inner) noexcept {
  inner_ep_ = ep;
  inner_ = std::move(inner);
}

void ProxyTunnel::release() {
  inner_ep_ = nullptr;
  if (!link_) return;
  auto link = std::move(link_);
  link_.reset();
  if (closed_ || sid_ < 0) return;
  closed_ = true;
  // Not from inside whatever callback is running: HTTP/3 calls on a later turn.
  deferred_->post([link, sid = sid_] {
    if (auto *h3 = link->conn()->h3()) h3->close_udp_tunnel(sid, false);
  });
}

// ---------------------------------------------------------------- opening

namespace {
struct TunnelOp : std::enable_shared_from_this<TunnelOp> {
  uv_loop_t *loop;
  ProxySpec spec;
  std::string host;
  std::uint16_t port;
  TunnelCallback cb;
  std::shared_ptr<Deferred> deferred;
  std::unique_ptr<Timer> timer;
  std::shared_ptr<ProxyLink> link;
  std::shared_ptr<ProxyTunnel> tunnel;
  bool done = false;

  void start(const std::shared_ptr<ProxyPool> &pool) {
    std::weak_ptr<TunnelOp> weak = weak_from_this();
    timer = std::make_unique<Timer>(loop);
    timer->start(static_cast<std::uint64_t>(spec.connect_timeout.count()), [weak] {
      if (auto self = weak.lock())
        self->finish(Error(Errc::proxy_connection, "proxy " + self->spec.url.authority() + ": no tunnel after " +
                                                       std::to_string(self->spec.connect_timeout.count()) + " ms"));
    });
    link = pool ? pool->find(spec.key()) : nullptr;
    if (!link) {
      link = std::make_shared<ProxyLink>(deferred, spec);
      if (pool) pool->put(spec.key(), link);
      link->start();
    }
    link->when_ready([weak](const Error &e) {
      if (auto self = weak.lock()) self->on_link(e);
    });
  }

  void on_link(const Error &err) {
    if (done) return;
    if (err) return finish(err);
    std::string path;
    if (Error e = expand_udp_template(spec.url.tmpl, host, port, path)) return finish(e);
    tunnel = std::make_shared<ProxyTunnel>(link, deferred, host, port);
    std::weak_ptr<TunnelOp> weak = weak_from_this();
    tunnel->on_response = [weak](int status, const Headers &) {
      if (auto self = weak.lock()) self->on_response(status);
    };
    tunnel->on_failed = [weak](const Error &e) {
      if (auto self = weak.lock()) self->finish(e);
    };
    const Error e = link->conn()->h3()->open_udp_tunnel(spec.url.authority(), path, spec.headers, tunnel, tunnel->sid_);
    if (e) {
      tunnel->sid_ = -1;
      const Errc c = e.errc == Errc::unsupported ? Errc::proxy_refused : Errc::proxy_connection;
      finish(Error(c, "proxy " + spec.url.authority() + ": " + e.message, e.space, e.code));
    }
  }

  void on_response(int status) {
    if (status >= 200 && status < 300) return finish(Error());
    const std::string what =
        "proxy " + spec.url.authority() + " refused CONNECT-UDP to " + host + ":" + std::to_string(port);
    // RFC 9110 §15.5.8: 407 asks for (other) proxy credentials.
    finish(Error::from_http_status(status == 407 ? Errc::proxy_authentication : Errc::proxy_refused, what, status));
  }

  void finish(const Error &err) {
    if (done) return;
    done = true;
    timer.reset();
    std::shared_ptr<ProxyTunnel> t = err ? nullptr : std::move(tunnel);
    if (err && tunnel) tunnel->release();
    tunnel.reset();
    link.reset();
    deferred->post([cb = std::move(cb), err, t = std::move(t)] { cb(err, t); });
  }
};
}  // namespace

std::function<void()> open_proxy_tunnel(std::shared_ptr<Deferred> deferred, const ProxySpec &spec,
                                        const std::shared_ptr<ProxyPool> &pool, const std::string &host,
                                        std::uint16_t port, TunnelCallback cb) {
  auto op = std::make_shared<TunnelOp>();
  op->loop = deferred->loop();
  op->spec = spec;
  op->host = host;
  op->port = port;
  op->cb = std::move(cb);
  op->deferred = std::move(deferred);
  op->start(pool);
  // The op keeps itself alive through its timer and the link's waiter list
  // only weakly: hold it here until it finishes.
  auto keep = std::make_shared<std::shared_ptr<TunnelOp>>(op);
  auto user_cb = std::move(op->cb);
  op->cb = [keep, user_cb = std::move(user_cb)](const Error &e, std::shared_ptr<ProxyTunnel> t) {
    keep->reset();
    user_cb(e, std::move(t));
  };
  std::weak_ptr<TunnelOp> weak = op;
  return [weak] {
    if (auto op = weak.lock()) {
      op->cb = [](const Error &, const std::shared_ptr<ProxyTunnel> &) {};
      op->finish(Error(Errc::cancelled, "tunnel open cancelled"));
    }
  };
}

}  // namespace uvwt::detail
