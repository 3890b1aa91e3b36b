#include "session/stream_impl.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "common/clock.hpp"
#include "h3/wt_codes.hpp"
#include "session/session_host.hpp"
#include "session/session_impl.hpp"

namespace uvwt::detail {

StreamImpl::StreamImpl(SessionHost &host, std::weak_ptr<SessionImpl> session, std::int64_t sid, StreamDirection dir,
                       bool local, std::size_t send_bound)
    : host_(host),
      keep_(host.host_connection()),
      session_(std::move(session)),
      sid_(sid),
      dir_(dir),
      local_(local),
      send_bound_(send_bound) {
  stats_.created_at = wall_seconds();
  // A receive-only stream never sends; a send-only one never receives.
  if (dir_ == StreamDirection::receive_only) send_closed_ = true;
  if (dir_ == StreamDirection::send_only) recv_closed_ = true;
}

StreamImpl::~StreamImpl() {
  if (budget_held_ > 0) host_.adjust_send_buffered(-static_cast<std::int64_t>(budget_held_));
}

std::shared_ptr<Session> StreamImpl::session() const { return session_.lock(); }

void StreamImpl::set_preamble(const std::uint8_t *p, std::size_t n) {
  Chunk c;
  c.owned = Bytes(p, p + n);
  c.data = c.owned;
  c.end = n;
  chunks_.push_back(std::move(c));
  preamble_len_ = n;
  total_ = n;
}

std::uint64_t StreamImpl::session_send_credit() const noexcept {
  auto s = session_.lock();
  return s ? s->send_credit() : SessionFlowControl::kUnlimited;
}

bool StreamImpl::writable() const noexcept {
  if (send_closed_ || fin_queued_ || buffered_amount() >= send_bound_) return false;
  if (session_send_credit() == 0) {
    waiting_credit_ = true;  // told through on_writable once WT_MAX_DATA arrives
    return false;
  }
  if (host_.send_budget_available()) return true;
  // Whoever asked will want to hear when the answer changes.
  if (!waiting_budget_) {
    waiting_budget_ = true;
    host_.wait_send_budget(weak_from_this());
  }
  return false;
}

void StreamImpl::budget_granted() {
  waiting_budget_ = false;
  if (on_writable_ && writable()) {
    auto cb = on_writable_;
    cb();
  }
}

void StreamImpl::session_credit_granted() {
  CallbackScope scope(*this);  // user callbacks below may drop the last reference
  host_.stream_ready_to_send(*this);
  if (!waiting_credit_) return;
  waiting_credit_ = false;
  if (on_writable_ && writable()) {
    auto cb = on_writable_;
    cb();
  }
}

void StreamImpl::sync_budget() {
  // Failed or fully acknowledged chunks are gone; nothing is held then.
  const std::uint64_t held = chunks_.empty() ? 0 : buffered_amount();
  if (held == budget_held_) return;
  const auto delta = static_cast<std::int64_t>(held) - static_cast<std::int64_t>(budget_held_);
  budget_held_ = held;
  host_.adjust_send_buffered(delta);
}

void StreamImpl::write(std::string_view data, DoneCallback cb) {
  write(Bytes(data.begin(), data.end()), std::move(cb));
}

void StreamImpl::write(Bytes data, DoneCallback cb) { enqueue(std::move(data), std::move(cb), false); }

void StreamImpl::end(DoneCallback cb) { enqueue({}, std::move(cb), true); }

void StreamImpl::write_and_end(Bytes data, DoneCallback cb) { enqueue(std::move(data), std::move(cb), true); }

void StreamImpl::enqueue(Bytes data, DoneCallback cb, bool fin) {
  Chunk c;
  c.owned = std::move(data);
  c.data = c.owned;  // a moved vector keeps its buffer, so the view stays valid
  c.cb = std::move(cb);
  enqueue_chunk(std::move(c), fin);
}

void StreamImpl::write_borrowed(std::span<const std::uint8_t> data, DoneCallback cb) {
  Chunk c;
  c.data = data;
  c.cb = std::move(cb);
  enqueue_chunk(std::move(c), false);
}

void StreamImpl::enqueue_chunk(Chunk c, bool fin) {
  auto fail = [&](Errc e, const char *msg) {
    if (c.cb) host_.defer([cb = std::move(c.cb), err = Error(e, msg)] { cb(err); });
  };
  if (dir_ == StreamDirection::receive_only) return fail(Errc::stream, "stream is receive-only");
  if (send_closed_) return fail(Errc::stream, "stream send side is closed");
  if (fin_queued_) return fail(Errc::stream, "stream already ended");
  // Like a high-water mark: a write is taken while the buffer is below its
  // bound (so memory stays within bound + one write), refused once it is full.
  if (!c.data.empty() && buffered_amount() >= send_bound_)
    return fail(Errc::flow_control, "stream send buffer full: wait for on_writable");
  const auto n = c.data.size();
  queued_ += n;
  total_ += n;
  stats_.bytes_queued += n;
  c.end = total_;
  host_.note_activity();
  if (fin) {
    fin_queued_ = true;
    fin_cb_ = std::exchange(c.cb, nullptr);
    if (n > 0) chunks_.push_back(std::move(c));
  } else if (n > 0 || c.cb) {
    // An empty write with a callback completes once everything before it is acknowledged.
    chunks_.push_back(std::move(c));
  }
  if (buffered_amount() >= send_bound_) was_full_ = true;
  sync_budget();
  host_.stream_ready_to_send(*this);
}

bool StreamImpl::has_data_to_send() const noexcept {
  if (send_closed_ || blocked_) return false;
  if (sent_ >= total_) return fin_queued_ && !fin_sent_;
  // The stream header is not payload and goes out regardless (section 5.4).
  if (sent_ < preamble_len_ || session_send_credit() > 0) return true;
  if (auto s = session_.lock()) s->note_data_blocked();
  return false;
}

void StreamImpl::fill_write(StreamWrite &w) const {
  w.stream_id = sid_;
  w.vec_count = 0;
  // Session credit bounds the payload offset we may reach (the header is
  // free, section 5.4); unlimited without session flow control.
  const std::uint64_t credit = session_send_credit();
  const std::uint64_t base = std::max(sent_, preamble_len_);
  const std::uint64_t limit =
      credit > SessionFlowControl::kUnlimited - base ? SessionFlowControl::kUnlimited : base + credit;
  std::uint64_t pos = sent_;
  // Start at the first chunk not yet sent in full: a long queue of small
  // writes must not cost a walk over every sent chunk for each packet.
  for (std::size_t i = first_unsent_; i < chunks_.size() && pos < limit; ++i) {
    const auto &c = chunks_[i];
    const std::uint64_t begin = c.end - c.data.size();
    if (c.end <= sent_) continue;
    const std::uint64_t skip = sent_ > begin ? sent_ - begin : 0;
    if (c.data.size() > skip) {
      const std::uint64_t len = std::min<std::uint64_t>(c.data.size() - skip, limit - pos);
      w.vec[w.vec_count].base = const_cast<std::uint8_t *>(c.data.data() + skip);
      w.vec[w.vec_count].len = static_cast<std::size_t>(len);
      pos += len;
      if (++w.vec_count == StreamWrite::kMaxVecs) break;
    }
  }
  // FIN rides along only when every queued byte is in this write.
  std::uint64_t offered = 0;
  for (std::size_t i = 0; i < w.vec_count; ++i) offered += w.vec[i].len;
  w.fin = fin_queued_ && !fin_sent_ && sent_ + offered == total_;
}

void StreamImpl::on_written(std::size_t n, bool fin_sent) {
  const std::uint64_t payload_before = std::max(sent_, preamble_len_);
  sent_ += n;
  const std::uint64_t payload_after = std::max(sent_, preamble_len_);
  if (payload_after > payload_before)
    if (auto s = session_.lock()) s->on_payload_sent(payload_after - payload_before);
  while (first_unsent_ < chunks_.size() && chunks_[first_unsent_].end <= sent_) ++first_unsent_;
  if (fin_sent) fin_sent_ = true;
}

void StreamImpl::on_acked(std::uint64_t n) {
  acked_ += n;
  CallbackScope scope(*this);
  while (!chunks_.empty() && chunks_.front().end <= acked_) {
    auto c = std::move(chunks_.front());
    chunks_.pop_front();
    if (first_unsent_ > 0) --first_unsent_;
    if (c.cb) c.cb(Error());
  }
  const std::uint64_t before = stats_.bytes_sent;
  stats_.bytes_sent = acked_payload();
  host_.add_bytes(true, stats_.bytes_sent - before);
  if (fin_sent_ && acked_ >= total_ && fin_cb_) {
    auto cb = std::move(fin_cb_);
    cb(Error());
  }
  sync_budget();
  if (was_full_ && buffered_amount() < send_bound_ / 2 && !send_closed_ && !fin_queued_) {
    was_full_ = false;
    if (on_writable_) on_writable_();
  }
}

void StreamImpl::fail_sends(const Error &err) {
  auto chunks = std::move(chunks_);
  chunks_.clear();
  first_unsent_ = 0;
  sync_budget();
  for (auto &c : chunks)
    if (c.cb) c.cb(err);
  if (fin_cb_) {
    auto cb = std::move(fin_cb_);
    cb(err);
  }
}

void StreamImpl::reset(std::uint32_t code) {
  if (send_closed_) return;
  send_closed_ = true;
  host_.reset_stream(sid_, wt_app_to_h3(code));
  host_.defer([keep = shared_from_this(), code] {
    keep->fail_sends(Error(Errc::stream, "stream reset locally", CodeSpace::application, code));
  });
}

void StreamImpl::consumed(std::size_t n) {
  host_.consumed(sid_, n);
  if (auto s = session_.lock()) s->on_stream_consumed(n);
}

void StreamImpl::drop_held() {
  if (!held_.empty())
    if (auto s = session_.lock()) s->on_stream_consumed(held_.size());
  held_.clear();
}

void StreamImpl::stop_sending(std::uint32_t code) {
  if (recv_closed_) return;
  recv_closed_ = true;
  drop_held();
  host_.stop_stream(sid_, wt_app_to_h3(code));
}

void StreamImpl::on_data(DataCallback cb) {
  on_data_ = std::move(cb);
  // Deliver what arrived before the callback was set, on a later turn.
  if (on_data_ && !paused_ && (!held_.empty() || held_fin_)) schedule_flush();
}

void StreamImpl::resume() {
  paused_ = false;
  // Never from inside resume() itself: the caller may be in the middle of
  // its own on_data or on_writable callback.
  if (on_data_ && (!held_.empty() || held_fin_)) schedule_flush();
}

void StreamImpl::schedule_flush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  host_.defer([keep = shared_from_this()] {
    keep->flush_scheduled_ = false;
    keep->flush_held();
  });
}

