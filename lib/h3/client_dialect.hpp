#pragma once

// The dialect a client speaks on a connection: the newest one the server's
// SETTINGS announce among those the client allows (ClientConfig::dialects).

#include <cstdint>

#include "h3/dialect.hpp"

namespace uvwt::detail {

// `allowed`: bit (1 << Dialect) per dialect, as LocalWtSettings::dialects.
Dialect client_dialect(const PeerSettings &server, std::uint8_t allowed) noexcept;

}  // namespace uvwt::detail
