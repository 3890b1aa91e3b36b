#include "h3/wt_flow_settings.hpp"

#include <algorithm>

namespace uvwt::detail {

WtLimits local_wt_limits(const LocalWtSettings &local) noexcept {
  if (!local.flow_control || local.max_sessions == 0) return {};
  return {local.initial_max_data, local.initial_max_streams_bidi, local.initial_max_streams_uni};
}

WtLimits peer_wt_limits(const PeerSettings &peer) noexcept {
  return {peer.wt_initial_max_data, peer.wt_initial_max_streams_bidi, peer.wt_initial_max_streams_uni};
}

namespace {
bool any_limit(const WtLimits &l) noexcept { return l.max_data != 0 || l.max_streams_bidi != 0 || l.max_streams_uni != 0; }
}  // namespace

bool wt_flow_control_enabled(Dialect d, const LocalWtSettings &local, const PeerSettings &peer) noexcept {
  switch (d) {
    case Dialect::draft13:
      // draft-ietf-webtrans-http3-13/-14 section 5.1: both sides announcing
      // SETTINGS_WT_MAX_SESSIONS > 1 enables flow control; WT_INITIAL_*
      // settings left out then count as 0.
      return local.max_sessions > 1 && local.announces(Dialect::draft13) && peer.wt_max_sessions_draft13 > 1;
    case Dialect::draft15:
      // draft-ietf-webtrans-http3-15 section 5.1: both sides send at least
      // one non-zero SETTINGS_WT_INITIAL_MAX_*.
      return any_limit(local_wt_limits(local)) && any_limit(peer_wt_limits(peer));
    case Dialect::none:
    case Dialect::draft02:
    case Dialect::draft07:
      return false;
  }
  return false;
}

std::uint64_t wt_server_session_limit(Dialect d, bool flow_control, std::uint64_t configured) noexcept {
  if (!flow_control && (d == Dialect::draft13 || d == Dialect::draft15)) return 1;
  return configured;
}

std::uint64_t wt_client_session_limit(Dialect d, bool flow_control, const PeerSettings &server,
                                      std::uint64_t configured) noexcept {
  std::uint64_t limit = configured;
  if (d == Dialect::draft13) limit = std::min(limit, server.wt_max_sessions_draft13);
  if (d == Dialect::draft07) limit = std::min(limit, server.wt_max_sessions_draft07);
  if (!flow_control && (d == Dialect::draft13 || d == Dialect::draft15)) limit = std::min<std::uint64_t>(limit, 1);
  return limit;
}

}  // namespace uvwt::detail
