// The nghttp3 side of H3Connection: its callbacks, its setup and feeding it.
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

// nghttp3 callbacks.
struct H3Callbacks {
  static H3Connection *self(void *ud) { return static_cast<H3Connection *>(ud); }

  static int acked_stream_data(nghttp3_conn *, std::int64_t sid, std::uint64_t len, void *ud, void *) {
    auto *c = self(ud);
    if (auto it = c->requests_.find(sid); it != c->requests_.end() && it->second.session)
      it->second.session->capsules_acked(len);
    return 0;
  }

  static int stream_close(nghttp3_conn *, std::int64_t, std::uint64_t, void *, void *) { return 0; }

  static int recv_data(nghttp3_conn *, std::int64_t sid, const std::uint8_t *data, std::size_t len, void *ud, void *) {
    auto *c = self(ud);
    if (auto it = c->requests_.find(sid); it != c->requests_.end() && it->second.waiting_settings) {
      auto &body = it->second.held_body;
      if (body.size() + len <= H3Connection::kHeldBodyMax) {
        body.insert(body.end(), data, data + len);
      } else {  // more than a client sends before an answer: refused, not buffered
        it->second.waiting_settings = false;
        body = {};
        c->submit_simple_response(sid, 400, nullptr);
        c->remember_gone(static_cast<SessionId>(sid));
      }
    } else if (it != c->requests_.end() && it->second.session && !c->ignore_session_close_) {
      auto s = it->second.session;
      s->on_capsule_data(data, len);
    }
    c->quic_->extend_stream_offset(sid, len);
    return 0;
  }

  static int deferred_consume(nghttp3_conn *, std::int64_t sid, std::size_t n, void *ud, void *) {
    self(ud)->quic_->extend_stream_offset(sid, n);
    return 0;
  }

  static int begin_headers(nghttp3_conn *, std::int64_t sid, void *ud, void *) {
    auto &rs = self(ud)->requests_[sid];
    rs.headers.clear();
    return 0;
  }

  static int recv_header(nghttp3_conn *, std::int64_t sid, std::int32_t, nghttp3_rcbuf *name, nghttp3_rcbuf *value,
                         std::uint8_t, void *ud, void *) {
    auto *c = self(ud);
    auto &rs = c->requests_[sid];
    const auto n = rcbuf_view(name);
    const auto v = rcbuf_view(value);
    if (!c->count_field(rs, n.size(), v.size())) return 0;  // refused at end_headers
    if (n == ":method")
      rs.method = v;
    else if (n == ":protocol")
      rs.protocol = v;
    else if (n == ":scheme")
      rs.scheme = v;
    else if (n == ":path")
      rs.path = v;
    else if (n == ":authority")
      rs.authority = v;
    else if (n == ":status")
      rs.status = parse_status(v);
    else if (!n.empty() && n[0] == ':')
      return 0;
    else {
      if (n == "origin")
        rs.origin = v;
      else if (n == "wt-available-protocols")
        rs.offered = parse_sf_string_list(v);
      else if (n == "wt-protocol") {
        // draft-ietf-webtrans-http3 3.3: an sf-item that must be a String.
        auto str = parse_sf_string_item(v);
        rs.wt_protocol = str.value_or(std::string());
        rs.wt_protocol_bad = !str.has_value();
      }
      rs.headers.emplace_back(n, v);
    }
    return 0;
  }

  static int end_headers(nghttp3_conn *, std::int64_t sid, int, void *ud, void *) {
    auto *c = self(ud);
    auto it = c->requests_.find(sid);
    if (it == c->requests_.end()) return 0;
    if (it->second.too_large) {
      c->refuse_oversized(sid, true);
      return 0;
    }
    if (c->tunnel_headers(sid, it->second)) return 0;
    if (c->server_)
      c->handle_request_headers(sid, it->second);
    else
      c->handle_response_headers(sid, it->second);
    return 0;
  }

  static int end_stream(nghttp3_conn *, std::int64_t sid, void *ud, void *) {
    auto *c = self(ud);
    if (c->tunnel_fin(sid)) return 0;
    if (auto it = c->requests_.find(sid); it != c->requests_.end() && it->second.waiting_settings) {
      it->second.held_fin = true;
    } else if (it != c->requests_.end() && it->second.session && !c->ignore_session_close_) {
      auto s = it->second.session;
      s->on_connect_stream_fin();
    }
    return 0;
  }

  static int stop_sending(nghttp3_conn *, std::int64_t sid, std::uint64_t code, void *ud, void *) {
    UVWT_DEBUG("nghttp3 stops reading stream %lld (0x%llx)", static_cast<long long>(sid),
               static_cast<unsigned long long>(code));
    self(ud)->quic_->shutdown_stream_read(sid, code);
    return 0;
  }

  static int reset_stream(nghttp3_conn *, std::int64_t sid, std::uint64_t code, void *ud, void *) {
    self(ud)->quic_->shutdown_stream_write(sid, code);
    return 0;
  }

  static int shutdown(nghttp3_conn *, std::int64_t id, void *ud) {
    auto *c = self(ud);
    c->goaway_ = static_cast<std::uint64_t>(id);
    for (auto &[sid, s] : c->sessions_) s->on_goaway();
    return 0;
  }

