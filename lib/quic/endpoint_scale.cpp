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

void Endpoint::retire_sockets_except(std::span<const SockAddr> keep) {
  auto kept = [&keep](const UdpSocket &s) { return std::find(keep.begin(), keep.end(), s.local_addr()) != keep.end(); };
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (kept(**it)) {
      ++it;
      continue;
    }
    UdpSocket *sock = it->get();
    // Held bytes for the old path would only reach a peer that has moved on.
    std::erase_if(pending_, [this, sock](const Pending &p) {
      if (p.sock != sock) return false;
      held_bytes_ -= p.data.size();
      held_packets_ -= p.gso == 0 ? 1 : (p.data.size() + p.gso - 1) / p.gso;
      return true;
    });
    retired_.push_back(std::move(*it));
    it = sockets_.erase(it);
    // Freed on a later turn: not from inside its own close callback.
    sock->close([this, sock, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      tasks_.post([this, sock] { std::erase_if(retired_, [sock](const auto &s) { return s.get() == sock; }); });
    });
  }
}

}  // namespace uvwt::detail
