#pragma once

#include <nghttp3/nghttp3.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <uvwt/config.hpp>

#include "common/lazy_deque.hpp"
#include "common/deferred.hpp"
#include "common/timer.hpp"
#include "h3/connect_request.hpp"
#include "h3/control_stream.hpp"
#include "h3/datagram_queue.hpp"
#include "h3/dialect.hpp"
#include "h3/header_size_guard.hpp"
#include "h3/raw_stream_writes.hpp"
#include "h3/stream_preamble.hpp"
#include "h3/udp_tunnel.hpp"
#include "h3/wt_send_scheduler.hpp"
#include "quic/quic_app.hpp"
#include "session/session_host.hpp"

namespace uvwt {
class Connection;
class Session;
}  // namespace uvwt

namespace uvwt::detail {

class QuicConnection;
class SessionImpl;
class StreamImpl;

// What the HTTP/3 layer reports to the connection object that owns it.
class H3Owner {
 public:
  virtual ~H3Owner() = default;
  [[nodiscard]] virtual std::shared_ptr<Connection> owner_connection() = 0;
  virtual void on_h3_ready() = 0;  // handshake done and peer SETTINGS seen
  // Server: decide on a session request; decision.on_accepted runs once it is accepted.
  virtual ConnectDecision on_session_request(const ConnectRequest &request) = 0;
  virtual void on_session_accepted(const std::shared_ptr<SessionImpl> &s, ConnectDecision &decision) = 0;
  virtual void on_transport_closed(const Error &err) = 0;
  virtual void on_error_counted() = 0;
  virtual void on_activity() = 0;
};

// HTTP/3 on nghttp3 plus the small WebTransport layer around it
// (docs/protocol.md): extends our SETTINGS, reads the peer's, routes 0x41/0x54
// streams away from nghttp3, owns the session table and the datagram queue.
class H3Connection final : public QuicApp, public SessionHost {
 public:
  // Bytes of one queued datagram (prefix and payload).
  static constexpr std::size_t kDatagramSlot = DatagramQueue::kSlot;
  H3Connection(H3Owner &owner, std::shared_ptr<Deferred> deferred, bool server, const TransportConfig &cfg,
               const ServerConfig *server_cfg, Address remote);
  ~H3Connection() override;
  // A client that raced several attempts (Happy Eyeballs) hands the winner's
  // HTTP/3 state to the connection its user holds, before any session.
  void rebind_owner(H3Owner &owner) noexcept { owner_ = &owner; }
  H3Connection(const H3Connection &) = delete;
  H3Connection &operator=(const H3Connection &) = delete;

  void attach(QuicConnection *q) noexcept { quic_ = q; }
  // Client: the dialects to announce and choose from (ClientConfig::dialects;
  // empty: all). Before the handshake completes.
  void set_client_dialects(const std::vector<std::string> &names) noexcept;
  [[nodiscard]] bool ready() const noexcept { return h3_ready_; }
  // The newest dialect both sides' SETTINGS announce (none before the peer's arrived).
  [[nodiscard]] Dialect dialect() const noexcept {
    return negotiate_dialect(ctrl_out_.local_settings(), peer_ctrl_.settings(),
                             server_ ? PeerRole::client : PeerRole::server);
  }
  [[nodiscard]] const PeerSettings &peer_settings() const noexcept { return peer_ctrl_.settings(); }

  // Client: sends CONNECT once the peer's SETTINGS are known.
  void open_session(const std::string &authority, const std::string &path, const Headers &headers,
                    const std::vector<std::string> &protocols,
                    std::function<void(const Error &, std::shared_ptr<Session>)> cb);
  // Server: the GOAWAY shutdown notice (largest id: requests in flight still
  // count) + WT_DRAIN_SESSION on every session; no new sessions from then on.
  void shutdown_notice();
  // Server: the final GOAWAY naming the last request processed. Sent a grace
  // period after the notice so requests the peer sent before seeing it are
  // answered rather than cut.
  void shutdown_final();
  void close_all_sessions(std::uint32_t code, const std::string &reason);

