// MASQUE CONNECT-UDP proxy (RFC 9298) on a uvwt Server: checks each request
// (template, credentials, limits, target policy), resolves the target and
// relays UDP payloads between a connected socket and the tunnel's HTTP
// Datagrams (context id 0).

#include <uvwt/udp_proxy.hpp>

#include <sys/socket.h>

#include <map>
#include <set>

#include "common/clock.hpp"
#include "common/deferred.hpp"
#include "connection/resolve.hpp"
#include "common/log.hpp"
#include "common/timer.hpp"
#include "connection/connection_impl.hpp"
#include "h3/connect_udp.hpp"
#include "quic/udp_socket.hpp"
#include "server/server_hooks.hpp"
#include "server/target_policy.hpp"

namespace uvwt {

namespace detail {

namespace {

// What one client connection has used: its tunnels and relayed bytes.
struct Usage {
  std::weak_ptr<ConnectionImpl> conn;
  std::size_t tunnels = 0;
  std::uint64_t bytes = 0;
};

struct ProxyCore {
  UdpProxyConfig cfg;
  UdpProxyStats stats;
  std::map<const ConnectionImpl *, Usage> usage;
  // False once the connection crossed max_bytes_per_connection.
  bool charge(const ConnectionImpl *c, std::size_t n) {
    auto &u = usage[c];
    u.bytes += n;
    return cfg.max_bytes_per_connection == 0 || u.bytes <= cfg.max_bytes_per_connection;
  }
};

// One tunnel: a connected UDP socket to the target on the proxy's loop
// (recvmmsg batches in, GSO/sendmmsg batches out), the CONNECT-UDP stream
// on the client's connection, and an idle timer.
class Relay final : public UdpTunnelHandler, public UdpReceiver, public std::enable_shared_from_this<Relay> {
 public:
  Relay(std::shared_ptr<ProxyCore> core, const std::shared_ptr<ConnectionImpl> &conn, std::int64_t sid, SockAddr target)
      : core_(std::move(core)),
        conn_(conn),
        key_(conn.get()),
        sid_(sid),
        target_(target),
        deferred_(conn->endpoint()->deferred()) {}

  Error open(uv_loop_t *loop) {
    UdpOptions opts;
    opts.recv_batch = 32;
    opts.recv_buffer_size = 1 << 20;
    opts.send_buffer_size = 1 << 20;
    Error err;
    sock_ = UdpSocket::open(loop, SockAddr::any(target_.family(), 0), opts, err);
    if (!sock_) return err;
    // Connected: the kernel drops datagrams from anyone but the target, and
    // reports ICMP errors for it (RFC 9298 §3.1 leaves the socket choice to
    // the proxy; a connected one is what keeps the tunnel to one target).
    if (::connect(sock_->fd(), target_.sa(), target_.len) != 0)
      return {Errc::server, std::string("connect to target: ") + std::strerror(errno)};
    sock_->set_receiver(this);
    // Tunnelled connections pace themselves (their own congestion control):
    // an acknowledgment clock on the client's connection would cap them at a
    // few packets per round trip (docs/protocol.md, "Datagrams in flight").
    if (auto c = conn_.lock(); c && c->quic() != nullptr) c->quic()->set_max_datagrams_in_flight(0);
    last_ns_ = now_ns();
    timer_ = std::make_unique<Timer>(loop);
    arm_idle(static_cast<std::uint64_t>(core_->cfg.tunnel_idle_timeout.count()));
    return {};
  }

  void on_tunnel_response(int, const Headers &) override {}

  void on_tunnel_datagram(std::span<const std::uint8_t> udp) override {
    if (closed_ || !sock_) return;
    last_ns_ = now_ns();
    if (!core_->charge(key_, udp.size())) return close(true, "byte limit reached");
    stage(udp);
  }

  void on_packets(UdpSocket &, std::span<const RecvPacket> pkts) override {
    auto c = conn_.lock();
    if (closed_ || !c || c->h3() == nullptr) return;
    last_ns_ = now_ns();
    for (const auto &p : pkts) {
      if (!core_->charge(key_, p.data.size())) return close(true, "byte limit reached");
      if (c->h3()->send_udp_datagram(sid_, p.data)) {
        ++core_->stats.datagrams_dropped;
        continue;
      }
      ++core_->stats.datagrams_from_targets;
      core_->stats.bytes_from_targets += p.data.size();
    }
  }

