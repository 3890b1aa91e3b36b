// Time bound on streams and datagrams that arrive before their session
// (draft-ietf-webtrans-http3-15, 4.6: buffering is bounded, the excess
// refused with WT_BUFFERED_STREAM_REJECTED). The count bounds live where
// they arrive (h3_connection.cpp); here: whatever waited pending_session_timeout
// without its session showing up is refused, so a peer cannot pin buffers
// (up to the connection's flow-control window) for a session it never opens.
#include <algorithm>
#include <limits>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "h3/h3_connection.hpp"
#include "h3/wt_codes.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt::detail {

namespace {
std::uint64_t timeout_ns(const TransportConfig &cfg) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(1, cfg.pending_session_timeout.count())) * 1'000'000;
}
}  // namespace

void H3Connection::note_early_arrival() {
  // An armed timer is due for an older arrival already.
  if (!early_timer_ || !early_timer_->active()) arm_early_timer();
}

void H3Connection::arm_early_timer() {
  std::uint64_t oldest = std::numeric_limits<std::uint64_t>::max();
  for (const auto &e : early_streams_) oldest = std::min(oldest, e.since_ns);
  for (const auto &[id, d] : early_dgrams_) oldest = std::min(oldest, d.since_ns);
  if (closed_ || oldest == std::numeric_limits<std::uint64_t>::max()) {
    if (early_timer_) early_timer_->stop();
    return;
  }
  const std::uint64_t due = oldest + timeout_ns(cfg_), now = now_ns();
  const std::uint64_t wait_ms = due > now ? (due - now + 999'999) / 1'000'000 : 0;
  if (!early_timer_) early_timer_ = std::make_unique<Timer>(deferred_->loop());
  // The timer belongs to this object: its callback never outlives it.
  early_timer_->start(wait_ms, [this] { expire_early(); });
}

void H3Connection::expire_early() {
  if (closed_) return;
  const std::uint64_t now = now_ns(), limit = timeout_ns(cfg_);
  std::size_t refused = 0, dropped = 0;
  for (auto it = early_streams_.begin(); it != early_streams_.end();) {
    if (now - it->since_ns < limit) {
      ++it;
      continue;
    }
    const auto e = std::move(*it);
    it = early_streams_.erase(it);
    reject_stream(e.sid, e.bidi, kWtBufferedStreamRejected, e.data.size());
    owner_.on_error_counted();
    ++refused;
  }
  for (auto it = early_dgrams_.begin(); it != early_dgrams_.end();) {
    if (now - it->second.since_ns < limit) {
      ++it;
      continue;
    }
    dropped += it->second.queue.size();
    dgram_dropped_ += it->second.queue.size();
    it = early_dgrams_.erase(it);
  }
  if (refused + dropped > 0) {
    UVWT_DEBUG("no session within %lld ms: %zu early streams refused, %zu early datagrams dropped",
               static_cast<long long>(cfg_.pending_session_timeout.count()), refused, dropped);
    if (quic_ != nullptr) quic_->schedule_write();
  }
  arm_early_timer();
}

}  // namespace uvwt::detail
