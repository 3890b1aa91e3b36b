// Connection migration (RFC 9000 Section 9): the client moving to another
// local port on purpose, and either side following the path ngtcp2 chose
// for each packet (the server after a client's NAT rebinding, Section 9.3).
#include <cstring>

#include "common/clock.hpp"
#include "quic/quic_connection.hpp"
#include "quic/udp_socket.hpp"

namespace uvwt::detail {

namespace {
bool same_addr(const ngtcp2_addr &a, const SockAddr &b) {
  return a.addrlen == b.len && std::memcmp(a.addr, b.sa(), b.len) == 0;
}
}  // namespace

bool QuicConnection::path_differs(const ngtcp2_path &p) const noexcept {
  return !same_addr(p.remote, remote_) || !same_addr(p.local, local_);
}

void QuicConnection::adopt_path(const ngtcp2_path &p) {
  remote_ = SockAddr::from(p.remote.addr, p.remote.addrlen);
  if (same_addr(p.local, local_)) return;
  // Only a client has several sockets; a server's side of the path is fixed.
  const SockAddr local = SockAddr::from(p.local.addr, p.local.addrlen);
  if (UdpSocket *sock = ep_.socket_for(local); sock != nullptr && socket_path_) {
    local_ = local;
    path_ = &socket_path_.emplace(ep_, *sock);
  }
}

Error QuicConnection::migrate(UdpSocket &sock) {
  if (server_ || !socket_path_) return Error(Errc::client, "only a client connection on a socket can migrate");
  if (closed_ || conn_ == nullptr) return Error(Errc::closed, "connection is closed");
  // RFC 9000 9: no migration before the handshake is confirmed (ngtcp2
  // refuses that too, with a less telling error).
  if (ngtcp2_conn_get_handshake_completed(conn_) == 0)
    return Error(Errc::connection, "cannot migrate before the handshake is confirmed");
  const SockAddr local = sock.local_addr();
  ngtcp2_path path{};
  path.local.addr = const_cast<sockaddr *>(local.sa());
  path.local.addrlen = local.len;
  path.remote.addr = const_cast<sockaddr *>(remote_.sa());
  path.remote.addrlen = remote_.len;
  // Immediate: packets go out on the new path at once while ngtcp2 validates
  // it with PATH_CHALLENGE (RFC 9000 9.2), using a fresh connection id of the
  // server's (9.5) so the two paths cannot be linked.
  const int rv = ngtcp2_conn_initiate_immediate_migration(conn_, &path, now_ns());
  if (rv != 0) return Error(Errc::connection, std::string("migration refused: ") + ngtcp2_strerror(rv));
  local_ = local;
  path_ = &socket_path_.emplace(ep_, sock);
  schedule_write();
  return {};
}

int QuicConnection::on_path_validation(ngtcp2_conn *, std::uint32_t, const ngtcp2_path *, const ngtcp2_path *,
                                       ngtcp2_path_validation_result, void *user_data) {
  auto *self = static_cast<QuicConnection *>(user_data);
  // Only a client that migrated owns more than one socket. Success or
  // failure, ngtcp2 has settled on a path: keep its socket and the one we
  // last sent from, close the rest on a later turn (not under read_pkt, and
  // after this turn's packets were written).
  if (self->server_ || !self->socket_path_) return 0;
  self->tasks_.post([self] {
    if (self->closed_ || self->conn_ == nullptr) return;
    const ngtcp2_path *p = ngtcp2_conn_get_path(self->conn_);
    const SockAddr keep[] = {SockAddr::from(p->local.addr, p->local.addrlen), self->local_};
    self->ep_.retire_sockets_except(keep);
  });
  return 0;
}

}  // namespace uvwt::detail