  void on_tunnel_closed(const Error &) override { close(false, "tunnel closed"); }

  // tell_peer: end the CONNECT-UDP stream too (FIN); the client's inner
  // connection then fails with a proxy_connection error.
  void close(bool tell_peer, const char *why) {
    if (closed_) return;
    flush_out();  // what the client sent before the close still goes out
    closed_ = true;
    UVWT_DEBUG("udp proxy: tunnel %lld to %s closed: %s", static_cast<long long>(sid_), target_.to_string().c_str(),
               why);
    timer_.reset();
    auto self = shared_from_this();
    deferred_->post([self, tell_peer] {
      auto c = self->conn_.lock();
      if (tell_peer && c && c->h3() != nullptr) c->h3()->close_udp_tunnel(self->sid_, false);
      if (self->sock_)
        self->sock_->close([self] { self->deferred_->post([self] { self->finished(); }); });
      else
        self->finished();
    });
  }

  std::function<void(const std::shared_ptr<Relay> &)> on_finished;

 private:
  // Datagrams toward the target leave in batches: the ones a receive batch of
  // the client's connection carried go out together at the end of the loop
  // turn, runs of equal size as one GSO send (UdpSocket::send falls back to
  // sendmmsg). The buffer is allocated once per tunnel, on first use.
  static constexpr std::size_t kBatchMax = 64;  // UDP_SEGMENT's own limit
  static constexpr std::size_t kSlot = 2048;    // tunnelled packets are at most ~1.4 KB
  void stage(std::span<const std::uint8_t> udp) {
    if (udp.size() > kSlot) {  // never from a QUIC client; sent alone
      flush_out();
      send_out(udp, 1, 0);
      return;
    }
    // A run has one segment size; only its last datagram may be shorter.
    if (out_count_ > 0 && (out_short_ || udp.size() > out_seg_)) flush_out();
    if (out_.capacity() == 0) out_.reserve(kBatchMax * kSlot);
    if (out_count_ == 0) out_seg_ = udp.size();
    out_short_ = udp.size() < out_seg_;
    out_.insert(out_.end(), udp.begin(), udp.end());
    if (++out_count_ == kBatchMax) return flush_out();
    if (flush_posted_) return;
    flush_posted_ = true;
    std::weak_ptr<Relay> weak = weak_from_this();
    deferred_->post([weak] {
      if (auto self = weak.lock()) {
        self->flush_posted_ = false;
        self->flush_out();
      }
    });
  }

  void flush_out() {
    if (out_count_ == 0 || closed_ || !sock_) return;
    send_out(out_, out_count_, out_count_ > 1 ? out_seg_ : 0);
    out_.clear();
    out_count_ = 0;
    out_short_ = false;
  }

  void send_out(std::span<const std::uint8_t> data, std::size_t count, std::size_t seg) {
    // What did not leave (a full socket, an ICMP error for the target) is
    // lost to the inner QUIC connection, whose loss recovery copes.
    const auto r = sock_->send(target_, nullptr, 0, data, seg);
    const std::size_t sent = r.ok() ? data.size() : r.bytes_sent;
    core_->stats.datagrams_to_targets += r.ok() ? count : (seg == 0 ? 0 : sent / seg);
    core_->stats.bytes_to_targets += sent;
  }

  void finished() {
    if (auto u = core_->usage.find(key_); u != core_->usage.end() && u->second.tunnels > 0) --u->second.tunnels;
    --core_->stats.tunnels_active;
    if (on_finished) std::exchange(on_finished, nullptr)(shared_from_this());
  }

