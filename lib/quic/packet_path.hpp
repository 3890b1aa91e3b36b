#pragma once

#include <cstddef>
#include <cstdint>

#include "quic/socket_addr.hpp"

namespace uvwt::detail {

class Endpoint;
class QuicConnection;
class UdpSocket;

enum class SendStatus { ok, would_block, error };

// Where a connection's packets go: a UDP socket (SocketPath) or a tunnel
// that carries them inside another connection (MASQUE CONNECT-UDP, see
// lib/client/proxy_tunnel). The connection sees addresses, a size bound and
// backpressure, never the carrier.
class PacketPath {
 public:
  // QUIC packets a plain UDP path carries: 1500-byte Ethernet MTU minus IPv6
  // (40) and UDP (8) headers, which IPv4 fits as well.
  static constexpr std::size_t kUdpPayload = 1452;

  virtual ~PacketPath() = default;
  // `len` bytes of datagrams of `gso` bytes each (the last may be shorter).
  // would_block: the path kept the bytes and sends them first once it can.
  virtual SendStatus send(const SockAddr &local, const SockAddr &remote, std::uint8_t ecn, const std::uint8_t *data,
                          std::size_t len, std::size_t gso) = 0;
  [[nodiscard]] virtual bool blocked() const noexcept = 0;
  // Wakes `c` (schedule_write) once the path takes data again.
  virtual void wait_writable(QuicConnection *c) = 0;
  // The largest UDP payload the path carries: bounds every QUIC packet.
  [[nodiscard]] virtual std::size_t max_udp_payload() const noexcept { return kUdpPayload; }
  // A path with its own size bound gains nothing from probing (PMTUD).
  [[nodiscard]] virtual bool probe_mtu() const noexcept { return true; }
};

}  // namespace uvwt::detail
