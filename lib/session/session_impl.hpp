#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/config.hpp>
#include <uvwt/session.hpp>

#include "common/callback_scope.hpp"
#include "common/lazy_deque.hpp"
#include "common/timer.hpp"
#include "h3/capsule.hpp"
#include "session/session_flow_control.hpp"

namespace uvwt::detail {

class SessionHost;
class StreamImpl;

// One WebTransport session: its CONNECT stream's capsules, its streams and
// datagrams, and its life from CONNECT to close.
class SessionImpl final : public Session, public std::enable_shared_from_this<SessionImpl> {
 public:
  SessionImpl(SessionHost &host, SessionId id, bool client, SessionInfo info, const TransportConfig &cfg);
  ~SessionImpl() override;

  // Session
  [[nodiscard]] SessionId id() const noexcept override { return id_; }
  [[nodiscard]] SessionState state() const noexcept override { return info_.state; }
  [[nodiscard]] bool is_ready() const noexcept override { return info_.state == SessionState::connected; }
  [[nodiscard]] bool is_closed() const noexcept override { return info_.state == SessionState::closed; }
  [[nodiscard]] SessionInfo info() const override { return info_; }
  [[nodiscard]] std::shared_ptr<Connection> connection() const override;
  void open_bidi_stream(StreamCallback cb) override { open_stream(true, std::move(cb)); }
  void open_uni_stream(StreamCallback cb) override { open_stream(false, std::move(cb)); }
  void on_bidi_stream(IncomingStreamCallback cb) override;
  void on_uni_stream(IncomingStreamCallback cb) override;
  Error send_datagram(std::span<const std::uint8_t> data) override;
  [[nodiscard]] std::size_t max_datagram_size() const noexcept override;
  void on_datagram(DatagramCallback cb) override;
  void close(std::uint32_t code, std::string reason, CloseCallback cb) override;
  void drain() override;
  void on_draining(std::function<void()> cb) override { on_draining_ = std::move(cb); }
  void on_closed(ClosedCallback cb) override;
  [[nodiscard]] SessionStats stats() const override { return stats_; }

  // Library-internal close observers (server accounting), kept apart from the
  // user's single on_closed slot so a user handler cannot displace them. They
  // run whenever the session ends, ready or not; deferred if it already has.
  void add_close_listener(std::function<void()> cb);

  // From the connection.
  void set_ready(std::string protocol);
  void fail(const Error &err);  // before ready (client: non-2xx, timeout) or connection loss
  void add_stream(const std::shared_ptr<StreamImpl> &st, bool incoming);
  void remove_stream(std::int64_t sid);
  void on_capsule_data(const std::uint8_t *data, std::size_t len);
  void on_connect_stream_fin();
  void on_connect_stream_reset(std::uint64_t code);
  // The peer sent STOP_SENDING on the CONNECT stream: the session is over.
  void on_connect_stream_stopped(std::uint64_t code);
  void on_connect_stream_closed();
  void on_datagram_payload(std::span<const std::uint8_t> payload);
  void on_goaway();
  [[nodiscard]] std::size_t pending_incoming() const noexcept { return pending_bidi_.size() + pending_uni_.size(); }
  // Early datagrams the connection had to drop before this session was ready.
  void count_dropped_datagrams(std::size_t n) noexcept {
    stats_.datagrams_dropped += n;
    stats_.incoming_datagrams_dropped += n;
  }

  // CONNECT stream output (capsules), read through nghttp3's data reader.
  // Chunks stay until nghttp3 reports them acknowledged.
  [[nodiscard]] std::size_t capsule_vecs(struct CapsuleVec *out, std::size_t max, bool &eof);
  void capsules_acked(std::uint64_t n);
  [[nodiscard]] bool capsule_fin_pending() const noexcept { return fin_queued_ && !fin_handed_; }
  void set_response_submitted() noexcept { response_submitted_ = true; }
  [[nodiscard]] const TransportConfig &config() const noexcept { return cfg_; }
  // Bound on locally opened streams open at once (ClientConfig::max_streams); 0: none.
  void set_max_local_streams(std::size_t n) noexcept { max_local_streams_ = n; }
  std::function<void(const Error &, std::shared_ptr<Session>)> ready_cb;  // client open_session

