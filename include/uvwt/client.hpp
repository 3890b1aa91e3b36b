#pragma once

// Client side of uvwt: pywebtransport's client package (WebTransportClient,
// ReconnectingClient, WebTransportBrowser, ClientFleet, ClientStats,
// ClientDiagnostics) with completion callbacks on a libuv loop.

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include <uvwt/export.hpp>
#include <uvwt/config.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/error.hpp>
#include <uvwt/session.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

// A WebTransport URL taken apart: "https://host[:port]/path?query".
struct UVWT_EXPORT WebTransportUrl {
  std::string host;  // lower-case name or IP literal, without brackets
  std::uint16_t port = 443;
  std::string path = "/";  // path and query, as sent in :path
  // "host", "host:port", "[::1]:port" (port left out when 443).
  [[nodiscard]] std::string authority() const;
};

// Parses a WebTransport URL. Errc::invalid_url for anything but https with a
// host, an optional port in 1..65535 and an optional path and query (user
// info, fragments, blanks and bracket-less IPv6 literals are refused).
UVWT_EXPORT Error parse_webtransport_url(std::string_view url, WebTransportUrl &out);

// Per-call options of Client::connect.
struct UVWT_EXPORT ConnectOptions {
  // The whole sequence; nullopt or 0: config().connect_timeout (0 as the
  // reference's `timeout or config.connect_timeout`); negative: Errc::configuration.
  std::optional<Duration> timeout;
  Headers headers;  // win over the client's default headers
};

// pywebtransport's ClientStats. Times are in seconds.
struct UVWT_EXPORT ClientStats {
  double created_at = 0;  // seconds since the epoch
  std::uint64_t connections_attempted = 0;
  std::uint64_t connections_successful = 0;
  std::uint64_t connections_failed = 0;
  double total_connect_time = 0;  // successful connects only
  double min_connect_time = std::numeric_limits<double>::infinity();
  double max_connect_time = 0;
  // Of connections_successful, the sessions that went on an open pooled
  // connection instead of a new one (ClientConfig::pool_connections).
  std::uint64_t pooled_sessions = 0;
  // total / successful; 0 with no success yet.
  [[nodiscard]] double avg_connect_time() const noexcept;
  // successful / attempted; 1 with no attempt yet.
  [[nodiscard]] double success_rate() const noexcept;
};

// pywebtransport's ClientDiagnostics: a snapshot.
struct UVWT_EXPORT ClientDiagnostics {
  ClientStats stats;
  std::map<ConnectionState, int> connection_states;  // connections the client owns, per state
  // "Low connection success rate: 45.45%" when more than 10 attempts succeeded
  // less than 90 % of the time; "Slow average connection time: 5.20s" when the
  // average connect time is above 5 s.
  [[nodiscard]] std::vector<std::string> issues() const;
};

// pywebtransport's WebTransportClient. Every connect() makes its own QUIC
// connection, owned by the client until the session on it ends.
class UVWT_EXPORT Client {
 public:
  using SessionCallback = std::function<void(const Error &, std::shared_ptr<Session>)>;

  virtual ~Client() = default;
  // Errc::configuration (naming the field) for an invalid config or an
  // unusable CA/client certificate file.
  static std::shared_ptr<Client> create(uv_loop_t *loop, const ClientConfig &config, Error &err);

  [[nodiscard]] virtual uv_loop_t *loop() const noexcept = 0;
  [[nodiscard]] virtual const ClientConfig &config() const noexcept = 0;
  [[nodiscard]] virtual bool is_closed() const noexcept = 0;

  // Parses the URL, resolves the host (IPv6 and IPv4 raced Happy Eyeballs
  // style), completes QUIC, TLS and the HTTP/3 SETTINGS exchange, sends the
  // CONNECT and calls back once with a ready session or an error:
  // With config().proxy everything after the URL goes through a MASQUE
  // CONNECT-UDP tunnel (docs/proxy.md). Errors: invalid_url, configuration,
  // proxy_dns / proxy_connection / proxy_certificate / proxy_authentication /
  // proxy_refused (the proxy leg), dns, timeout, refused,
  // certificate, handshake, http_status (status carried), protocol,
  // connection, closed (client closed before the call), cancelled (client
  // closed during the call).
  virtual void connect(const std::string &url, const ConnectOptions &options, SessionCallback cb) = 0;
  void connect(const std::string &url, SessionCallback cb) { connect(url, ConnectOptions{}, std::move(cb)); }

  // Headers for every later connect: they win over config().headers and lose
  // to per-call headers. Names are lower-cased.
  virtual void set_default_headers(Headers headers) = 0;
  [[nodiscard]] virtual Headers default_headers() const = 0;

  // Closes every connection the client owns and completes pending connects
  // with Errc::cancelled; cb once all of them are closed.
  virtual void close(CloseCallback cb = {}) = 0;

  [[nodiscard]] virtual ClientStats stats() const = 0;
  [[nodiscard]] virtual ClientDiagnostics diagnostics() const = 0;
};

// Delay before retry `n` (1 for the first retry) of a ReconnectingClient:
// min(retry_delay * retry_backoff^(n-1), max_retry_delay) * jitter, where
// jitter is the given factor (in [0.5, 1.5)) when config.retry_jitter is on.
UVWT_EXPORT Duration reconnect_delay(const ClientConfig &config, int n, double jitter = 1.0) noexcept;

