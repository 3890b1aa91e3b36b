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
    c->open_session(path, hs, [c, cb](const Error &err, const std::shared_ptr<Session> &) {
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
  // One queue for the connection, its race's attempts and its proxy link.
  auto c = detail::ConnectionImpl::make_client(std::make_shared<detail::Deferred>(loop), config);
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
    detail::open_proxy_tunnel(c->deferred(), proxy, nullptr, host, port,
                              [c, config, host, tls](const Error &err, std::shared_ptr<detail::ProxyTunnel> t) {
                                if (err) return c->fail_before_start(err);
                                c->connect_via(std::move(t), host, tls);
                                if (c->state() == ConnectionState::connecting)
                                  c->start_connect_timer(config.connect_timeout);
                              });
    return c;
  }
  c->dial(host, port, std::move(tls), config.connect_timeout);
  return c;
}

}  // namespace uvwt
