#pragma once

// The two ends of a CONNECT-UDP request stream (RFC 9298) as the layers
// above H3Connection see them: the client's tunnel path and the proxy's relay.

#include <cstdint>
#include <span>
#include <string>

#include <uvwt/error.hpp>
#include <uvwt/types.hpp>

namespace uvwt::detail {

class UdpTunnelHandler {
 public:
  virtual ~UdpTunnelHandler() = default;
  // Client: the proxy's final answer (2xx: the tunnel is open); regular
  // headers only, names lower-case.
  virtual void on_tunnel_response(int status, const Headers &headers) = 0;
  // One UDP payload (context id 0 already taken off); valid during the call.
  virtual void on_tunnel_datagram(std::span<const std::uint8_t> udp_payload) = 0;
  // The request stream is gone (FIN, reset, connection closed): last call.
  virtual void on_tunnel_closed(const Error &err) = 0;
};

// Proxy side: a CONNECT-UDP request as received.
struct UdpTunnelRequest {
  std::int64_t stream_id = -1;
  std::string scheme, authority, path;
  bool capsule_protocol = false;  // "capsule-protocol: ?1" present
  Headers headers;                // regular headers, lower-case
  Address client;
};

}  // namespace uvwt::detail
