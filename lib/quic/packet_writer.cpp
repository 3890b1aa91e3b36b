// The send half of QuicConnection: one write turn asks the application for
// datagrams and stream data, lets ngtcp2 packetise them and hands the packets
// to the path in GSO batches.
#include <algorithm>
#include <cstring>

#include "common/clock.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt::detail {

namespace {
constexpr std::size_t kMaxBatch = 64;  // packets per GSO batch and per write turn
}  // namespace

// One write turn: the packets written so far wait in `buf` until a batch is
// full, a packet of another size or marking comes, or the turn ends.
struct QuicConnection::TxTurn {
  ngtcp2_tstamp ts = now_ns();
  ngtcp2_path_storage ps{};
  ngtcp2_pkt_info pi{};
  std::size_t max_udp = 0;
  std::size_t max_pkts = 0;
  std::uint8_t *buf = nullptr;
  std::uint8_t *p = nullptr;
  std::size_t npkts = 0, gso = 0;
  std::uint8_t batch_ecn = 0;
  bool stream_blocked = false;    // ngtcp2 took none of the app's stream data this turn
  std::size_t dgrams_in_pkt = 0;  // datagrams already in the packet being built
  std::int64_t stream_id = -1;    // the stream offered in the last call, if any
};

bool QuicConnection::flush_batch(const std::uint8_t *data, std::size_t len, std::size_t gso, std::uint8_t ecn) {
  if (len == 0) return true;
  const auto r = path_->send(local_, remote_, ecn, data, len, gso);
  if (r == SendStatus::error) {
    // Unreachable peers are reported through the socket error queue.
    return true;
  }
  if (r == SendStatus::would_block) {
    // The path kept the bytes; park now so its draining wakes us, rather
    // than whichever timer or packet happens to come next.
    path_->wait_writable(this);
    return false;
  }
  return true;
}

bool QuicConnection::write_packets() {
  TxTurn t;
  ngtcp2_path_storage_zero(&t.ps);
  t.max_udp = ngtcp2_conn_get_max_tx_udp_payload_size(conn_);
  t.max_pkts = std::clamp<std::size_t>(ngtcp2_conn_get_send_quantum(conn_) / t.max_udp, 1, kMaxBatch);
  t.buf = t.p = ep_.tx_buffer(t.max_udp * kMaxBatch);
  settle_datagram_window();
  for (;;) {
    ngtcp2_ssize nwrite = 0;
    const ngtcp2_vec *dgram = dgram_window_.open() ? app_.next_datagram() : nullptr;
    const TxStep step = dgram != nullptr ? write_datagram(t, *dgram, nwrite) : write_stream(t, nwrite);
    if (step == TxStep::again) continue;
    if (step == TxStep::failed) {
      fail_write(static_cast<int>(nwrite));
      return false;
    }
    t.dgrams_in_pkt = 0;  // the packet under construction, if any, is finished
    if (nwrite == 0) {
      // Congestion- or pacing-limited, or nothing left. The app offered data
      // ngtcp2 could not take now: stop asking for streams this turn.
      if (t.stream_id >= 0 && !t.stream_blocked) {
        t.stream_blocked = true;
        continue;
      }
      break;
    }
    const BatchStep b = add_to_batch(t, static_cast<std::size_t>(nwrite));
    if (b == BatchStep::parked) break;  // what was written counts for pacing all the same
    if (b == BatchStep::turn_full) break;
  }
  if (t.p != t.buf) flush_batch(t.buf, static_cast<std::size_t>(t.p - t.buf), t.gso, t.batch_ecn);
  ngtcp2_conn_update_pkt_tx_time(conn_, t.ts);
  return true;
}

QuicConnection::TxStep QuicConnection::write_datagram(TxTurn &t, const ngtcp2_vec &dgram, ngtcp2_ssize &nwrite) {
  t.stream_id = -1;
  // Without FLAG_MORE ngtcp2 closes the packet after this datagram: the
  // per-packet cap (docs/protocol.md, "Datagrams per packet").
  const bool last = t.dgrams_in_pkt + 1 >= max_dgrams_per_pkt_;
  int accepted = 0;
  nwrite = ngtcp2_conn_writev_datagram(conn_, &t.ps.path, &t.pi, t.p, t.max_udp, &accepted,
                                       last ? 0 : NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &dgram, dgram.len > 0 ? 1 : 0,
                                       t.ts);  // an empty one has no vec
  if (nwrite == NGTCP2_ERR_WRITE_MORE) {
    ++t.dgrams_in_pkt;
    datagram_sent();
    return TxStep::again;
  }
  if (nwrite == NGTCP2_ERR_INVALID_ARGUMENT || nwrite == NGTCP2_ERR_INVALID_STATE) {
    app_.on_datagram_written(false);  // too large for the path, or peer lacks support: dropped
    return TxStep::again;
  }
  if (nwrite < 0) return TxStep::failed;
  // Not accepted with nwrite > 0: the packet was full of other frames; the
  // datagram stays queued for the next packet.
  if (accepted != 0) datagram_sent();
  return TxStep::packet;
}

