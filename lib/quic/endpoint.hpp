#pragma once

#include <ngtcp2/ngtcp2.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include <uvwt/config.hpp>
#include <uvwt/error.hpp>

#include "common/callback_scope.hpp"
#include "common/deferred.hpp"
#include "quic/packet_path.hpp"
#include "quic/quic_lb_cid.hpp"
#include "quic/socket_addr.hpp"
#include "quic/connection_id.hpp"
#include "quic/handshake_limits.hpp"
#include "quic/token_bucket.hpp"
#include "quic/udp_socket.hpp"

namespace uvwt::detail {

class QuicConnection;

// Connection ID as a fixed-size map key (no allocation per lookup).
struct CidKey {
  std::uint8_t len = 0;
  std::array<std::uint8_t, NGTCP2_MAX_CIDLEN> data{};
  CidKey() = default;
  CidKey(const std::uint8_t *p, std::size_t n) : len(static_cast<std::uint8_t>(n)) { std::memcpy(data.data(), p, n); }
  explicit CidKey(const ngtcp2_cid &c) : CidKey(c.data, c.datalen) {}
  bool operator==(const CidKey &o) const noexcept {
    return len == o.len && std::memcmp(data.data(), o.data.data(), len) == 0;
  }
};
struct CidHash {
  std::size_t operator()(const CidKey &k) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a: ids are random already
    for (std::size_t i = 0; i < k.len; ++i) h = (h ^ k.data[i]) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

// A peer's stateless reset token as a map key.
struct ResetTokenKey {
  std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> data{};
  explicit ResetTokenKey(const std::uint8_t *p) { std::memcpy(data.data(), p, data.size()); }
  bool operator==(const ResetTokenKey &o) const noexcept { return data == o.data; }
};
struct ResetTokenHash {
  std::size_t operator()(const ResetTokenKey &k) const noexcept {
    std::size_t h;  // tokens are keyed hashes already: any 8 bytes will do
    std::memcpy(&h, k.data.data(), sizeof h);
    return h;
  }
};

// What the endpoint answered on its own, and how often socket backpressure
// parked and woke connections.
struct EndpointCounters {
  std::uint64_t stateless_resets_sent = 0;
  std::uint64_t connections_refused = 0;  // Initials answered with CONNECTION_REFUSED
  std::uint64_t retries_sent = 0;
  std::uint64_t version_negotiations_sent = 0;
  std::uint64_t invalid_tokens = 0;          // Initials with a forged or stale Retry token
  std::uint64_t expired_tokens = 0;          // of which ours but expired: closed with INVALID_TOKEN
  std::uint64_t handshakes_refused = 0;      // validated Initials beyond the handshake limits
  std::uint64_t stateless_rate_limited = 0;  // resets, refusals and version negotiations not sent
  std::uint64_t sends_blocked = 0;           // sends that met a full socket (EAGAIN)
  std::uint64_t held_dropped_packets = 0;    // refused sends dropped: the held queue was full
  std::uint64_t held_dropped_bytes = 0;
  std::uint64_t writable_wakeups = 0;  // connections resumed because the socket drained
};

// Decides what to do with an Initial packet for an unknown connection.
class Acceptor {
 public:
  virtual ~Acceptor() = default;
  // Creates and registers a connection for this Initial, or returns false to
  // drop it. `original_dcid`: the client came back with our Retry token,
  // which named the connection id of its first Initial.
  virtual bool accept_initial(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                              const ngtcp2_cid *original_dcid) = 0;
};

// The UDP side of QUIC: sockets on the user's loop, the connection-ID table,
// the shared transmit buffer and socket backpressure. A client endpoint has
// one socket and one connection; a server endpoint many of both.
class Endpoint : public UdpReceiver {
 public:
  // Tasks run on `deferred`, the queue of the object that owns this endpoint
  // (a Server's, a Connection's), on that queue's loop.
  Endpoint(std::shared_ptr<Deferred> deferred, const TransportConfig &cfg);
  ~Endpoint();
  Endpoint(const Endpoint &) = delete;
  Endpoint &operator=(const Endpoint &) = delete;

