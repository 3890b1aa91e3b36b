#include "h3/h3_connection.hpp"

#include <algorithm>
#include <cstring>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "h3/datagram.hpp"
#include "h3/sf_item.hpp"
#include "h3/wt_codes.hpp"
#include "h3/client_dialect.hpp"
#include "h3/wt_flow_settings.hpp"
#include "quic/quic_connection.hpp"
#include "quic/tls_session.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"
#include "uvwt_build_config.h"

namespace uvwt::detail {

namespace {
constexpr std::size_t kDgramSlot = H3Connection::kDatagramSlot;

std::string_view rcbuf_view(nghttp3_rcbuf *b) {
  const nghttp3_vec v = nghttp3_rcbuf_get_buf(b);
  return {reinterpret_cast<const char *>(v.base), v.len};
}

nghttp3_nv make_nv(std::string_view name, std::string_view value) {
  nghttp3_nv nv{};
  nv.name = reinterpret_cast<const std::uint8_t *>(name.data());
  nv.namelen = name.size();
  nv.value = reinterpret_cast<const std::uint8_t *>(value.data());
  nv.valuelen = value.size();
  nv.flags = NGHTTP3_NV_FLAG_NONE;
  return nv;
}

// wt-available-protocols is a structured-field list of strings: "a", "b".
std::vector<std::string> parse_sf_string_list(std::string_view v) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == ',' || v[i] == '\t')) ++i;
    if (i >= v.size()) break;
    if (v[i] != '"') {  // not a string item: skip to the next comma
      while (i < v.size() && v[i] != ',') ++i;
      continue;
    }
    ++i;
    std::string item;
    while (i < v.size() && v[i] != '"') {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      item.push_back(v[i++]);
    }
    ++i;
    while (i < v.size() && v[i] != ',') ++i;  // parameters are ignored
    out.push_back(std::move(item));
  }
  return out;
}

// ":status" is exactly three digits; anything else is not a status (0).
int parse_status(std::string_view v) {
  if (v.size() != 3) return 0;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + (c - '0');
  }
  return n;
}

std::string sf_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}
}  // namespace

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

H3Connection::H3Connection(H3Owner &owner, std::shared_ptr<Deferred> deferred, bool server, const TransportConfig &cfg,
                           const ServerConfig *server_cfg, Address remote)
    : owner_(owner),
      deferred_(std::move(deferred)),
      remote_(std::move(remote)),
      server_(server),
      cfg_(cfg),
      server_cfg_(server_cfg) {}

H3Connection::~H3Connection() {
  if (h3_ != nullptr) nghttp3_conn_del(h3_);
}

void H3Connection::defer(std::function<void()> fn) { deferred_->post(std::move(fn)); }

void H3Connection::add_bytes(bool sent, std::uint64_t n) {
  if (sent)
    wt_bytes_sent += n;
  else
    wt_bytes_received += n;
}

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

