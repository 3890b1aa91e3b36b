#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <uvwt/connection.hpp>
#include <uvwt/protocol_handler.hpp>
#include <uvwt/server.hpp>

#include "common/lazy_deque.hpp"
#include "common/deferred.hpp"
#include "common/timer.hpp"
#include "h3/h3_connection.hpp"
#include "quic/endpoint.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt::detail {

class Dialer;
class ProxyTunnel;
class TlsClientContext;
class TlsServerContext;
struct TlsClientOptions;

// The TLS side of a ClientConfig (verification, pins, CA file, client certificate).
TlsClientOptions tls_options(const ClientConfig &cfg);

// Server-side hooks a connection calls into (implemented by the server).
class ConnectionServerHooks {
 public:
  virtual ~ConnectionServerHooks() = default;
  virtual AcceptDecision decide(SessionRequest &req, Server::SessionHandler &handler) = 0;
  virtual void session_accepted(const std::shared_ptr<Session> &s, Server::SessionHandler handler,
                                const SessionRequest &req) = 0;
  virtual void connection_finished(const std::shared_ptr<Connection> &c) = 0;
};

// A QUIC connection with HTTP/3 and WebTransport on it: owns the ngtcp2 and
// nghttp3 state, keeps itself alive while open, and tracks everything that
// ConnectionInfo / ConnectionDiagnostics report.
class ConnectionImpl final : public Connection,
                             public ProtocolHandler,
                             public H3Owner,
                             public std::enable_shared_from_this<ConnectionImpl> {
 public:
  // Client: a connection in state IDLE; connect_to() starts it once the
  // host is resolved, fail_before_start() ends it if that never happens.
  // Its tasks (and its endpoint's) run on `deferred`, its owner's queue.
  static std::shared_ptr<ConnectionImpl> make_client(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg);
  // Client: resolves `host` and races its addresses as Client::connect does
  // (Dialer, Happy Eyeballs), then carries on with the transport of the
  // attempt that connected first. CONNECTING from the first attempt on;
  // `connect_timeout` bounds the whole race.
  void dial(const std::string &host, std::uint16_t port, std::shared_ptr<TlsClientContext> tls,
            Duration connect_timeout);
  void connect_to(const SockAddr &remote, const std::string &server_name, std::shared_ptr<TlsClientContext> tls);
  // Client, before the first packet: resumption from config's ticket cache.
  void offer_ticket(const std::string &server_name, std::uint16_t port);
  void fail_before_start(const Error &err);
  // The same through a CONNECT-UDP tunnel of a proxy connection: the QUIC
  // packets travel as its HTTP Datagrams (lib/connection/proxy_tunnel).
  void connect_via(std::shared_ptr<ProxyTunnel> tunnel, const std::string &server_name,
                   std::shared_ptr<TlsClientContext> tls);
  // The tunnel under this connection is gone: fail at once (nothing can
  // reach the peer any more, so no closing period).
  void path_lost(const Error &err);
  [[nodiscard]] const std::shared_ptr<ProxyTunnel> &tunnel() const noexcept { return tunnel_; }
  // Server: accepts the Initial `hd` on the server's endpoint.
  static std::shared_ptr<ConnectionImpl> accept(const std::shared_ptr<Endpoint> &ep, UdpSocket &sock,
                                                const RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                                                const ngtcp2_cid *original_dcid, const ServerConfig &cfg,
                                                std::shared_ptr<TlsServerContext> tls, ConnectionServerHooks *hooks,
                                                Error &err);

  ConnectionImpl(std::shared_ptr<Deferred> deferred, bool client, std::variant<ClientConfig, ServerConfig> cfg);
  ~ConnectionImpl() override;

  // Connection
  [[nodiscard]] bool is_client() const noexcept override { return client_; }
  [[nodiscard]] const TransportConfig &config() const noexcept override;
  [[nodiscard]] const std::string &connection_id() const noexcept override { return id_; }
  // DRAINING is derived: the peer sent GOAWAY or CONNECTION_CLOSE (QUIC draining period).
  [[nodiscard]] ConnectionState state() const noexcept override;
  [[nodiscard]] std::optional<Address> local_address() const override;
  [[nodiscard]] std::optional<Address> remote_address() const override;
  [[nodiscard]] ProtocolHandler &protocol_handler() override { return *this; }
  [[nodiscard]] ConnectionDiagnostics diagnostics() const override;
  [[nodiscard]] ConnectionInfo info() const override;
  [[nodiscard]] Error close_error() const override { return close_error_; }
  void open_session(const std::string &path, const Headers &headers, SessionCallback cb) override;
  void close(std::uint64_t code, std::string reason, CloseCallback cb) override;
  [[nodiscard]] std::vector<SessionInfo> get_all_sessions() const override;
  [[nodiscard]] std::optional<SessionId> get_ready_session_id() const override;
  [[nodiscard]] std::optional<SessionInfo> get_session_info(SessionId id) const override;
  [[nodiscard]] std::shared_ptr<Session> get_session(SessionId id) const override;
  using Connection::monitor_health;
  using Connection::wait_for_ready_session;
  using Connection::wait_ready;
  void monitor_health(Duration check_interval, Duration rtt_timeout,
                      std::function<void(const HealthReport &)> cb) override;
  void stop_health_monitor() override;
  void record_activity() override;
  void set_idle_timeout(Duration period) override;
  void set_impairment(const ImpairmentConfig &cfg);  // testing::set_impairment
  // testing::set_idle_clock / run_idle_check: the idle policy on a test's clock.
  void set_idle_clock(std::function<std::uint64_t()> clock) { idle_clock_ = std::move(clock); }
  void idle_check();
  Error migrate() override;
  void wait_ready(Duration timeout, DoneCallback cb) override;
  void wait_for_ready_session(Duration timeout, SessionIdCallback cb) override;
  void wait_closed(CloseCallback cb) override;
  void on_established(std::function<void()> cb) override { on_established_ = std::move(cb); }
  void on_state_change(std::function<void(ConnectionState)> cb) override { on_state_change_ = std::move(cb); }
  void on_closed(std::function<void(const Error &)> cb) override { on_closed_ = std::move(cb); }
  void on_lost(std::function<void(const Error &)> cb) override { on_lost_ = std::move(cb); }
  void on_session_request(std::function<void(const SessionRequest &)> cb) override {
    on_session_request_ = std::move(cb);
  }
  void on_session(std::function<void(std::shared_ptr<Session>)> cb) override { on_session_ = std::move(cb); }

  // ProtocolHandler
  [[nodiscard]] std::vector<std::shared_ptr<Session>> sessions() const override;
  [[nodiscard]] std::size_t session_count() const override;
  [[nodiscard]] PeerWebTransportSettings peer_settings() const override;
  [[nodiscard]] bool goaway_received() const override;
  [[nodiscard]] std::uint64_t datagrams_dropped() const override;

  // H3Owner
  std::shared_ptr<Connection> owner_connection() override { return shared_from_this(); }
  void on_h3_ready() override;
  ConnectDecision on_session_request(const ConnectRequest &request) override;
  void on_session_accepted(const std::shared_ptr<SessionImpl> &s, ConnectDecision &decision) override;
  void on_transport_closed(const Error &err) override;
  void on_error_counted() override { ++error_count_; }
  void detach_server() noexcept { hooks_ = nullptr; }
  void set_linger(bool on) noexcept {
    if (quic_) quic_->set_linger(on);
  }
  void on_activity() override;

  // Internal API for the server, the client and tests.
  void shutdown_notice() {
    if (h3_) h3_->shutdown_notice();
  }
  void shutdown_final() {
    if (h3_) h3_->shutdown_final();
  }
  void abandon(const Error &err);
  [[nodiscard]] Endpoint *endpoint() noexcept { return ep_; }
  [[nodiscard]] const std::shared_ptr<Deferred> &deferred() const noexcept { return deferred_; }
  [[nodiscard]] QuicConnection *quic() noexcept { return quic_.get(); }
  [[nodiscard]] H3Connection *h3() noexcept { return h3_.get(); }
  [[nodiscard]] bool gso() const noexcept { return ep_ != nullptr && ep_->gso(); }
  // PINGs monitor_health() has sent (tests check that it stops).
  [[nodiscard]] std::uint64_t health_probes_sent() const noexcept { return health_probes_sent_; }
  // The running monitor's period and probe timeout (tests check the defaults).
  [[nodiscard]] Duration health_interval() const noexcept { return health_interval_; }
  [[nodiscard]] Duration health_rtt_timeout() const noexcept { return health_timeout_; }
  // Client connect with the connect timeout; cb once established (or failed).
  void start_connect_timer(Duration timeout);
  std::function<void(const Error &)> connect_cb;

 private:
  void set_state(ConnectionState s);
  void close_with(std::uint64_t code, std::string reason, const Error &why, CloseCallback cb);
  // dial()'s race: the winner's endpoint, QUIC and HTTP/3 state move here.
  void take_over(ConnectionImpl &winner);
  [[nodiscard]] bool dialing() const noexcept { return dialer_ != nullptr && !quic_; }
  void stop_dialing(const Error &why);
  void finish_close();
  void health_tick();
  void arm_idle_timer(std::uint64_t ms);
  struct Waiter {
    std::unique_ptr<Timer> timer;
    std::function<void(const Error &)> cb;
  };
  void add_waiter(LazyDeque<std::shared_ptr<Waiter>> &list, Duration timeout, std::function<void(const Error &)> cb,
                  const char *what);
  void resolve_waiters(LazyDeque<std::shared_ptr<Waiter>> &list, const Error &err);

  uv_loop_t *loop_;
  bool client_;
  std::variant<ClientConfig, ServerConfig> cfg_;
  std::shared_ptr<Deferred> deferred_;
  std::string id_;
  ConnectionState state_ = ConnectionState::idle;
  // The endpoint outlives every connection registered with it. A client has
  // its own (its own socket); server connections share the server's.
  std::shared_ptr<Endpoint> ep_keep_;
  Endpoint *ep_ = nullptr;
  bool own_ep_ = false;
  std::shared_ptr<TlsClientContext> client_tls_;
  std::shared_ptr<TlsServerContext> server_tls_;
  std::shared_ptr<ProxyTunnel> tunnel_;  // the packet path of a proxied client
  std::shared_ptr<Dialer> dialer_;       // dial()'s race, until it is decided
  std::unique_ptr<H3Connection> h3_;
  std::unique_ptr<QuicConnection> quic_;
  ConnectionServerHooks *hooks_ = nullptr;
  std::shared_ptr<ConnectionImpl> self_;  // alive while open
  Error close_error_;
  std::optional<double> established_at_, closed_at_, last_activity_;
  std::uint64_t error_count_ = 0;
  bool closing_started_ = false, finished_ = false;
  std::vector<CloseCallback> close_cbs_;
  std::function<void()> on_established_;
  std::function<void(ConnectionState)> on_state_change_;
  std::function<void(const Error &)> on_closed_;
  std::function<void(const Error &)> on_lost_;
  std::function<void(const SessionRequest &)> on_session_request_;
  std::function<void(std::shared_ptr<Session>)> on_session_;
  LazyDeque<std::shared_ptr<Waiter>> ready_waiters_, session_waiters_, closed_waiters_;
  std::unique_ptr<Timer> connect_timer_;
  std::unique_ptr<Timer> health_timer_;
  std::unique_ptr<Timer> probe_timer_;
  Duration health_interval_{0}, health_timeout_{0};
  std::function<void(const HealthReport &)> health_cb_;
  std::uint64_t health_probe_sent_ns_ = 0;
  std::uint64_t health_rx_at_probe_ = 0;
  bool health_probe_outstanding_ = false, unhealthy_ = false;
  std::uint64_t health_probes_sent_ = 0;
  // Idle policy (set_idle_timeout): monotonic, so wall-clock steps do not trip it.
  std::unique_ptr<Timer> idle_timer_;
  Duration idle_period_{0};
  std::uint64_t last_activity_ns_ = 0;
  std::function<std::uint64_t()> idle_clock_;  // monotonic ns; now_ns() when unset
  [[nodiscard]] std::uint64_t idle_now_ns() const;
  // set_impairment() before the client's socket exists (state IDLE).
  std::optional<ImpairmentConfig> pending_impairment_;
};

}  // namespace uvwt::detail
