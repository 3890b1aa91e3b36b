#include "quic/endpoint.hpp"

#include <ngtcp2/ngtcp2_crypto.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>

#include "common/log.hpp"
#include "common/test_hooks.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt::detail {

Endpoint::Endpoint(std::shared_ptr<Deferred> deferred, const TransportConfig &cfg)
    : loop_(deferred->loop()),
      cfg_(cfg),
      deferred_(std::move(deferred)),
      tasks_(deferred_),
      stateless_bucket_(1000, 100) {
  gnutls_rnd(GNUTLS_RND_KEY, secret_.data(), secret_.size());
}

Endpoint::~Endpoint() = default;

void Endpoint::set_static_secret(std::span<const std::uint8_t> key) {
  if (key.empty()) return;
  // Any length the configuration allows becomes a uniform 32-byte key.
  gnutls_hash_fast(GNUTLS_DIG_SHA256, key.data(), key.size(), secret_.data());
}

Error Endpoint::bind(const SockAddr &addr, UdpSocket **out) {
  UdpOptions opts;
  opts.allow_gso = cfg_.allow_gso;
  opts.allow_gro = cfg_.allow_gso;
  opts.reuse_port = worker_.reuse_port;
  Error err;
  auto sock = UdpSocket::open(loop_, addr, opts, err);
  if (!sock) return err;
  if (Error e = join_reuseport_group(*sock)) return e;
  sock->set_receiver(this);
  if (const auto &im = testing::impairment_of(cfg_); im.enabled) sock->set_impairment(im);
  if (out != nullptr) *out = sock.get();
  sockets_.push_back(std::move(sock));
  return {};
}

std::vector<SockAddr> Endpoint::local_addrs() const {
  std::vector<SockAddr> v;
  for (const auto &s : sockets_) v.push_back(s->local_addr());
  return v;
}

void Endpoint::set_impairment(const ImpairmentConfig &cfg) {
  testing::impairment(cfg_) = cfg;
  for (auto &s : sockets_) s->set_impairment(cfg);
}

bool Endpoint::gso() const noexcept {
  return std::any_of(sockets_.begin(), sockets_.end(), [](const auto &s) { return s->gso(); });
}
bool Endpoint::gro() const noexcept {
  return std::any_of(sockets_.begin(), sockets_.end(), [](const auto &s) { return s->gro(); });
}

void Endpoint::register_cid(const ngtcp2_cid &cid, QuicConnection *c) { cids_[CidKey(cid)] = c; }

void Endpoint::unregister_cid(const ngtcp2_cid &cid) { cids_.erase(CidKey(cid)); }

void Endpoint::register_reset_token(const std::uint8_t *token, QuicConnection *c) {
  reset_tokens_[ResetTokenKey(token)] = c;
}

void Endpoint::unregister_reset_token(const std::uint8_t *token, const QuicConnection *c) {
  // Only the owner's entry: two peers could (in theory) hand out equal tokens.
  if (auto it = reset_tokens_.find(ResetTokenKey(token)); it != reset_tokens_.end() && it->second == c)
    reset_tokens_.erase(it);
}

std::uint8_t *Endpoint::tx_buffer(std::size_t size) {
  if (tx_.size() < size) tx_.resize(size);
  return tx_.data();
}

SendStatus Endpoint::send(UdpSocket &sock, const SockAddr &local, const SockAddr &remote, std::uint8_t ecn,
                          const std::uint8_t *data, std::size_t len, std::size_t gso) {
  if (!pending_.empty()) {
    // Keep order behind what the kernel already refused.
    hold(sock, local, remote, ecn, gso, data, len);
    return SendStatus::would_block;
  }
  const auto r = sock.send(remote, &local, ecn, std::span<const std::uint8_t>(data, len), gso);
  UVWT_TRACE("send %zu bytes (gso %zu) %s -> %s: status %d", len, gso, local.to_string().c_str(),
             remote.to_string().c_str(), static_cast<int>(r.status));
  if (r.status == SendResult::Status::would_block) {
    hold(sock, local, remote, ecn, gso, data + r.bytes_sent, len - r.bytes_sent);
    ++counters_.sends_blocked;
    sock.want_writable(true);
    return SendStatus::would_block;
  }
  if (r.status == SendResult::Status::error) {
    UVWT_DEBUG("sendmsg to %s failed: %s", remote.to_string().c_str(), std::strerror(r.error));
    return SendStatus::error;
  }
  return SendStatus::ok;
}