  Error bind(const SockAddr &addr, UdpSocket **out = nullptr);
  void set_acceptor(Acceptor *a) noexcept { acceptor_ = a; }
  [[nodiscard]] std::vector<SockAddr> local_addrs() const;
  [[nodiscard]] UdpSocket *first_socket() const noexcept { return sockets_.empty() ? nullptr : sockets_.front().get(); }
  [[nodiscard]] uv_loop_t *loop() const noexcept { return loop_; }
  [[nodiscard]] const std::array<std::uint8_t, 32> &static_secret() const noexcept { return secret_; }
  // Replaces the random per-endpoint secret that keys stateless reset and
  // Retry tokens, so that a restarted server can still reset the connections
  // of its previous run. Call before any connection exists.
  void set_static_secret(std::span<const std::uint8_t> key);
  // Server side: handshake limits and the rate of stateless answers
  // (endpoint_admission.cpp).
  void set_admission(const HandshakeLimitsConfig &limits, std::uint32_t stateless_per_second,
                     std::uint32_t stateless_burst);
  [[nodiscard]] HandshakeLimits &handshake_limits() noexcept { return limits_; }
  // Connections post their own tasks through a DeferredTasks on this queue.
  void defer(std::function<void()> fn) { deferred_->post(std::move(fn)); }
  // Server side, before bind(): the connection ids it issues (QUIC-LB,
  // worker byte) and its place in a SO_REUSEPORT group (endpoint_scale.cpp).
  void set_cid_factory(std::shared_ptr<const CidFactory> f);
  void set_worker(const WorkerConfig &w) noexcept { worker_ = w; }
  void make_cid(ngtcp2_cid &out) const { cids_made_->make(out); }
  // Client side: the socket a migrated connection sends from.
  [[nodiscard]] UdpSocket *socket_for(const SockAddr &local) const noexcept;
  // Client side, once a migration's path is settled: closes every socket but
  // the ones bound to `keep` (the old port would otherwise stay bound for the
  // connection's life). Bytes held for a closed socket are dropped.
  void retire_sockets_except(std::span<const SockAddr> keep);
  [[nodiscard]] const std::shared_ptr<Deferred> &deferred() const noexcept { return deferred_; }

  void register_cid(const ngtcp2_cid &cid, QuicConnection *c);
  void unregister_cid(const ngtcp2_cid &cid);
  [[nodiscard]] std::size_t connection_ids() const noexcept { return cids_.size(); }
  // Stateless reset tokens the peers gave us, so that a reset (which carries
  // no connection id we know) still reaches the connection it ends.
  void register_reset_token(const std::uint8_t *token, QuicConnection *c);
  void unregister_reset_token(const std::uint8_t *token, const QuicConnection *c);

  // Answers an Initial the server will not accept with CONNECTION_CLOSE
  // (CONNECTION_REFUSED), so the client fails at once instead of timing out.
  void refuse_initial(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd, const char *reason,
                      std::uint64_t error_code = NGTCP2_CONNECTION_REFUSED);

  // Transmit path shared by all connections of this endpoint.
  std::uint8_t *tx_buffer(std::size_t size);
  SendStatus send(UdpSocket &sock, const SockAddr &local, const SockAddr &remote, std::uint8_t ecn,
                  const std::uint8_t *data, std::size_t len, std::size_t gso);
  [[nodiscard]] bool blocked() const noexcept { return !pending_.empty(); }
  // The bound on bytes the kernel refused and the endpoint holds: past it a
  // send is dropped (ngtcp2 counted it sent, so loss recovery resends it).
  // Each parked connection adds at most one batch; this caps many of them.
  static constexpr std::size_t kMaxHeldBytes = 4u << 20;
  static constexpr std::size_t kMaxHeldPackets = 4096;
  [[nodiscard]] std::size_t held_bytes() const noexcept { return held_bytes_; }
  [[nodiscard]] std::size_t held_packets() const noexcept { return held_packets_; }
  void wait_writable(QuicConnection *c);
  [[nodiscard]] bool is_waiting(const QuicConnection *c) const noexcept {
    return std::find(waiting_.begin(), waiting_.end(), c) != waiting_.end();
  }
  [[nodiscard]] const EndpointCounters &counters() const noexcept { return counters_; }
  void forget(QuicConnection *c);  // connection is going away
  // A connection read packets in the current batch: it writes once at the end.
  void touched(QuicConnection *c);

