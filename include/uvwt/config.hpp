#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uvwt/ticket_cache.hpp>
#include <uvwt/export.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

using Duration = std::chrono::milliseconds;

namespace detail {
struct TestHooks;  // test-only settings, internal (docs/architecture.md, "Public surface")
}  // namespace detail

// QUIC and WebTransport knobs shared by clients and servers.
struct UVWT_EXPORT TransportConfig {
  Duration idle_timeout{60'000};
  Duration handshake_timeout{10'000};
  Duration keep_alive_interval{0};  // 0: no PINGs to keep an idle connection open
  std::uint64_t initial_max_data = 16u << 20;
  std::uint64_t initial_max_stream_data = 4u << 20;
  std::uint64_t max_streams_bidi = 1000;
  std::uint64_t max_streams_uni = 1000;
  std::size_t max_datagram_frame_size = 65535;  // transport parameter; > 0 enables datagrams
  CongestionControl congestion_control = CongestionControl::cubic;
  std::size_t stream_send_buffer = 1u << 20;  // per-stream bound before writes fail / writable notifications
  // Connection-wide bound on unacknowledged stream bytes: above it writable()
  // answers false on every stream (writes within a stream's own bound are still
  // taken), and waiting streams get on_writable in turn as acks free room. It
  // keeps many parallel streams from each holding a full stream_send_buffer.
  std::size_t connection_send_buffer = 4u << 20;
  std::size_t datagram_send_queue = 256;  // datagrams queued before send_datagram fails
  // Datagrams packed into one QUIC packet at most (1..1024). Firefox keeps
  // only about 10 unread incoming datagrams per session and drops the oldest,
  // and it takes a whole packet's worth at once: a queued-up burst packed 12+
  // to a packet loses datagrams there. docs/protocol.md, "Datagrams per packet".
  // 2, not 4: with max_datagrams_in_flight 4 a window then spans two packets,
  // which peers acknowledge at once rather than after their ack delay.
  std::size_t max_datagrams_per_packet = 2;
  // DATAGRAM frames sent and not yet acknowledged at most (0: no bound). The
  // acknowledgments pace a burst: Firefox drops the oldest of more than 10
  // datagrams read in one go, and it acknowledges what it has handed on, so
  // with at most 4 unacknowledged (8 still lost a burst now and then) a
  // burst of echoes reaches it whole. Costs datagram rate: 4 per round trip
  // (on loopback 0.50x the echo and 0.067x the one-way rate of no bound).
  // ClientConfig sets 0; a server whose peers are not browsers should too.
  // docs/protocol.md, "Datagrams in flight".
  std::size_t max_datagrams_in_flight = 4;
  // Drive ngtcp2's expiry and pacing from one timerfd per loop with
  // nanosecond deadlines instead of libuv's millisecond timers. Off by
  // default: on loopback exact pacing spreads bursts out and costs about 18 %
  // of bulk throughput, and the millisecond latency tails measured on a
  // loaded machine are other tasks' time slices, not the timer (a raw UDP
  // ping-pong shows the same tails). docs/performance.md, "Timer precision".
  bool precise_timers = false;
  std::size_t max_pending_streams = 24;    // early streams buffered per not-yet-ready session
  std::size_t max_pending_datagrams = 64;  // early datagrams buffered per not-yet-ready session
  // How long early streams and datagrams wait for their session: after it,
  // streams are refused (WT_BUFFERED_STREAM_REJECTED) and datagrams dropped
  // and counted, so that buffers for a session that never comes are freed.
  Duration pending_session_timeout{3'000};
  std::size_t max_sessions_per_connection = 16;
  // WebTransport session flow control (docs/protocol.md, "Session flow
  // control"): the limits each session's peer starts with, announced as
  // SETTINGS_WT_INITIAL_MAX_DATA / _MAX_STREAMS_BIDI / _MAX_STREAMS_UNI. As
  // the application reads, uvwt tops the peer up (WT_MAX_DATA, WT_MAX_STREAMS)
  // to keep this much ahead of what was consumed. Whether flow control is on
  // depends on the dialect and on both sides' SETTINGS: draft-13/14 turn it on
  // when both allow more than one session per connection, draft-15/16 when
  // both announce non-zero limits. All three 0 announce none, which needs
  // max_sessions_per_connection == 1 (the drafts forbid sharing a connection
  // between sessions without flow control).
  std::uint64_t wt_initial_max_data = 16u << 20;
  std::uint64_t wt_initial_max_streams_bidi = 1000;
  std::uint64_t wt_initial_max_streams_uni = 1000;
  // After close() sent WT_CLOSE_SESSION and FIN: how long to wait for the
  // peer's FIN before giving up on it (STOP_SENDING WT_SESSION_GONE on the
  // CONNECT stream) and completing the close anyway.
  Duration session_close_timeout{2'000};
  // SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114, 4.2.2): announced to the peer
  // and enforced on every header section received (names + values + 32 bytes
  // per field). A request over it is answered 431, a response over it fails
  // the session (docs/protocol.md, "What uvwt does"). 1024..32768.
  std::uint64_t max_field_section_size = 16u << 10;
  // Server: how long a CONNECT waits for the client's SETTINGS before it is
  // refused (the answer depends on them: docs/protocol.md).
  Duration peer_settings_timeout{2'000};
  std::string qlog_dir;   // write one qlog file per connection when set
  bool keylog = false;    // append TLS secrets to $SSLKEYLOGFILE
  bool allow_gso = true;  // use UDP GSO/GRO where the kernel has it
  // Send full-size (1452-byte) packets from the first one instead of
  // starting at 1200 and growing by path MTU discovery. A MASQUE proxy
  // connection needs it on both ends: each tunnelled QUIC packet (at least
  // 1200 bytes) must fit in one DATAGRAM frame from the start (docs/proxy.md).
  // Client proxy connections set it themselves; set it on a UdpProxy's server.
  bool assume_full_mtu = false;
  // Test-only settings; null in real programs (set only through the
  // internal test interface, never by applications).
  std::shared_ptr<const detail::TestHooks> test_hooks;
};

// Proxy settings (pywebtransport's ProxyConfig): the client reaches every
// target through an HTTP/3 proxy with MASQUE CONNECT-UDP (RFC 9298): its QUIC
// packets to the target travel as HTTP Datagrams of one request on the proxy
// connection (docs/proxy.md). Both legs verify their own certificate.
struct UVWT_EXPORT ProxyConfig {
  // "https://proxy.example:4433" uses the default URI template
  // /.well-known/masque/udp/{target_host}/{target_port}/; a path gives the
  // template, e.g. "https://proxy.example/masque?h={target_host}&p={target_port}".
  std::string url;
  Headers headers;                   // sent with every CONNECT-UDP request, e.g. proxy-authorization
  Duration connect_timeout{10'000};  // proxy connection and CONNECT-UDP answer
  // The proxy leg's TLS checks, independent of the target leg's: the proxy's
  // certificate must match the proxy's host name (or a pin below).
  bool verify_peer = true;
  std::string ca_file;                                                  // empty: the client's ca_file
  std::vector<std::array<std::uint8_t, 32>> server_certificate_hashes;  // pins of the proxy's leaf
  [[nodiscard]] bool enabled() const noexcept { return !url.empty(); }
};

struct UVWT_EXPORT ClientConfig : TransportConfig {
  // The datagram window exists for servers whose peers are browsers
  // (Firefox): a client's datagrams go to a server, so by default they are
  // not held back for acknowledgments (docs/protocol.md, "Datagrams in flight").
  ClientConfig() { max_datagrams_in_flight = 0; }

  Duration connect_timeout{30'000};
  // Retries a ReconnectingClient makes after consecutive failed attempts: it
  // gives up once max_retries + 1 attempts in a row have failed (0: the first
  // failure is final); -1: never gives up.
  int max_retries = 3;
  Duration retry_delay{1'000};
  double retry_backoff = 2.0;
  Duration max_retry_delay{30'000};
  bool retry_jitter = true;  // multiply delays by a random factor in [0.5, 1.5)
  Headers headers;           // default headers for every CONNECT
  std::string user_agent;    // empty: "uvwt/<version>"
  std::vector<std::string> alpn{"h3"};
  std::string ca_file;
  bool use_system_trust = true;
  std::string certfile, keyfile;  // client certificate for mutual TLS
  bool verify_peer = true;
  std::vector<std::array<std::uint8_t, 32>> server_certificate_hashes;  // SHA-256 pins of the leaf DER
  std::size_t max_connections = 100;           // owned connections plus pending connects, per Client
  std::size_t max_concurrent_handshakes = 16;  // used by ClientFleet::connect_all
  // Connection pooling (docs/api/client.md, "Connection pooling"). Off: every
  // Client::connect opens its own connection (the drafts' default of one
  // session per connection). On: a new session to an authority goes on an
  // open connection to it when the peer allows more sessions there, at most
  // max_sessions_per_pooled_connection at once (0: as many as the peer
  // allows); otherwise (limit reached, a dialect without several sessions,
  // the connection draining or told GOAWAY) a new connection is opened.
  bool pool_connections = false;
  std::size_t max_sessions_per_pooled_connection = 0;
  // How long a pooled connection stays open once its last session closed,
  // for the next connect to reuse; 0 closes it at once.
  Duration pool_idle_linger{0};
  // Locally opened streams (bidirectional and unidirectional together) open at
  // the same time in each client session (Client::connect, Connection::create_client
  // and Connection::open_session); opening one more
  // fails with Errc::flow_control until one of them closes.
  // Per-stream buffers are TransportConfig's stream_send_buffer (sending) and
  // initial_max_stream_data (receiving).
  std::size_t max_streams = 1000;
  std::vector<std::string> protocols;  // wt-available-protocols offered to the server
  // WebTransport generations this client announces and may pick: any of
  // "draft02", "draft07", "draft13", "draft15". Empty: all of them; the
  // newest one the server also announced is used. One name forces a dialect
  // (interop tests); connecting to a server without it fails with
  // Errc::handshake.
  std::vector<std::string> dialects;
  ProxyConfig proxy;
  // Resumption and 0-RTT (docs/api/client.md, "Resumption and 0-RTT").
  // With session_resumption the client keeps the tickets servers issue and
  // offers one when it connects to the same authority again: an abbreviated
  // handshake (no certificate sent or checked again). early_data also offers
  // 0-RTT with tickets that allow it; uvwt itself sends no request in 0-RTT
  // (the CONNECT waits for the handshake), so it only tells whether the
  // server would take it (ConnectionInfo::early_data_accepted).
  bool session_resumption = true;
  bool early_data = false;
  // Where tickets are kept. Null: each Client makes its own (bounded:
  // TicketCache::create's defaults); Connection::create_client keeps none.
  // Share one to resume across Clients and Connections.
  std::shared_ptr<TicketCache> ticket_cache;

  // Verification off (loudly logged), short timeouts: for local development only.
  static ClientConfig development();
  // Verification on, conservative limits.
  static ClientConfig production();
  // Checks every field; the error names the offending field.
  [[nodiscard]] Error validate() const;
};

// Routable connection ids (draft-ietf-quic-load-balancers-19, docs/scaling.md):
// every connection id the server issues (its first SCID and every
// NEW_CONNECTION_ID) carries `server_id`, so a balancer that knows this
// configuration routes a connection's packets to this server whatever the
// client's address. Off while server_id is empty.
struct QuicLbConfig {
  std::uint8_t config_id = 0;  // config rotation bits, 0..6 (7 means "not routable", Section 2.2)
  Bytes server_id;             // 1..15 bytes, unique per server behind the balancer
  std::size_t nonce_len = 8;   // 4..18, server_id + nonce at most 19 bytes
  // Empty: plaintext CIDs (Section 4, server id readable by anyone). 16 bytes:
  // AES-128 single-pass encryption, which needs server_id + nonce_len == 16.
  Bytes key;
  [[nodiscard]] bool enabled() const noexcept { return !server_id.empty(); }
};

// One worker of a ServerGroup (include/uvwt/server_group.hpp sets these):
// its socket joins a SO_REUSEPORT group and a classic BPF program steers each
// packet to the worker whose id the connection id carries.
struct WorkerConfig {
  bool reuse_port = false;        // SO_REUSEPORT on every socket this server binds
  std::uint8_t worker_id = 0;     // 0..count-1; also the bind order in the group
  std::uint8_t worker_count = 1;  // 1: no steering byte in the connection ids
};

struct UVWT_EXPORT ServerConfig : TransportConfig {
  std::string certfile, keyfile;  // PEM files, or:
  std::string cert_pem, key_pem;  // PEM in memory
  std::vector<std::string> alpn{"h3"};
  std::size_t max_connections = 10'000;
  std::size_t max_sessions = 100'000;
  // Handshake limits (docs/security.md). A handshake in progress holds a
  // connection and its TLS state until it completes, fails, or
  // handshake_timeout reaps it. An Initial without a Retry token may come
  // from a forged address: beyond max_unvalidated_handshakes handshakes in
  // progress (or from one source address beyond max_handshakes_per_address),
  // or always with validate_address, it is answered with a Retry, which costs
  // the server no state. A client that returns the Retry token has shown it
  // receives our packets; its Initial is refused (CONNECTION_REFUSED) beyond
  // max_handshakes in progress or max_handshakes_per_address from its address.
  bool validate_address = false;                 // Retry before every connection
  std::size_t max_unvalidated_handshakes = 128;  // handshakes in progress before Retry is required
  std::size_t max_handshakes = 1024;             // handshakes in progress, validated or not
  std::size_t max_handshakes_per_address = 64;   // per source IP address (any port)
  // A Retry token is honoured this long after the Retry (a round trip, with
  // room for a slow one). Later, the Initial is closed with INVALID_TOKEN.
  Duration retry_token_lifetime{10'000};
  // Answers sent without connection state (stateless resets, Version
  // Negotiation, CONNECTION_REFUSED to Initials) draw from a token bucket:
  // this many per second, at most stateless_answer_burst at once. 0: none.
  std::uint32_t stateless_answers_per_second = 1000;
  std::uint32_t stateless_answer_burst = 100;
  // Keys stateless reset tokens (and Retry tokens); at least 16 bytes, kept
  // secret. Empty: a random key per Server, so after a restart the server
  // can no longer reset its previous run's connections and their clients
  // wait for their idle timeout. With the same key across restarts (and on
  // every server behind one address) a client of a lost connection learns
  // at its next packet that the connection is gone.
  Bytes stateless_reset_secret;
  QuicLbConfig quic_lb;
  WorkerConfig worker;
  // shutdown() without a timeout: GOAWAY, WT_DRAIN_SESSION, and after at most
  // this long whatever is left is closed.
  Duration shutdown_timeout{5'000};
  // During a shutdown: how long drained sessions get to wrap up before the
  // server closes them (WT_CLOSE_SESSION) and their connections. Capped by the
  // shutdown timeout.
  Duration drain_timeout{2'000};
  std::vector<std::string> protocols;  // subprotocols the server accepts, preference order
  // WebTransport generations announced in SETTINGS: any of "draft02", "draft07",
  // "draft13", "draft15". Empty: all of them (what interoperates). Fewer make
  // the server look like an older one, e.g. for interop tests.
  std::vector<std::string> dialects;
  // Mutual TLS. With trust anchors for client certificates (PEM file or PEM
  // text) the server asks every client for a certificate and refuses the
  // handshake when the one presented does not chain to them or is outside its
  // validity period (extended key usage is not checked). A client presenting
  // none is let in, unless require_client_certificate is set.
  std::string client_ca_file, client_ca_pem;
  bool require_client_certificate = false;
  // Resumption (docs/security.md, "Session tickets and 0-RTT"). Tickets let
  // a returning client skip the certificate; they are encrypted with keys
  // GnuTLS derives from session_ticket_key, a new one every
  // session_ticket_lifetime (tickets of the previous period are still
  // taken, so a ticket lives at most about twice that). Empty key: a random
  // one per Server; give every worker behind one address the same 64 bytes
  // to let them resume each other's clients.
  bool session_tickets = true;
  Duration session_ticket_lifetime{6 * 3600 * 1000};  // 1 s .. 7 days
  Bytes session_ticket_key;                           // empty or exactly 64 bytes, secret
  // Accept 0-RTT from resuming clients (needs session_tickets). Off by
  // default: early data can be replayed. With it on, a ClientHello seen
  // before within GnuTLS's replay window gets no 0-RTT (a bounded replay
  // cache), and HTTP/3 starts only once the handshake is complete, so no
  // CONNECT (no session) is ever taken from early data
  // (docs/security.md, "Session tickets and 0-RTT").
  bool early_data = false;
  [[nodiscard]] Error validate() const;
};

}  // namespace uvwt
