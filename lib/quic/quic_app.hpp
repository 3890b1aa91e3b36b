#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstddef>
#include <cstdint>

#include <uvwt/error.hpp>

namespace uvwt::detail {

// One chunk the application layer wants on the wire next.
struct StreamWrite {
  static constexpr std::size_t kMaxVecs = 16;
  std::int64_t stream_id = -1;
  bool fin = false;
  ngtcp2_vec vec[kMaxVecs]{};
  std::size_t vec_count = 0;
  [[nodiscard]] std::size_t total() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < vec_count; ++i) n += vec[i].len;
    return n;
  }
};

// What the QUIC layer needs from the layer above it (HTTP/3 + WebTransport).
// Calls arrive from inside ngtcp2 callbacks: implementations must not re-enter
// the QuicConnection except through the methods documented as safe there.
class QuicApp {
 public:
  virtual ~QuicApp() = default;
  virtual void on_handshake_completed() = 0;
  // Returns false for a connection-fatal protocol error (already recorded).
  virtual bool on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) = 0;
  virtual void on_stream_close(std::int64_t sid, bool has_code, std::uint64_t code) = 0;
  // RESET_STREAM from the peer; `final_size` is its Final Size field (RFC 9000
  // 4.5): every byte the peer counts as sent, delivered or not.
  virtual void on_stream_reset(std::int64_t sid, std::uint64_t final_size, std::uint64_t code) = 0;
  virtual void on_stop_sending(std::int64_t sid, std::uint64_t code) = 0;
  virtual void on_acked_stream_data(std::int64_t sid, std::uint64_t len) = 0;
  virtual void on_extend_max_stream_data(std::int64_t sid) = 0;
  virtual void on_extend_max_local_streams(bool bidi) = 0;
  virtual void on_datagram(const std::uint8_t *data, std::size_t len) = 0;

  // Write side. next_stream_write fills `w` (stream_id -1: nothing to send).
  virtual void next_stream_write(StreamWrite &w) = 0;
  // ngtcp2 took `n` bytes of the chunk (and the FIN when fin_sent).
  virtual void on_stream_written(std::int64_t sid, std::size_t n, bool fin_sent) = 0;
  // Stream is flow-control blocked or its write side is shut: stop offering it.
  virtual void on_stream_blocked(std::int64_t sid, bool shut) = 0;
  // Next datagram to send, or nullptr.
  virtual const ngtcp2_vec *next_datagram() = 0;
  // The head datagram left the queue: sent (true) or dropped as unsendable.
  virtual void on_datagram_written(bool sent) = 0;

  // The QUIC connection is gone (closed, drained, timed out, failed).
  virtual void on_quic_closed(const Error &err) = 0;

  // ngtcp2's own log lines, for wire-level test peers that need what ngtcp2
  // reports by no callback (a received STOP_SENDING). Asked once, when the
  // connection is created; off for every real connection.
  [[nodiscard]] virtual bool wants_frame_log() const { return false; }
  virtual void on_frame_log(const char * /*line*/) {}
};

}  // namespace uvwt::detail
