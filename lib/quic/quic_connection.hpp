#pragma once

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <uvwt/config.hpp>
#include <uvwt/error.hpp>

#include "common/callback_scope.hpp"
#include "quic/endpoint.hpp"
#include "quic/quic_app.hpp"
#include "quic/socket_addr.hpp"

#include "quic/datagram_window.hpp"
#include "quic/handshake_limits.hpp"
#include "quic/precise_timer.hpp"

namespace uvwt::detail {

class Endpoint;
class UdpSocket;
class TlsSession;
class TlsClientContext;
class TlsServerContext;
struct RecvPacket;

// Live transport figures read from ngtcp2 plus our own packet counters.
struct QuicStats {
  std::uint64_t packets_sent = 0;
  std::uint64_t packets_received = 0;
  // Packets declared lost. ngtcp2 >= 1.16 counts every lost packet; older
  // versions only say which packets carried STREAM frames (per stream) or
  // DATAGRAM frames, so there this is the sum of those: ACK-only, PING-only
  // and handshake packets are not seen, and a packet that carried frames of
  // several streams (or streams and a datagram) counts once for each.
  std::uint64_t packets_lost = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  // UDP payload bytes of every packet handed to ngtcp2 (bytes_received above
  // counts stream payload only): W3C WebTransportConnectionStats.bytesReceived.
  std::uint64_t packet_bytes_received = 0;
  double smoothed_rtt = 0, min_rtt = 0, latest_rtt = 0;  // seconds
  double rtt_variation = 0;                              // seconds, RFC 9002 5.3 rttvar
  bool rtt_sampled = false;                              // false until the first RTT sample (min_rtt not yet known)
  std::uint64_t cwnd = 0, bytes_in_flight = 0;
  // ngtcp2 has no count of packets in flight: bytes in flight over the
  // path's largest packet, rounded up, which is a lower bound on the count
  // (zero exactly when nothing is in flight).
  std::uint64_t packets_in_flight = 0;
  std::uint64_t datagrams_lost = 0;  // packets with DATAGRAM frames declared lost
  std::uint64_t pings_sent = 0;
};

// One QUIC connection on ngtcp2, driven by the endpoint's socket and one
// timer on the user's loop. Knows nothing of HTTP/3: everything above the
// transport goes through QuicApp.
class QuicConnection {
 public:
  static std::unique_ptr<QuicConnection> create_client(Endpoint &ep, UdpSocket &sock, const SockAddr &local,
                                                       const SockAddr &remote, TlsClientContext &tls,
                                                       const std::string &server_name, const TransportConfig &cfg,
                                                       QuicApp &app, Error &err);
  // A client whose packets travel over `path` instead of a socket (a proxy
  // tunnel); received packets reach it through Endpoint::deliver. The path
  // must outlive the connection.
  static std::unique_ptr<QuicConnection> create_client(Endpoint &ep, PacketPath &path, const SockAddr &local,
                                                       const SockAddr &remote, TlsClientContext &tls,
                                                       const std::string &server_name, const TransportConfig &cfg,
                                                       QuicApp &app, Error &err);
  static std::unique_ptr<QuicConnection> create_server(Endpoint &ep, UdpSocket &sock, const SockAddr &local,
                                                       const SockAddr &remote, const ngtcp2_pkt_hd &hd,
                                                       const ngtcp2_cid *original_dcid, TlsServerContext &tls,
                                                       const TransportConfig &cfg, QuicApp &app, Error &err);
  ~QuicConnection();
  QuicConnection(const QuicConnection &) = delete;
  QuicConnection &operator=(const QuicConnection &) = delete;

  // Input from the endpoint.
  void on_packet(const RecvPacket &pkt);
  void on_socket_error(int errno_value);

  // Sends whatever ngtcp2 and the app have ready (coalesced: safe to call often).
  void schedule_write();
  void write_now();

  // Application-level close: CONNECTION_CLOSE with an H3/app code.
  void close(std::uint64_t app_code, const std::string &reason);
  // Without linger a close sends CONNECTION_CLOSE once and is done at once,
  // skipping the closing period (an endpoint that is going away).
  void set_linger(bool on) noexcept { linger_ = on; }
  // Drops all state at once without sending anything (endpoint shutdown).
  void abandon(const Error &err);
  // Closes the timer handle; cb runs from its close callback.
  void close_handles(std::function<void()> cb);

  // Stream API for the app layer (safe from inside QuicApp callbacks).
  int open_bidi_stream(std::int64_t &sid);
  int open_uni_stream(std::int64_t &sid);
  void shutdown_stream_read(std::int64_t sid, std::uint64_t code);
  void shutdown_stream_write(std::int64_t sid, std::uint64_t code);
  void extend_stream_offset(std::int64_t sid, std::uint64_t n);
  void extend_max_streams(bool bidi, std::uint64_t n);
  void resume_stream(std::int64_t sid);  // app has data again for a blocked stream
  void ping();
  // Client: moves the connection to `sock` (another local port) with a new
  // connection id of the server's, validating the new path (RFC 9000 9.2,
  // migration.cpp). The old path comes back if validation fails.
  Error migrate(UdpSocket &sock);

