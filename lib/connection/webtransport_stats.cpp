#include <uvwt/webtransport_stats.hpp>

#include <uvwt/session.hpp>

#include "common/clock.hpp"
#include "connection/connection_impl.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt {

namespace {
// W3C stats carry DOMHighResTimeStamp values: milliseconds.
double ms(double seconds) { return seconds * 1000.0; }

void fill_transport(const detail::QuicStats &q, WebTransportConnectionStats &out) {
  out.bytes_sent = q.bytes_sent;
  out.packets_sent = q.packets_sent;
  out.packets_lost = q.packets_lost;
  out.bytes_received = q.packet_bytes_received;
  out.packets_received = q.packets_received;
  out.datagrams.lost_outgoing = q.datagrams_lost;
  if (!q.rtt_sampled) return;  // ngtcp2's initial guesses are not measurements
  out.smoothed_rtt = ms(q.smoothed_rtt);
  out.rtt_variation = ms(q.rtt_variation);
  out.min_rtt = ms(q.min_rtt);
  if (q.smoothed_rtt > 0)
    out.estimated_send_rate = static_cast<std::uint64_t>(static_cast<double>(q.cwnd) * 8.0 / q.smoothed_rtt);
}
}  // namespace

WebTransportConnectionStats get_webtransport_stats(const Session &session) {
  WebTransportConnectionStats out;
  out.timestamp = ms(detail::wall_seconds());
  out.datagrams.timestamp = out.timestamp;
  const SessionStats ss = session.stats();
  out.datagrams.dropped_incoming = ss.incoming_datagrams_dropped;
  out.num_outgoing_streams_created = ss.streams_opened;
  out.num_incoming_streams_created = ss.streams_accepted;
  // ConnectionImpl is the only Connection there is; the cast reaches the
  // transport figures the public Connection interface does not carry.
  if (auto *c = dynamic_cast<detail::ConnectionImpl *>(session.connection().get())) {
    if (const detail::QuicConnection *q = c->quic()) fill_transport(q->stats(), out);
  }
  return out;
}

}  // namespace uvwt