  [[nodiscard]] std::vector<std::shared_ptr<SessionImpl>> sessions() const;
  [[nodiscard]] std::shared_ptr<SessionImpl> session(SessionId id) const;
  [[nodiscard]] std::uint64_t goaway_received() const noexcept { return goaway_; }
  [[nodiscard]] std::size_t datagrams_dropped() const noexcept { return dgram_dropped_ + dgram_out_.dropped(); }
  // Streams and datagrams waiting for session `id` to become ready.
  [[nodiscard]] std::size_t early_stream_count(SessionId id) const noexcept;
  [[nodiscard]] std::size_t early_datagram_count(SessionId id) const noexcept;

  // Test hooks (white-box loopback tests only).
  // Client: a 2xx to CONNECT is held back until release_held_ready_for_test(),
  // so that the peer's streams and datagrams arrive before the session is ready.
  void hold_ready_for_test(bool on) noexcept { hold_ready_ = on; }
  void release_held_ready_for_test();
  // Never answer a peer's WT_CLOSE_SESSION / FIN: a peer that went silent.
  void ignore_session_close_for_test(bool on) noexcept { ignore_session_close_ = on; }
  // Client: send CONNECT even over the server's session limit (a peer that
  // ignores the rule), so the server's refusal can be tested.
  void ignore_session_limit_for_test(bool on) noexcept { ignore_session_limit_ = on; }
  // Opens a stream owned by `s` whose preamble names `preamble_session`.
  void open_wt_stream_for_test(const std::shared_ptr<SessionImpl> &s, SessionId preamble_session, bool bidi,
                               std::function<void(const Error &, std::int64_t)> cb);
  [[nodiscard]] std::shared_ptr<StreamImpl> wt_stream(std::int64_t sid) const;

  // QuicApp
  void on_handshake_completed() override;
  bool on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) override;
  void on_stream_close(std::int64_t sid, bool has_code, std::uint64_t code) override;
  void on_stream_reset(std::int64_t sid, std::uint64_t final_size, std::uint64_t code) override;
  void on_stop_sending(std::int64_t sid, std::uint64_t code) override;
  void on_acked_stream_data(std::int64_t sid, std::uint64_t len) override;
  void on_extend_max_stream_data(std::int64_t sid) override;
  void on_extend_max_local_streams(bool bidi) override;
  void on_datagram(const std::uint8_t *data, std::size_t len) override;
  void next_stream_write(StreamWrite &w) override;
  void on_stream_written(std::int64_t sid, std::size_t n, bool fin_sent) override;
  void on_stream_blocked(std::int64_t sid, bool shut) override;
  const ngtcp2_vec *next_datagram() override;
  void on_datagram_written(bool accepted) override;
  void on_quic_closed(const Error &err) override;

  // SessionHost
  std::shared_ptr<Connection> host_connection() override { return owner_->owner_connection(); }
  void open_wt_stream(const std::shared_ptr<SessionImpl> &s, bool bidi,
                      std::function<void(const Error &, std::int64_t)> cb) override;
  void stream_ready_to_send(StreamImpl &st) override;
  void stream_priority_changed(StreamImpl &st) override;
  void capsules_queued(SessionImpl &s) override;
  Error send_datagram(SessionImpl &s, std::span<const std::uint8_t> payload) override;
  [[nodiscard]] std::size_t max_datagram_payload(const SessionImpl &s) const override;
  void reset_stream(std::int64_t sid, std::uint64_t h3_code) override;
  void stop_stream(std::int64_t sid, std::uint64_t h3_code) override;
  void consumed(std::int64_t sid, std::size_t n) override;
  void session_finished(SessionImpl &s) override;
  void session_closed(SessionImpl &s) override;
  void abandon_connect_stream(SessionImpl &s, bool reset_send) override;
  void reset_connect_stream(SessionImpl &s, std::uint64_t h3_code) override;
  [[nodiscard]] uv_loop_t *host_loop() override { return deferred_->loop(); }
  void stream_finished(StreamImpl &st) override;
  void defer(std::function<void()> fn) override;
  void add_bytes(bool sent, std::uint64_t n) override;
  void note_activity() override { owner_->on_activity(); }
  void adjust_send_buffered(std::int64_t delta) override;
  [[nodiscard]] bool send_budget_available() const override { return send_buffered_ < cfg_.connection_send_buffer; }
  void wait_send_budget(std::weak_ptr<const StreamImpl> st) override;

  std::uint64_t wt_bytes_sent = 0, wt_bytes_received = 0;

