#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include <uvwt/export.hpp>
#include <uvwt/stream.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

class Connection;

struct UVWT_EXPORT SessionStats {
  double created_at = 0;
  double ready_at = 0;
  double closed_at = 0;
  std::uint64_t streams_opened = 0;    // locally
  std::uint64_t streams_accepted = 0;  // from the peer
  std::uint64_t datagrams_sent = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_dropped = 0;  // early datagrams beyond the bound, queue overflow
  // Of datagrams_dropped, those that arrived and were dropped before the
  // application got them (W3C WebTransportDatagramStats.droppedIncoming).
  std::uint64_t incoming_datagrams_dropped = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
};

// Why a session ended.
struct UVWT_EXPORT SessionCloseInfo {
  std::uint32_t code = 0;
  std::string reason;
  bool remote = false;  // the peer closed it (capsule or FIN)
  Error error;          // set when it ended through a failure (connection lost, reset ...)
};

// pywebtransport's WebTransportSessionInfo.
struct UVWT_EXPORT SessionInfo {
  SessionId session_id = 0;
  SessionState state = SessionState::connecting;
  std::string path;
  std::string authority;
  std::string origin;
  std::string protocol;  // negotiated subprotocol (wt-protocol), may be empty
  std::string dialect;   // "draft02", "draft07", "draft13", "draft15"
  Headers headers;
  double created_at = 0;
  double ready_at = 0;
  double closed_at = 0;
  std::optional<SessionCloseInfo> close_info;
};

class UVWT_EXPORT Session {
 public:
  using StreamCallback = std::function<void(const Error &, std::shared_ptr<Stream>)>;
  using IncomingStreamCallback = std::function<void(std::shared_ptr<Stream>)>;
  using DatagramCallback = std::function<void(std::span<const std::uint8_t>)>;
  using ClosedCallback = std::function<void(const SessionCloseInfo &)>;

  virtual ~Session() = default;

  [[nodiscard]] virtual SessionId id() const noexcept = 0;
  [[nodiscard]] virtual SessionState state() const noexcept = 0;
  [[nodiscard]] virtual bool is_ready() const noexcept = 0;
  [[nodiscard]] virtual bool is_closed() const noexcept = 0;
  [[nodiscard]] virtual SessionInfo info() const = 0;
  [[nodiscard]] virtual std::shared_ptr<Connection> connection() const = 0;

  // Streams. Opening completes once the QUIC stream limit allows it.
  virtual void open_bidi_stream(StreamCallback cb) = 0;
  virtual void open_uni_stream(StreamCallback cb) = 0;
  virtual void on_bidi_stream(IncomingStreamCallback cb) = 0;
  virtual void on_uni_stream(IncomingStreamCallback cb) = 0;

  // Datagrams: unreliable, at most max_datagram_size() bytes. Returns an error
  // at once (no callback) for a datagram that is too large or a full queue.
  virtual Error send_datagram(std::span<const std::uint8_t> data) = 0;
  [[nodiscard]] virtual std::size_t max_datagram_size() const noexcept = 0;
  virtual void on_datagram(DatagramCallback cb) = 0;

  // Closes with an application code and reason (WT_CLOSE_SESSION then FIN).
  // cb runs when the session is closed.
  virtual void close(std::uint32_t code = 0, std::string reason = {}, CloseCallback cb = {}) = 0;
  // Asks the peer to wrap up (WT_DRAIN_SESSION).
  virtual void drain() = 0;
  virtual void on_draining(std::function<void()> cb) = 0;
  // Runs once when the session closes (also, deferred, if it already has).
  virtual void on_closed(ClosedCallback cb) = 0;

  [[nodiscard]] virtual SessionStats stats() const = 0;

  // A new send group for this session's streams (W3C WebTransport API,
  // createSendGroup(); Stream::set_send_group). Ids are unique within the
  // process, so a group never collides with another session's.
  [[nodiscard]] SendGroup create_send_group();

  // The event callbacks above, handed the session they belong to, so that
  // they can answer on it without capturing a weak_ptr to it:
  //   session->on_datagram([](uvwt::Session &s, auto data) { (void)s.send_datagram(data); });
  // The session never calls them after it is gone.
  template <class F>
  requires std::is_invocable_v<F &, Session &, std::span<const std::uint8_t>>
  void on_datagram(F f) {
    on_datagram(DatagramCallback([this, f = std::move(f)](std::span<const std::uint8_t> d) mutable { f(*this, d); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Session &, std::shared_ptr<Stream>>
  void on_bidi_stream(F f) {
    on_bidi_stream(IncomingStreamCallback(
        [this, f = std::move(f)](std::shared_ptr<Stream> s) mutable { f(*this, std::move(s)); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Session &, std::shared_ptr<Stream>>
  void on_uni_stream(F f) {
    on_uni_stream(IncomingStreamCallback(
        [this, f = std::move(f)](std::shared_ptr<Stream> s) mutable { f(*this, std::move(s)); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Session &>
  void on_draining(F f) {
    on_draining(std::function<void()>([this, f = std::move(f)]() mutable { f(*this); }));
  }
  template <class F>
  requires std::is_invocable_v<F &, Session &, const SessionCloseInfo &>
  void on_closed(F f) {
    on_closed(ClosedCallback([this, f = std::move(f)](const SessionCloseInfo &ci) mutable { f(*this, ci); }));
  }
};

}  // namespace uvwt
