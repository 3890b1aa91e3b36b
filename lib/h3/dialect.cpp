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

Dialect PeerSettings::best_dialect() const noexcept {
  const bool connect_and_datagram = enable_connect_protocol && h3_datagram;
  if (connect_and_datagram && wt_enabled == 1) return Dialect::draft15;
  if (connect_and_datagram && wt_max_sessions_draft13 >= 1) return Dialect::draft13;
  if (connect_and_datagram && wt_max_sessions_draft07 > 0) return Dialect::draft07;
  // Chromium's draft-02 does not announce 0x08.
  if (h3_datagram && enable_webtransport_draft02 == 1) return Dialect::draft02;
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