  // CONNECT-UDP (RFC 9298) request streams: lib/h3/h3_udp_tunnel.cpp.
  // Client: sends the extended CONNECT (the peer's SETTINGS must be known);
  // the handler hears the response, the datagrams and the end.
  Error open_udp_tunnel(const std::string &authority, const std::string &path, const Headers &headers,
                        std::weak_ptr<UdpTunnelHandler> handler, std::int64_t &sid);
  // Server: requests with ":protocol connect-udp" go to `fn` (without one
  // they are refused like any request that is not WebTransport). fn answers
  // each with accept_udp_tunnel or refuse_udp_tunnel, at once or later.
  void set_udp_tunnel_acceptor(std::function<void(const UdpTunnelRequest &)> fn) { udp_acceptor_ = std::move(fn); }
  Error accept_udp_tunnel(std::int64_t sid, std::weak_ptr<UdpTunnelHandler> handler);
  void refuse_udp_tunnel(std::int64_t sid, int status, const Headers &headers);
  // Queues one UDP payload as an HTTP Datagram (context id 0).
  Error send_udp_datagram(std::int64_t sid, std::span<const std::uint8_t> udp_payload);
  // The largest UDP payload one datagram of this tunnel carries (0: none).
  [[nodiscard]] std::size_t max_udp_payload(std::int64_t sid) const;
  // Ends the tunnel: FIN after the request (abort: reset both directions).
  // The handler hears nothing more.
  void close_udp_tunnel(std::int64_t sid, bool abort);
  [[nodiscard]] std::size_t udp_tunnel_count() const noexcept { return tunnels_.size(); }

 private:
  friend struct H3Callbacks;
  enum class Route : std::uint8_t { pending, http3, webtransport, ignored };
  struct StreamRoute {
    Route route = Route::pending;
    StreamPreambleParser preamble;
    bool peer_control = false;     // tee into peer_ctrl_
    HeaderSizeGuard header_guard;  // request streams: HEADERS frames within max_field_section_size
    bool refused = false;          // refused request stream: later bytes are dropped
    explicit StreamRoute(bool bidi = false, bool wt_only = false) : preamble(bidi, wt_only) {}
  };
  struct RequestState {  // a CONNECT stream, either side
    std::shared_ptr<SessionImpl> session;
    Headers headers;
    int status = 0;
    std::string method, protocol, scheme, path, authority, origin, wt_protocol;
    std::vector<std::string> offered;
    std::uint64_t field_bytes = 0;  // decoded size so far (RFC 9114, 4.2.2)
    bool too_large = false;
    bool wt_protocol_bad = false;   // wt-protocol present but not an sf-string
    bool waiting_settings = false;  // server: CONNECT parked until the client's SETTINGS
    // What the stream of a parked CONNECT carried meanwhile (at most kHeldBodyMax).
    bool held_fin = false;
    std::vector<std::uint8_t> held_body;
  };
  static constexpr std::size_t kHeldBodyMax = 4096;
  struct OpenRequest {
    std::weak_ptr<SessionImpl> session;
    bool bidi;
    std::function<void(const Error &, std::int64_t)> cb;
    std::optional<SessionId> preamble_session;  // test hook: lie about the session
  };

