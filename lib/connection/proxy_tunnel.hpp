#pragma once

// The client side of MASQUE CONNECT-UDP (RFC 9298): a connection to an
// HTTP/3 proxy (ProxyLink, shared by every tunnel to that proxy), and the
// tunnels on it (ProxyTunnel), each a PacketPath for one inner QUIC
// connection to a target. docs/proxy.md tells the whole story.

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <uvwt/config.hpp>
#include <uvwt/error.hpp>

#include "common/deferred.hpp"
#include "h3/connect_udp.hpp"
#include "h3/udp_tunnel.hpp"
#include "quic/endpoint.hpp"
#include "quic/packet_path.hpp"

namespace uvwt::detail {

class ConnectionImpl;
class TlsClientContext;

// Where a client's proxy is and how to reach it.
struct ProxySpec {
  ProxyUrl url;
  Headers headers;
  Duration connect_timeout{10'000};
  ClientConfig outer;                     // the proxy connection's own config
  std::shared_ptr<TlsClientContext> tls;  // the proxy leg's TLS (its own checks)
  [[nodiscard]] std::string key() const { return url.authority() + url.tmpl; }
};

// From config.proxy, or from an explicit proxy address (Connection::
// create_client's proxy_addr: default template, config.proxy's headers,
// timeout and TLS settings). Errc::configuration for a bad URL or template.
Error make_proxy_spec(const ClientConfig &cfg, const std::optional<Address> &proxy_addr, ProxySpec &out);

// Proxy-leg errors get the proxy categories and say which proxy.
Error proxy_leg_error(const Error &e, const std::string &authority);

class ProxyLink;

// The live proxy connections of one client, by proxy: one connection
// carries every tunnel to its proxy.
class ProxyPool {
 public:
  std::shared_ptr<ProxyLink> find(const std::string &key);
  void put(const std::string &key, const std::shared_ptr<ProxyLink> &link) { links_[key] = link; }
  [[nodiscard]] std::size_t live_links();

 private:
  std::map<std::string, std::weak_ptr<ProxyLink>> links_;
};

class ProxyTunnel final : public PacketPath, public UdpTunnelHandler, public std::enable_shared_from_this<ProxyTunnel> {
 public:
  ProxyTunnel(std::shared_ptr<ProxyLink> link, std::shared_ptr<Deferred> deferred, const std::string &target_host,
              std::uint16_t target_port);
  ~ProxyTunnel() override;
  ProxyTunnel(const ProxyTunnel &) = delete;
  ProxyTunnel &operator=(const ProxyTunnel &) = delete;

  // PacketPath: every QUIC packet becomes one HTTP Datagram (context id 0).
  SendStatus send(const SockAddr &local, const SockAddr &remote, std::uint8_t ecn, const std::uint8_t *data,
                  std::size_t len, std::size_t gso) override;
  [[nodiscard]] bool blocked() const noexcept override { return false; }
  void wait_writable(QuicConnection *) override {}
  [[nodiscard]] std::size_t max_udp_payload() const noexcept override { return max_payload_; }
  [[nodiscard]] bool probe_mtu() const noexcept override { return false; }

  // UdpTunnelHandler
  void on_tunnel_response(int status, const Headers &headers) override;
  void on_tunnel_datagram(std::span<const std::uint8_t> udp_payload) override;
  void on_tunnel_closed(const Error &err) override;

  // The inner connection: packets from the tunnel go to its endpoint, and a
  // lost tunnel fails it.
  void attach(Endpoint *ep, std::weak_ptr<ConnectionImpl> inner) noexcept;
  // Ends the CONNECT-UDP request and lets go of the proxy connection.
  void release();

  [[nodiscard]] const SockAddr &local() const noexcept { return local_; }
  [[nodiscard]] const SockAddr &target() const noexcept { return target_; }
  [[nodiscard]] std::int64_t stream_id() const noexcept { return sid_; }
  [[nodiscard]] std::uint64_t datagrams_dropped() const noexcept { return dropped_; }
  [[nodiscard]] ConnectionImpl *proxy_connection() const noexcept;

  std::int64_t sid_ = -1;
  std::function<void(int, const Headers &)> on_response;  // before the tunnel is open
  std::function<void(const Error &)> on_failed;           // closed before it opened

 private:
  std::shared_ptr<ProxyLink> link_;
  std::shared_ptr<Deferred> deferred_;
  Endpoint *inner_ep_ = nullptr;
  std::weak_ptr<ConnectionImpl> inner_;
  SockAddr local_, target_;
  std::size_t max_payload_ = PacketPath::kUdpPayload;
  bool open_ = false, closed_ = false;
  std::uint64_t dropped_ = 0;
};

using TunnelCallback = std::function<void(const Error &, std::shared_ptr<ProxyTunnel>)>;

// Connects to the proxy (or reuses the pool's connection to it) and opens a
// CONNECT-UDP tunnel to host:port; cb once, on a later turn, unless the
// returned cancel function runs first. Errors: proxy_dns, proxy_connection
// (also for the connect timeout), proxy_certificate, proxy_authentication
// (407), proxy_refused (other non-2xx, or a proxy that cannot tunnel UDP).
// Tasks (and the proxy connection's) run on `deferred`, the caller's queue.
std::function<void()> open_proxy_tunnel(std::shared_ptr<Deferred> deferred, const ProxySpec &spec,
                                        const std::shared_ptr<ProxyPool> &pool, const std::string &host,
                                        std::uint16_t port, TunnelCallback cb);

}  // namespace uvwt::detail