bool H3Connection::fatal(std::uint64_t h3_code, const std::string &why) {
  UVWT_WARN("HTTP/3 error 0x%llx: %s", static_cast<unsigned long long>(h3_code), why.c_str());
  owner_.on_error_counted();
  quic_->set_close_error(Error(Errc::protocol, why, h3_code));
  quic_->close(h3_code, why);
  return false;
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

void H3Connection::set_client_dialects(const std::vector<std::string> &names) noexcept {
  if (names.empty()) return;
  client_dialects_ = 0;
  for (const auto &name : names)
    if (const Dialect d = dialect_from_name(name); d != Dialect::none)
      client_dialects_ |= 1u << static_cast<unsigned>(d);
}

bool H3Connection::session_flow_control(Dialect d) const noexcept {
  return wt_flow_control_enabled(d, ctrl_out_.local_settings(), peer_ctrl_.settings());
}

void H3Connection::setup_flow_control(SessionImpl &s, Dialect d) const {
  if (session_flow_control(d))
    s.enable_flow_control(local_wt_limits(ctrl_out_.local_settings()), peer_wt_limits(peer_ctrl_.settings()));
}

std::size_t H3Connection::live_sessions() const noexcept {
  std::size_t live = 0;
  for (const auto &[id, s] : sessions_) live += s->is_closed() ? 0 : 1;
  return live;
}

void H3Connection::reject_request(std::int64_t sid) {
  // Draft-15 sections 5.1 and 5.2: H3_REQUEST_REJECTED tells the client's
  // HTTP/3 stack the request was not processed at all.
  if (h3_ != nullptr) {
    nghttp3_conn_shutdown_stream_read(h3w(), sid);
    nghttp3_conn_shutdown_stream_write(h3w(), sid);
  }
  quic_->shutdown_stream_read(sid, kH3RequestRejected);
  quic_->shutdown_stream_write(sid, kH3RequestRejected);
  remember_gone(static_cast<SessionId>(sid));
  drop_early(static_cast<SessionId>(sid), kWtSessionGone);
}

void H3Connection::reset_connect_stream(SessionImpl &s, std::uint64_t h3_code) {
  owner_.on_error_counted();
  abort_request_stream(static_cast<std::int64_t>(s.id()), h3_code);  // h3_conformance.cpp
}

void H3Connection::on_handshake_completed() {
  handshake_done_ = true;
  if (!setup_nghttp3()) return;
  check_ready();
}

void H3Connection::check_ready() {
  if (h3_ready_ || !handshake_done_ || h3_ == nullptr) return;
  // A client must know the server's SETTINGS (its WebTransport dialect)
  // before it may send CONNECT; a server may answer as soon as it can.
  if (!server_ && !peer_ctrl_.settings_received()) return;
  h3_ready_ = true;
  owner_.on_h3_ready();
  auto pending = std::move(pending_connects_);
  pending_connects_.clear();
  for (auto &p : pending) send_connect(p.authority, p.path, p.headers, p.protocols, std::move(p.cb));
}

// ---------------------------------------------------------------- reading

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

bool H3Connection::on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) {
  owner_.on_activity();
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
      owner_.on_error_counted();
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

// ---------------------------------------------------------------- sessions

void H3Connection::open_session(const std::string &authority, const std::string &path, const Headers &headers,
                                const std::vector<std::string> &protocols,
                                std::function<void(const Error &, std::shared_ptr<Session>)> cb) {
  if (server_) {
    defer([cb = std::move(cb)] { cb(Error(Errc::configuration, "servers do not open sessions"), nullptr); });
    return;
  }
  if (h3_ready_) {
    send_connect(authority, path, headers, protocols, std::move(cb));
    quic_->schedule_write();
  } else {
    pending_connects_.push_back({authority, path, headers, protocols, std::move(cb)});
  }
}

void H3Connection::send_connect(const std::string &authority, const std::string &path, const Headers &headers,
                                const std::vector<std::string> &protocols,
                                std::function<void(const Error &, std::shared_ptr<Session>)> cb) {
  // ClientConfig::dialects limits our SETTINGS, and so the choice.
  const Dialect d = dialect();
  if (d == Dialect::none) {
    defer([cb = std::move(cb), any = client_dialects_ == LocalWtSettings::kAllDialects] {
      cb(Error(Errc::handshake, any ? "server does not support WebTransport (no WebTransport SETTINGS)"
                                    : "server announces none of the dialects in ClientConfig::dialects"),
         nullptr);
    });
    return;
  }
  // The server's session limit as the dialect reads it: its WT_MAX_SESSIONS,
  // and one session without flow control (draft-15 section 5.1).
  const std::uint64_t allowed =
      wt_client_session_limit(d, session_flow_control(d), peer_ctrl_.settings(), cfg_.max_sessions_per_connection);
  if (live_sessions() >= allowed && !ignore_session_limit_) {
    defer([cb = std::move(cb), allowed] {
      cb(Error(Errc::flow_control, "the server allows " + std::to_string(allowed) +
                                       " WebTransport session(s) on this connection; all are in use"),
         nullptr);
    });
    return;
  }
  if (goaway_ != 0) {
    defer([cb = std::move(cb)] { cb(Error(Errc::connection, "server is going away (GOAWAY)"), nullptr); });
    return;
  }
  std::int64_t sid = -1;
  if (const int rv = quic_->open_bidi_stream(sid); rv != 0) {
    defer([cb = std::move(cb)] { cb(Error(Errc::flow_control, "no stream credit for CONNECT"), nullptr); });
    return;
  }
  SessionInfo info;
  info.path = path;
  info.authority = authority;
  info.dialect = dialect_name(d);
  info.headers = headers;
  for (const auto &[k, v] : headers)
    if (k == "origin") info.origin = v;
  auto s = std::make_shared<SessionImpl>(*this, static_cast<SessionId>(sid), true, info, cfg_);
  setup_flow_control(*s, d);
  s->ready_cb = std::move(cb);
  sessions_[static_cast<SessionId>(sid)] = s;
  routes_.emplace(sid, StreamRoute(true)).first->second.route = Route::http3;
  auto &rs = requests_[sid];
  rs.session = s;
  rs.offered = protocols;  // a wt-protocol answer must be one of these

  const std::string_view token = protocol_token(d);
  std::vector<nghttp3_nv> nva;
  nva.push_back(make_nv(":method", "CONNECT"));
  nva.push_back(make_nv(":scheme", "https"));
  nva.push_back(make_nv(":authority", authority));
  nva.push_back(make_nv(":path", path));
  nva.push_back(make_nv(":protocol", token));
  if (d == Dialect::draft02) nva.push_back(make_nv("sec-webtransport-http3-draft02", "1"));
  std::string offered;
  for (const auto &p : protocols) {
    if (!offered.empty()) offered += ", ";
    offered += sf_string(p);
  }
  if (!offered.empty()) nva.push_back(make_nv("wt-available-protocols", offered));
  for (const auto &[k, v] : headers) nva.push_back(make_nv(k, v));
  static const nghttp3_data_reader reader{H3Callbacks::read_data};
  const int rv = nghttp3_conn_submit_request(h3w(), sid, nva.data(), nva.size(), &reader, nullptr);
  if (rv != 0) {
    s->fail(Error(Errc::protocol, std::string("cannot submit CONNECT: ") + nghttp3_strerror(rv)));
    sessions_.erase(static_cast<SessionId>(sid));
  }
}

void H3Connection::handle_response_headers(std::int64_t sid, RequestState &rs) {
  auto s = rs.session;
  if (!s) return;
  if (rs.status >= 200 && rs.status < 300) {
    if (!check_wt_protocol(sid, rs, dialect_from_name(s->info().dialect))) return;
    if (hold_ready_) {
      held_ready_.push_back({s->id(), rs.wt_protocol});
      return;
    }
    s->set_ready(rs.wt_protocol);
    release_early(s->id());  // streams and datagrams that beat the response here
    return;
  }
  if (rs.status >= 100 && rs.status < 200) return;  // interim
  const int status = rs.status;
  Errc e = Errc::http_status;
  std::string msg = "server answered CONNECT with HTTP " + std::to_string(status);
  if (status == 401 || status == 403) e = Errc::authentication;
  s->fail(Error(e, msg, 0, status));
  quic_->shutdown_stream_write(sid, kH3NoError);
}

void H3Connection::submit_simple_response(std::int64_t sid, int status, const AcceptDecision *decision) {
  const std::string st = std::to_string(status);
  std::vector<nghttp3_nv> nva;
  nva.push_back(make_nv(":status", st));
  if (decision != nullptr)
    for (const auto &[k, v] : decision->headers) nva.push_back(make_nv(k, v));
  nghttp3_conn_submit_response(h3w(), sid, nva.data(), nva.size(), nullptr);
}

void H3Connection::handle_request_headers(std::int64_t sid, RequestState &rs) {
  owner_.on_activity();
  if (rs.method != "CONNECT" || (rs.protocol != "webtransport" && rs.protocol != "webtransport-h3")) {
    // Not a WebTransport request: this endpoint serves nothing else.
    submit_simple_response(sid, rs.method == "CONNECT" ? 400 : 404, nullptr);
    remember_gone(static_cast<SessionId>(sid));
    drop_early(static_cast<SessionId>(sid), kWtSessionGone);
    return;
  }
  if (rs.scheme != "https") {
    // draft-ietf-webtrans-http3 3.2 (-13..-16): ":scheme field MUST be
    // https"; a well-formed request asking for something else: 400 (RFC 9110 15.5.1).
    owner_.on_error_counted();
    submit_simple_response(sid, 400, nullptr);
    remember_gone(static_cast<SessionId>(sid));
    drop_early(static_cast<SessionId>(sid), kWtSessionGone);
    return;
  }
  if (!settings_known_for(sid, rs)) return;  // answered once they arrive (or refused in time)
  bool draft02 = false;
  for (const auto &[k, v] : rs.headers)
    if (k == "sec-webtransport-http3-draft02") draft02 = true;
  if (refuse_by_settings(sid, rs, draft02)) return;
  SessionRequest req;
  const auto q = rs.path.find('?');
  req.path = rs.path.substr(0, q);
  if (q != std::string::npos) req.query = rs.path.substr(q + 1);
  req.authority = rs.authority;
  req.origin = rs.origin;
  req.headers = rs.headers;
  req.offered_protocols = rs.offered;
  req.remote_address = remote_;
  if (quic_ != nullptr && quic_->tls() != nullptr)
    req.client_certificate_sha256 = quic_->tls()->peer_certificate_sha256();
  // The client's SETTINGS decide, never the draft-02 header: Chromium sends
  // it also after its SETTINGS chose draft-07 (docs/protocol.md, "Choosing the dialect").
  const Dialect dialect = negotiate_request_dialect(ctrl_out_.local_settings(), peer_ctrl_.settings(), rs.protocol);
  if (dialect == Dialect::none) {
    // Neither side's SETTINGS allow a dialect with this :protocol token.
    owner_.on_error_counted();
    submit_simple_response(sid, 400, nullptr);
    remember_gone(static_cast<SessionId>(sid));
    drop_early(static_cast<SessionId>(sid), kWtSessionGone);
    return;
  }
  // Over the session limit (one without flow control): refused unprocessed
  // with H3_REQUEST_REJECTED, not answered (draft-15 sections 5.1, 5.2).
  const bool fc = session_flow_control(dialect);
  if (live_sessions() >= wt_server_session_limit(dialect, fc, cfg_.max_sessions_per_connection)) {
    UVWT_DEBUG("refusing session %lld: over the per-connection session limit%s", static_cast<long long>(sid),
               fc ? "" : " (one without session flow control)");
    reject_request(sid);
    return;
  }
  Server::SessionHandler handler;
  AcceptDecision decision;
  if (goaway_sent_)
    decision = AcceptDecision::reject(429);
  else
    decision = owner_.on_session_request(req, handler);

  if (decision.status < 200 || decision.status >= 300) {
    submit_simple_response(sid, decision.status, &decision);
    // Streams and datagrams that raced ahead of the CONNECT have no session to wait for.
    remember_gone(static_cast<SessionId>(sid));
    drop_early(static_cast<SessionId>(sid), kWtSessionGone);
    return;
  }
  SessionInfo info;
  info.path = rs.path;
  info.authority = rs.authority;
  info.origin = rs.origin;
  info.headers = rs.headers;
  info.dialect = dialect_name(dialect);
  auto s = std::make_shared<SessionImpl>(*this, static_cast<SessionId>(sid), false, info, cfg_);
  setup_flow_control(*s, dialect);
  sessions_[static_cast<SessionId>(sid)] = s;
  rs.session = s;
  const std::string st = std::to_string(decision.status);
  std::vector<nghttp3_nv> nva;
  nva.push_back(make_nv(":status", st));
  // Chromium's draft-02 waits for this answer; under draft-07 it is not sent.
  if (dialect == Dialect::draft02) nva.push_back(make_nv("sec-webtransport-http3-draft", "draft02"));
  const std::string proto = decision.protocol.empty() ? std::string() : sf_string(decision.protocol);
  if (!proto.empty()) nva.push_back(make_nv("wt-protocol", proto));
  for (const auto &[k, v] : decision.headers) nva.push_back(make_nv(k, v));
  static const nghttp3_data_reader reader{H3Callbacks::read_data};
  if (const int rv = nghttp3_conn_submit_response(h3w(), sid, nva.data(), nva.size(), &reader); rv != 0) {
    s->fail(Error(Errc::protocol, std::string("cannot submit response: ") + nghttp3_strerror(rv)));
    return;
  }
  s->set_response_submitted();
  s->set_ready(decision.protocol);
  owner_.on_session_accepted(s, std::move(handler), req);
  release_early(s->id());
  // What the CONNECT stream carried while it waited for the client's SETTINGS.
  if (!rs.held_body.empty()) s->on_capsule_data(rs.held_body.data(), rs.held_body.size());
  rs.held_body = {};
  if (rs.held_fin) s->on_connect_stream_fin();
}

void H3Connection::release_early(SessionId id) {
  auto s = session(id);
  if (!s) return;
  for (auto it = early_streams_.begin(); it != early_streams_.end();) {
    if (it->session == id) {
      auto e = std::move(*it);
      it = early_streams_.erase(it);
      attach_wt_stream(e.sid, e.session, e.bidi, e.data.data(), e.data.size(), e.fin);
    } else {
      ++it;
    }
  }
  if (auto it = early_dgrams_.find(id); it != early_dgrams_.end()) {
    auto early = std::move(it->second);
    early_dgrams_.erase(it);
    s->count_dropped_datagrams(early.dropped);
    for (const auto &d : early.queue) {
      wt_bytes_received += d.size();
      s->on_datagram_payload(d);
    }
  }
}

void H3Connection::drop_early(SessionId id, std::uint64_t h3_code) {
  for (auto it = early_streams_.begin(); it != early_streams_.end();) {
    if (it->session == id) {
      const auto e = std::move(*it);
      it = early_streams_.erase(it);
      reject_stream(e.sid, e.bidi, h3_code, e.data.size());
    } else {
      ++it;
    }
  }
  if (auto it = early_dgrams_.find(id); it != early_dgrams_.end()) {
    dgram_dropped_ += it->second.queue.size();
    early_dgrams_.erase(it);
  }
}

void H3Connection::reject_stream(std::int64_t sid, bool bidi, std::uint64_t h3_code, std::size_t credit) {
  // A peer uni stream has no send side of ours to reset.
  if (bidi) reset_stream(sid, h3_code);
  stop_stream(sid, h3_code);
  routes_[sid].route = Route::ignored;
  quic_->extend_stream_offset(sid, credit);
}

void H3Connection::remember_gone(SessionId id) {
  if (std::find(gone_.begin(), gone_.end(), id) != gone_.end()) return;
  const std::size_t bound = std::max<std::size_t>(64, 4 * cfg_.max_sessions_per_connection);
  if (gone_.size() >= bound) gone_.pop_front();
  gone_.push_back(id);
}

bool H3Connection::session_gone(SessionId id) const {
  // Session ids are client-initiated bidi stream ids: anything else never was one.
  if ((id & 3) != 0) return true;
  // A client makes its sessions itself: one it does not have is over (or never was).
  if (!server_) return sessions_.find(id) == sessions_.end();
  return std::find(gone_.begin(), gone_.end(), id) != gone_.end();
}

std::size_t H3Connection::early_stream_count(SessionId id) const noexcept {
  std::size_t n = 0;
  for (const auto &e : early_streams_) n += e.session == id ? 1 : 0;
  return n;
}

std::size_t H3Connection::early_datagram_count(SessionId id) const noexcept {
  auto it = early_dgrams_.find(id);
  return it == early_dgrams_.end() ? 0 : it->second.queue.size();
}

void H3Connection::release_held_ready_for_test() {
  hold_ready_ = false;
  defer([this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    auto held = std::move(held_ready_);
    held_ready_.clear();
    for (auto &h : held) {
      auto s = session(h.id);
      if (!s || s->state() != SessionState::connecting) continue;
      s->set_ready(std::move(h.protocol));
      release_early(h.id);
    }
  });
}

void H3Connection::open_wt_stream_for_test(const std::shared_ptr<SessionImpl> &s, SessionId preamble_session, bool bidi,
                                           std::function<void(const Error &, std::int64_t)> cb) {
  open_queue_.push_back({s, bidi, std::move(cb), preamble_session});
  process_open_queue();
}

std::shared_ptr<StreamImpl> H3Connection::wt_stream(std::int64_t sid) const {
  auto it = wt_streams_.find(sid);
  return it == wt_streams_.end() ? nullptr : it->second;
}

void H3Connection::capsules_queued(SessionImpl &s) {
  if (h3_ != nullptr) nghttp3_conn_resume_stream(h3w(), static_cast<std::int64_t>(s.id()));
  if (quic_ != nullptr) quic_->schedule_write();
}

void H3Connection::session_closed(SessionImpl &s) {
  remember_gone(s.id());
  drop_early(s.id(), kWtSessionGone);
}

void H3Connection::abandon_connect_stream(SessionImpl &s, bool reset_send) {
  const auto sid = static_cast<std::int64_t>(s.id());
  if (quic_ == nullptr || closed_) return;
  if (h3_ != nullptr) nghttp3_conn_shutdown_stream_read(h3w(), sid);
  quic_->shutdown_stream_read(sid, kWtSessionGone);
  if (reset_send) {
    if (h3_ != nullptr) nghttp3_conn_shutdown_stream_write(h3w(), sid);
    quic_->shutdown_stream_write(sid, kWtSessionGone);
  }
}

void H3Connection::session_finished(SessionImpl &s) {
  const SessionId id = s.id();
  defer([this, id, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) sessions_.erase(id);
  });
}

