#include "h3/dialect.hpp"

#include <algorithm>

#include "h3/varint.hpp"
#include "h3/wt_codes.hpp"

namespace uvwt::detail {

void PeerSettings::apply(std::uint64_t id, std::uint64_t value) noexcept {
  switch (id) {
    case kSettingsEnableConnectProtocol:
      enable_connect_protocol = value == 1;
      break;
    case kSettingsH3Datagram:
      h3_datagram_rfc = value;
      break;
    case kSettingsH3DatagramDraft04:
      h3_datagram_draft04 = value;
      break;
    case kSettingsEnableWebtransport:
      enable_webtransport_draft02 = value;
      break;
    case kSettingsWebtransportMaxSessionsDraft07:
      wt_max_sessions_draft07 = value;
      break;
    case kSettingsWtMaxSessions:
      wt_max_sessions_draft13 = value;
      break;
    case kSettingsWtEnabled:
      wt_enabled = value;
      break;
    case kSettingsWtInitialMaxData:
      wt_initial_max_data = value;
      break;
    case kSettingsWtInitialMaxStreamsUni:
      wt_initial_max_streams_uni = value;
      break;
    case kSettingsWtInitialMaxStreamsBidi:
      wt_initial_max_streams_bidi = value;
      break;
    default:
      return;
  }
  h3_datagram = h3_datagram_rfc == 1 || h3_datagram_draft04 == 1;
}

bool PeerSettings::supports(Dialect d, PeerRole role) const noexcept {
  // Every dialect needs HTTP/3 datagrams from both sides (RFC 9297 §2.1.1).
  // Servers also enable extended CONNECT (0x08): draft-07 §3.2, draft-13/14
  // §3.1, draft-15 §3.1. Clients announce only their own WebTransport setting.
  // Draft-02 (§3.1, both sides send 0x2b603742=1) never had the 0x08 rule
  // and Chromium's draft-02 server code does not send it, so it is not asked.
  if (!h3_datagram) return false;
  const bool connect = role == PeerRole::client || enable_connect_protocol;
  switch (d) {
    case Dialect::none:
      return false;
    case Dialect::draft02:
      return enable_webtransport_draft02 == 1;
    case Dialect::draft07:  // SETTINGS_WEBTRANSPORT_MAX_SESSIONS > 0 from both (§3.1)
      return connect && wt_max_sessions_draft07 > 0;
    case Dialect::draft13:  // SETTINGS_WT_MAX_SESSIONS > 0 from both (draft-14 §3.1)
      return connect && wt_max_sessions_draft13 > 0;
    case Dialect::draft15:
      // Servers send SETTINGS_WT_ENABLED; draft-version clients send it too,
      // so that the server can tell which draft they speak (§3.1, §7.1).
      return connect && wt_enabled == 1;
  }
  return false;
}

namespace {

constexpr Dialect kNewestFirst[] = {Dialect::draft15, Dialect::draft13, Dialect::draft07, Dialect::draft02};

}  // namespace

Dialect negotiate_dialect(const LocalWtSettings &local, const PeerSettings &peer, PeerRole peer_role) noexcept {
  if (local.max_sessions == 0) return Dialect::none;
  for (Dialect d : kNewestFirst)
    if (local.announces(d) && peer.supports(d, peer_role)) return d;
  return Dialect::none;
}

Dialect negotiate_request_dialect(const LocalWtSettings &local, const PeerSettings &client,
                                  std::string_view protocol) noexcept {
  if (local.max_sessions == 0 || protocol.empty()) return Dialect::none;
  // The "webtransport-h3" token is itself the client's signal (draft-15
  // §3.1): its SETTINGS need only allow datagrams; WT_ENABLED is asked of
  // draft-version clients, and one that sent a wrong value does not qualify.
  if (protocol == protocol_token(Dialect::draft15))
    return local.announces(Dialect::draft15) && client.h3_datagram && client.wt_enabled <= 1 ? Dialect::draft15
                                                                                             : Dialect::none;
  for (Dialect d : kNewestFirst)
    if (protocol_token(d) == protocol && local.announces(d) && client.supports(d, PeerRole::client)) return d;
  return Dialect::none;
}

std::string_view protocol_token(Dialect d) noexcept {
  switch (d) {
    case Dialect::none:
      return {};
    case Dialect::draft02:
    case Dialect::draft07:
    case Dialect::draft13:
      return "webtransport";
    case Dialect::draft15:
      return "webtransport-h3";
  }
  return {};
}

const char *dialect_name(Dialect d) noexcept {
  switch (d) {
    case Dialect::none:
      return "none";
    case Dialect::draft02:
      return "draft02";
    case Dialect::draft07:
      return "draft07";
    case Dialect::draft13:
      return "draft13";
    case Dialect::draft15:
      return "draft15";
  }
  return "none";
}

Dialect dialect_from_name(std::string_view name) noexcept {
  for (Dialect d : {Dialect::draft02, Dialect::draft07, Dialect::draft13, Dialect::draft15})
    if (name == dialect_name(d)) return d;
  return Dialect::none;
}

namespace {

struct Pair {
  std::uint64_t id, value;
};

// The pairs to announce, in the order they go on the wire; returns the count.
std::size_t wt_pairs(const LocalWtSettings &s, Pair (&out)[8]) noexcept {
  if (s.max_sessions == 0) return 0;
  std::size_t n = 0;
  if (s.announces(Dialect::draft02)) out[n++] = {kSettingsEnableWebtransport, 1};
  if (s.announces(Dialect::draft07)) out[n++] = {kSettingsWebtransportMaxSessionsDraft07, s.max_sessions};
  if (s.announces(Dialect::draft13)) out[n++] = {kSettingsWtMaxSessions, s.max_sessions};
  if (s.announces(Dialect::draft15)) out[n++] = {kSettingsWtEnabled, 1};
  if (s.h3_datagram_draft04) out[n++] = {kSettingsH3DatagramDraft04, 1};
  if (s.flow_control) {
    out[n++] = {kSettingsWtInitialMaxData, s.initial_max_data};
    out[n++] = {kSettingsWtInitialMaxStreamsUni, s.initial_max_streams_uni};
    out[n++] = {kSettingsWtInitialMaxStreamsBidi, s.initial_max_streams_bidi};
  }
  return n;
}

bool listed(std::span<const std::uint64_t> ids, std::uint64_t id) noexcept {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

std::size_t wt_settings_size(const LocalWtSettings &s, std::span<const std::uint64_t> present) noexcept {
  Pair pairs[8];
  const std::size_t n = wt_pairs(s, pairs);
  std::size_t size = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (listed(present, pairs[i].id)) continue;
    size += varint_size(pairs[i].id) + varint_size(std::min(pairs[i].value, kVarintMax));
  }
  return size;
}

std::size_t encode_wt_settings(const LocalWtSettings &s, std::uint8_t *out, std::size_t cap,
                               std::span<const std::uint64_t> present) noexcept {
  if (wt_settings_size(s, present) > cap) return 0;
  Pair pairs[8];
  const std::size_t n = wt_pairs(s, pairs);
  std::uint8_t *p = out;
  for (std::size_t i = 0; i < n; ++i) {
    if (listed(present, pairs[i].id)) continue;
    p = varint_write(p, pairs[i].id);
    p = varint_write(p, std::min(pairs[i].value, kVarintMax));
  }
  return static_cast<std::size_t>(p - out);
}

}  // namespace uvwt::detail
