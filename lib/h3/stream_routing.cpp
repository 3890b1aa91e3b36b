// Where each QUIC stream's bytes and events go: nghttp3 (HTTP/3), a
// WebTransport stream, the peer's control stream, or nowhere.
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

bool H3Connection::on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) {
  owner_->on_activity();
  auto it = routes_.find(sid);
  if (it == routes_.end()) {
    if (is_local_stream(sid)) return true;  // data on a stream we already forgot
    const bool bidi = (sid & 2) == 0;
    // A server-initiated bidi stream can only be WebTransport.
    it = routes_.emplace(sid, StreamRoute(bidi, bidi && !server_)).first;
  }
  StreamRoute &r = it->second;
  switch (r.route) {
    case Route::pending:
      return route_new_stream(sid, r, fin, data, len);
    case Route::http3: {
      if (r.peer_control) {
        if (peer_ctrl_.feed(std::span<const std::uint8_t>(data, len)) != 0)
          return fatal(peer_ctrl_.error(), "bad peer control stream");
        if (!peer_ctrl_settings_seen_ && peer_ctrl_.settings_received()) {
          peer_ctrl_settings_seen_ = true;
          check_ready();
          on_peer_settings();
        }
      } else if ((sid & 2) == 0) {  // a request stream
        if (r.refused) {
          quic_->extend_stream_offset(sid, len);
          return true;
        }
        if (!guard_header_size(sid, r, data, len)) {
          refuse_oversized(sid, false);
          return true;
        }
      }
      return feed_nghttp3(sid, data, len, fin);
    }
    case Route::webtransport: {
      if (auto st = wt_streams_.find(sid); st != wt_streams_.end()) {
        auto keep = st->second;
        keep->on_recv(data, len, fin);
        return true;
      }
      for (auto &e : early_streams_) {
        if (e.sid == sid) {
          e.data.insert(e.data.end(), data, data + len);
          e.fin = e.fin || fin;
          return true;
        }
      }
      quic_->extend_stream_offset(sid, len);
      return true;
    }
    case Route::ignored:
      quic_->extend_stream_offset(sid, len);
      return true;
  }
  return true;
}

bool H3Connection::route_new_stream(std::int64_t sid, StreamRoute &r, bool fin, const std::uint8_t *data,
                                    std::size_t len) {
  const auto res = r.preamble.feed(std::span<const std::uint8_t>(data, len));
  switch (res.state) {
    case PreambleState::need_more:
      if (fin) {  // stream ended inside its own header: nothing to do with it
        r.route = Route::ignored;
        quic_->extend_stream_offset(sid, len);
      }
      return true;
    case PreambleState::error:
      return fatal(res.error_code, "malformed stream header");
    case PreambleState::webtransport: {
      r.route = Route::webtransport;
      const std::size_t payload_off = res.consumed;
      quic_->extend_stream_offset(sid, r.preamble.header_len());  // the whole preamble, also earlier pieces
      attach_wt_stream(sid, r.preamble.session_id(), (sid & 2) == 0, data + payload_off, len - payload_off, fin);
      return true;
    }
    case PreambleState::http3: {
      r.route = Route::http3;
      const auto held = r.preamble.held();  // bytes from earlier calls, never shown to nghttp3 yet
      // Only the first control stream is read alongside nghttp3: a second one
      // is nghttp3's to refuse with H3_STREAM_CREATION_ERROR (RFC 9114 section
      // 6.2.1); teeing it into the reader would answer H3_FRAME_UNEXPECTED.
      if (!r.preamble.bidi() && r.preamble.uni_type() == 0x00 &&
          std::none_of(routes_.begin(), routes_.end(), [](const auto &kv) { return kv.second.peer_control; })) {
        r.peer_control = true;
      }
      std::vector<std::uint8_t> all(held.begin(), held.end());
      all.insert(all.end(), data, data + len);
      if (r.preamble.bidi() && !guard_header_size(sid, r, all.data(), all.size())) {
        refuse_oversized(sid, false);
        return true;
      }
      if (r.peer_control) {
        // The reader takes the control stream after its type byte(s).
        const std::size_t type_len = r.preamble.type_len();
        if (all.size() > type_len &&
            peer_ctrl_.feed(std::span<const std::uint8_t>(all.data() + type_len, all.size() - type_len)) != 0)
          return fatal(peer_ctrl_.error(), "bad peer control stream");
        if (!peer_ctrl_settings_seen_ && peer_ctrl_.settings_received()) {
          peer_ctrl_settings_seen_ = true;
          check_ready();
          on_peer_settings();
        }
      }
      return feed_nghttp3(sid, all.data(), all.size(), fin);
    }
  }
  return true;
}

