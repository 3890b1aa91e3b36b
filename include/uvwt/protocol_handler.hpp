#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/export.hpp>
#include <uvwt/session.hpp>

namespace uvwt {

// What the peer's HTTP/3 SETTINGS said about WebTransport.
struct UVWT_EXPORT PeerWebTransportSettings {
  bool received = false;
  bool connect_protocol = false;
  bool h3_datagram = false;
  std::string dialect;  // newest dialect both sides speak: "draft02" ... "draft15", or "none"
};

// pywebtransport's WebTransportProtocolHandler: the per-connection HTTP/3 +
// WebTransport state (session table, dialect, GOAWAY).
class UVWT_EXPORT ProtocolHandler {
 public:
  virtual ~ProtocolHandler() = default;
  [[nodiscard]] virtual std::vector<std::shared_ptr<Session>> sessions() const = 0;
  [[nodiscard]] virtual std::size_t session_count() const = 0;
  [[nodiscard]] virtual PeerWebTransportSettings peer_settings() const = 0;
  [[nodiscard]] virtual bool goaway_received() const = 0;
  [[nodiscard]] virtual std::uint64_t datagrams_dropped() const = 0;
};

}  // namespace uvwt
