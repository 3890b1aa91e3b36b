#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include <uvwt/export.hpp>
#include <uvwt/config.hpp>
#include <uvwt/session.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

class ProtocolHandler;
class Server;
struct SessionRequest;

// pywebtransport's ConnectionInfo: statistics and state of one connection.
struct UVWT_EXPORT ConnectionInfo {
  std::string connection_id;
  ConnectionState state = ConnectionState::idle;
  std::optional<Address> local_address;
  std::optional<Address> remote_address;
  std::optional<double> established_at;  // seconds since the epoch
  std::optional<double> closed_at;
  std::uint64_t bytes_sent = 0;        // WebTransport layer payload
  std::uint64_t bytes_received = 0;    // WebTransport layer payload
  std::uint64_t packets_sent = 0;      // QUIC packets
  std::uint64_t packets_received = 0;  // QUIC packets
  std::uint64_t packets_lost = 0;      // QUIC packets declared lost
  std::uint64_t error_count = 0;
  std::optional<double> last_activity;
  // TLS resumption (docs/api/connection.md): the handshake used a session
  // ticket (no certificate was sent), and the server accepted the 0-RTT the
  // client offered. Both false until the handshake has told.
  bool resumed = false;
  bool early_data_accepted = false;
  // Seconds from established_at to closed_at (or now); 0 when never established.
  [[nodiscard]] double uptime() const;
};

// pywebtransport's ConnectionDiagnostics: an immutable snapshot.
struct UVWT_EXPORT ConnectionDiagnostics {
  ConnectionInfo stats;
  double rtt = 0;  // smoothed RTT, seconds
  double min_rtt = 0;
  std::uint64_t cwnd = 0;               // bytes
  std::uint64_t bytes_in_flight = 0;    // bytes
  std::uint64_t packets_in_flight = 0;  // packets sent, not yet acked or lost
  double packet_loss_rate = 0;          // lost / sent packets
  // UDP batching of the socket this connection uses (shared by every
  // connection on a server socket): whether the kernel offers it, and how
  // many batched sends / coalesced receives actually happened.
  bool gso = false;
  bool gro = false;
  std::uint64_t gso_batches = 0;
  std::uint64_t gro_batches = 0;
  [[nodiscard]] std::vector<std::string> issues() const;
};

// Result of one health probe (monitor_health).
struct UVWT_EXPORT HealthReport {
  bool healthy = true;
  double rtt = 0;  // seconds, smoothed RTT after the probe
  std::string reason;
};

// One QUIC connection carrying HTTP/3 and WebTransport sessions.
class UVWT_EXPORT Connection {
 public:
  using ConnectCallback = std::function<void(const Error &, std::shared_ptr<Connection>)>;
  using SessionIdCallback = std::function<void(const Error &, SessionId)>;
  using SessionCallback = std::function<void(const Error &, std::shared_ptr<Session>)>;