  // Session flow control (session_flow_control.hpp), switched on by the
  // connection when the dialect and both sides' SETTINGS call for it.
  void enable_flow_control(const WtLimits &local, const WtLimits &peer) noexcept { fc_.enable(local, peer); }
  [[nodiscard]] const SessionFlowControl &flow_control() const noexcept { return fc_; }
  [[nodiscard]] std::uint64_t send_credit() const noexcept { return fc_.send_credit(); }
  void on_payload_sent(std::uint64_t n) noexcept { fc_.on_payload_sent(n); }
  // A stream has payload to send and no session credit: say so (once per limit).
  void note_data_blocked();
  // Stream payload arrived / was consumed by the application. False: the peer
  // broke our limit and the session is over.
  bool on_stream_payload(std::size_t n);
  void on_stream_consumed(std::size_t n);
  // A peer stream for this session appeared. False: over our stream limit
  // (the session is over).
  bool on_peer_stream_opened(bool bidi);
  // The peer broke a rule: the CONNECT stream is reset with `h3_code` and the
  // application sees Errc::protocol.
  void abort_with(std::uint64_t h3_code, const std::string &why);

  // CallbackScope(*this) keeps the session alive across user callbacks.
  ReentryState &reentry() noexcept { return reentry_; }

 private:
  ReentryState reentry_;
  void open_stream(bool bidi, StreamCallback cb);
  void queue_capsule(std::vector<std::uint8_t> bytes, bool fin);
  // `deferred`: the user callbacks run on a later turn (the close was started
  // by a user call, which must return before any of them runs).
  void finish(const SessionCloseInfo &info, bool deferred = false);
  // The peer ended the session (close capsule or FIN): our FIN answers it.
  // When both sides closed at once the application is told its own close.
  void answer_peer_close();
  void run_close_callbacks(bool was_ready);
  void start_close_backstop();
  void on_close_backstop();
  void abort_streams(const Error &err);
  void handle_capsule(std::uint64_t type, std::span<const std::uint8_t> value);
  // The peer broke a capsule rule: the CONNECT stream is reset and stopped
  // with err.code and the application sees err (Errc::protocol).
  void protocol_error(const Error &err);
  void handle_flow_capsule(std::uint64_t type, std::span<const std::uint8_t> value);
  void start_open(bool bidi, StreamCallback cb);
  void open_waiting_streams();
  void send_credit_grew();
  void send_flow_updates();
  void queue_flow_capsule(std::uint8_t *buf, std::size_t n);
  void fail_waiting_opens();

  SessionHost &host_;
  std::shared_ptr<Connection> keep_;  // the host lives inside it
  SessionId id_;
  bool client_;
  SessionInfo info_;
  TransportConfig cfg_;
  SessionStats stats_;
  std::map<std::int64_t, std::shared_ptr<StreamImpl>> streams_;
  LazyDeque<std::shared_ptr<StreamImpl>> pending_bidi_, pending_uni_;  // no callback yet
  LazyDeque<std::vector<std::uint8_t>> pending_dgrams_;
  IncomingStreamCallback on_bidi_, on_uni_;
  DatagramCallback on_datagram_;
  std::function<void()> on_draining_;
  ClosedCallback on_closed_;
  std::vector<std::function<void()>> close_listeners_;
  std::vector<CloseCallback> close_cbs_;
  CapsuleParser parser_;
  std::uint32_t peer_code_ = 0;
  std::string peer_reason_;
  bool peer_closed_capsule_ = false;
  bool local_close_ = false;
  std::uint32_t local_code_ = 0;
  std::string local_reason_;
  std::unique_ptr<Timer> close_timer_;  // bounds the wait for the peer's FIN

  LazyDeque<std::vector<std::uint8_t>> out_;
  std::size_t out_handed_ = 0;  // chunks of out_ handed to nghttp3
  std::uint64_t out_acked_partial_ = 0;
  bool fin_queued_ = false, fin_handed_ = false, response_submitted_ = false;
  std::size_t max_local_streams_ = 0;
  std::size_t local_streams_ = 0;  // opening or open, until the QUIC stream closes
  SessionFlowControl fc_;
  struct WaitingOpen {
    bool bidi;
    StreamCallback cb;
  };
  // Opens waiting for the peer's WT_MAX_STREAMS: bounded, failed beyond.
  LazyDeque<WaitingOpen> waiting_opens_;
  static constexpr std::size_t kMaxWaitingOpens = 1024;
};

struct CapsuleVec {
  const std::uint8_t *base;
  std::size_t len;
};

}  // namespace uvwt::detail
