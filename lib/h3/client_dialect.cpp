#include "h3/client_dialect.hpp"

namespace uvwt::detail {

Dialect client_dialect(const PeerSettings &server, std::uint8_t allowed) noexcept {
  LocalWtSettings local;
  local.dialects = allowed;
  return negotiate_dialect(local, server, PeerRole::server);
}

}  // namespace uvwt::detail