void StreamImpl::flush_held() {
  if (paused_ || !on_data_ || (held_.empty() && !held_fin_)) return;
  auto data = std::move(held_);
  held_.clear();
  const bool fin = held_fin_;
  held_fin_ = false;
  CallbackScope scope(*this);
  deliver(data.data(), data.size(), fin);
  if (recv_closed_ && held_.empty() && !held_fin_) on_data_ = nullptr;  // nothing more can arrive
}

void StreamImpl::on_recv(const std::uint8_t *data, std::size_t len, bool fin) {
  CallbackScope scope(*this);
  recv_payload_ += len;
  // Every payload byte counts against the session's limit (section 5.4).
  if (len > 0)
    if (auto s = session_.lock(); s && !s->on_stream_payload(len)) {
      host_.consumed(sid_, len);  // the session is gone; the connection's credit is not
      return;
    }
  if (recv_closed_) {
    consumed(len);  // discarded after stop_sending: keep credit flowing
    return;
  }
  if (paused_ || !on_data_ || !held_.empty()) {
    // Held bytes are not credited: the peer stops once its window is used.
    held_.insert(held_.end(), data, data + len);
    held_fin_ = held_fin_ || fin;
    return;
  }
  deliver(data, len, fin);
}

void StreamImpl::deliver(const std::uint8_t *data, std::size_t len, bool fin) {
  CallbackScope scope(*this);
  stats_.bytes_received += len;
  host_.add_bytes(false, len);
  if (fin) recv_fin_ = true;
  if (on_data_) on_data_(std::span<const std::uint8_t>(data, len), fin);
  consumed(len);
}