namespace {
std::size_t packets_in(std::size_t len, std::size_t gso) noexcept { return gso == 0 ? 1 : (len + gso - 1) / gso; }
}  // namespace

bool Endpoint::hold(UdpSocket &sock, const SockAddr &local, const SockAddr &remote, std::uint8_t ecn, std::size_t gso,
                    const std::uint8_t *data, std::size_t len) {
  const std::size_t packets = packets_in(len, gso);
  if (held_bytes_ + len > kMaxHeldBytes || held_packets_ + packets > kMaxHeldPackets) {
    counters_.held_dropped_packets += packets;
    counters_.held_dropped_bytes += len;
    return false;
  }
  held_bytes_ += len;
  held_packets_ += packets;
  pending_.push_back({&sock, local, remote, ecn, gso, std::vector<std::uint8_t>(data, data + len)});
  return true;
}

void Endpoint::wait_writable(QuicConnection *c) {
  if (std::find(waiting_.begin(), waiting_.end(), c) == waiting_.end()) waiting_.push_back(c);
}

void Endpoint::forget(QuicConnection *c) {
  std::erase(waiting_, c);
  std::erase(touched_, c);
}

void Endpoint::on_writable(UdpSocket &sock) {
  while (!pending_.empty()) {
    auto &p = pending_.front();
    const auto r = p.sock->send(p.remote, &p.local, p.ecn, p.data, p.gso);
    if (r.status == SendResult::Status::would_block) {  // still full: keep waiting
      const std::size_t before = packets_in(p.data.size(), p.gso);
      p.data.erase(p.data.begin(), p.data.begin() + static_cast<std::ptrdiff_t>(r.bytes_sent));
      held_bytes_ -= r.bytes_sent;
      held_packets_ -= before - packets_in(p.data.size(), p.gso);
      p.sock->want_writable(true);
      return;
    }
    held_bytes_ -= p.data.size();
    held_packets_ -= packets_in(p.data.size(), p.gso);
    pending_.erase(pending_.begin());
  }
  sock.want_writable(false);
  auto waiting = std::move(waiting_);
  waiting_.clear();
  counters_.writable_wakeups += waiting.size();
  for (auto *c : waiting) c->schedule_write();
}

void Endpoint::on_packets(UdpSocket &sock, std::span<const RecvPacket> pkts) {
  UVWT_TRACE("%zu packets on %s", pkts.size(), sock.local_addr().to_string().c_str());
  stateless_this_tick_ = 0;
  for (const auto &pkt : pkts) handle_packet(&sock, pkt);
  flush_touched();
}

void Endpoint::deliver(const RecvPacket &pkt) {
  handle_packet(nullptr, pkt);
  if (flush_posted_ || touched_.empty()) return;
  flush_posted_ = true;
  tasks_.post([this] {
    flush_posted_ = false;
    flush_touched();
  });
}

void Endpoint::flush_touched() {
  // Connections are destroyed only on a later loop turn, so every pointer
  // collected during this batch is still valid here.
  for (std::size_t i = 0; i < touched_.size(); ++i) {
    QuicConnection *c = touched_[i];
    c->in_touched_list = false;
    c->write_now();
  }
  touched_.clear();
}

void Endpoint::touched(QuicConnection *c) {
  if (c->in_touched_list) return;
  c->in_touched_list = true;
  touched_.push_back(c);
}

void Endpoint::handle_packet(UdpSocket *sock, const RecvPacket &pkt) {
  ngtcp2_version_cid vc;
  const int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt.data.data(), pkt.data.size(), cids_made_->length());
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (acceptor_ != nullptr && sock != nullptr) send_version_negotiation(*sock, pkt, vc);
    return;
  }
  if (rv != 0) return;
  if (auto it = cids_.find(CidKey(vc.dcid, vc.dcidlen)); it != cids_.end()) {
    it->second->on_packet(pkt);
    return;
  }
  // A stateless reset carries random bytes where the connection id would be:
  // its last 16 bytes (a token the peer gave us) say which connection it ends,
  // and ngtcp2 then verifies it. Never answer a reset with a reset.
  if (vc.version == 0 && pkt.data.size() >= 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN) {
    const std::uint8_t *tail = pkt.data.data() + pkt.data.size() - NGTCP2_STATELESS_RESET_TOKENLEN;
    if (auto it = reset_tokens_.find(ResetTokenKey(tail)); it != reset_tokens_.end()) {
      it->second->on_packet(pkt);
      return;
    }
  }
  if (acceptor_ == nullptr || sock == nullptr) {
    UVWT_TRACE("packet for unknown connection id from %s dropped", pkt.remote->to_string().c_str());
    return;
  }
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, pkt.data.data(), pkt.data.size()) != 0) {
    // A short-header packet for a connection we lost: tell the peer at once.
    if (vc.version == 0) send_stateless_reset(*sock, pkt, vc);
    return;
  }
  admit_initial(*sock, pkt, hd);
}

