// HTTP Datagrams of WebTransport sessions (RFC 9297): receiving, the send
// queue and the size bound.
#include <algorithm>
#include <cstring>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "h3/client_dialect.hpp"
#include "h3/datagram.hpp"
#include "h3/h3_connection.hpp"
#include "h3/request_fields.hpp"
#include "h3/sf_item.hpp"
#include "h3/wt_codes.hpp"
#include "h3/wt_flow_settings.hpp"
#include "quic/quic_connection.hpp"
#include "quic/tls_session.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"

namespace uvwt::detail {

void H3Connection::on_datagram(const std::uint8_t *data, std::size_t len) {
  owner_->on_activity();
  const auto d = decode_datagram_prefix(std::span<const std::uint8_t>(data, len));
  if (!d) {
    // RFC 9297 2.1: a payload too short for the Quarter Stream ID, or one
    // above 2^60-1, is a connection error of type H3_DATAGRAM_ERROR.
    ++dgram_dropped_;
    fatal(kH3DatagramError, len == 0 ? "empty datagram" : "malformed datagram quarter stream id");
    return;
  }
  const auto [session_id, prefix] = *d;
  const std::span<const std::uint8_t> payload(data + prefix, len - prefix);
  if (tunnel_datagram(session_id, payload)) return;
  auto it = sessions_.find(session_id);
  if (it != sessions_.end()) {
    auto s = it->second;
    if (s->is_closed()) {
      ++dgram_dropped_;
      return;
    }
    if (s->state() != SessionState::connecting) {
      wt_bytes_received += payload.size();
      s->on_datagram_payload(payload);
      return;
    }
  } else if (session_gone(session_id)) {
    ++dgram_dropped_;
    return;
  }
  auto eit = early_dgrams_.find(session_id);
  if (eit == early_dgrams_.end()) {
    // Bounded twice: datagrams per pending session and pending sessions.
    if (early_dgrams_.size() >= cfg_.max_sessions_per_connection) {
      ++dgram_dropped_;
      return;
    }
    eit = early_dgrams_.emplace(session_id, EarlyDatagrams{}).first;
    eit->second.since_ns = now_ns();
    note_early_arrival();
  }
  if (eit->second.queue.size() >= cfg_.max_pending_datagrams) {
    ++eit->second.dropped;
    ++dgram_dropped_;
    return;
  }
  eit->second.queue.emplace_back(payload.begin(), payload.end());
}

std::size_t H3Connection::max_datagram_payload(const SessionImpl &s) const {
  if (quic_ == nullptr) return 0;
  // RFC 9297 2.1.1: no DATAGRAM frames until SETTINGS_H3_DATAGRAM=1 was received.
  if (!peer_ctrl_.settings().h3_datagram) return 0;
  const std::size_t q = quic_->max_datagram_payload();
  std::uint8_t tmp[8];
  const std::size_t prefix = encode_datagram_prefix(s.id(), tmp);
  return q > prefix ? std::min(q - prefix, kDatagramSlot - prefix) : 0;
}

Error H3Connection::send_datagram(SessionImpl &s, std::span<const std::uint8_t> payload) {
  owner_->on_activity();
  std::uint8_t *p = dgram_out_.reserve();
  if (p == nullptr) return {Errc::flow_control, "datagram send queue full"};
  const std::size_t prefix = encode_datagram_prefix(s.id(), p);
  std::memcpy(p + prefix, payload.data(), payload.size());
  dgram_out_.commit(prefix + payload.size());
  wt_bytes_sent += payload.size();
  quic_->schedule_write();
  return {};
}

const ngtcp2_vec *H3Connection::next_datagram() { return dgram_out_.front(); }

void H3Connection::on_datagram_written(bool sent) { dgram_out_.pop(sent); }

}  // namespace uvwt::detail
