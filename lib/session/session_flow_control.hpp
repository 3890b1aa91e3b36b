#pragma once

// The bookkeeping of WebTransport session flow control for one session
// (draft-ietf-webtrans-http3-15 section 5; docs/protocol.md, "Session flow
// control"): the peer's limits on what we send and open, ours on what it
// sends and opens, when to top the peer up, and when to say we are blocked.
// No I/O here: the session turns the answers into capsules and errors.

#include <cstdint>
#include <limits>
#include <optional>

#include "h3/wt_flow_settings.hpp"

namespace uvwt::detail {

class SessionFlowControl {
 public:
  static constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();
  // Section 5.6.2: a stream count cannot exceed 2^60.
  static constexpr std::uint64_t kMaxStreams = std::uint64_t{1} << 60;

  // Switches flow control on with the limits both sides' SETTINGS gave. Off
  // (the default), every limit is unlimited and nothing is ever due.
  void enable(const WtLimits &local, const WtLimits &peer) noexcept;
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

  // ---- what we send, limited by the peer
  // Stream payload bytes we may still send (stream headers do not count,
  // section 5.4).
  [[nodiscard]] std::uint64_t send_credit() const noexcept;
  void on_payload_sent(std::uint64_t n) noexcept { sent_ += n; }
  [[nodiscard]] bool can_open(bool bidi) const noexcept;
  void on_opened(bool bidi) noexcept { ++opened_[bidi]; }
  // The peer's WT_MAX_DATA / WT_MAX_STREAMS. False: a flow-control error
  // (the limit did not increase, or a stream count is above 2^60).
  [[nodiscard]] bool on_max_data(std::uint64_t v) noexcept;
  [[nodiscard]] bool on_max_streams(bool bidi, std::uint64_t v) noexcept;
  // The limit to report in WT_DATA_BLOCKED / WT_STREAMS_BLOCKED, once per
  // limit value; nullopt when not blocked or already reported.
  [[nodiscard]] std::optional<std::uint64_t> take_data_blocked() noexcept;
  [[nodiscard]] std::optional<std::uint64_t> take_streams_blocked(bool bidi) noexcept;
  [[nodiscard]] std::uint64_t peer_max_data() const noexcept { return peer_max_data_; }

  // ---- what the peer sends, limited by us
  // False: the peer went past the limit we gave it.
  [[nodiscard]] bool on_payload_received(std::uint64_t n) noexcept;
  [[nodiscard]] bool on_peer_stream(bool bidi) noexcept;
  void on_consumed(std::uint64_t n) noexcept { consumed_ += n; }
  void on_peer_stream_closed(bool bidi) noexcept { ++peer_closed_[bidi]; }
  // A new limit to announce once half the window is used up (batched: not
  // per packet, section 5.6 leaves the policy to us, as QUIC's section 4.2).
  [[nodiscard]] std::optional<std::uint64_t> take_max_data_update() noexcept;
  [[nodiscard]] std::optional<std::uint64_t> take_max_streams_update(bool bidi) noexcept;
  [[nodiscard]] std::uint64_t local_max_data() const noexcept { return local_max_data_; }
  [[nodiscard]] std::uint64_t received() const noexcept { return received_; }

 private:
  bool enabled_ = false;
  // send side
  std::uint64_t peer_max_data_ = kUnlimited;
  std::uint64_t peer_max_streams_[2] = {kUnlimited, kUnlimited};  // [bidi]
  bool peer_data_by_capsule_ = false;
  bool peer_streams_by_capsule_[2] = {false, false};
  std::uint64_t sent_ = 0;
  std::uint64_t opened_[2] = {0, 0};
  std::optional<std::uint64_t> data_blocked_reported_;
  std::optional<std::uint64_t> streams_blocked_reported_[2];
  // receive side
  std::uint64_t data_window_ = 0, streams_window_[2] = {0, 0};
  std::uint64_t local_max_data_ = kUnlimited;
  std::uint64_t local_max_streams_[2] = {kUnlimited, kUnlimited};
  std::uint64_t received_ = 0, consumed_ = 0;
  std::uint64_t peer_opened_[2] = {0, 0}, peer_closed_[2] = {0, 0};
};

}  // namespace uvwt::detail