void Endpoint::send_version_negotiation(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_version_cid &vc) {
  if (!stateless_allowed()) return;
  std::uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  std::uint8_t unused;
  gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1);
  const std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
  const ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, sizeof buf, unused, vc.scid, vc.scidlen, vc.dcid,
                                                              vc.dcidlen, versions, 1);
  if (n > 0 && sock.send(*pkt.remote, pkt.local, 0, std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)),
                         static_cast<std::size_t>(n))
                   .ok())
    ++counters_.version_negotiations_sent;
}

void Endpoint::send_stateless_reset(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_version_cid &vc) {
  // Never answer with something as large as the trigger (RFC 9000 10.3.3),
  // and bound the work a flood of garbage can cause.
  if (pkt.data.size() < 41 || !stateless_allowed()) return;
  // The token is the keyed hash of the id the peer addressed us with: the
  // same hash that made the token we gave it for that id (handshake SCID or
  // NEW_CONNECTION_ID), so the peer recognises the reset.
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
  std::uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  if (ngtcp2_crypto_generate_stateless_reset_token(token, secret_.data(), secret_.size(), &cid) != 0) return;
  std::uint8_t rand_bytes[64];
  // One byte shorter than the trigger at most, so two endpoints that both
  // lost state cannot keep resetting each other.
  const std::size_t randlen = std::min<std::size_t>(pkt.data.size() - 2 - NGTCP2_STATELESS_RESET_TOKENLEN, 40);
  gnutls_rnd(GNUTLS_RND_NONCE, rand_bytes, randlen);
  std::uint8_t buf[128];
  const ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof buf, token, rand_bytes, randlen);
  if (n <= 0) return;
  const auto r = sock.send(*pkt.remote, pkt.local, 0, std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)),
                           static_cast<std::size_t>(n));
  if (r.ok()) ++counters_.stateless_resets_sent;
}

void Endpoint::refuse_initial(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd, const char *reason,
                              std::uint64_t error_code) {
  // Only an Initial carries the keys the client can read the close with.
  if (hd.type != NGTCP2_PKT_INITIAL || !stateless_allowed()) return;
  std::uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  const std::size_t reasonlen = reason != nullptr ? std::strlen(reason) : 0;
  const ngtcp2_ssize n =
      ngtcp2_crypto_write_connection_close(buf, sizeof buf, hd.version, &hd.scid, &hd.dcid, error_code,
                                           reinterpret_cast<const std::uint8_t *>(reason), reasonlen);
  if (n <= 0) return;
  const auto r = sock.send(*pkt.remote, pkt.local, 0, std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)),
                           static_cast<std::size_t>(n));
  if (r.ok() && error_code == NGTCP2_CONNECTION_REFUSED) ++counters_.connections_refused;
}

void Endpoint::on_error(UdpSocket &, const SockAddr &remote, int errno_value) {
  // ICMP errors carry no connection id: tell every connection to that peer.
  std::vector<QuicConnection *> hit;
  for (const auto &[cid, c] : cids_)
    if (c->remote_addr() == remote && std::find(hit.begin(), hit.end(), c) == hit.end()) hit.push_back(c);
  for (auto *c : hit) c->on_socket_error(errno_value);
}

void Endpoint::close(std::function<void()> cb) {
  auto remaining = std::make_shared<std::size_t>(sockets_.size());
  auto done = std::make_shared<std::function<void()>>(std::move(cb));
  if (sockets_.empty()) {
    defer([done] {
      if (*done) (*done)();
    });
    return;
  }
  for (auto &s : sockets_) {
    s->close([remaining, done] {
      if (--*remaining == 0 && *done) (*done)();
    });
  }
}

}  // namespace uvwt::detail