void StreamImpl::emit_error(const Error &err) {
  // The first cause wins: a reset that follows a session close says nothing new.
  if (error_emitted_) return;
  error_emitted_ = true;
  if (on_error_) on_error_(err);
}

void StreamImpl::on_peer_reset(std::uint64_t h3_code, std::uint64_t final_payload) {
  CallbackScope scope(*this);
  recv_closed_ = true;
  drop_held();
  count_reset_tail(final_payload);
  emit_error(wire_code_error(Errc::stream, "stream reset by peer" + wt_code_suffix(h3_code), h3_code));
}

void StreamImpl::count_reset_tail(std::uint64_t final_payload) {
  // draft-ietf-webtrans-http3-16 5.4 (-14 5.4 and 5.6.4): a reset stream's
  // final size is what the sender counts against WT_MAX_DATA, delivered or
  // not. The bytes never delivered count as received (past the limit: the
  // flow-control error) and, as nobody will read them, as consumed.
  if (final_payload <= recv_payload_) return;
  const std::uint64_t tail = final_payload - recv_payload_;
  recv_payload_ = final_payload;
  auto s = session_.lock();
  if (!s || tail > std::numeric_limits<std::size_t>::max()) return;
  if (s->on_stream_payload(static_cast<std::size_t>(tail))) s->on_stream_consumed(static_cast<std::size_t>(tail));
}

