#include "session/session_flow_control.hpp"

namespace uvwt::detail {

void SessionFlowControl::enable(const WtLimits &local, const WtLimits &peer) noexcept {
  enabled_ = true;
  peer_max_data_ = peer.max_data;
  peer_max_streams_[1] = peer.max_streams_bidi;
  peer_max_streams_[0] = peer.max_streams_uni;
  data_window_ = local.max_data;
  streams_window_[1] = local.max_streams_bidi;
  streams_window_[0] = local.max_streams_uni;
  local_max_data_ = local.max_data;
  local_max_streams_[1] = local.max_streams_bidi;
  local_max_streams_[0] = local.max_streams_uni;
}

std::uint64_t SessionFlowControl::send_credit() const noexcept {
  if (!enabled_) return kUnlimited;
  return peer_max_data_ > sent_ ? peer_max_data_ - sent_ : 0;
}

bool SessionFlowControl::can_open(bool bidi) const noexcept { return !enabled_ || opened_[bidi] < peer_max_streams_[bidi]; }

bool SessionFlowControl::on_max_data(std::uint64_t v) noexcept {
  // Section 5.6.4: a WT_MAX_DATA that does not increase the value previously
  // received is an error. The initial SETTINGS value may be repeated once.
  if (v < peer_max_data_ || (v == peer_max_data_ && peer_data_by_capsule_)) return false;
  peer_max_data_ = v;
  peer_data_by_capsule_ = true;
  return true;
}

bool SessionFlowControl::on_max_streams(bool bidi, std::uint64_t v) noexcept {
  // Section 5.6.2: at most 2^60, and each one must increase the limit.
  if (v > kMaxStreams) return false;
  if (v < peer_max_streams_[bidi] || (v == peer_max_streams_[bidi] && peer_streams_by_capsule_[bidi])) return false;
  peer_max_streams_[bidi] = v;
  peer_streams_by_capsule_[bidi] = true;
  return true;
}

std::optional<std::uint64_t> SessionFlowControl::take_data_blocked() noexcept {
  if (!enabled_ || send_credit() > 0 || data_blocked_reported_ == peer_max_data_) return std::nullopt;
  data_blocked_reported_ = peer_max_data_;
  return peer_max_data_;
}

std::optional<std::uint64_t> SessionFlowControl::take_streams_blocked(bool bidi) noexcept {
  if (can_open(bidi) || streams_blocked_reported_[bidi] == peer_max_streams_[bidi]) return std::nullopt;
  streams_blocked_reported_[bidi] = peer_max_streams_[bidi];
  return peer_max_streams_[bidi];
}

bool SessionFlowControl::on_payload_received(std::uint64_t n) noexcept {
  received_ += n;
  // Section 5.6.4: stream body data past our WT_MAX_DATA is an error.
  return !enabled_ || received_ <= local_max_data_;
}

bool SessionFlowControl::on_peer_stream(bool bidi) noexcept {
  ++peer_opened_[bidi];
  // Section 5.6.2: an incoming stream past our WT_MAX_STREAMS is an error.
  return !enabled_ || peer_opened_[bidi] <= local_max_streams_[bidi];
}

std::optional<std::uint64_t> SessionFlowControl::take_max_data_update() noexcept {
  if (!enabled_ || data_window_ == 0) return std::nullopt;
  // Keep a full window ahead of what the application consumed; move only
  // once half of it is used, so top-ups come in batches.
  if (local_max_data_ - consumed_ > data_window_ / 2) return std::nullopt;
  local_max_data_ = consumed_ + data_window_;
  return local_max_data_;
}

std::optional<std::uint64_t> SessionFlowControl::take_max_streams_update(bool bidi) noexcept {
  const std::uint64_t window = streams_window_[bidi];
  if (!enabled_ || window == 0) return std::nullopt;
  const std::uint64_t closed = peer_closed_[bidi];
  if (local_max_streams_[bidi] - closed > window / 2) return std::nullopt;
  const std::uint64_t next = closed + window;
  if (next > kMaxStreams || next <= local_max_streams_[bidi]) return std::nullopt;
  local_max_streams_[bidi] = next;
  return next;
}

}  // namespace uvwt::detail
