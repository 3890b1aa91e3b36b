#pragma once

// The two WebTransport touches on HTTP/3 control streams (docs/protocol.md,
// "Libraries as they are"): reading the peer's SETTINGS alongside nghttp3,
// which drops the ids it does not know, and extending the SETTINGS frame
// nghttp3 writes on ours. Both accept their input split at any byte.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "h3/dialect.hpp"
#include "h3/varint.hpp"

namespace uvwt::detail {

// Reads the peer's control stream (the bytes after its stream type) and
// keeps what its SETTINGS said. Frames other than SETTINGS are counted past
// without being buffered; nghttp3 reads the same bytes and handles them.
class ControlStreamReader {
 public:
  // A SETTINGS frame longer than this is refused (kH3SettingsError).
  static constexpr std::uint64_t kMaxSettingsSize = 16 * 1024;

  // Returns 0, or the HTTP/3 error code (connection error) the bytes
  // amount to; once failed, every later call returns the same code.
  [[nodiscard]] std::uint64_t feed(std::span<const std::uint8_t> in) noexcept;
  // The peer ended (or reset) its control stream: always an error, this
  // stream is critical. Returns kH3ClosedCriticalStream, or the earlier error.
  std::uint64_t on_fin() noexcept;

  [[nodiscard]] const PeerSettings &settings() const noexcept { return settings_; }
  [[nodiscard]] bool settings_received() const noexcept { return settings_.received; }
  [[nodiscard]] std::uint64_t error() const noexcept { return error_; }
  [[nodiscard]] bool failed() const noexcept { return error_ != 0; }

 private:
  enum class State : std::uint8_t { frame_type, frame_length, setting_id, setting_value, skip_payload };

  std::uint64_t fail(std::uint64_t code) noexcept;
  bool frame_type_done() noexcept;
  bool frame_length_done() noexcept;
  bool setting_done(std::uint64_t value) noexcept;

  PeerSettings settings_;
  VarintAssembler varint_;
  State state_ = State::frame_type;
  std::uint64_t frame_type_ = 0;
  std::uint64_t remaining_ = 0;  // payload bytes left in the current frame
  std::uint64_t setting_id_ = 0;
  std::uint32_t seen_ids_ = 0;  // known ids already present in SETTINGS
  std::uint64_t error_ = 0;
};

// Rewrites our control stream on its way from nghttp3 to ngtcp2: the SETTINGS
// frame gets the WebTransport pairs (encode_wt_settings) appended to its
// payload, leaving out ids nghttp3 already wrote; every other byte passes
// through unchanged. nghttp3's output may come split anywhere.
//
// Offsets. nghttp3's stream is [type prefix: P][SETTINGS: N][later frames];
// the wire carries [type prefix: P][SETTINGS': M][later frames], so later
// frames sit M - N bytes further on the wire. The prefix is the same bytes
// on both sides and is credited one for one; the rewritten frame is credited
// as a whole, once all M of its wire bytes are acknowledged:
//   W <= P          -> W
//   P < W < P + M   -> P
//   W >= P + M      -> W - M + N
// This is docs/protocol.md's `W >= M ? W - M + N : 0` with the prefix counted on
// both sides. Before the SETTINGS frame is complete only prefix bytes have
// left, so the translation is the identity; it is also the identity when
// nothing was rewritten (pass-through, M == N).
class ControlStreamRewriter {
 public:
  // nghttp3's SETTINGS payload is tiny; a larger one passes through unchanged.
  static constexpr std::uint64_t kMaxRewriteSize = 4096;

  // Must be called before the SETTINGS frame has been fed.
  void set_local_settings(const LocalWtSettings &s) { local_ = s; }
  [[nodiscard]] const LocalWtSettings &local_settings() const noexcept { return local_; }

  // nghttp3's bytes, in order. They count in nghttp3_bytes_fed() at once:
  // the caller may credit nghttp3 (nghttp3_conn_add_write_offset) right away.
  void feed(std::span<const std::uint8_t> in);

  // Wire bytes produced and not yet taken. The caller must keep the bytes it
  // hands to ngtcp2 until they are acknowledged (ngtcp2 does not copy them).
  [[nodiscard]] std::span<const std::uint8_t> pending() const noexcept {
    return {out_.data() + out_head_, out_.size() - out_head_};
  }
  void consume(std::size_t n) noexcept;
  // Takes every pending byte at once.
  [[nodiscard]] std::vector<std::uint8_t> take();

  [[nodiscard]] std::uint64_t nghttp3_bytes_fed() const noexcept { return fed_; }
  [[nodiscard]] std::uint64_t wire_bytes_produced() const noexcept { return produced_; }
  // nghttp3 stream offset that W acknowledged wire bytes stand for (see the
  // class comment). Monotonic in W; pass nghttp3_conn_add_ack_offset the
  // difference between successive results.
  [[nodiscard]] std::uint64_t nghttp3_offset_for_wire_acked(std::uint64_t wire_acked) const noexcept;

  // The SETTINGS frame has gone by (rewritten or passed through).
  [[nodiscard]] bool settings_done() const noexcept { return state_ == State::pass_through; }
  // The WebTransport pairs were added.
  [[nodiscard]] bool settings_rewritten() const noexcept { return rewritten_; }

 private:
  enum class State : std::uint8_t { stream_type, frame_type, frame_length, payload, pass_through };

  void emit(std::span<const std::uint8_t> bytes);
  void give_up_rewrite();  // emit what was held back and pass the rest through
  void finish_settings();

  LocalWtSettings local_;
  State state_ = State::stream_type;
  VarintAssembler varint_;
  std::uint8_t frame_header_[2 * kVarintMaxSize] = {};  // nghttp3's type + length bytes
  std::size_t frame_header_len_ = 0;
  std::size_t frame_type_len_ = 0;
  std::uint64_t payload_len_ = 0;
  std::vector<std::uint8_t> payload_;
  std::vector<std::uint8_t> out_;
  std::size_t out_head_ = 0;
  std::uint64_t fed_ = 0, produced_ = 0;
  std::uint64_t prefix_len_ = 0;      // P
  std::uint64_t h3_frame_len_ = 0;    // N
  std::uint64_t wire_frame_len_ = 0;  // M
  bool rewritten_ = false;
};

}  // namespace uvwt::detail
