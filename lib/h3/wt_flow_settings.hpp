#pragma once

// When WebTransport session flow control is on, the limits each side starts
// with, and how many sessions may share a connection: per dialect, from both
// sides' SETTINGS (docs/protocol.md, "Session flow control").

#include <cstdint>

#include "h3/dialect.hpp"

namespace uvwt::detail {

// Session-level limits: stream payload bytes and cumulative stream counts.
struct WtLimits {
  std::uint64_t max_data = 0;
  std::uint64_t max_streams_bidi = 0;
  std::uint64_t max_streams_uni = 0;
};

// What our SETTINGS announce (0 for each limit not announced).
WtLimits local_wt_limits(const LocalWtSettings &local) noexcept;
// What the peer's SETTINGS announced; a missing setting means 0.
WtLimits peer_wt_limits(const PeerSettings &peer) noexcept;

// Draft-13/14 section 5.1: on when both sides announce WT_MAX_SESSIONS > 1.
// Draft-15/16 section 5.1: on when both sides send a non-zero
// SETTINGS_WT_INITIAL_MAX_*. Earlier dialects have none.
bool wt_flow_control_enabled(Dialect d, const LocalWtSettings &local, const PeerSettings &peer) noexcept;

// Sessions a server accepts at once on one connection. Without flow control
// draft-13+ allow one (draft-15 section 5.1/5.2: the excess CONNECT streams
// are reset with H3_REQUEST_REJECTED).
std::uint64_t wt_server_session_limit(Dialect d, bool flow_control, std::uint64_t configured) noexcept;

// Sessions a client may have open at once towards this server: the server's
// WT_MAX_SESSIONS (draft-13/14) or WEBTRANSPORT_MAX_SESSIONS (draft-07), one
// without flow control from draft-13 on, else our own `configured` bound.
std::uint64_t wt_client_session_limit(Dialect d, bool flow_control, const PeerSettings &server,
                                      std::uint64_t configured) noexcept;

}  // namespace uvwt::detail
