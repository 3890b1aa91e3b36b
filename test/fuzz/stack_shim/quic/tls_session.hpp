#pragma once

// Fuzzing seam (see quic_connection.hpp next to it): the fake QUIC side has
// no TLS, so tls() is always null and this is never called.

#include <array>
#include <cstdint>
#include <optional>

namespace uvwt::detail {

class TlsSession {
 public:
  [[nodiscard]] std::optional<std::array<std::uint8_t, 32>> peer_certificate_sha256() const { return std::nullopt; }
};

}  // namespace uvwt::detail