  // Applies impairment settings at runtime (tests toggle blackholes).
  void set_impairment(const ImpairmentConfig &cfg);

  // Packets that came over a path other than a socket (a proxy tunnel): routed
  // by connection id like a socket's, and the connections they touched write
  // once per loop turn rather than once per packet.
  void deliver(const RecvPacket &pkt);

  // Closes every socket; cb once all handles are closed.
  void close(std::function<void()> cb);

  // Socket statistics for the bench and diagnostics.
  [[nodiscard]] bool gso() const noexcept;
  [[nodiscard]] bool gro() const noexcept;

  // UdpReceiver
  void on_packets(UdpSocket &sock, std::span<const RecvPacket> pkts) override;
  void on_error(UdpSocket &sock, const SockAddr &remote, int errno_value) override;
  void on_writable(UdpSocket &sock) override;

 private:
  // sock is null for packets that did not come from a socket (deliver()).
  void handle_packet(UdpSocket *sock, const RecvPacket &pkt);
  void flush_touched();
  void send_version_negotiation(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_version_cid &vc);
  void send_stateless_reset(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_version_cid &vc);

  // endpoint_admission.cpp: Retry, token checks and the handshake limits.
  void admit_initial(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd);
  void send_retry(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd);
  // Keeps refused bytes for on_writable, within kMaxHeld*; false: dropped.
  bool hold(UdpSocket &sock, const SockAddr &local, const SockAddr &remote, std::uint8_t ecn, std::size_t gso,
            const std::uint8_t *data, std::size_t len);
  // An Initial whose Retry token failed verification with `verdict`.
  void refuse_bad_token(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd, int verdict);
  bool stateless_allowed();

  Error join_reuseport_group(UdpSocket &sock);

  uv_loop_t *loop_;
  TransportConfig cfg_;
  std::shared_ptr<const CidFactory> cids_made_ = std::make_shared<CidFactory>();
  WorkerConfig worker_;
  std::shared_ptr<Deferred> deferred_;
  std::vector<std::unique_ptr<UdpSocket>> sockets_;
  // Closing after retire_sockets_except(); freed once their handles closed.
  std::vector<std::unique_ptr<UdpSocket>> retired_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // retired sockets' close callbacks check it
  std::unordered_map<CidKey, QuicConnection *, CidHash> cids_;
  std::unordered_map<ResetTokenKey, QuicConnection *, ResetTokenHash> reset_tokens_;
  Acceptor *acceptor_ = nullptr;
  std::array<std::uint8_t, 32> secret_{};
  std::vector<std::uint8_t> tx_;
  // Bytes the kernel refused (EAGAIN), sent first once the socket drains.
  struct Pending {
    UdpSocket *sock;
    SockAddr local, remote;
    std::uint8_t ecn;
    std::size_t gso;
    std::vector<std::uint8_t> data;
  };
  std::vector<Pending> pending_;
  std::size_t held_bytes_ = 0, held_packets_ = 0;  // in pending_
  std::vector<QuicConnection *> waiting_;
  std::vector<QuicConnection *> touched_;  // capacity kept across batches
  bool flush_posted_ = false;              // deliver(): one write pass per turn
  DeferredTasks tasks_;                    // the endpoint's own tasks, dropped when it goes
  std::size_t stateless_this_tick_ = 0;    // resets and refusals sent in this receive batch
  HandshakeLimits limits_;
  TokenBucket stateless_bucket_;  // resets, refusals, version negotiation: over time
  EndpointCounters counters_;
};

// The UDP socket path: the endpoint's socket, its held bytes and its
// writable wakeups (what every connection used before paths existed).
class SocketPath final : public PacketPath {
 public:
  SocketPath(Endpoint &ep, UdpSocket &sock) noexcept : ep_(ep), sock_(sock) {}
  SendStatus send(const SockAddr &local, const SockAddr &remote, std::uint8_t ecn, const std::uint8_t *data,
                  std::size_t len, std::size_t gso) override {
    return ep_.send(sock_, local, remote, ecn, data, len, gso);
  }
  [[nodiscard]] bool blocked() const noexcept override { return ep_.blocked(); }
  void wait_writable(QuicConnection *c) override { ep_.wait_writable(c); }

 private:
  Endpoint &ep_;
  UdpSocket &sock_;
};

}  // namespace uvwt::detail