  static nghttp3_ssize read_data(nghttp3_conn *, std::int64_t sid, nghttp3_vec *vec, std::size_t veccnt,
                                 std::uint32_t *pflags, void *ud, void *) {
    auto *c = self(ud);
    if (c->tunnel_read_data(sid, pflags)) return (*pflags & NGHTTP3_DATA_FLAG_EOF) != 0 ? 0 : NGHTTP3_ERR_WOULDBLOCK;
    auto it = c->requests_.find(sid);
    if (it == c->requests_.end() || !it->second.session) {
      *pflags |= NGHTTP3_DATA_FLAG_EOF;
      return 0;
    }
    static_assert(sizeof(CapsuleVec) == sizeof(nghttp3_vec));
    bool eof = false;
    const std::size_t n = it->second.session->capsule_vecs(reinterpret_cast<CapsuleVec *>(vec), veccnt, eof);
    if (eof) *pflags |= NGHTTP3_DATA_FLAG_EOF;
    if (n == 0 && !eof) return NGHTTP3_ERR_WOULDBLOCK;
    return static_cast<nghttp3_ssize>(n);
  }
};

const nghttp3_data_reader &H3Connection::data_reader() noexcept {
  static const nghttp3_data_reader reader{H3Callbacks::read_data};
  return reader;
}

bool H3Connection::setup_nghttp3() {
  nghttp3_callbacks cb{};
  cb.acked_stream_data = H3Callbacks::acked_stream_data;
  cb.stream_close = H3Callbacks::stream_close;
  cb.recv_data = H3Callbacks::recv_data;
  cb.deferred_consume = H3Callbacks::deferred_consume;
  cb.begin_headers = H3Callbacks::begin_headers;
  cb.recv_header = H3Callbacks::recv_header;
  cb.end_headers = H3Callbacks::end_headers;
  cb.end_stream = H3Callbacks::end_stream;
  cb.stop_sending = H3Callbacks::stop_sending;
  cb.reset_stream = H3Callbacks::reset_stream;
  cb.shutdown = H3Callbacks::shutdown;
  nghttp3_settings s;
  nghttp3_settings_default(&s);
  s.enable_connect_protocol = server_ ? 1 : 0;
  s.h3_datagram = 1;
  s.qpack_max_dtable_capacity = 4096;
  s.qpack_blocked_streams = 100;
  s.max_field_section_size = cfg_.max_field_section_size;
  const int rv = server_ ? nghttp3_conn_server_new(&h3_, &cb, &s, nghttp3_mem_default(), this)
                         : nghttp3_conn_client_new(&h3_, &cb, &s, nghttp3_mem_default(), this);
  if (rv != 0) return fatal(kH3InternalError, std::string("nghttp3 setup: ") + nghttp3_strerror(rv));
  if (server_) nghttp3_conn_set_max_client_streams_bidi(h3_, cfg_.max_streams_bidi);
  std::int64_t ctrl, qenc, qdec;
  if (quic_->open_uni_stream(ctrl) != 0 || quic_->open_uni_stream(qenc) != 0 || quic_->open_uni_stream(qdec) != 0)
    return fatal(kH3InternalError, "cannot open HTTP/3 control streams");
  if (nghttp3_conn_bind_control_stream(h3_, ctrl) != 0 || nghttp3_conn_bind_qpack_streams(h3_, qenc, qdec) != 0)
    return fatal(kH3InternalError, "cannot bind HTTP/3 control streams");
  ctrl_sid_ = ctrl;
  LocalWtSettings wt;
  wt.max_sessions = cfg_.max_sessions_per_connection;
  // Session flow control limits (draft-15 section 5.5): all 0 announce none.
  wt.initial_max_data = cfg_.wt_initial_max_data;
  wt.initial_max_streams_bidi = cfg_.wt_initial_max_streams_bidi;
  wt.initial_max_streams_uni = cfg_.wt_initial_max_streams_uni;
  wt.flow_control = wt.initial_max_data != 0 || wt.initial_max_streams_bidi != 0 || wt.initial_max_streams_uni != 0;
  if (server_cfg_ != nullptr && !server_cfg_->dialects.empty()) {
    wt.dialects = 0;
    for (const auto &name : server_cfg_->dialects)
      if (const Dialect d = dialect_from_name(name); d != Dialect::none) wt.dialects |= 1u << static_cast<unsigned>(d);
  }
  if (!server_) wt.dialects = client_dialects_;
  ctrl_out_.set_local_settings(wt);
  for (auto sid : {ctrl, qenc, qdec}) routes_.emplace(sid, StreamRoute(false)).first->second.route = Route::http3;
  return true;
}

bool H3Connection::feed_nghttp3(std::int64_t sid, const std::uint8_t *data, std::size_t len, bool fin) {
  if (h3_ == nullptr) return fatal(kH3InternalError, "stream data before HTTP/3 was set up");
  const nghttp3_ssize n = nghttp3_conn_read_stream(h3w(), sid, data, len, fin ? 1 : 0);
  if (n < 0) {
    const std::uint64_t code = nghttp3_err_infer_quic_app_error_code(static_cast<int>(n));
    return fatal(code, std::string("HTTP/3: ") + nghttp3_strerror(static_cast<int>(n)));
  }
  quic_->extend_stream_offset(sid, static_cast<std::size_t>(n));
  return true;
}

}  // namespace uvwt::detail
