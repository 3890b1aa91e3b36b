// monitor_health: a PING every interval, judged after the probe timeout.

#include "connection/connection_impl.hpp"

#include <algorithm>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace uvwt::detail {

void ConnectionImpl::monitor_health(Duration check_interval, Duration rtt_timeout,
                                    std::function<void(const HealthReport &)> cb) {
  health_interval_ = check_interval;
  health_timeout_ = rtt_timeout;
  health_cb_ = std::move(cb);
  // A probe of a previous monitor dies with its timer: without this reset
  // the new monitor would wait for it forever and never probe.
  health_probe_outstanding_ = false;
  health_timer_ = std::make_unique<Timer>(loop_);
  probe_timer_ = std::make_unique<Timer>(loop_);
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(1, check_interval.count()));
  health_timer_->start(
      ms,
      [weak] {
        if (auto self = weak.lock()) self->health_tick();
      },
      ms);
}

void ConnectionImpl::stop_health_monitor() {
  health_timer_.reset();
  probe_timer_.reset();
  health_probe_outstanding_ = false;
  health_cb_ = nullptr;
}

void ConnectionImpl::health_tick() {
  if (!quic_ || quic_->is_closed() || state_ != ConnectionState::connected) {
    stop_health_monitor();
    return;
  }
  if (health_probe_outstanding_) return;  // the previous probe is still being judged
  health_probe_outstanding_ = true;
  health_probe_sent_ns_ = now_ns();
  health_rx_at_probe_ = quic_->stats().packets_received;
  ++health_probes_sent_;
  quic_->ping();
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  // Judge the probe after rtt_timeout: any packet from the peer since the
  // PING (its ACK at least) proves the path works.
  probe_timer_->start(static_cast<std::uint64_t>(std::max<std::int64_t>(1, health_timeout_.count())), [weak] {
    auto self = weak.lock();
    if (!self || !self->quic_ || self->quic_->is_closed()) return;
    self->health_probe_outstanding_ = false;
    const QuicStats qs = self->quic_->stats();
    HealthReport r;
    r.rtt = qs.smoothed_rtt;
    r.healthy = qs.packets_received > self->health_rx_at_probe_;
    if (!r.healthy) {
      r.reason = "no answer to PING within " + std::to_string(self->health_timeout_.count()) + " ms";
      UVWT_WARN("connection %s unhealthy: %s", self->id_.c_str(), r.reason.c_str());
      ++self->error_count_;
    } else if (self->unhealthy_) {
      UVWT_INFO("connection %s recovered (rtt %.1f ms)", self->id_.c_str(), r.rtt * 1e3);
    }
    const bool changed = self->unhealthy_ == r.healthy;
    self->unhealthy_ = !r.healthy;
    if (self->health_cb_ && (changed || !r.healthy)) self->health_cb_(r);
  });
}

}  // namespace uvwt::detail
