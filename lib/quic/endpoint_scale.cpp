// The endpoint's part in scaling out (docs/scaling.md): the connection ids
// it issues, its SO_REUSEPORT group, and the sockets of migrated clients.
#include "quic/endpoint.hpp"
#include "quic/reuseport_steering.hpp"

namespace uvwt::detail {

void Endpoint::set_cid_factory(std::shared_ptr<const CidFactory> f) {
  if (f) cids_made_ = std::move(f);
}

Error Endpoint::join_reuseport_group(UdpSocket &sock) {
  if (!worker_.reuse_port || worker_.worker_count < 2) return {};
  // Every worker attaches the same program: the group keeps the last one,
  // and a worker that starts alone still steers.
  return attach_steering(sock.fd(), cids_made_->length(), cids_made_->steering_offset(), worker_.worker_count);
}

UdpSocket *Endpoint::socket_for(const SockAddr &local) const noexcept {
  for (const auto &s : sockets_)
    if (s->local_addr() == local) return s.get();
  return nullptr;
}

}  // namespace uvwt::detail
