#include <uvwt/connection.hpp>

#include <uv.h>

#include <memory>

#include "common/deferred.hpp"
#include "connection/connect_headers.hpp"
#include "connection/connection_impl.hpp"
#include "connection/proxy_tunnel.hpp"
#include "quic/tls_context.hpp"

namespace uvwt {

namespace detail {

TlsClientOptions tls_options(const ClientConfig &cfg) {
  TlsClientOptions o;
  o.verify_peer = cfg.verify_peer;
  o.ca_file = cfg.ca_file;
  o.use_system_trust = cfg.use_system_trust;
  o.pinned_sha256 = cfg.server_certificate_hashes;
  o.client_cert_file = cfg.certfile;
  o.client_key_file = cfg.keyfile;
  o.alpn = cfg.alpn;
  o.keylog = cfg.keylog;
  o.early_data = cfg.session_resumption && cfg.early_data;
  return o;
}

// Resolves `host` on the loop's thread pool; cb with every address found.
void resolve(uv_loop_t *loop, const std::string &host, std::uint16_t port,
             std::function<void(const Error &, const std::vector<SockAddr> &)> cb) {
  if (auto lit = SockAddr::parse(host, port)) {
    auto d = Deferred::for_loop(loop);
    d->post([cb = std::move(cb), a = *lit] { cb(Error(), {a}); });
    return;
  }
  struct Req {
    uv_getaddrinfo_t req;
    std::function<void(const Error &, const std::vector<SockAddr> &)> cb;
    std::uint16_t port;
    std::string host;
  };
  auto *r = new Req{{}, std::move(cb), port, host};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  const int rv = uv_getaddrinfo(
      loop, &r->req,
      [](uv_getaddrinfo_t *req, int status, addrinfo *res) {
        std::unique_ptr<Req> r(reinterpret_cast<Req *>(req));
        std::vector<SockAddr> out;
        if (status == 0) {
          for (addrinfo *ai = res; ai != nullptr; ai = ai->ai_next) {
            auto a = SockAddr::from(ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
            a.set_port(r->port);
            bool dup = false;
            for (const auto &o : out) dup = dup || o == a;
            if (!dup) out.push_back(a);
          }
        }
        uv_freeaddrinfo(res);
        if (out.empty())
          r->cb(Error(Errc::dns,
                      "cannot resolve " + r->host + (status != 0 ? std::string(": ") + uv_strerror(status) : "")),
                {});
        else
          r->cb(Error(), std::move(out));
      },
      host.c_str(), nullptr, &hints);
  if (rv != 0) {
    auto d = Deferred::for_loop(loop);
    auto cb2 = std::move(r->cb);
    delete r;
    d->post([cb2 = std::move(cb2), host, rv] {
      cb2(Error(Errc::dns, "cannot resolve " + host + ": " + uv_strerror(rv)), {});
    });
  }
}

}  // namespace detail

namespace detail {
namespace {

// What create_client checks before anything starts; `proxy` filled when proxied.
Error check_client_args(const ClientConfig &config, const std::string &host, const std::optional<Address> &proxy_addr,
                        ProxySpec &proxy) {
  if (Error e = config.validate()) return e;
  if (proxy_addr || config.proxy.enabled()) {
    if (Error e = make_proxy_spec(config, proxy_addr, proxy)) return e;
  }
  if (host.empty()) return Error(Errc::invalid_url, "no host given");
  // The headers every CONNECT of this connection sends: refused now, not at the first session.
  Headers merged;
  return merge_connect_headers(connect_user_agent(config), config.headers, {}, {}, merged);
}

// Runs once: with the connection CONNECTED (and its session open), or with
// the error of whatever ended it first (arguments, resolution, handshake, close()).
std::function<void(const Error &)> finish_connect(const std::shared_ptr<ConnectionImpl> &c, const std::string &host,
                                                  std::uint16_t port, const std::string &path,
                                                  Connection::ConnectCallback cb) {
  const std::string authority =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + (port == 443 ? "" : ":" + std::to_string(port));
  std::weak_ptr<ConnectionImpl> weak = c;
  return [weak, path, authority, cb = std::move(cb)](const Error &err) {
    auto c = weak.lock();
    if (err || !c) return cb(err ? err : Error(Errc::connection, "connection gone"), nullptr);
    if (path.empty()) return cb(Error(), c);
    Headers hs{{":authority", authority}};
    c->open_session(path, hs, [c, cb](const Error &err, std::shared_ptr<Session>) {
      if (err) {
        c->close(0, "session failed", {});
        return cb(err, nullptr);
      }
      cb(Error(), c);
    });
  };
}

}  // namespace
}  // namespace detail

// Never null: rejected arguments give a connection that is already FAILED
// (close_error() tells) and whose callback gets the same error on a later
// turn, so the callback runs exactly once whatever happens (libuv's rule).
std::shared_ptr<Connection> Connection::create_client(uv_loop_t *loop, const ClientConfig &config,
                                                      const std::string &host, std::uint16_t port,
                                                      const std::string &path, const std::optional<Address> &proxy_addr,
                                                      ConnectCallback cb) {
  auto c = detail::ConnectionImpl::make_client(loop, config);
  c->connect_cb = detail::finish_connect(c, host, port, path, std::move(cb));
  detail::ProxySpec proxy;
  Error err = detail::check_client_args(config, host, proxy_addr, proxy);
  auto tls = err ? nullptr : detail::TlsClientContext::create(detail::tls_options(config), err);
  if (!tls) {
    c->fail_before_start(err ? err : Error(Errc::configuration, "cannot set up TLS"));
    return c;
  }
  if (proxy_addr || config.proxy.enabled()) {
    // The proxy resolves the target (RFC 9298 §3.1); the connect timeout
    // starts once the tunnel is there (the proxy leg has its own).
    detail::open_proxy_tunnel(loop, proxy, nullptr, host, port,
                              [c, config, host, tls](const Error &err, std::shared_ptr<detail::ProxyTunnel> t) {
                                if (err) return c->fail_before_start(err);
                                c->connect_via(std::move(t), host, tls);
                                if (c->state() == ConnectionState::connecting)
                                  c->start_connect_timer(config.connect_timeout);
                              });
    return c;
  }
  detail::resolve(loop, host, port,
                  [c, config, host, tls](const Error &err, const std::vector<detail::SockAddr> &addrs) {
                    if (err) return c->fail_before_start(err);
                    c->connect_to(addrs.front(), host, tls);
                    if (c->state() == ConnectionState::connecting) c->start_connect_timer(config.connect_timeout);
                  });
  return c;
}

}  // namespace uvwt
