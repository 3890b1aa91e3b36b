// HTTP/3 connection core: setup, the session table, shutdown and the
// SessionHost calls that only forward to QUIC.
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

H3Connection::H3Connection(H3Owner &owner, std::shared_ptr<Deferred> deferred, bool server, const TransportConfig &cfg,
                           const ServerConfig *server_cfg, Address remote)
    : owner_(&owner),
      deferred_(std::move(deferred)),
      remote_(std::move(remote)),
      server_(server),
      cfg_(cfg),
      server_cfg_(server_cfg),
      dgram_out_(cfg.datagram_send_queue) {}

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

bool H3Connection::fatal(std::uint64_t h3_code, const std::string &why) {
  UVWT_WARN("HTTP/3 error 0x%llx: %s", static_cast<unsigned long long>(h3_code), why.c_str());
  owner_->on_error_counted();
  quic_->set_close_error(Error(Errc::protocol, why, CodeSpace::h3, h3_code));
  quic_->close(h3_code, why);
  return false;
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
  owner_->on_error_counted();
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
  owner_->on_h3_ready();
  auto pending = std::move(pending_connects_);
  pending_connects_.clear();
  for (auto &p : pending) send_connect(p.authority, p.path, p.headers, p.protocols, std::move(p.cb));
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

void H3Connection::reset_stream(std::int64_t sid, std::uint64_t h3_code) { quic_->shutdown_stream_write(sid, h3_code); }

void H3Connection::stop_stream(std::int64_t sid, std::uint64_t h3_code) { quic_->shutdown_stream_read(sid, h3_code); }

void H3Connection::consumed(std::int64_t sid, std::size_t n) { quic_->extend_stream_offset(sid, n); }

void H3Connection::stream_finished(StreamImpl &) {}

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
  owner_->on_transport_closed(err);
}

}  // namespace uvwt::detail