void H3Connection::attach_wt_stream(std::int64_t sid, SessionId session_id, bool bidi, const std::uint8_t *payload,
                                    std::size_t len, bool fin) {
  auto sit = sessions_.find(session_id);
  if (sit != sessions_.end() ? sit->second->is_closed() : session_gone(session_id)) {
    reject_stream(sid, bidi, kWtSessionGone, len);
    return;
  }
  const bool known_ready = sit != sessions_.end() && sit->second->state() != SessionState::connecting;
  if (!known_ready) {
    std::size_t for_session = 0;
    for (const auto &e : early_streams_) for_session += e.session == session_id ? 1 : 0;
    if (for_session >= cfg_.max_pending_streams || early_streams_.size() >= 4 * cfg_.max_pending_streams) {
      reject_stream(sid, bidi, kWtBufferedStreamRejected, len);
      owner_->on_error_counted();
      return;
    }
    early_streams_.push_back({sid, session_id, bidi, std::vector<std::uint8_t>(payload, payload + len), fin, now_ns()});
    note_early_arrival();
    return;
  }
  auto s = sit->second;
  if (!s->on_peer_stream_opened(bidi)) {  // over our WT_MAX_STREAMS: the session is over
    reject_stream(sid, bidi, kWtSessionGone, len);
    return;
  }
  auto st =
      std::make_shared<StreamImpl>(*this, s, sid, bidi ? StreamDirection::bidirectional : StreamDirection::receive_only,
                                   false, s->config().stream_send_buffer);
  wt_streams_[sid] = st;
  s->add_stream(st, true);
  if (len > 0 || fin) st->on_recv(payload, len, fin);
}

void H3Connection::on_extend_max_stream_data(std::int64_t sid) {
  if (auto it = wt_streams_.find(sid); it != wt_streams_.end()) {
    it->second->on_unblocked();
    stream_ready_to_send(*it->second);
    return;
  }
  raw_.unblocked(sid);
  if (h3_ != nullptr) nghttp3_conn_unblock_stream(h3w(), sid);
}

void H3Connection::on_acked_stream_data(std::int64_t sid, std::uint64_t len) {
  if (sid == ctrl_sid_) {
    control_acked(len);
    return;
  }
  if (auto it = wt_streams_.find(sid); it != wt_streams_.end()) {
    auto keep = it->second;
    keep->on_acked(len);
    return;
  }
  if (h3_ != nullptr) nghttp3_conn_add_ack_offset(h3w(), sid, len);
}

void H3Connection::on_stream_close(std::int64_t sid, bool has_code, std::uint64_t code) {
  const bool remote = !is_local_stream(sid);
  const bool bidi = (sid & 2) == 0;
  auto rit = routes_.find(sid);
  const Route route = rit == routes_.end() ? Route::pending : rit->second.route;
  if (auto it = wt_streams_.find(sid); it != wt_streams_.end()) {
    auto st = it->second;
    wt_streams_.erase(it);
    if (auto s = std::dynamic_pointer_cast<SessionImpl>(st->session())) s->remove_stream(sid);
    st->on_quic_closed(has_code, code);
  } else if (route == Route::http3 || route == Route::pending) {
    if (h3_ != nullptr) {
      const int rv = nghttp3_conn_close_stream(h3w(), sid, has_code ? code : kH3NoError);
      if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND && nghttp3_err_is_fatal(rv)) {
        fatal(nghttp3_err_infer_quic_app_error_code(rv), "HTTP/3 stream close failed");
      }
    }
    std::shared_ptr<SessionImpl> s;
    if (tunnel_stream_closed(sid, has_code, code)) requests_.erase(sid);
    if (auto it = requests_.find(sid); it != requests_.end()) {
      s = it->second.session;
      requests_.erase(it);
      if (s) s->on_connect_stream_closed();
    }
    if (!s && server_ && remote && bidi) {
      // A request stream that ended without becoming a session: whatever
      // named it as its session waits in vain.
      remember_gone(static_cast<SessionId>(sid));
      drop_early(static_cast<SessionId>(sid), kWtSessionGone);
    }
  }
  erase_if(early_streams_, [sid](const EarlyStream &e) { return e.sid == sid; });
  raw_.closed(sid);
  if (rit != routes_.end()) routes_.erase(rit);
  // Give the peer its stream credit back: nghttp3 does so only for streams it saw.
  if (remote) quic_->extend_max_streams(bidi, 1);
}

void H3Connection::on_stream_reset(std::int64_t sid, std::uint64_t final_size, std::uint64_t code) {
  owner_->on_activity();
  if (auto it = wt_streams_.find(sid); it != wt_streams_.end()) {
    auto st = it->second;
    // The session counts payload only: the peer's stream header (none on
    // the peer's half of a stream we opened) is not part of it.
    const auto rit = routes_.find(sid);
    const std::uint64_t header = rit != routes_.end() ? rit->second.preamble.header_len() : 0;
    st->on_peer_reset(code, final_size > header ? final_size - header : 0);
    return;
  }
  if (auto it = requests_.find(sid); it != requests_.end() && it->second.session) {
    auto s = it->second.session;
    s->on_connect_stream_reset(code);
  }
  if (h3_ != nullptr) nghttp3_conn_shutdown_stream_read(h3w(), sid);
}

// ngtcp2 1.x calls this when WE stop reading a stream (our STOP_SENDING,
// or after the peer's RESET_STREAM), never for the peer's STOP_SENDING:
// that one shows as the stream's send side shut under us at the next write
// (on_stream_blocked). So nothing to do here: our own stop must not reset
// our send side nor look like the peer's doing.
void H3Connection::on_stop_sending(std::int64_t, std::uint64_t) {}

}  // namespace uvwt::detail