  [[nodiscard]] bool is_server() const noexcept { return server_; }
  [[nodiscard]] bool handshake_completed() const noexcept;
  [[nodiscard]] bool is_closed() const noexcept { return closed_; }
  [[nodiscard]] bool in_closing_or_draining() const noexcept;
  // The peer closed: RFC 9000 section 10.2.2's draining period.
  [[nodiscard]] bool in_draining_period() const noexcept;
  [[nodiscard]] std::size_t max_datagram_payload() const noexcept;
  // TransportConfig::max_datagrams_in_flight for this connection from now on.
  void set_max_datagrams_in_flight(std::size_t n) noexcept { dgram_window_.set_limit(n); }
  [[nodiscard]] QuicStats stats() const;
  [[nodiscard]] const SockAddr &remote_addr() const noexcept { return remote_; }
  [[nodiscard]] const SockAddr &local_addr() const noexcept { return local_; }
  [[nodiscard]] TlsSession *tls() noexcept { return tls_.get(); }
  [[nodiscard]] ngtcp2_conn *native() noexcept { return conn_; }
  [[nodiscard]] const Error &close_error() const noexcept { return close_err_; }
  void set_close_error(Error e);

 private:
  QuicConnection(Endpoint &ep, UdpSocket *sock, PacketPath *path, const SockAddr &local, const SockAddr &remote,
                 bool server, QuicApp &app);
  static std::unique_ptr<QuicConnection> init_client(std::unique_ptr<QuicConnection> c, TlsClientContext &tls,
                                                     const std::string &server_name, const TransportConfig &cfg,
                                                     Error &err);
  bool init_common(const TransportConfig &cfg, ngtcp2_settings &settings, ngtcp2_transport_params &params);
  void arm_timer();
  void start_period_timer();
  void on_timer();
  static void on_timer_fired(void *arg);
  // packet_writer.cpp. Returns false when the connection can no longer send.
  bool write_packets();
  struct TxTurn;
  enum class TxStep { again, packet, failed };       // after one ngtcp2 write call
  enum class BatchStep { more, turn_full, parked };  // after a packet joined the batch
  TxStep write_datagram(TxTurn &t, const ngtcp2_vec &dgram, ngtcp2_ssize &nwrite);
  TxStep write_stream(TxTurn &t, ngtcp2_ssize &nwrite);
  BatchStep add_to_batch(TxTurn &t, std::size_t n);
  void settle_datagram_window();  // before a write, while no packet is half built
  void datagram_sent();
  bool flush_batch(const std::uint8_t *data, std::size_t len, std::size_t gso, std::uint8_t ecn);
  void fail_write(int rv);
  void on_read_error(int rv);
  void on_peer_close();
  [[nodiscard]] static Error peer_close_error(const ngtcp2_ccerr &ce);
  void enter_closed(Error err);
  void send_connection_close();
  void count_stream_losses(std::int64_t sid);
  // migration.cpp: ngtcp2 writes each packet for a path; ours follows it
  // (a server after the client's NAT rebinding, a client after migrate()).
  [[nodiscard]] bool path_differs(const ngtcp2_path &p) const noexcept;
  void adopt_path(const ngtcp2_path &p);
  // ngtcp2's path_validation callback: a client retires the sockets of the
  // paths it left once the new one is settled.
  static int on_path_validation(ngtcp2_conn *conn, std::uint32_t flags, const ngtcp2_path *path,
                                const ngtcp2_path *old_path, ngtcp2_path_validation_result res, void *user_data);
  void forget_reset_tokens();

  friend struct QuicCallbacks;

  Endpoint &ep_;
  std::optional<SocketPath> socket_path_;  // unless the packets go elsewhere
  PacketPath *path_;
  SockAddr local_, remote_;
  bool server_;
  QuicApp &app_;
  ngtcp2_conn *conn_ = nullptr;
  ngtcp2_crypto_conn_ref conn_ref_{};
  std::unique_ptr<TlsSession> tls_;
  std::unique_ptr<PreciseTimer> timer_;
  bool in_period_ = false;  // the timer ends the closing/draining period
  ngtcp2_ccerr last_error_{};
  Error close_err_;
  QuicStats counters_;
  std::uint64_t lost_closed_streams_ = 0;
  // Open streams, for the per-stream loss counts of ngtcp2 < 1.16.
  std::unordered_set<std::int64_t> open_streams_;
  // Stateless reset tokens of the peer registered with the endpoint.
  std::vector<std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN>> reset_tokens_;
  // Depth of ngtcp2_conn_read_pkt / write on the stack; a close asked for
  // inside them runs when the outermost returns. Depth-only: the connection
  // is held by unique_ptr and destroyed on a later loop turn.
  ReentryState reentry_;
  bool write_scheduled_ = false;
  bool release_tls_ = false;  // server: handshake confirmed, TLS no longer needed

  // Server: counted by the endpoint's handshake limits until the handshake completes.
  HandshakeLimits::Slot handshake_slot_;

 public:
  bool in_touched_list = false;  // endpoint bookkeeping for batched writes

 private:
  bool linger_ = true;
  ngtcp2_duration keep_alive_ = UINT64_MAX;
  std::size_t max_dgrams_per_pkt_ = 1;  // TransportConfig::max_datagrams_per_packet
  DatagramWindow dgram_window_;         // TransportConfig::max_datagrams_in_flight
  bool closed_ = false;                 // no more I/O: closed, drained or failed
  std::string qlog_path_;
  std::FILE *qlog_ = nullptr;
  DeferredTasks tasks_;  // last: cancelled before anything they touch goes

 public:
  // Set by the endpoint: called once the connection is closed for good
  // (after the closing/draining period) so the endpoint can forget it.
  std::function<void()> on_finished;
  ngtcp2_cid scid_{};  // our first connection id
  ngtcp2_cid original_dcid_{};
  bool has_original_dcid_ = false;
};

}  // namespace uvwt::detail