  bool setup_nghttp3();
  // One packet for next_stream_write from each source; true when it filled `w`.
  bool nghttp3_write(StreamWrite &w);
  bool control_write(StreamWrite &w);
  void wt_write(StreamWrite &w);
  // control_stream_shim.cpp: our control stream, SETTINGS rewritten.
  void take_control_bytes(std::span<const nghttp3_vec> vec);
  void control_acked(std::uint64_t len);
  bool feed_nghttp3(std::int64_t sid, const std::uint8_t *data, std::size_t len, bool fin);
  bool route_new_stream(std::int64_t sid, StreamRoute &r, bool fin, const std::uint8_t *data, std::size_t len);
  void attach_wt_stream(std::int64_t sid, SessionId session_id, bool bidi, const std::uint8_t *payload, std::size_t len,
                        bool fin);
  void check_ready();
  void send_connect(const std::string &authority, const std::string &path, const Headers &headers,
                    const std::vector<std::string> &protocols,
                    std::function<void(const Error &, std::shared_ptr<Session>)> cb);
  void submit_connect(std::int64_t sid, Dialect d, const std::string &authority, const std::string &path,
                      const Headers &headers, const std::vector<std::string> &protocols);
  void handle_request_headers(std::int64_t sid, RequestState &rs);
  [[nodiscard]] ConnectRequest connect_request(const RequestState &rs) const;
  // Server: answers a CONNECT with a non-2xx status; its session never comes.
  void refuse_connect(std::int64_t sid, int status, const ConnectDecision *decision);
  void accept_session(std::int64_t sid, RequestState &rs, Dialect dialect, ConnectDecision &decision);
  void handle_response_headers(std::int64_t sid, RequestState &rs);
  void submit_simple_response(std::int64_t sid, int status, const ConnectDecision *decision);
  void process_open_queue();
  // Hands a session the streams and datagrams that arrived before it was ready.
  void release_early(SessionId id);
  // Session `id` will never be (or is no longer) ready: refuse what waits for it.
  void drop_early(SessionId id, std::uint64_t h3_code);
  // early_arrivals.cpp: what waits longer than pending_session_timeout for
  // its session is refused (streams) or dropped (datagrams).
  void note_early_arrival();
  void arm_early_timer();
  void expire_early();
  void reject_stream(std::int64_t sid, bool bidi, std::uint64_t h3_code, std::size_t credit);
  void remember_gone(SessionId id);
  // A stream or datagram naming `id` can never find a session any more.
  [[nodiscard]] bool session_gone(SessionId id) const;
  bool fatal(std::uint64_t h3_code, const std::string &why);
  // Conformance rules (h3_conformance.cpp; docs/protocol.md, "What uvwt does").
  // Stream error on a request stream: reset and stop it with `code`.
  void abort_request_stream(std::int64_t sid, std::uint64_t code);
  // A HEADERS frame over max_field_section_size: refused before nghttp3 reads it.
  bool guard_header_size(std::int64_t sid, StreamRoute &r, const std::uint8_t *data, std::size_t len);
  void refuse_oversized(std::int64_t sid, bool nghttp3_has_headers);
  // Counts a received field; false once the section is over the limit.
  bool count_field(RequestState &rs, std::size_t name_len, std::size_t value_len);
  // Server: whether a CONNECT may be answered now; parks it until the
  // client's SETTINGS arrive (bounded by peer_settings_timeout).
  bool settings_known_for(std::int64_t sid, RequestState &rs);
  void on_peer_settings();
  // Server: the request cannot be served given the client's SETTINGS (sent
  // a refusal already) .
  bool refuse_by_settings(std::int64_t sid, const RequestState &rs, bool draft02_header);
  // Client: the wt-protocol answer is acceptable for dialect `d`; fails the session otherwise.
  bool check_wt_protocol(std::int64_t sid, RequestState &rs, Dialect d);
  // Session flow control for a new session of dialect `d` (wt_flow_settings.hpp).
  [[nodiscard]] bool session_flow_control(Dialect d) const noexcept;
  void setup_flow_control(SessionImpl &s, Dialect d) const;
  [[nodiscard]] std::size_t live_sessions() const noexcept;
  // Server: a CONNECT over the session limit, refused as unprocessed
  // (RESET_STREAM and STOP_SENDING with H3_REQUEST_REJECTED).
  void reject_request(std::int64_t sid);
  // Hooks for CONNECT-UDP streams; each returns true when `sid` was one.
  bool tunnel_headers(std::int64_t sid, RequestState &rs);
  bool tunnel_datagram(SessionId id, std::span<const std::uint8_t> payload);
  bool tunnel_fin(std::int64_t sid);
  bool tunnel_read_data(std::int64_t sid, std::uint32_t *pflags);
  bool tunnel_stream_closed(std::int64_t sid, bool has_code, std::uint64_t code);
  void close_all_tunnels(const Error &why);
  static const nghttp3_data_reader &data_reader() noexcept;  // request/response bodies
  [[nodiscard]] bool is_local_stream(std::int64_t sid) const noexcept { return ((sid & 1) != 0) == server_; }