QuicConnection::TxStep QuicConnection::write_stream(TxTurn &t, ngtcp2_ssize &nwrite) {
  StreamWrite w;
  if (!t.stream_blocked) app_.next_stream_write(w);
  t.stream_id = w.stream_id;
  std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
  if (w.fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
  ngtcp2_ssize ndatalen = -1;
  nwrite = ngtcp2_conn_writev_stream(conn_, &t.ps.path, &t.pi, t.p, t.max_udp, &ndatalen, flags, w.stream_id, w.vec,
                                     w.vec_count, t.ts);
  // The FIN went out only if every offered byte did.
  const auto written = [&] {
    app_.on_stream_written(w.stream_id, static_cast<std::size_t>(ndatalen),
                           w.fin && static_cast<std::size_t>(ndatalen) == w.total());
  };
  switch (nwrite) {
    case NGTCP2_ERR_STREAM_DATA_BLOCKED:
      app_.on_stream_blocked(w.stream_id, false);
      return TxStep::again;
    case NGTCP2_ERR_STREAM_SHUT_WR:
      app_.on_stream_blocked(w.stream_id, true);
      return TxStep::again;
    case NGTCP2_ERR_WRITE_MORE:
      written();
      return TxStep::again;
    default:
      if (nwrite < 0) return TxStep::failed;
      if (ndatalen >= 0) written();
      return TxStep::packet;
  }
}

QuicConnection::BatchStep QuicConnection::add_to_batch(TxTurn &t, std::size_t n) {
  ++counters_.packets_sent;
  counters_.bytes_sent += n;
  const bool moved = path_differs(t.ps.path);
  if (t.npkts == 0) {
    if (moved) adopt_path(t.ps.path);
    t.gso = n;
    t.batch_ecn = t.pi.ecn;
  } else if (n > t.gso || t.pi.ecn != t.batch_ecn || moved) {
    // A larger (or differently marked, or other path's) packet cannot join this batch.
    const bool sent = flush_batch(t.buf, static_cast<std::size_t>(t.p - t.buf), t.gso, t.batch_ecn);
    if (moved) adopt_path(t.ps.path);
    if (!sent) {
      // ngtcp2 counts this packet as sent: queue it behind the batch.
      flush_batch(t.p, n, n, t.pi.ecn);
      t.p = t.buf;
      return BatchStep::parked;
    }
    std::memmove(t.buf, t.p, n);
    t.p = t.buf;
    t.npkts = 0;
    t.gso = n;
    t.batch_ecn = t.pi.ecn;
  }
  t.p += n;
  ++t.npkts;
  if (n < t.gso || t.npkts >= t.max_pkts) {
    // A short packet ends a GSO batch; a full batch ends this turn (pacing).
    const bool sent = flush_batch(t.buf, static_cast<std::size_t>(t.p - t.buf), t.gso, t.batch_ecn);
    t.p = t.buf;
    if (!sent) return BatchStep::parked;
    if (t.npkts >= t.max_pkts) return BatchStep::turn_full;
    t.npkts = 0;
  }
  return BatchStep::more;
}

// Datagrams in flight (docs/protocol.md, "Datagrams in flight"): nothing
// outstanding means every datagram was acknowledged or declared lost, even if
// a callback for one never came.
void QuicConnection::settle_datagram_window() {
  if (dgram_window_.in_flight() == 0) return;
  ngtcp2_conn_info info;
  ngtcp2_conn_get_conn_info(conn_, &info);
  if (info.bytes_in_flight == 0) dgram_window_.clear();
}

void QuicConnection::datagram_sent() {
  dgram_window_.on_sent();
  app_.on_datagram_written(true);
}

void QuicConnection::fail_write(int rv) {
  set_close_error(Error(Errc::connection, std::string("write: ") + ngtcp2_strerror(rv)));
  ngtcp2_ccerr_set_liberr(&last_error_, rv, nullptr, 0);
  send_connection_close();
}

}  // namespace uvwt::detail