std::vector<std::shared_ptr<SessionImpl>> H3Connection::sessions() const {
  std::vector<std::shared_ptr<SessionImpl>> v;
  for (const auto &[id, s] : sessions_) v.push_back(s);
  return v;
}

std::shared_ptr<SessionImpl> H3Connection::session(SessionId id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

void H3Connection::shutdown_notice() {
  if (h3_ == nullptr || goaway_sent_) return;
  goaway_sent_ = true;
  nghttp3_conn_submit_shutdown_notice(h3w());
  for (auto &[id, s] : sessions_) s->drain();
  quic_->schedule_write();
}

void H3Connection::shutdown_final() {
  if (h3_ == nullptr || final_goaway_sent_) return;
  if (!goaway_sent_) shutdown_notice();
  final_goaway_sent_ = true;
  nghttp3_conn_shutdown(h3w());
  quic_->schedule_write();
}

void H3Connection::close_all_sessions(std::uint32_t code, const std::string &reason) {
  auto all = sessions();
  for (auto &s : all) s->close(code, reason, {});
}

// ---------------------------------------------------------------- WT streams

void H3Connection::open_wt_stream(const std::shared_ptr<SessionImpl> &s, bool bidi,
                                  std::function<void(const Error &, std::int64_t)> cb) {
  owner_.on_activity();
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
    send_queue_.push_back(st.id());
  }
  if (quic_ != nullptr) quic_->schedule_write();
}

