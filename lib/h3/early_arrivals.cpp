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
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"

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
    owner_->on_error_counted();
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

void H3Connection::release_early(SessionId id) {
  auto s = session(id);
  if (!s) return;
  for (auto it = early_streams_.begin(); it != early_streams_.end();) {
    if (it->session == id) {
      auto e = std::move(*it);
      it = early_streams_.erase(it);
      attach_wt_stream(e.sid, e.session, e.bidi, e.data.data(), e.data.size(), e.fin);
    } else {
      ++it;
    }
  }
  if (auto it = early_dgrams_.find(id); it != early_dgrams_.end()) {
    auto early = std::move(it->second);
    early_dgrams_.erase(it);
    s->count_dropped_datagrams(early.dropped);
    for (const auto &d : early.queue) {
      wt_bytes_received += d.size();
      s->on_datagram_payload(d);
    }
  }
}

void H3Connection::drop_early(SessionId id, std::uint64_t h3_code) {
  for (auto it = early_streams_.begin(); it != early_streams_.end();) {
    if (it->session == id) {
      const auto e = std::move(*it);
      it = early_streams_.erase(it);
      reject_stream(e.sid, e.bidi, h3_code, e.data.size());
    } else {
      ++it;
    }
  }
  if (auto it = early_dgrams_.find(id); it != early_dgrams_.end()) {
    dgram_dropped_ += it->second.queue.size();
    early_dgrams_.erase(it);
  }
}

void H3Connection::reject_stream(std::int64_t sid, bool bidi, std::uint64_t h3_code, std::size_t credit) {
  // A peer uni stream has no send side of ours to reset.
  if (bidi) reset_stream(sid, h3_code);
  stop_stream(sid, h3_code);
  routes_[sid].route = Route::ignored;
  quic_->extend_stream_offset(sid, credit);
}

void H3Connection::remember_gone(SessionId id) {
  if (std::find(gone_.begin(), gone_.end(), id) != gone_.end()) return;
  const std::size_t bound = std::max<std::size_t>(64, 4 * cfg_.max_sessions_per_connection);
  if (gone_.size() >= bound) gone_.pop_front();
  gone_.push_back(id);
}

bool H3Connection::session_gone(SessionId id) const {
  // Session ids are client-initiated bidi stream ids: anything else never was one.
  if ((id & 3) != 0) return true;
  // A client makes its sessions itself: one it does not have is over (or never was).
  if (!server_) return sessions_.find(id) == sessions_.end();
  return std::find(gone_.begin(), gone_.end(), id) != gone_.end();
}

std::size_t H3Connection::early_stream_count(SessionId id) const noexcept {
  std::size_t n = 0;
  for (const auto &e : early_streams_) n += e.session == id ? 1 : 0;
  return n;
}

std::size_t H3Connection::early_datagram_count(SessionId id) const noexcept {
  auto it = early_dgrams_.find(id);
  return it == early_dgrams_.end() ? 0 : it->second.queue.size();
}

}  // namespace uvwt::detail
