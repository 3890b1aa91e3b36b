#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <uv.h>

#include <uvwt/error.hpp>

namespace uvwt {
class Connection;
}

namespace uvwt::detail {

class SessionImpl;
class StreamImpl;

// What sessions and streams need from the connection that carries them. The
// HTTP/3 layer implements it; the session layer never sees ngtcp2/nghttp3.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  [[nodiscard]] virtual std::shared_ptr<Connection> host_connection() = 0;
  // Opens a QUIC stream for a WebTransport stream; `cb` runs (deferred) once
  // the peer's stream limit allows it, or with an error.
  virtual void open_wt_stream(const std::shared_ptr<SessionImpl> &s, bool bidi,
                              std::function<void(const Error &, std::int64_t sid)> cb) = 0;
  virtual void stream_ready_to_send(StreamImpl &st) = 0;
  // The stream's send order or send group changed (Stream::set_send_order).
  virtual void stream_priority_changed(StreamImpl &st) = 0;
  virtual void capsules_queued(SessionImpl &s) = 0;
  virtual Error send_datagram(SessionImpl &s, std::span<const std::uint8_t> payload) = 0;
  [[nodiscard]] virtual std::size_t max_datagram_payload(const SessionImpl &s) const = 0;
  virtual void reset_stream(std::int64_t sid, std::uint64_t h3_code) = 0;
  virtual void stop_stream(std::int64_t sid, std::uint64_t h3_code) = 0;
  virtual void consumed(std::int64_t sid, std::size_t n) = 0;  // grant flow-control credit
  virtual void session_finished(SessionImpl &s) = 0;
  // The session reached its closed state: whatever still waits for it (early
  // streams, datagrams) is refused from now on.
  virtual void session_closed(SessionImpl &s) = 0;
  // The peer did not answer our close in time: stop reading the CONNECT
  // stream, and reset its send side too when our capsules never got through.
  virtual void abandon_connect_stream(SessionImpl &s, bool reset_send) = 0;
  // The session ends on a protocol error: reset the CONNECT stream's send
  // side and stop reading it, both with `h3_code`.
  virtual void reset_connect_stream(SessionImpl &s, std::uint64_t h3_code) = 0;
  [[nodiscard]] virtual uv_loop_t *host_loop() = 0;
  virtual void stream_finished(StreamImpl &st) = 0;
  virtual void defer(std::function<void()> fn) = 0;
  virtual void add_bytes(bool sent, std::uint64_t n) = 0;  // connection-level WT byte counters
  // The application sent something: it counts for the connection's idle policy.
  virtual void note_activity() = 0;
  // The connection-wide send budget (TransportConfig::connection_send_buffer):
  // streams report what they hold unacknowledged, ask whether the budget has
  // room, and queue for a turn once it has.
  virtual void adjust_send_buffered(std::int64_t delta) = 0;
  [[nodiscard]] virtual bool send_budget_available() const = 0;
  virtual void wait_send_budget(std::weak_ptr<const StreamImpl> st) = 0;
};

}  // namespace uvwt::detail
