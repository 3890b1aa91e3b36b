#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>

#include <uvwt/export.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

class Session;

enum class StreamDirection : std::uint8_t { bidirectional, send_only, receive_only };

// A send group (W3C WebTransport API, WebTransportSendGroup): streams in one
// group are ordered by their send order; groups share the connection as
// equals. Made by Session::create_send_group(); the default-constructed
// value (id 0) is the default group every stream starts in.
struct SendGroup {
  std::uint64_t id = 0;
  friend bool operator==(SendGroup, SendGroup) = default;
};

struct UVWT_EXPORT StreamStats {
  std::uint64_t bytes_sent = 0;      // payload bytes acknowledged by the peer
  std::uint64_t bytes_queued = 0;    // payload bytes handed to write()
  std::uint64_t bytes_received = 0;  // payload bytes delivered to the application
  double created_at = 0;             // seconds since the epoch
};

// A WebTransport stream. Writes take ownership of the bytes and complete
// through their callback once the data is acknowledged by the peer (or the
// stream fails). Reads are pushed through on_data; pause() stops reading and
// with it the growth of the peer's flow-control credit (real backpressure).
class UVWT_EXPORT Stream {
 public:
  using DataCallback = std::function<void(std::span<const std::uint8_t> data, bool fin)>;
  using ErrorCallback = std::function<void(const Error &)>;

  virtual ~Stream() = default;

  [[nodiscard]] virtual StreamId id() const noexcept = 0;
  [[nodiscard]] virtual StreamDirection direction() const noexcept = 0;
  [[nodiscard]] virtual bool is_local() const noexcept = 0;  // opened by this side
  [[nodiscard]] virtual std::shared_ptr<Session> session() const = 0;

  // ---- sending (bidirectional and send_only streams)
  // Queues bytes; `cb` runs once they are acknowledged, or with an error.
  // Fails (through cb, deferred) if the send side is finished/reset or the
  // send buffer is already at its bound (TransportConfig::stream_send_buffer);
  // a write below the bound is taken whole. Check writable().
  virtual void write(Bytes data, DoneCallback cb = {}) = 0;
  virtual void write(std::string_view data, DoneCallback cb = {}) = 0;  // copies
  // Zero-copy write, as uv_write: the bytes are not copied and must stay valid
  // and unchanged until `cb` runs (acknowledged by the peer, or failed). Same
  // bounds and errors as write(Bytes).
  virtual void write_borrowed(std::span<const std::uint8_t> data, DoneCallback cb) = 0;
  // Finishes the send side (FIN) after all queued data; cb on acknowledgement.
  virtual void end(DoneCallback cb = {}) = 0;
  virtual void write_and_end(Bytes data, DoneCallback cb = {}) = 0;
  // Abandons the send side with an application error code (RESET_STREAM).
  virtual void reset(std::uint32_t code) = 0;
  [[nodiscard]] virtual std::size_t buffered_amount() const noexcept = 0;  // queued, not yet acked
  // Send side open, this stream below its bound, and the connection below its
  // send budget (TransportConfig::connection_send_buffer).
  [[nodiscard]] virtual bool writable() const noexcept = 0;
  // Called once the stream may write again: after its buffer reached its bound,
  // once it falls below half of it; after writable() answered false because
  // the connection's budget was used up, when this stream's turn comes (turns
  // go in the order streams asked, once half the budget is free).
  virtual void on_writable(std::function<void()> cb) = 0;

  // ---- receiving (bidirectional and receive_only streams)
  virtual void on_data(DataCallback cb) = 0;
  virtual void pause() = 0;
  virtual void resume() = 0;
  [[nodiscard]] virtual bool paused() const noexcept = 0;
  // Asks the peer to stop sending (STOP_SENDING) with an application error code.
  virtual void stop_sending(std::uint32_t code) = 0;

  // The peer reset its send side (Errc::stream; code and space: the
  // application code with CodeSpace::application, else the HTTP/3 or WT_*
  // code the reset carried with CodeSpace::h3 / webtransport), or our send side was
  // stopped by the peer's STOP_SENDING (Errc::session when the session
  // closed). Called at most once: the first cause.
  virtual void on_error(ErrorCallback cb) = 0;
  // Both directions are done (FIN/reset/acked); the stream is gone.
  virtual void on_closed(std::function<void()> cb) = 0;

  [[nodiscard]] virtual StreamStats stats() const = 0;

  // Send priority (W3C WebTransport API, WebTransportSendStream.sendOrder and
  // .sendGroup; docs/api/stream.md, "Send order"): within its send group, a
  // stream with a higher send order sends all it has queued before a stream
  // with a lower one sends anything; equal orders take turns; groups take
  // turns. Both may change at any time and apply from the next packet.
  // Default: order 0, the default group.
  virtual void set_send_order(std::int64_t order) = 0;
  [[nodiscard]] virtual std::int64_t send_order() const noexcept = 0;
  virtual void set_send_group(SendGroup group) = 0;
  [[nodiscard]] virtual SendGroup send_group() const noexcept = 0;

  // The event callbacks above, handed the stream they belong to, so that an
  // echo needs no weak_ptr to its own stream:
  //   stream->on_data([](uvwt::Stream &s, auto data, bool fin) { ... s.write(...); });
  // The stream never calls them after it is gone.
  template <class F>
  requires std::is_invocable_v < F &, Stream &, std::span<const std::uint8_t>,
  bool > void on_data(F f) {
    on_data(DataCallback(
        [this, f = std::move(f)](std::span<const std::uint8_t> d, bool fin) mutable { f(*this, d, fin); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Stream &>
  void on_writable(F f) {
    on_writable(std::function<void()>([this, f = std::move(f)]() mutable { f(*this); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Stream &, const Error &>
  void on_error(F f) {
    on_error(ErrorCallback([this, f = std::move(f)](const Error &e) mutable { f(*this, e); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Stream &>
  void on_closed(F f) {
    on_closed(std::function<void()>([this, f = std::move(f)]() mutable { f(*this); }));
  }
};

}  // namespace uvwt