void H3Connection::reset_stream(std::int64_t sid, std::uint64_t h3_code) { quic_->shutdown_stream_write(sid, h3_code); }

void H3Connection::stop_stream(std::int64_t sid, std::uint64_t h3_code) { quic_->shutdown_stream_read(sid, h3_code); }

void H3Connection::consumed(std::int64_t sid, std::size_t n) { quic_->extend_stream_offset(sid, n); }

void H3Connection::stream_finished(StreamImpl &) {}

// ---------------------------------------------------------------- writing

void H3Connection::next_stream_write(StreamWrite &w) {
  last_write_was_h3_ = false;
  last_write_was_raw_ = false;
  // Asking nghttp3 costs a walk over its streams for every packet; when it
  // last had nothing and nothing was fed to it since, it still has nothing.
  if (h3_ != nullptr && !h3_idle_) {
    nghttp3_vec vec[StreamWrite::kMaxVecs];
    int fin = 0;
    std::int64_t sid = -1;
    const nghttp3_ssize n = nghttp3_conn_writev_stream(h3_, &sid, &fin, vec, StreamWrite::kMaxVecs);
    if (n < 0) {
      fatal(kH3InternalError, std::string("nghttp3 write: ") + nghttp3_strerror(static_cast<int>(n)));
      return;
    }
    if (sid < 0) h3_idle_ = true;
    if (sid >= 0 && sid == ctrl_sid_) {
      // Our control stream: extend the SETTINGS frame on its way out.
      std::size_t total = 0;
      for (nghttp3_ssize i = 0; i < n; ++i) {
        ctrl_out_.feed(std::span<const std::uint8_t>(vec[i].base, vec[i].len));
        total += vec[i].len;
      }
      nghttp3_conn_add_write_offset(h3w(), sid, total);
      auto out = ctrl_out_.take();
      if (!out.empty()) {
        ctrl_total_ += out.size();
        ctrl_chunks_.push_back({std::move(out), ctrl_total_});
      }
    } else if (sid >= 0) {
      w.stream_id = sid;
      w.fin = fin != 0;
      w.vec_count = static_cast<std::size_t>(n);
      for (nghttp3_ssize i = 0; i < n; ++i) {
        w.vec[i].base = vec[i].base;
        w.vec[i].len = vec[i].len;
      }
      last_write_was_h3_ = true;
      return;
    }
  }
  if (ctrl_sent_ < ctrl_total_) {
    w.stream_id = ctrl_sid_;
    w.fin = false;
    w.vec_count = 0;
    for (const auto &c : ctrl_chunks_) {
      const std::uint64_t begin = c.end - c.data.size();
      if (c.end <= ctrl_sent_) continue;
      const std::uint64_t skip = ctrl_sent_ > begin ? ctrl_sent_ - begin : 0;
      w.vec[w.vec_count].base = const_cast<std::uint8_t *>(c.data.data() + skip);
      w.vec[w.vec_count].len = c.data.size() - skip;
      if (++w.vec_count == StreamWrite::kMaxVecs) break;
    }
    return;
  }
  if (!raw_.empty() && raw_.fill(w)) {
    last_write_was_raw_ = true;
    return;
  }
  while (!send_queue_.empty()) {
    const std::int64_t sid = send_queue_.front();
    auto it = wt_streams_.find(sid);
    if (it == wt_streams_.end() || !it->second->has_data_to_send()) {
      if (it != wt_streams_.end()) it->second->in_send_queue = false;
      send_queue_.pop_front();
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
  // Round robin: the stream goes to the back once it had its turn.
  if (!send_queue_.empty() && send_queue_.front() == sid) {
    send_queue_.pop_front();
    if (it->second->has_data_to_send())
      send_queue_.push_back(sid);
    else
      it->second->in_send_queue = false;
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
    if (!send_queue_.empty() && send_queue_.front() == sid) send_queue_.pop_front();
    st->in_send_queue = false;
    if (shut)
      st->on_send_shut();
    else
      st->on_blocked();
  }
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
    ctrl_acked_ += len;
    while (!ctrl_chunks_.empty() && ctrl_chunks_.front().end <= ctrl_acked_) ctrl_chunks_.pop_front();
    const std::uint64_t h3_acked = ctrl_out_.nghttp3_offset_for_wire_acked(ctrl_acked_);
    if (h3_acked > ctrl_h3_acked_) {
      nghttp3_conn_add_ack_offset(h3w(), sid, h3_acked - ctrl_h3_acked_);
      ctrl_h3_acked_ = h3_acked;
    }
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
  owner_.on_activity();
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

void H3Connection::on_stop_sending(std::int64_t, std::uint64_t) {
  // ngtcp2 1.11 calls this when WE stop reading a stream (our own
  // shutdown_stream_read), never for a peer's STOP_SENDING (docs/protocol.md,
  // "STOP_SENDING"). Whoever stopped reading already did what it needed; our
  // write side stays open: RFC 9114 4.1 lets a server stop reading a request
  // and still send its whole response (the 431 of an oversized request).
}

// ---------------------------------------------------------------- datagrams

void H3Connection::on_datagram(const std::uint8_t *data, std::size_t len) {
  owner_.on_activity();
  const auto d = decode_datagram_prefix(std::span<const std::uint8_t>(data, len));
  if (!d) {
    // RFC 9297 2.1: a payload too short for the Quarter Stream ID, or one
    // above 2^60-1, is a connection error of type H3_DATAGRAM_ERROR.
    ++dgram_dropped_;
    fatal(kH3DatagramError, len == 0 ? "empty datagram" : "malformed datagram quarter stream id");
    return;
  }
  const auto [session_id, prefix] = *d;
  const std::span<const std::uint8_t> payload(data + prefix, len - prefix);
  if (tunnel_datagram(session_id, payload)) return;
  auto it = sessions_.find(session_id);
  if (it != sessions_.end()) {
    auto s = it->second;
    if (s->is_closed()) {
      ++dgram_dropped_;
      return;
    }
    if (s->state() != SessionState::connecting) {
      wt_bytes_received += payload.size();
      s->on_datagram_payload(payload);
      return;
    }
  } else if (session_gone(session_id)) {
    ++dgram_dropped_;
    return;
  }
  auto eit = early_dgrams_.find(session_id);
  if (eit == early_dgrams_.end()) {
    // Bounded twice: datagrams per pending session and pending sessions.
    if (early_dgrams_.size() >= cfg_.max_sessions_per_connection) {
      ++dgram_dropped_;
      return;
    }
    eit = early_dgrams_.emplace(session_id, EarlyDatagrams{}).first;
    eit->second.since_ns = now_ns();
    note_early_arrival();
  }
  if (eit->second.queue.size() >= cfg_.max_pending_datagrams) {
    ++eit->second.dropped;
    ++dgram_dropped_;
    return;
  }
  eit->second.queue.emplace_back(payload.begin(), payload.end());
}

std::size_t H3Connection::max_datagram_payload(const SessionImpl &s) const {
  if (quic_ == nullptr) return 0;
  // RFC 9297 2.1.1: no DATAGRAM frames until SETTINGS_H3_DATAGRAM=1 was received.
  if (!peer_ctrl_.settings().h3_datagram) return 0;
  const std::size_t q = quic_->max_datagram_payload();
  std::uint8_t tmp[8];
  const std::size_t prefix = encode_datagram_prefix(s.id(), tmp);
  return q > prefix ? std::min(q - prefix, kDgramSlot - prefix) : 0;
}

Error H3Connection::send_datagram(SessionImpl &s, std::span<const std::uint8_t> payload) {
  owner_.on_activity();
  const std::size_t slots = std::max<std::size_t>(1, cfg_.datagram_send_queue);
  if (dgram_buf_.empty()) {
    dgram_buf_.resize(slots * kDgramSlot);
    dgram_len_.resize(slots);
  }
  if (dgram_count_ == slots) {
    ++dgram_dropped_;
    return {Errc::flow_control, "datagram send queue full"};
  }
  const std::size_t slot = (dgram_head_ + dgram_count_) % slots;
  std::uint8_t *p = dgram_buf_.data() + slot * kDgramSlot;
  const std::size_t prefix = encode_datagram_prefix(s.id(), p);
  std::memcpy(p + prefix, payload.data(), payload.size());
  dgram_len_[slot] = prefix + payload.size();
  ++dgram_count_;
  wt_bytes_sent += payload.size();
  quic_->schedule_write();
  return {};
}

const ngtcp2_vec *H3Connection::next_datagram() {
  if (dgram_count_ == 0) return nullptr;
  dgram_vec_.base = dgram_buf_.data() + dgram_head_ * kDgramSlot;
  dgram_vec_.len = dgram_len_[dgram_head_];
  return &dgram_vec_;
}

void H3Connection::on_datagram_written(bool sent) {
  if (dgram_count_ == 0) return;
  if (!sent) ++dgram_dropped_;
  dgram_head_ = (dgram_head_ + 1) % dgram_len_.size();
  --dgram_count_;
}

// ---------------------------------------------------------------- closing

void H3Connection::on_quic_closed(const Error &err) {
  if (closed_) return;
  closed_ = true;
  const Error why = err ? err : Error(Errc::connection, "connection closed");
  close_all_tunnels(why);
  auto streams = std::move(wt_streams_);
  wt_streams_.clear();
  for (auto &[sid, st] : streams) st->on_quic_closed();
  auto all = std::move(sessions_);
  sessions_.clear();
  for (auto &[id, s] : all) s->fail(why);
  auto opens = std::move(open_queue_);
  open_queue_.clear();
  for (auto &o : opens) defer([cb = std::move(o.cb), why] { cb(why, -1); });
  auto pend = std::move(pending_connects_);
  pending_connects_.clear();
  for (auto &p : pend) defer([cb = std::move(p.cb), why] { cb(why, nullptr); });
  requests_.clear();
  early_streams_.clear();
  early_dgrams_.clear();
  owner_.on_transport_closed(err);
}

}  // namespace uvwt::detail