  void arm_idle(std::uint64_t ms) {
    std::weak_ptr<Relay> weak = weak_from_this();
    timer_->start(std::max<std::uint64_t>(1, ms), [weak] {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      const std::uint64_t period = static_cast<std::uint64_t>(self->core_->cfg.tunnel_idle_timeout.count()) * 1'000'000;
      const std::uint64_t idle = now_ns() - std::min(now_ns(), self->last_ns_);
      if (idle < period) return self->arm_idle((period - idle + 999'999) / 1'000'000);
      self->close(true, "idle timeout");
    });
  }

  std::shared_ptr<ProxyCore> core_;
  std::weak_ptr<ConnectionImpl> conn_;
  const ConnectionImpl *key_;
  std::int64_t sid_;
  SockAddr target_;
  std::shared_ptr<Deferred> deferred_;
  std::unique_ptr<UdpSocket> sock_;
  std::unique_ptr<Timer> timer_;
  std::uint64_t last_ns_ = 0;
  bool closed_ = false;
  std::vector<std::uint8_t> out_;  // staged datagrams toward the target
  std::size_t out_count_ = 0, out_seg_ = 0;
  bool out_short_ = false, flush_posted_ = false;
};

class UdpProxyImpl final : public UdpProxy, public std::enable_shared_from_this<UdpProxyImpl> {
 public:
  UdpProxyImpl(std::weak_ptr<Server> server, const UdpProxyConfig &cfg)
      : server_(std::move(server)), core_(std::make_shared<ProxyCore>()) {
    core_->cfg = cfg;
  }

  void attach(Server &server) {
    std::weak_ptr<UdpProxyImpl> weak = weak_from_this();
    set_connection_hook(server, [weak](const std::shared_ptr<ConnectionImpl> &c) {
      if (c->h3() == nullptr) return;
      std::weak_ptr<ConnectionImpl> wc = c;
      c->h3()->set_udp_tunnel_acceptor([weak, wc](const UdpTunnelRequest &req) {
        if (auto self = weak.lock()) self->on_request(wc, req);
      });
    });
  }

  [[nodiscard]] UdpProxyStats stats() const override { return core_->stats; }

  void close_tunnels() override {
    auto all = relays_;
    for (const auto &r : all) r->close(true, "proxy closing its tunnels");
  }

 private:
  void refuse(const std::weak_ptr<ConnectionImpl> &wc, std::int64_t sid, int status, const char *proxy_error,
              const std::string &why) {
    ++core_->stats.tunnels_refused;
    UVWT_INFO("udp proxy: refusing tunnel: %s (HTTP %d)", why.c_str(), status);
    auto c = wc.lock();
    if (!c || c->h3() == nullptr) return;
    Headers hs;
    // RFC 9209 §2.3: which proxy said no, and why.
    if (proxy_error != nullptr) hs.emplace_back("proxy-status", std::string("uvwt; error=") + proxy_error);
    if (status == 407) hs.emplace_back("proxy-authenticate", core_->cfg.auth_challenge);
    c->h3()->refuse_udp_tunnel(sid, status, hs);
  }

  void on_request(const std::weak_ptr<ConnectionImpl> &wc, const UdpTunnelRequest &req) {
    std::erase_if(core_->usage, [](const auto &kv) { return kv.second.conn.expired(); });
    const auto target = match_udp_template(core_->cfg.uri_template, req.path);
    if (!target) return refuse(wc, req.stream_id, 400, nullptr, "path does not match the URI template: " + req.path);
    UdpProxyRequest r{req.client, *target, req.authority, req.path, req.headers};
    if (core_->cfg.authenticate) {
      if (const int st = core_->cfg.authenticate(r); st != 0)
        return refuse(wc, req.stream_id, st, nullptr, "authentication hook said " + std::to_string(st));
    }
    auto c = wc.lock();
    if (!c) return;
    auto &u = core_->usage[c.get()];
    u.conn = c;
    if (u.tunnels >= core_->cfg.max_tunnels_per_connection)
      return refuse(wc, req.stream_id, 429, nullptr, "max_tunnels_per_connection reached");
    if (core_->stats.tunnels_active >= core_->cfg.max_tunnels)
      return refuse(wc, req.stream_id, 503, nullptr, "max_tunnels reached");
    if (core_->cfg.max_bytes_per_connection != 0 && u.bytes >= core_->cfg.max_bytes_per_connection)
      return refuse(wc, req.stream_id, 429, nullptr, "max_bytes_per_connection used up");
    if (!target_name_allowed(core_->cfg.policy, target->host, target->port))
      return refuse(wc, req.stream_id, 403, "destination_prohibited", "target not allowed: " + target->to_string());
    ++u.tunnels;  // held while resolving, so parallel requests count
    ++core_->stats.tunnels_active;
    std::weak_ptr<UdpProxyImpl> weak = weak_from_this();
    resolve(c->endpoint()->deferred(), target->host, target->port,
            [weak, wc, sid = req.stream_id, t = *target](const Error &err, const std::vector<SockAddr> &addrs) {
              if (auto self = weak.lock()) self->on_resolved(wc, sid, t, err, addrs);
            });
  }

  void release_slot(const std::weak_ptr<ConnectionImpl> &wc) {
    --core_->stats.tunnels_active;
    if (auto c = wc.lock())
      if (auto it = core_->usage.find(c.get()); it != core_->usage.end() && it->second.tunnels > 0)
        --it->second.tunnels;
  }

  void on_resolved(const std::weak_ptr<ConnectionImpl> &wc, std::int64_t sid, const Address &target, const Error &err,
                   const std::vector<SockAddr> &addrs) {
    if (err) {
      release_slot(wc);
      return refuse(wc, sid, 502, "dns_error", "cannot resolve " + target.host + ": " + err.message);
    }
    const SockAddr *chosen = nullptr;
    for (const auto &a : addrs)
      if (core_->cfg.policy.allow_private_targets || !is_private_address(a)) {
        chosen = &a;
        break;
      }
    if (chosen == nullptr) {
      release_slot(wc);
      return refuse(wc, sid, 403, "destination_ip_prohibited",
                    target.to_string() + " resolves to private addresses only (policy.allow_private_targets)");
    }
    auto c = wc.lock();
    if (!c || c->h3() == nullptr) return release_slot(wc);
    auto relay = std::make_shared<Relay>(core_, c, sid, *chosen);
    if (Error e = relay->open(c->endpoint()->loop())) {
      release_slot(wc);
      return refuse(wc, sid, 502, "destination_ip_unroutable", "cannot open a socket to the target: " + e.message);
    }
    if (Error e = c->h3()->accept_udp_tunnel(sid, relay)) {
      relay->close(false, "request gone");
      relays_.insert(relay);
      relay->on_finished = [weak = weak_from_this()](const std::shared_ptr<Relay> &r) {
        if (auto self = weak.lock()) self->relays_.erase(r);
      };
      return;
    }
    ++core_->stats.tunnels_opened;
    UVWT_DEBUG("udp proxy: tunnel %lld from %s to %s (%s)", static_cast<long long>(sid),
               c->remote_address() ? c->remote_address()->to_string().c_str() : "?", target.to_string().c_str(),
               chosen->to_string().c_str());
    relay->on_finished = [weak = weak_from_this()](const std::shared_ptr<Relay> &r) {
      if (auto self = weak.lock()) self->relays_.erase(r);
    };
    relays_.insert(relay);
  }

  std::weak_ptr<Server> server_;
  std::shared_ptr<ProxyCore> core_;
  std::set<std::shared_ptr<Relay>> relays_;
};

}  // namespace
}  // namespace detail

std::shared_ptr<UdpProxy> UdpProxy::create(const std::shared_ptr<Server> &server, const UdpProxyConfig &config,
                                           Error &err) {
  if (!server) {
    err = Error(Errc::configuration, "UdpProxy needs a server");
    return nullptr;
  }
  std::string probe;
  if ((err = detail::expand_udp_template(config.uri_template, "h", 1, probe))) return nullptr;
  if (config.tunnel_idle_timeout.count() <= 0) {
    err = Error(Errc::configuration, "tunnel_idle_timeout: must be positive");
    return nullptr;
  }
  auto p = std::make_shared<detail::UdpProxyImpl>(server, config);
  p->attach(*server);
  err = Error();
  return p;
}

std::function<int(const UdpProxyRequest &)> require_proxy_authorization(std::string expected) {
  return [expected = std::move(expected)](const UdpProxyRequest &r) {
    for (const auto &[k, v] : r.headers)
      if (k == "proxy-authorization" && v == expected) return 0;
    return 407;
  };
}

}  // namespace uvwt
