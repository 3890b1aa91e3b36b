// The sessions on a connection: opening (client), accepting (server,
// through the server's hooks) and looking them up.

#include "connection/connection_impl.hpp"

#include "connection/connect_headers.hpp"
#include "session/session_impl.hpp"

namespace uvwt::detail {

namespace {
// The public view of a request the HTTP/3 layer parsed.
SessionRequest to_session_request(const ConnectRequest &c) {
  SessionRequest r;
  r.path = c.path;
  r.query = c.query;
  r.authority = c.authority;
  r.origin = c.origin;
  r.headers = c.headers;
  r.offered_protocols = c.offered_protocols;
  r.remote_address = c.remote_address;
  r.client_certificate_sha256 = c.client_certificate_sha256;
  return r;
}
}  // namespace

ConnectDecision ConnectionImpl::on_session_request(const ConnectRequest &request) {
  SessionRequest req = to_session_request(request);
  if (on_session_request_) {
    // A copy, reported on a later turn (never from inside nghttp3); it
    // precedes the on_session() of the same request, which is queued later.
    auto self = shared_from_this();
    deferred_->post([self, req] {
      if (self->on_session_request_) self->on_session_request_(req);
    });
  }
  if (hooks_ == nullptr) return ConnectDecision::reject(404);
  Server::SessionHandler handler;
  AcceptDecision d = hooks_->decide(req, handler);
  ConnectDecision out;
  out.status = d.status;
  out.protocol = std::move(d.protocol);
  out.headers = std::move(d.headers);
  if (!out.accepted()) return out;
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  out.on_accepted = [weak, handler = std::move(handler), req = std::move(req)](const std::shared_ptr<SessionImpl> &s) {
    auto self = weak.lock();
    if (!self) return;
    if (self->hooks_ != nullptr) self->hooks_->session_accepted(s, handler, req);
    if (self->on_session_) self->on_session_(s);
  };
  return out;
}

void ConnectionImpl::on_session_accepted(const std::shared_ptr<SessionImpl> &s, ConnectDecision &decision) {
  auto self = shared_from_this();
  resolve_waiters(session_waiters_, Error());
  // The handler and the event run on a later turn, never from inside nghttp3.
  deferred_->post([self, s, accepted = std::move(decision.on_accepted)] {
    if (accepted) accepted(s);
  });
}

void ConnectionImpl::open_session(const std::string &path, const Headers &headers, SessionCallback cb) {
  if (!client_) {
    deferred_->post([cb = std::move(cb)] { cb(Error(Errc::configuration, "only clients open sessions"), nullptr); });
    return;
  }
  if (state_ != ConnectionState::connecting && state_ != ConnectionState::connected) {
    deferred_->post([cb = std::move(cb)] { cb(Error(Errc::connection, "connection is not open"), nullptr); });
    return;
  }
  const auto &cc = std::get<ClientConfig>(cfg_);
  std::string authority;
  Headers own;
  for (const auto &h : headers) {
    if (h.first == ":authority")
      authority = h.second;
    else
      own.push_back(h);
  }
  // The client's headers go on every CONNECT, whoever opens the session
  // (merging again what Client::connect already merged changes nothing).
  Headers hs;
  if (Error e = merge_connect_headers(connect_user_agent(cc), cc.headers, {}, own, hs)) {
    deferred_->post([cb = std::move(cb), e] { cb(e, nullptr); });
    return;
  }
  if (authority.empty() && quic_) authority = quic_->remote_addr().to_string();
  auto self = shared_from_this();
  h3_->open_session(
      authority, path, hs, cc.protocols,
      [self, cb = std::move(cb), max_streams = cc.max_streams](const Error &err, std::shared_ptr<Session> s) {
        // Every client session, from Client or Connection::create_client.
        if (auto impl = std::dynamic_pointer_cast<SessionImpl>(s)) impl->set_max_local_streams(max_streams);
        if (s) {
          self->resolve_waiters(self->session_waiters_, Error());
        } else {
          // Refused, reset or closed before it was ready: a waiter learns it
          // now rather than at its timeout (the reference fails it at once).
          const Error why = err ? err : Error(Errc::session, "session ended before it was ready");
          self->deferred_->post([self, why] { self->resolve_waiters(self->session_waiters_, why); });
        }
        cb(err, std::move(s));
      });
}

std::vector<SessionInfo> ConnectionImpl::get_all_sessions() const {
  std::vector<SessionInfo> v;
  if (h3_)
    for (const auto &s : h3_->sessions()) v.push_back(s->info());
  return v;
}

std::optional<SessionId> ConnectionImpl::get_ready_session_id() const {
  if (!h3_) return std::nullopt;
  for (const auto &s : h3_->sessions())
    if (s->is_ready()) return s->id();
  return std::nullopt;
}

std::optional<SessionInfo> ConnectionImpl::get_session_info(SessionId id) const {
  if (!h3_) return std::nullopt;
  if (auto s = h3_->session(id)) return s->info();
  return std::nullopt;
}

std::shared_ptr<Session> ConnectionImpl::get_session(SessionId id) const { return h3_ ? h3_->session(id) : nullptr; }

std::vector<std::shared_ptr<Session>> ConnectionImpl::sessions() const {
  std::vector<std::shared_ptr<Session>> v;
  if (h3_)
    for (const auto &s : h3_->sessions()) v.push_back(s);
  return v;
}

std::size_t ConnectionImpl::session_count() const { return h3_ ? h3_->sessions().size() : 0; }

PeerWebTransportSettings ConnectionImpl::peer_settings() const {
  PeerWebTransportSettings p;
  if (!h3_) return p;
  const auto &ps = h3_->peer_settings();
  p.received = ps.received;
  p.connect_protocol = ps.enable_connect_protocol;
  p.h3_datagram = ps.h3_datagram;
  p.dialect = dialect_name(h3_->dialect());
  return p;
}

bool ConnectionImpl::goaway_received() const { return h3_ && h3_->goaway_received() != 0; }

std::uint64_t ConnectionImpl::datagrams_dropped() const { return h3_ ? h3_->datagrams_dropped() : 0; }

}  // namespace uvwt::detail