  H3Owner *owner_;  // never null
  std::shared_ptr<Deferred> deferred_;
  Address remote_;
  struct CtrlChunk {
    std::vector<std::uint8_t> data;
    std::uint64_t end;
  };
  LazyDeque<CtrlChunk> ctrl_chunks_;  // rewritten control stream bytes until acked
  std::uint64_t ctrl_total_ = 0;
  bool server_;
  TransportConfig cfg_;
  std::uint64_t send_buffered_ = 0;  // unacknowledged WT stream bytes, all streams
  LazyDeque<std::weak_ptr<const StreamImpl>> budget_waiters_;
  bool granting_budget_ = false;
  const ServerConfig *server_cfg_;
  std::uint8_t client_dialects_ = LocalWtSettings::kAllDialects;
  QuicConnection *quic_ = nullptr;
  nghttp3_conn *h3_ = nullptr;
  bool h3_ready_ = false, handshake_done_ = false;
  std::int64_t ctrl_sid_ = -1;
  ControlStreamRewriter ctrl_out_;
  std::uint64_t ctrl_sent_ = 0;      // wire bytes of our control stream handed to ngtcp2
  std::uint64_t ctrl_acked_ = 0;     // wire bytes acked
  std::uint64_t ctrl_h3_acked_ = 0;  // nghttp3 bytes credited as acked
  ControlStreamReader peer_ctrl_;
  std::unordered_map<std::int64_t, StreamRoute> routes_;
  std::map<std::int64_t, RequestState> requests_;
  std::map<SessionId, std::shared_ptr<SessionImpl>> sessions_;
  std::unordered_map<std::int64_t, std::shared_ptr<StreamImpl>> wt_streams_;
  // Streams that arrived for a session not known (yet): bounded, then rejected.
  struct EarlyStream {
    std::int64_t sid;
    SessionId session;
    bool bidi;
    std::vector<std::uint8_t> data;
    bool fin;
    std::uint64_t since_ns;  // arrival
  };
  LazyDeque<EarlyStream> early_streams_;
  struct EarlyDatagrams {
    LazyDeque<std::vector<std::uint8_t>> queue;  // at most max_pending_datagrams
    std::size_t dropped = 0;
    std::uint64_t since_ns = 0;  // the session's first early datagram
  };
  std::unique_ptr<Timer> early_timer_;                // created on the first early arrival
  std::map<SessionId, EarlyDatagrams> early_dgrams_;  // per not-yet-ready session
  // Sessions that ended (closed, rejected, failed) and left sessions_: late
  // streams for them get WT_SESSION_GONE instead of waiting as "early".
  // Bounded: the oldest are forgotten first.
  LazyDeque<SessionId> gone_;
  struct HeldReady {
    SessionId id;
    std::string protocol;
  };
  std::vector<HeldReady> held_ready_;
  bool hold_ready_ = false, ignore_session_close_ = false, ignore_session_limit_ = false;
  WtSendScheduler send_queue_;  // WT streams with data: send order, groups
  bool last_write_was_h3_ = false;
  // nghttp3 had nothing to write at its last poll; cleared by every call that feeds it.
  bool h3_idle_ = false;
  nghttp3_conn *h3w() noexcept {
    h3_idle_ = false;
    return h3_;
  }
  LazyDeque<OpenRequest> open_queue_;
  struct PendingConnect {  // sent once the peer's SETTINGS arrived
    std::string authority, path;
    Headers headers;
    std::vector<std::string> protocols;
    std::function<void(const Error &, std::shared_ptr<Session>)> cb;
  };
  LazyDeque<PendingConnect> pending_connects_;
  RawStreamWrites raw_;
  bool last_write_was_raw_ = false;
  std::vector<std::int64_t> parked_connects_;  // server: waiting for the client's SETTINGS
  std::unique_ptr<Timer> settings_timer_;
  DatagramQueue dgram_out_;
  std::size_t dgram_dropped_ = 0;  // received datagrams dropped
  std::uint64_t goaway_ = 0;
  bool goaway_sent_ = false;
  bool final_goaway_sent_ = false;
  bool peer_ctrl_settings_seen_ = false;
  bool closed_ = false;
  struct UdpTunnel {
    std::weak_ptr<UdpTunnelHandler> handler;
    bool open = false;  // 2xx sent or received
  };
  std::unordered_map<std::int64_t, UdpTunnel> tunnels_;
  std::function<void(const UdpTunnelRequest &)> udp_acceptor_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace uvwt::detail
