#pragma once

// The figures a browser's WebTransport.getStats() reports (W3C WebTransport,
// WebTransportConnectionStats and WebTransportDatagramStats), for a session,
// with the W3C names in snake_case and the W3C units: times in milliseconds,
// rates in bits per second. docs/api/webtransport-stats.md explains every
// field and what uvwt cannot report.

#include <cstdint>
#include <optional>

#include <uvwt/export.hpp>

namespace uvwt {

class Session;

struct UVWT_EXPORT WebTransportDatagramStats {
  double timestamp = 0;  // when gathered, milliseconds since the epoch
  // Received datagrams dropped before the application got them (early
  // datagrams beyond max_pending_datagrams, no on_datagram callback set).
  std::uint64_t dropped_incoming = 0;
  // Always 0: uvwt has no incoming max age; datagrams go to on_datagram as
  // they arrive.
  std::uint64_t expired_incoming = 0;
  // Always 0: uvwt has no outgoing max age; a full send queue refuses
  // send_datagram at once instead (Errc::flow_control).
  std::uint64_t expired_outgoing = 0;
  // Sent datagrams QUIC declared lost, on the whole connection.
  std::uint64_t lost_outgoing = 0;
};

struct UVWT_EXPORT WebTransportConnectionStats {
  double timestamp = 0;                // when gathered, milliseconds since the epoch
  std::uint64_t bytes_sent = 0;        // UDP payload bytes sent, retransmissions included
  std::uint64_t packets_sent = 0;      // QUIC packets sent, lost ones included
  std::uint64_t packets_lost = 0;      // QUIC packets declared lost (see the docs for older ngtcp2)
  std::uint64_t bytes_received = 0;    // UDP payload bytes received, duplicates included
  std::uint64_t packets_received = 0;  // QUIC packets received
  double smoothed_rtt = 0;             // milliseconds (RFC 9002 5.3)
  double rtt_variation = 0;            // milliseconds (RFC 9002 5.3 rttvar)
  double min_rtt = 0;                  // milliseconds; 0 before the first sample
  WebTransportDatagramStats datagrams;
  // Congestion window over smoothed RTT, in bits per second: the rate the
  // congestion controller currently allows. nullopt before the first RTT sample.
  std::optional<std::uint64_t> estimated_send_rate;
  // From the first W3C draft (WebTransportStats): streams of this session.
  std::uint64_t num_outgoing_streams_created = 0;
  std::uint64_t num_incoming_streams_created = 0;
};

// A snapshot for `session`: the connection's figures (every session on a
// connection shares them) and the session's own datagram and stream counts.
// Once the connection is gone only the session's counts remain.
UVWT_EXPORT WebTransportConnectionStats get_webtransport_stats(const Session &session);

}  // namespace uvwt
