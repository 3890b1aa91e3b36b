// The application idle policy (set_idle_timeout): unlike QUIC's idle
// timeout, PINGs and ACKs do not count as activity.

#include "connection/connection_impl.hpp"

#include "common/clock.hpp"
#include "common/log.hpp"

namespace uvwt::detail {

std::uint64_t ConnectionImpl::idle_now_ns() const { return idle_clock_ ? idle_clock_() : now_ns(); }

void ConnectionImpl::on_activity() {
  last_activity_ = wall_seconds();
  last_activity_ns_ = idle_now_ns();
}

void ConnectionImpl::record_activity() { on_activity(); }

void ConnectionImpl::set_idle_timeout(Duration period) {
  idle_period_ = period;
  idle_timer_.reset();
  if (period.count() <= 0 || closing_started_ || is_closed()) return;
  // The period runs from now or from the last activity, whichever is later.
  last_activity_ns_ = std::max(last_activity_ns_, idle_now_ns());
  idle_timer_ = std::make_unique<Timer>(loop_);
  arm_idle_timer(static_cast<std::uint64_t>(period.count()));
}

// One timer per period rather than one restart per activity: activity only
// stamps last_activity_ns_, and the timer re-arms for what is left of the
// period when it fires early.
void ConnectionImpl::arm_idle_timer(std::uint64_t ms) {
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  idle_timer_->start(std::max<std::uint64_t>(1, ms), [weak] {
    if (auto self = weak.lock()) self->idle_check();
  });
}

void ConnectionImpl::idle_check() {
  if (closing_started_ || is_closed() || !idle_timer_) return;
  const std::uint64_t period_ns = static_cast<std::uint64_t>(idle_period_.count()) * 1'000'000;
  const std::uint64_t now = idle_now_ns();
  // The policy is about open connections: the connect timeout covers the rest.
  if (state_ != ConnectionState::connected) last_activity_ns_ = now;
  const std::uint64_t idle = now - std::min(now, last_activity_ns_);
  if (idle < period_ns) return arm_idle_timer((period_ns - idle + 999'999) / 1'000'000);
  const std::string msg = "idle timeout: no application activity for " + std::to_string(idle_period_.count()) + " ms";
  UVWT_INFO("connection %s: %s", id_.c_str(), msg.c_str());
  close_with(0, "idle timeout", Error(Errc::timeout, msg), {});
}

}  // namespace uvwt::detail