void StreamImpl::abort_for_session(const Error &err) {
  CallbackScope scope(*this);
  held_.clear();
  held_fin_ = false;
  // The session close is the first cause unless one was reported already;
  // it is told on a later turn, as close() may be the caller. Marked before
  // the resets: should ngtcp2 close the stream inside them, on_quic_closed
  // leaves the callbacks to notify_abort too.
  const bool first = !abort_pending_;
  const bool emit = !error_emitted_;
  error_emitted_ = true;
  abort_pending_ = true;
  if (!send_closed_) {
    send_closed_ = true;
    host_.reset_stream(sid_, kWtSessionGone);
  }
  if (!recv_closed_) {
    recv_closed_ = true;
    host_.stop_stream(sid_, kWtSessionGone);
  }
  if (first) host_.defer([keep = shared_from_this(), err, emit] { keep->notify_abort(err, emit); });
}

void StreamImpl::notify_abort(const Error &err, bool emit) {
  CallbackScope scope(*this);
  abort_pending_ = false;
  fail_sends(err);
  if (emit && on_error_) on_error_(err);
  if (closed_pending_) {
    closed_pending_ = false;
    run_closed_callbacks();
  }
}

void StreamImpl::on_quic_closed(bool has_code, std::uint64_t h3_code) {
  CallbackScope scope(*this);
  const bool send_unfinished = dir_ != StreamDirection::receive_only && !(fin_sent_ && acked_ >= total_);
  const bool recv_unfinished = dir_ != StreamDirection::send_only && !recv_fin_;
  send_closed_ = true;
  recv_closed_ = true;
  if (abort_pending_) {
    closed_pending_ = true;  // notify_abort reports error, sends and close in order
    return;
  }
  // Bytes the reader asked for (resume / on_data) but that wait for their turn.
  if (flush_scheduled_) flush_held();
  const bool held_for_reader = on_data_ && (!held_.empty() || held_fin_);
  if (has_code && !error_emitted_ && (send_unfinished || recv_unfinished)) {
    // ngtcp2 reports a peer's STOP_SENDING only here, as the stream's code.
    emit_error(wire_code_error(
        Errc::stream,
        std::string(send_unfinished ? "stream stopped by peer" : "stream reset") + wt_code_suffix(h3_code), h3_code));
  }
  if (!chunks_.empty() || fin_cb_) fail_sends(Error(Errc::stream, "stream closed before its data was acknowledged"));
  run_closed_callbacks(held_for_reader);
}

void StreamImpl::run_closed_callbacks(bool keep_reader) {
  if (on_closed_) {
    auto cb = std::move(on_closed_);
    on_closed_ = nullptr;
    cb();
  }
  // A paused reader still gets what arrived before the close once it
  // resumes; flush_held lets go of the callback after the FIN.
  if (!keep_reader) on_data_ = nullptr;
  on_error_ = nullptr;
  on_writable_ = nullptr;
}

void StreamImpl::on_send_shut() {
  // Our send side was shut under us (the peer sent STOP_SENDING); ngtcp2 gives
  // no code before the stream closes.
  if (send_closed_) return;
  CallbackScope scope(*this);
  send_closed_ = true;
  const Error err(Errc::stream, "peer stopped reading (STOP_SENDING)");
  fail_sends(err);
  emit_error(err);
}

StreamStats StreamImpl::stats() const { return stats_; }

void StreamImpl::set_send_order(std::int64_t order) {
  if (order == send_order_) return;
  send_order_ = order;
  host_.stream_priority_changed(*this);
}

void StreamImpl::set_send_group(SendGroup group) {
  if (group == send_group_) return;
  send_group_ = group;
  host_.stream_priority_changed(*this);
}

}  // namespace uvwt::detail