  // The reference library's defaults (wait_ready, wait_for_ready_session,
  // monitor_health).
  static constexpr Duration kDefaultWaitTimeout{30'000};
  static constexpr Duration kDefaultHealthCheckInterval{30'000};
  static constexpr Duration kDefaultHealthRttTimeout{5'000};

  virtual ~Connection() = default;

  // Connects (QUIC + TLS + HTTP/3 SETTINGS exchange) and, when `path` is not
  // empty, opens a WebTransport session on it; cb runs once with the result.
  // Returns the connection at once, in state IDLE (resolving the host), so its
  // states and events can be followed from the start. Never null: rejected
  // arguments give a connection already FAILED (close_error() tells), and cb
  // gets that error on a later turn; cb runs exactly once in every case.
  // With proxy_addr (or config.proxy.url) the connection goes through that
  // MASQUE CONNECT-UDP proxy (RFC 9298, docs/proxy.md): default URI template,
  // config.proxy's headers, timeout and TLS checks; proxy-leg failures have
  // the proxy_* error categories.
  static std::shared_ptr<Connection> create_client(uv_loop_t *loop, const ClientConfig &config, const std::string &host,
                                                   std::uint16_t port, const std::string &path,
                                                   const std::optional<Address> &proxy_addr, ConnectCallback cb);
  // The same with the reference's defaults: a session on "/", no proxy.
  static std::shared_ptr<Connection> create_client(uv_loop_t *loop, const ClientConfig &config, const std::string &host,
                                                   std::uint16_t port, ConnectCallback cb) {
    return create_client(loop, config, host, port, "/", std::nullopt, std::move(cb));
  }

  // Server side: listens on host:port and hands every accepted QUIC
  // connection to `on_accept` once it is CONNECTED (connections whose
  // handshake fails are never handed over); sessions on it are
  // accepted on any path and reported by that connection's on_session().
  // Returns the listening Server (the connections' transport: close it to
  // stop), or null with `err` set. Server::create + route() is the richer form.
  static std::shared_ptr<Server> create_server(uv_loop_t *loop, const ServerConfig &config, const std::string &host,
                                               std::uint16_t port,
                                               std::function<void(std::shared_ptr<Connection>)> on_accept, Error &err);

  [[nodiscard]] virtual bool is_client() const noexcept = 0;
  [[nodiscard]] virtual const TransportConfig &config() const noexcept = 0;
  [[nodiscard]] virtual const std::string &connection_id() const noexcept = 0;
  [[nodiscard]] virtual ConnectionState state() const noexcept = 0;
  [[nodiscard]] bool is_connected() const noexcept { return state() == ConnectionState::connected; }
  [[nodiscard]] bool is_closing() const noexcept {
    return state() == ConnectionState::closing || state() == ConnectionState::draining;
  }
  [[nodiscard]] bool is_closed() const noexcept {
    return state() == ConnectionState::closed || state() == ConnectionState::failed;
  }
  [[nodiscard]] virtual std::optional<Address> local_address() const = 0;
  [[nodiscard]] virtual std::optional<Address> remote_address() const = 0;
  [[nodiscard]] virtual ProtocolHandler &protocol_handler() = 0;
  [[nodiscard]] virtual ConnectionDiagnostics diagnostics() const = 0;
  [[nodiscard]] virtual ConnectionInfo info() const = 0;
  // The error that ended the connection (ok while open or after a clean close).
  [[nodiscard]] virtual Error close_error() const = 0;

  // Opens a WebTransport session (client side).
  virtual void open_session(const std::string &path, const Headers &headers, SessionCallback cb) = 0;

  // Closes the QUIC connection (CONNECTION_CLOSE with an application code).
  virtual void close(std::uint64_t code = 0, std::string reason = {}, CloseCallback cb = {}) = 0;

  [[nodiscard]] virtual std::vector<SessionInfo> get_all_sessions() const = 0;
  [[nodiscard]] virtual std::optional<SessionId> get_ready_session_id() const = 0;
  [[nodiscard]] virtual std::optional<SessionInfo> get_session_info(SessionId id) const = 0;
  [[nodiscard]] virtual std::shared_ptr<Session> get_session(SessionId id) const = 0;

  // Probes with an ack-eliciting PING every check_interval; a probe not
  // answered within rtt_timeout marks the connection unhealthy. Stops when
  // the connection closes or stop_health_monitor() is called.
  virtual void monitor_health(Duration check_interval, Duration rtt_timeout,
                              std::function<void(const HealthReport &)> cb) = 0;
  // Every 30 s with a 5 s timeout; without a callback unhealthy probes are
  // only logged (warning), as in the reference.
  void monitor_health(std::function<void(const HealthReport &)> cb = {}) {
    monitor_health(kDefaultHealthCheckInterval, kDefaultHealthRttTimeout, std::move(cb));
  }
  virtual void stop_health_monitor() = 0;
  // Marks application activity now (ConnectionInfo::last_activity and the
  // idle policy's clock).
  virtual void record_activity() = 0;
  // Idle policy: closes the connection (close_error() Errc::timeout) once no
  // application activity (WebTransport stream data, datagrams, session
  // requests, record_activity()) happened for `period`. 0 turns it off.
  // Unlike the QUIC idle timeout, PINGs and ACKs do not keep it open.
  virtual void set_idle_timeout(Duration period) = 0;
  // Client: moves this connection to a new local UDP port (connection
  // migration, RFC 9000 Section 9), as a device does when its network
  // changes. Packets go out from the new port at once, addressed with a new
  // connection id of the server's; the new path is validated and, should that
  // fail, the old one is used again. Sessions and streams carry on. Fails
  // (and changes nothing) on a server connection, one behind a proxy, before
  // the handshake is confirmed, or when the server has given no spare
  // connection id. docs/scaling.md.
  virtual Error migrate() = 0;

  // Waits for the connection to be CONNECTED. Errc::timeout after `timeout`;
  // Errc::connection when it closes or is lost first (or already has).
  // timeout <= 0 does not wait: the answer is what holds now (as an asyncio
  // wait with timeout 0 in the reference); Duration::max() waits as long as
  // the connection lives. The answer always comes on a later loop turn.
  virtual void wait_ready(Duration timeout, DoneCallback cb) = 0;
  void wait_ready(DoneCallback cb) { wait_ready(kDefaultWaitTimeout, std::move(cb)); }
  // Waits for a session to be ready and answers with its id. Every way a
  // session can end before it is ready answers at once with that session's
  // error: refused (Errc::http_status / authentication with the status),
  // reset, closed; so does the connection closing or being lost. Errc::timeout
  // after `timeout`, with timeout <= 0 and Duration::max() as for wait_ready.
  virtual void wait_for_ready_session(Duration timeout, SessionIdCallback cb) = 0;
  void wait_for_ready_session(SessionIdCallback cb) { wait_for_ready_session(kDefaultWaitTimeout, std::move(cb)); }
  virtual void wait_closed(CloseCallback cb) = 0;

  // Events.
  virtual void on_established(std::function<void()> cb) = 0;
  // Every state change, in order (IDLE -> CONNECTING -> CONNECTED -> ...).
  virtual void on_state_change(std::function<void(ConnectionState)> cb) = 0;
  // The connection ended, whatever the cause (the Error tells; ok for a
  // clean local close). Fires after on_lost when it was lost.
  virtual void on_closed(std::function<void(const Error &)> cb) = 0;
  // The connection was lost (state FAILED: QUIC idle timeout, peer gone,
  // connect timeout, handshake failure), as opposed to closed by either side.
  virtual void on_lost(std::function<void(const Error &)> cb) = 0;
  // Server side: a WebTransport CONNECT request arrived (before the server's
  // routes and accept hook decide on it).
  virtual void on_session_request(std::function<void(const SessionRequest &)> cb) = 0;
  // Server side: a session request on this connection was accepted.
  virtual void on_session(std::function<void(std::shared_ptr<Session>)> cb) = 0;
};

}  // namespace uvwt
