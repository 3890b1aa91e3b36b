#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <uv.h>

#include <uvwt/export.hpp>
#include <uvwt/config.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/session.hpp>

namespace uvwt {

// What the server knows about an incoming session before accepting it.
struct UVWT_EXPORT SessionRequest {
  std::string path;   // without the query
  std::string query;  // after '?', may be empty
  std::string authority;
  std::string origin;
  Headers headers;
  std::vector<std::string> offered_protocols;  // wt-available-protocols
  Address remote_address;
  std::map<std::string, std::string> params;  // captured by a pattern route
  // Mutual TLS (ServerConfig::client_ca_file / client_ca_pem): SHA-256 of the
  // DER of the certificate the client presented, which the handshake verified;
  // nullopt when it presented none.
  std::optional<std::array<std::uint8_t, 32>> client_certificate_sha256;
};

// The accept hook's verdict: status 2xx accepts, anything else rejects.
struct UVWT_EXPORT AcceptDecision {
  int status = 200;
  std::string protocol;  // chosen subprotocol (wt-protocol), optional
  Headers headers;       // extra response headers
  static AcceptDecision accept() { return {}; }
  static AcceptDecision reject(int status) { return {status, {}, {}}; }
};

struct UVWT_EXPORT ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0;
  std::uint64_t retries_sent = 0;  // Retry packets (address validation)
  // Stateless resets: answers to packets of connections the server does not know.
  std::uint64_t stateless_resets_sent = 0;
  std::uint64_t handshakes_active = 0;     // connections whose handshake is in progress
  std::uint64_t handshakes_refused = 0;    // validated Initials beyond the handshake limits
  std::uint64_t invalid_retry_tokens = 0;  // Initials with a forged or stale Retry token
  std::uint64_t expired_retry_tokens = 0;  // of which ours but expired: closed with INVALID_TOKEN
  std::uint64_t version_negotiations_sent = 0;
  // Stateless resets, Version Negotiation and refusals not sent: over the
  // stateless_answers_per_second rate.
  std::uint64_t stateless_answers_limited = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t sessions_accepted = 0;
  std::uint64_t sessions_rejected = 0;
  std::uint64_t sessions_active = 0;
};

class UVWT_EXPORT Server {
 public:
  using SessionHandler = std::function<void(std::shared_ptr<Session>, const SessionRequest &)>;
  using AcceptHook = std::function<AcceptDecision(const SessionRequest &)>;

  virtual ~Server() = default;
  static std::shared_ptr<Server> create(uv_loop_t *loop, const ServerConfig &config, Error &err);

  // Binds a UDP socket; may be called several times (e.g. 127.0.0.1 and ::1).
  // port 0 picks a free port; port() tells which. "localhost" binds
  // 127.0.0.1 and, where the host has IPv6 loopback, ::1 on the same port.
  virtual Error listen(const std::string &host, std::uint16_t port) = 0;
  [[nodiscard]] virtual std::uint16_t port() const noexcept = 0;
  [[nodiscard]] virtual std::vector<Address> local_addresses() const = 0;

  // Exact path ("/echo") or pattern with captures ("/room/{id}"); unknown
  // paths are answered 404 unless a default handler is set.
  virtual void route(const std::string &path_or_pattern, SessionHandler handler) = 0;
  virtual void set_default_handler(SessionHandler handler) = 0;
  virtual void set_accept_hook(AcceptHook hook) = 0;
  // A new QUIC connection was accepted (before any session).
  virtual void on_connection(std::function<void(std::shared_ptr<Connection>)> cb) = 0;

  // Stops accepting new sessions (429), sends the GOAWAY shutdown notice and
  // WT_DRAIN_SESSION, then (a grace of about one round trip later) the final
  // GOAWAY. Connections whose sessions have all ended are closed; after
  // ServerConfig::drain_timeout the remaining sessions are closed (code 0,
  // "server shutting down") with their connections; after `timeout` whatever
  // is left is closed at once and the server closes. cb when all is closed.
  virtual void shutdown(Duration timeout, CloseCallback cb = {}) = 0;
  // The same with ServerConfig::shutdown_timeout.
  virtual void shutdown(CloseCallback cb = {}) = 0;
  virtual void close(CloseCallback cb = {}) = 0;
  [[nodiscard]] virtual bool is_closed() const noexcept = 0;
  [[nodiscard]] virtual ServerStats stats() const = 0;
  [[nodiscard]] virtual std::vector<std::shared_ptr<Connection>> connections() const = 0;
};

}  // namespace uvwt
