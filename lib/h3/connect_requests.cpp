// Extended CONNECT for WebTransport (draft-ietf-webtrans-http3 section 3):
// the client's request, the server's decision and answer.
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
  submit_connect(sid, d, authority, path, headers, protocols);
}

void H3Connection::submit_connect(std::int64_t sid, Dialect d, const std::string &authority, const std::string &path,
                                  const Headers &headers, const std::vector<std::string> &protocols) {
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
  const int rv = nghttp3_conn_submit_request(h3w(), sid, nva.data(), nva.size(), &data_reader(), nullptr);
  if (rv != 0) {
    if (auto s = session(static_cast<SessionId>(sid)))
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
  s->fail(Error::from_http_status(e, msg, status));
  quic_->shutdown_stream_write(sid, kH3NoError);
}

void H3Connection::submit_simple_response(std::int64_t sid, int status, const ConnectDecision *decision) {
  const std::string st = std::to_string(status);
  std::vector<nghttp3_nv> nva;
  nva.push_back(make_nv(":status", st));
  if (decision != nullptr)
    for (const auto &[k, v] : decision->headers) nva.push_back(make_nv(k, v));
  nghttp3_conn_submit_response(h3w(), sid, nva.data(), nva.size(), nullptr);
}

ConnectRequest H3Connection::connect_request(const RequestState &rs) const {
  ConnectRequest req;
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
  return req;
}

void H3Connection::refuse_connect(std::int64_t sid, int status, const ConnectDecision *decision) {
  submit_simple_response(sid, status, decision);
  // Streams and datagrams that raced ahead of the CONNECT have no session to wait for.
  remember_gone(static_cast<SessionId>(sid));
  drop_early(static_cast<SessionId>(sid), kWtSessionGone);
}

void H3Connection::handle_request_headers(std::int64_t sid, RequestState &rs) {
  owner_->on_activity();
  if (rs.method != "CONNECT" || (rs.protocol != "webtransport" && rs.protocol != "webtransport-h3")) {
    // Not a WebTransport request: this endpoint serves nothing else.
    refuse_connect(sid, rs.method == "CONNECT" ? 400 : 404, nullptr);
    return;
  }
  if (rs.scheme != "https") {
    // draft-ietf-webtrans-http3 3.2 (-13..-16): ":scheme field MUST be
    // https"; a well-formed request asking for something else: 400 (RFC 9110 15.5.1).
    owner_->on_error_counted();
    refuse_connect(sid, 400, nullptr);
    return;
  }
  if (!settings_known_for(sid, rs)) return;  // answered once they arrive (or refused in time)
  bool draft02 = false;
  for (const auto &[k, v] : rs.headers)
    if (k == "sec-webtransport-http3-draft02") draft02 = true;
  if (refuse_by_settings(sid, rs, draft02)) return;
  // The client's SETTINGS decide, never the draft-02 header: Chromium sends
  // it also after its SETTINGS chose draft-07 (docs/protocol.md, "Choosing the dialect").
  const Dialect dialect = negotiate_request_dialect(ctrl_out_.local_settings(), peer_ctrl_.settings(), rs.protocol);
  if (dialect == Dialect::none) {
    // Neither side's SETTINGS allow a dialect with this :protocol token.
    owner_->on_error_counted();
    refuse_connect(sid, 400, nullptr);
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
  ConnectDecision decision =
      goaway_sent_ ? ConnectDecision::reject(429) : owner_->on_session_request(connect_request(rs));
  if (!decision.accepted()) {
    refuse_connect(sid, decision.status, &decision);
    return;
  }
  accept_session(sid, rs, dialect, decision);
}

void H3Connection::accept_session(std::int64_t sid, RequestState &rs, Dialect dialect, ConnectDecision &decision) {
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
  if (const int rv = nghttp3_conn_submit_response(h3w(), sid, nva.data(), nva.size(), &data_reader()); rv != 0) {
    s->fail(Error(Errc::protocol, std::string("cannot submit response: ") + nghttp3_strerror(rv)));
    return;
  }
  s->set_response_submitted();
  s->set_ready(decision.protocol);
  owner_->on_session_accepted(s, decision);
  release_early(s->id());
  // What the CONNECT stream carried while it waited for the client's SETTINGS.
  if (!rs.held_body.empty()) s->on_capsule_data(rs.held_body.data(), rs.held_body.size());
  rs.held_body = {};
  if (rs.held_fin) s->on_connect_stream_fin();
}

}  // namespace uvwt::detail
