#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uvwt/types.hpp>

namespace uvwt::detail {

class SessionImpl;

// A WebTransport CONNECT as the HTTP/3 layer parsed it, for the layer above
// to decide on (lib/server turns it into the public SessionRequest). Kept
// here so lib/h3 never depends on the server's public types.
struct ConnectRequest {
  std::string path;   // without the query
  std::string query;  // after '?', may be empty
  std::string authority;
  std::string origin;
  Headers headers;
  std::vector<std::string> offered_protocols;  // wt-available-protocols
  Address remote_address;
  // Mutual TLS: SHA-256 of the client certificate's DER; nullopt without one.
  std::optional<std::array<std::uint8_t, 32>> client_certificate_sha256;
};

// The verdict on a ConnectRequest: status 2xx accepts, anything else rejects.
struct ConnectDecision {
  int status = 200;
  std::string protocol;  // chosen subprotocol (wt-protocol), optional
  Headers headers;       // extra response headers
  // Accepted sessions only: run with the new session once it is ready.
  std::function<void(const std::shared_ptr<SessionImpl> &)> on_accepted;
  [[nodiscard]] bool accepted() const noexcept { return status >= 200 && status < 300; }
  static ConnectDecision reject(int status) {
    ConnectDecision d;
    d.status = status;
    return d;
  }
};

}  // namespace uvwt::detail
