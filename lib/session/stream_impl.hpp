#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <uvwt/stream.hpp>

#include "common/callback_scope.hpp"
#include "common/lazy_deque.hpp"
#include "quic/quic_app.hpp"

namespace uvwt {
class Connection;
}  // namespace uvwt

namespace uvwt::detail {

class SessionHost;
class SessionImpl;

// A WebTransport stream: the send buffer (bytes stay until the peer acks
// them, as ngtcp2 references them without copying) and the receive side with
// pause/resume that withholds flow-control credit.
class StreamImpl final : public Stream, public std::enable_shared_from_this<StreamImpl> {
 public:
  StreamImpl(SessionHost &host, std::weak_ptr<SessionImpl> session, std::int64_t sid, StreamDirection dir, bool local,
             std::size_t send_bound);
  ~StreamImpl() override;

  // Stream
  [[nodiscard]] StreamId id() const noexcept override { return sid_; }
  [[nodiscard]] StreamDirection direction() const noexcept override { return dir_; }
  [[nodiscard]] bool is_local() const noexcept override { return local_; }
  [[nodiscard]] std::shared_ptr<Session> session() const override;
  void write(Bytes data, DoneCallback cb) override;
  void write(std::string_view data, DoneCallback cb) override;
  void write_borrowed(std::span<const std::uint8_t> data, DoneCallback cb) override;
  void end(DoneCallback cb) override;
  void write_and_end(Bytes data, DoneCallback cb) override;
  void reset(std::uint32_t code) override;
  [[nodiscard]] std::size_t buffered_amount() const noexcept override { return queued_ - acked_payload(); }
  [[nodiscard]] bool writable() const noexcept override;
  void on_writable(std::function<void()> cb) override { on_writable_ = std::move(cb); }
  void on_data(DataCallback cb) override;
  void pause() override { paused_ = true; }
  void resume() override;
  [[nodiscard]] bool paused() const noexcept override { return paused_; }
  void stop_sending(std::uint32_t code) override;
  void on_error(ErrorCallback cb) override { on_error_ = std::move(cb); }
  void on_closed(std::function<void()> cb) override { on_closed_ = std::move(cb); }
  [[nodiscard]] StreamStats stats() const override;
  void set_send_order(std::int64_t order) override;
  [[nodiscard]] std::int64_t send_order() const noexcept override { return send_order_; }
  void set_send_group(SendGroup group) override;
  [[nodiscard]] SendGroup send_group() const noexcept override { return send_group_; }

  // From the connection.
  void set_preamble(const std::uint8_t *p, std::size_t n);
  [[nodiscard]] bool has_data_to_send() const noexcept;
  void fill_write(StreamWrite &w) const;
  void on_written(std::size_t n, bool fin_sent);
  void on_acked(std::uint64_t n);
  // The connection's send budget has room again: our turn to be told.
  void budget_granted();
  // The peer raised the session's WT_MAX_DATA: payload may flow again.
  void session_credit_granted();
  void on_blocked() noexcept { blocked_ = true; }
  void on_unblocked() noexcept { blocked_ = false; }
  [[nodiscard]] bool blocked() const noexcept { return blocked_; }
  void on_recv(const std::uint8_t *data, std::size_t len, bool fin);
  // `final_payload`: the reset's final size less the stream header.
  void on_peer_reset(std::uint64_t h3_code, std::uint64_t final_payload);
  // The session ended: fail pending work and reset with WT_SESSION_GONE.
  void abort_for_session(const Error &err);
  // Both directions finished at the QUIC level; the code when one was reset.
  void on_quic_closed(bool has_code = false, std::uint64_t h3_code = 0);
  void on_send_shut();
  [[nodiscard]] bool sending_done() const noexcept { return send_closed_; }
  bool in_send_queue = false;  // scheduler bookkeeping (owned by the host)

  // CallbackScope(*this) keeps the stream alive across user callbacks.
  ReentryState &reentry() noexcept { return reentry_; }

 private:
  void count_reset_tail(std::uint64_t final_payload);
  ReentryState reentry_;
  struct Chunk {
    Bytes owned;                         // the bytes, when the chunk owns them
    std::span<const std::uint8_t> data;  // what is sent: owned, or borrowed from the caller
    DoneCallback cb;
    std::uint64_t end = 0;  // stream offset one past this chunk
  };
  [[nodiscard]] std::uint64_t acked_payload() const noexcept {
    return acked_ > preamble_len_ ? acked_ - preamble_len_ : 0;
  }
  void enqueue(Bytes data, DoneCallback cb, bool fin);
  void enqueue_chunk(Chunk c, bool fin);
  void fail_sends(const Error &err);
  void deliver(const std::uint8_t *data, std::size_t len, bool fin);
  void emit_error(const Error &err);
  // Reports to the host what this stream now holds against the send budget.
  void sync_budget();
  void flush_held();
  void schedule_flush();
  void notify_abort(const Error &err, bool emit);
  // Session flow control (session_flow_control.hpp): the payload bytes the
  // session may still send, and the application having taken `n` bytes.
  [[nodiscard]] std::uint64_t session_send_credit() const noexcept;
  void consumed(std::size_t n);
  // Received bytes that will never reach the application: their session
  // credit goes back to the peer all the same.
  void drop_held();
  void run_closed_callbacks(bool keep_reader = false);

  SessionHost &host_;
  std::int64_t send_order_ = 0;
  SendGroup send_group_;
  std::shared_ptr<Connection> keep_;  // the host lives inside it
  std::weak_ptr<SessionImpl> session_;
  std::int64_t sid_;
  StreamDirection dir_;
  bool local_;
  std::size_t send_bound_;

  // send side
  LazyDeque<Chunk> chunks_;
  std::size_t first_unsent_ = 0;  // chunks_[0, first_unsent_) are sent in full
  std::uint64_t queued_ = 0;      // payload bytes accepted by write()
  std::uint64_t total_ = 0;       // stream bytes queued incl. preamble
  std::uint64_t sent_ = 0;        // stream bytes handed to ngtcp2
  std::uint64_t acked_ = 0;       // stream bytes acked
  std::uint64_t preamble_len_ = 0;
  bool fin_queued_ = false, fin_sent_ = false, send_closed_ = false, blocked_ = false;
  bool was_full_ = false;
  std::uint64_t budget_held_ = 0;        // counted in the host's send budget
  mutable bool waiting_budget_ = false;  // queued with the host for a turn
  mutable bool waiting_credit_ = false;  // writable() said no for lack of session credit
  bool error_emitted_ = false;
  // A session abort's callbacks are queued for a later turn; a QUIC close in
  // between waits for them so that on_error still comes before on_closed.
  bool abort_pending_ = false, closed_pending_ = false;
  DoneCallback fin_cb_;
  std::function<void()> on_writable_;

  // receive side
  DataCallback on_data_;
  bool paused_ = false;
  bool recv_fin_ = false, recv_closed_ = false;
  std::uint64_t recv_payload_ = 0;  // payload bytes the peer delivered (counted by the session)
  std::vector<std::uint8_t> held_;  // received while paused / before on_data
  bool held_fin_ = false;
  bool flush_scheduled_ = false;
  ErrorCallback on_error_;
  std::function<void()> on_closed_;
  StreamStats stats_;
};

}  // namespace uvwt::detail