// pywebtransport's ReconnectingClient: keeps one session to one URL alive,
// with the retry policy of the client's config (max_retries -1: forever).
class UVWT_EXPORT ReconnectingClient {
 public:
  using ConnectedCallback = std::function<void(const std::shared_ptr<Session> &, int attempt)>;
  using LostCallback = std::function<void(const SessionCloseInfo &)>;
  using FailedCallback = std::function<void(const Error &last_error, int attempts)>;
  using SessionCallback = std::function<void(std::shared_ptr<Session>)>;

  virtual ~ReconnectingClient() = default;
  // Starts connecting on a later turn of the loop. `client` must not be null;
  // it stays the caller's: closing this object does not close it.
  static std::shared_ptr<ReconnectingClient> create(std::shared_ptr<Client> client, std::string url);

  [[nodiscard]] virtual const std::string &url() const noexcept = 0;
  // A ready session is there.
  [[nodiscard]] virtual bool is_connected() const noexcept = 0;
  [[nodiscard]] virtual bool is_closed() const noexcept = 0;
  // Gave up (max_retries + 1 consecutive failed attempts, i.e. max_retries
  // retries, or an error retrying cannot fix).
  [[nodiscard]] virtual bool has_failed() const noexcept = 0;
  // Connect attempts made so far, and failures since the last success.
  [[nodiscard]] virtual int attempts() const noexcept = 0;
  [[nodiscard]] virtual int consecutive_failures() const noexcept = 0;

  // The ready session at once, or once one is ready within wait_timeout;
  // nullptr when closed, given up or timed out. Never synchronous.
  virtual void get_session(Duration wait_timeout, SessionCallback cb) = 0;
  // The reference's default wait: 5 s.
  static constexpr Duration kDefaultGetSessionTimeout{5'000};
  void get_session(SessionCallback cb) { get_session(kDefaultGetSessionTimeout, std::move(cb)); }

  // attempt: 1 for the first attempt after a start or a loss.
  virtual void on_connected(ConnectedCallback cb) = 0;
  // The session ended without close() being called; a reconnect starts at once.
  virtual void on_lost(LostCallback cb) = 0;
  // Gave up; the error is the last connect error, its message saying why.
  virtual void on_failed(FailedCallback cb) = 0;

  // Stops reconnecting, cancels a connect in flight, closes the session. The
  // client stays open and the caller's.
  virtual void close(CloseCallback cb = {}) = 0;
};

// pywebtransport's WebTransportBrowser: one current session and a
// navigation history. Operations issued while one is in flight run after it,
// in order. A new session replaces the current one only once it is ready, so
// a failed navigation leaves session, history and position as they were.
class UVWT_EXPORT Browser {
 public:
  using SessionCallback = std::function<void(const Error &, std::shared_ptr<Session>)>;

  virtual ~Browser() = default;
  // `client` must not be null; it stays the caller's.
  static std::shared_ptr<Browser> create(std::shared_ptr<Client> client);

  // Connects to url, drops forward history and appends url (unless it is
  // already the last entry). When url is the current entry: returns its
  // session without reconnecting if it is alive, else behaves as refresh()
  // (one entry, forward history kept).
  virtual void navigate(const std::string &url, SessionCallback cb) = 0;
  // Previous / next history entry, or the current one again. cb(ok, nullptr)
  // with nothing changed when there is nowhere to go.
  virtual void back(SessionCallback cb) = 0;
  virtual void forward(SessionCallback cb) = 0;
  virtual void refresh(SessionCallback cb) = 0;

  [[nodiscard]] virtual std::vector<std::string> history() const = 0;
  // Index of the current entry in history(); -1 when empty.
  [[nodiscard]] virtual int history_index() const noexcept = 0;
  [[nodiscard]] virtual std::shared_ptr<Session> current_session() const = 0;
  [[nodiscard]] virtual bool is_closed() const noexcept = 0;

  // Cancels the in-flight operation, then the queued ones in issue order
  // (each cb gets Errc::cancelled, in that order), closes the current session
  // and clears the history. The client stays open and the caller's (unlike
  // pywebtransport, whose browser closes its client).
  virtual void close(CloseCallback cb = {}) = 0;
};

// pywebtransport's ClientFleet: clients handed out round robin.
class UVWT_EXPORT ClientFleet {
 public:
  using SessionsCallback = std::function<void(std::vector<std::shared_ptr<Session>>)>;

  virtual ~ClientFleet() = default;
  // Needs at least one client and no null one (else nullptr and Errc::client,
  // as the reference refuses an empty fleet at construction).
  // max_concurrent_handshakes 0: the first client's config value.
  static std::shared_ptr<ClientFleet> create(uv_loop_t *loop, std::vector<std::shared_ptr<Client>> clients, Error &err,
                                             std::size_t max_concurrent_handshakes = 0);

  // The next client, starting with the first; nullptr and Errc::client when
  // the fleet is empty or closed.
  virtual std::shared_ptr<Client> get_client(Error &err) = 0;
  [[nodiscard]] virtual std::size_t client_count() const noexcept = 0;
  // Connects every client to url, at most max_concurrent_handshakes at a
  // time; cb with the sessions that succeeded, in client order. Failures are
  // logged (warning) and left out.
  virtual void connect_all(const std::string &url, SessionsCallback cb) = 0;
  // Closes every client; the fleet is empty afterwards.
  virtual void close_all(CloseCallback cb = {}) = 0;
};

}  // namespace uvwt
