// Snapshots: addresses, ConnectionInfo and ConnectionDiagnostics.

#include "connection/connection_impl.hpp"
#include "connection/dialer.hpp"

#include "quic/tls_session.hpp"

namespace uvwt::detail {

// While dial() races, the addresses are those of its latest attempt.
std::optional<Address> ConnectionImpl::local_address() const {
  if (!quic_) {
    auto a = dialer_ ? dialer_->latest() : nullptr;
    return a ? a->local_address() : std::nullopt;
  }
  return quic_->local_addr().to_address();
}

std::optional<Address> ConnectionImpl::remote_address() const {
  if (!quic_) {
    auto a = dialer_ ? dialer_->latest() : nullptr;
    return a ? a->remote_address() : std::nullopt;
  }
  return quic_->remote_addr().to_address();
}

ConnectionInfo ConnectionImpl::info() const {
  ConnectionInfo ci;
  ci.connection_id = id_;
  ci.state = state();
  ci.local_address = local_address();
  ci.remote_address = remote_address();
  ci.established_at = established_at_;
  ci.closed_at = closed_at_;
  ci.error_count = error_count_;
  ci.last_activity = last_activity_;
  if (h3_) {
    ci.bytes_sent = h3_->wt_bytes_sent;
    ci.bytes_received = h3_->wt_bytes_received;
  }
  if (quic_) {
    const QuicStats qs = quic_->stats();
    ci.packets_sent = qs.packets_sent;
    ci.packets_received = qs.packets_received;
    ci.packets_lost = qs.packets_lost;
    if (quic_->handshake_completed() && quic_->tls() != nullptr) {
      ci.resumed = quic_->tls()->resumed();
      ci.early_data_accepted = quic_->tls()->early_data_accepted();
    }
  }
  return ci;
}

ConnectionDiagnostics ConnectionImpl::diagnostics() const {
  ConnectionDiagnostics d;
  d.stats = info();
  if (quic_) {
    const QuicStats qs = quic_->stats();
    d.rtt = qs.smoothed_rtt;
    d.min_rtt = qs.min_rtt;
    d.cwnd = qs.cwnd;
    d.bytes_in_flight = qs.bytes_in_flight;
    d.packets_in_flight = qs.packets_in_flight;
    d.packet_loss_rate =
        qs.packets_sent > 0 ? static_cast<double>(qs.packets_lost) / static_cast<double>(qs.packets_sent) : 0.0;
  }
  if (ep_ != nullptr) {
    d.gso = ep_->gso();
    d.gro = ep_->gro();
    if (const UdpSocket *s = ep_->first_socket()) {
      d.gso_batches = s->counters().gso_batches;
      d.gro_batches = s->counters().gro_batches;
    }
  }
  return d;
}

}  // namespace uvwt::detail
