// Sending on WebTransport streams: opening them, the send scheduler (send
// order and groups, lib/h3/wt_send_scheduler.hpp), the connection's send
// budget, and the write loop that also serves nghttp3 and the control stream.
#include <algorithm>
#include <cstring>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "h3/client_dialect.hpp"
#include "h3/datagram.hpp"
#include "h3/h3_connection.hpp"
#include "h3/request_fields.hpp"
#include "h3/sf_item.hpp"
#include "h3/wt_codes.hpp"
#include "h3/wt_flow_settings.hpp"
#include "quic/quic_connection.hpp"
#include "quic/tls_session.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"

namespace uvwt::detail {

void H3Connection::adjust_send_buffered(std::int64_t delta) {
  send_buffered_ = static_cast<std::uint64_t>(static_cast<std::int64_t>(send_buffered_) + delta);
  // Hand out turns once half the budget is free, so each waiter gets room for
  // a real write instead of a trickle; a granted stream that writes re-enters
  // here, hence the guard.
  if (delta >= 0 || granting_budget_ || budget_waiters_.empty() || send_buffered_ > cfg_.connection_send_buffer / 2)
    return;
  granting_budget_ = true;
  for (std::size_t n = budget_waiters_.size(); n > 0 && !budget_waiters_.empty() && send_budget_available(); --n) {
    auto st = std::const_pointer_cast<StreamImpl>(budget_waiters_.front().lock());
    budget_waiters_.pop_front();
    if (st) st->budget_granted();
  }
  granting_budget_ = false;
}

void H3Connection::wait_send_budget(std::weak_ptr<const StreamImpl> st) { budget_waiters_.push_back(std::move(st)); }

void H3Connection::open_wt_stream(const std::shared_ptr<SessionImpl> &s, bool bidi,
                                  std::function<void(const Error &, std::int64_t)> cb) {
  owner_->on_activity();
  open_queue_.push_back({s, bidi, std::move(cb)});
  process_open_queue();
}

void H3Connection::process_open_queue() {
  while (!open_queue_.empty()) {
    auto &req = open_queue_.front();
    auto s = req.session.lock();
    if (!s || closed_) {
      auto cb = std::move(req.cb);
      open_queue_.pop_front();
      defer([cb = std::move(cb)] { cb(Error(Errc::session, "session closed"), -1); });
      continue;
    }
    std::int64_t sid = -1;
    const int rv = req.bidi ? quic_->open_bidi_stream(sid) : quic_->open_uni_stream(sid);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return;  // resumes on extend_max_local_streams
    auto cb = std::move(req.cb);
    const bool bidi = req.bidi;
    const SessionId named = req.preamble_session.value_or(s->id());
    open_queue_.pop_front();
    if (rv != 0) {
      defer([cb = std::move(cb), rv] {
        cb(Error(Errc::stream, std::string("cannot open stream: ") + ngtcp2_strerror(rv)), -1);
      });
      continue;
    }
    auto st =
        std::make_shared<StreamImpl>(*this, s, sid, bidi ? StreamDirection::bidirectional : StreamDirection::send_only,
                                     true, s->config().stream_send_buffer);
    std::uint8_t pre[16];
    const std::size_t n = bidi ? encode_wt_bidi_preamble(named, pre) : encode_wt_uni_preamble(named, pre);
    st->set_preamble(pre, n);
    wt_streams_[sid] = st;
    routes_.emplace(sid, StreamRoute(bidi)).first->second.route = Route::webtransport;
    s->add_stream(st, false);
    stream_ready_to_send(*st);
    defer([cb = std::move(cb), sid] { cb(Error(), sid); });
  }
}

void H3Connection::on_extend_max_local_streams(bool) { process_open_queue(); }

void H3Connection::stream_ready_to_send(StreamImpl &st) {
  if (!st.in_send_queue && st.has_data_to_send()) {
    st.in_send_queue = true;
    send_queue_.push(st.id(), st.send_order(), st.send_group().id);
  }
  if (quic_ != nullptr) quic_->schedule_write();
}

void H3Connection::stream_priority_changed(StreamImpl &st) {
  if (!st.in_send_queue) return;
  send_queue_.remove(st.id());
  send_queue_.push(st.id(), st.send_order(), st.send_group().id);
}

// One packet's worth of stream data: nghttp3 first (requests, QPACK, its
// control stream), then our rewritten control stream, then raw stream
// writes, then WebTransport streams in the scheduler's order.
void H3Connection::next_stream_write(StreamWrite &w) {
  last_write_was_h3_ = false;
  last_write_was_raw_ = false;
  if (nghttp3_write(w) || control_write(w)) return;
  if (!raw_.empty() && raw_.fill(w)) {
    last_write_was_raw_ = true;
    return;
  }
  wt_write(w);
}

bool H3Connection::nghttp3_write(StreamWrite &w) {
  // Asking nghttp3 costs a walk over its streams for every packet; when it
  // last had nothing and nothing was fed to it since, it still has nothing.
  if (h3_ == nullptr || h3_idle_) return false;
  nghttp3_vec vec[StreamWrite::kMaxVecs];
  int fin = 0;
  std::int64_t sid = -1;
  const nghttp3_ssize n = nghttp3_conn_writev_stream(h3_, &sid, &fin, vec, StreamWrite::kMaxVecs);
  if (n < 0) {
    fatal(kH3InternalError, std::string("nghttp3 write: ") + nghttp3_strerror(static_cast<int>(n)));
    return true;
  }
  if (sid < 0) {
    h3_idle_ = true;
    return false;
  }
  if (sid == ctrl_sid_) {
    take_control_bytes(std::span<const nghttp3_vec>(vec, static_cast<std::size_t>(n)));
    return false;
  }
  w.stream_id = sid;
  w.fin = fin != 0;
  w.vec_count = static_cast<std::size_t>(n);
  for (nghttp3_ssize i = 0; i < n; ++i) {
    w.vec[i].base = vec[i].base;
    w.vec[i].len = vec[i].len;
  }
  last_write_was_h3_ = true;
  return true;
}

void H3Connection::wt_write(StreamWrite &w) {
  while (const auto sid = send_queue_.next()) {
    auto it = wt_streams_.find(*sid);
    if (it == wt_streams_.end() || !it->second->has_data_to_send()) {
      if (it != wt_streams_.end()) it->second->in_send_queue = false;
      send_queue_.remove(*sid);
      continue;
    }
    it->second->fill_write(w);
    return;
  }
}

void H3Connection::on_stream_written(std::int64_t sid, std::size_t n, bool fin_sent) {
  if (last_write_was_h3_) {
    nghttp3_conn_add_write_offset(h3w(), sid, n);
    return;
  }
  if (sid == ctrl_sid_) {
    ctrl_sent_ += n;
    return;
  }
  if (last_write_was_raw_) {
    raw_.written(sid, n, fin_sent);
    return;
  }
  auto it = wt_streams_.find(sid);
  if (it == wt_streams_.end()) return;
  it->second->on_written(n, fin_sent);
  // The stream had its turn: the scheduler moves it (and its group) back.
  if (send_queue_.next() == sid) {
    const bool more = it->second->has_data_to_send();
    send_queue_.served(sid, more);
    if (!more) it->second->in_send_queue = false;
  }
}

void H3Connection::on_stream_blocked(std::int64_t sid, bool shut) {
  if (last_write_was_h3_) {
    if (!shut) {
      nghttp3_conn_block_stream(h3w(), sid);
      return;
    }
    nghttp3_conn_shutdown_stream_write(h3w(), sid);
    // ngtcp2 1.x reports a peer's STOP_SENDING by no event of its own (it
    // answers with RESET_STREAM and shuts our side): the next write on the
    // stream is where it shows. On a CONNECT stream it ends the session.
    if (auto it = requests_.find(sid); it != requests_.end() && it->second.session) {
      auto s = it->second.session;
      s->on_connect_stream_stopped(0);
    }
    return;
  }
  if (last_write_was_raw_) {
    raw_.blocked(sid, shut);
    return;
  }
  if (auto it = wt_streams_.find(sid); it != wt_streams_.end()) {
    auto st = it->second;
    send_queue_.remove(sid);
    st->in_send_queue = false;
    if (shut)
      st->on_send_shut();
    else
      st->on_blocked();
  }
}

}  // namespace uvwt::detail
