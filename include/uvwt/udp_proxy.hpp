#pragma once

// A MASQUE CONNECT-UDP proxy (RFC 9298) on a uvwt Server: clients tunnel
// UDP (e.g. their QUIC connections to a WebTransport server) through it as
// HTTP Datagrams. docs/proxy.md tells how to run one.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/export.hpp>
#include <uvwt/config.hpp>
#include <uvwt/error.hpp>
#include <uvwt/server.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

// Which targets the proxy may reach. Checked before any packet leaves.
struct UVWT_EXPORT UdpProxyPolicy {
  // Target names or IP literals as the client gives them (lower-case);
  // "*.example.com" allows every name under example.com. Empty: any.
  std::vector<std::string> allowed_hosts;
  std::vector<std::uint16_t> allowed_ports;  // empty: any
  // Loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified,
  // multicast and broadcast addresses are refused unless this is set: a
  // proxy must not become a door into its own network. Tests set it.
  bool allow_private_targets = false;
};

// One CONNECT-UDP request, as the authentication hook sees it.
struct UVWT_EXPORT UdpProxyRequest {
  Address client;  // the proxy client's address
  Address target;  // host as named (decoded from the path) and port
  std::string authority, path;
  Headers headers;  // regular headers, lower-case (proxy-authorization ...)
};

struct UVWT_EXPORT UdpProxyConfig {
  // The path template clients expand (RFC 9298 §2); requests whose :path
  // does not match it are refused with 400.
  std::string uri_template = "/.well-known/masque/udp/{target_host}/{target_port}/";
  UdpProxyPolicy policy;
  std::size_t max_tunnels_per_connection = 16;  // 429 beyond
  std::size_t max_tunnels = 10'000;             // whole proxy; 503 beyond
  // UDP payload bytes relayed for one client connection, both directions,
  // all its tunnels together; the tunnel that crosses it is closed and new
  // ones are refused (429). 0: no limit.
  std::uint64_t max_bytes_per_connection = 0;
  // A tunnel with no datagram either way for this long is closed.
  Duration tunnel_idle_timeout{30'000};
  // 0 lets the request through; any other value is the HTTP status it is
  // refused with (407 asks for credentials, with proxy-authenticate: the
  // challenge below). Unset: everyone may use the proxy.
  std::function<int(const UdpProxyRequest &)> authenticate;
  std::string auth_challenge = "Bearer";
};

struct UVWT_EXPORT UdpProxyStats {
  std::uint64_t tunnels_opened = 0;
  std::uint64_t tunnels_refused = 0;
  std::uint64_t tunnels_active = 0;
  std::uint64_t datagrams_to_targets = 0, bytes_to_targets = 0;
  std::uint64_t datagrams_from_targets = 0, bytes_from_targets = 0;
  std::uint64_t datagrams_dropped = 0;  // datagram queue full toward a client
};

class UVWT_EXPORT UdpProxy {
 public:
  virtual ~UdpProxy() = default;
  // Serves CONNECT-UDP on every connection of `server` (WebTransport routes
  // keep working alongside). Errc::configuration for a bad template.
  static std::shared_ptr<UdpProxy> create(const std::shared_ptr<Server> &server, const UdpProxyConfig &config,
                                          Error &err);
  [[nodiscard]] virtual UdpProxyStats stats() const = 0;
  // Tunnels of every connection (the server and its connections stay open).
  virtual void close_tunnels() = 0;
};

// A fixed credential check for UdpProxyConfig::authenticate: the request's
// proxy-authorization must equal `expected` (e.g. "Bearer s3cret"), else 407.
UVWT_EXPORT std::function<int(const UdpProxyRequest &)> require_proxy_authorization(std::string expected);

}  // namespace uvwt
