#pragma once

// A scripted HTTP/3 + WebTransport peer for conformance tests: it plays the
// other side of a uvwt client or server byte by byte, so tests can send what
// a strict (or broken) implementation would send and check exactly what uvwt
// answers on the wire. It is built on uvwt's QUIC layer (QuicConnection,
// Endpoint, TLS contexts) and on nothing above it: no nghttp3 connection, no
// H3Connection, no SessionImpl. Every HTTP/3 byte it sends is built by the
// helpers below (any ids, values, lengths, including invalid ones), and
// every byte uvwt sends is recorded as it arrived.
//
// Typical use (client side, against a uvwt server):
//
//   auto peer = WirePeer::connect(&tl.loop, server->port(), WirePeer::Options{});
//   REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
//   const auto sid = peer->send_request(wire_connect_request(WireDialect::draft13, "127.0.0.1", "/echo"));
//   REQUIRE(tl.run_until([&] { return peer->status(sid).has_value(); }));
//   peer->send_capsule(sid, 0x2843, close_value);      // any capsule, DATA-framed
//   REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value(); }));
//   CHECK(*peer->stream(sid).reset_code == 0x10e);
//   peer->close(tl);                                   // closes QUIC + handles
//
// Server side (against a uvwt client): WirePeer::listen() binds 127.0.0.1:0,
// port() tells where; requests() lists the bidi streams the client opened,
// request_headers(sid) decodes their HEADERS, send_response() answers.
//
// Options::settings is the exact SETTINGS frame content sent on the control
// stream right after the handshake (wire_dialect_settings() gives the usual
// sets per dialect); send_control = false sends nothing, so tests can send a
// control stream of their own (open_uni() + send()). The peer always opens
// its QPACK encoder and decoder streams (types 0x02, 0x03; no dynamic table).
//
// Nothing is consumed by the application layer here: every received stream
// byte is recorded and its flow-control credit returned at once.

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <uvwt/config.hpp>

#include "quic/endpoint.hpp"
#include "quic/quic_app.hpp"

namespace uvwt::detail {
class QuicConnection;
class TlsClientContext;
class TlsServerContext;
}  // namespace uvwt::detail

namespace uvwt::test {

struct TestLoop;

using WireBytes = std::vector<std::uint8_t>;
using WireFields = std::vector<std::pair<std::string, std::string>>;

struct WireSetting {
  std::uint64_t id;
  std::uint64_t value;
  bool operator==(const WireSetting &) const = default;
};

struct WireFrame {
  std::uint64_t type;
  WireBytes payload;
};

struct WireCapsule {
  std::uint64_t type;
  WireBytes value;
};

enum class WireDialect { draft02, draft07, draft13, draft14, draft15 };

// ---- byte builders: no validation, any value goes on the wire as given
WireBytes wire_varint(std::uint64_t v);
// A varint in exactly `len` bytes (1, 2, 4 or 8): non-minimal encodings.
WireBytes wire_varint_len(std::uint64_t v, std::size_t len);
WireBytes wire_cat(std::initializer_list<std::span<const std::uint8_t>> parts);
WireBytes wire_bytes(std::string_view s);
WireBytes wire_frame(std::uint64_t type, std::span<const std::uint8_t> payload);
WireBytes wire_settings_payload(const std::vector<WireSetting> &settings);
// Control stream opening: stream type 0x00 + SETTINGS frame.
WireBytes wire_control_stream(const std::vector<WireSetting> &settings);
WireBytes wire_data_frame(std::span<const std::uint8_t> payload);
// QPACK field section: required insert count 0, base 0, then one "literal
// field line with literal name" per field, no Huffman (RFC 9204, 4.5.6).
WireBytes wire_field_section(const WireFields &fields);
WireBytes wire_headers_frame(const WireFields &fields);
// type, length, value (RFC 9297, 3.2).
WireBytes wire_capsule(std::uint64_t type, std::span<const std::uint8_t> value);
// Only the type and a claimed length: send fewer (or more) value bytes yourself.
WireBytes wire_capsule_header(std::uint64_t type, std::uint64_t claimed_len);
// WT_CLOSE_SESSION value: 32-bit code + reason bytes as given.
WireBytes wire_close_session_value(std::uint32_t code, std::span<const std::uint8_t> reason);
WireBytes wire_wt_bidi_preamble(std::uint64_t session_id);
WireBytes wire_wt_uni_preamble(std::uint64_t session_id);

// The SETTINGS a client of that dialect sends (draft-02: 0x2b603742=1,
// 0x33=1, 0xffd277=1; draft-07: 0xc671706a=1, 0x08=1, 0x33=1; draft-13/14:
// 0x14e9cd29=max_sessions, 0x08=1, 0x33=1; draft-15: 0x2c7cf000=1, 0x08=1,
// 0x33=1), plus `extra` appended.
std::vector<WireSetting> wire_dialect_settings(WireDialect d, std::uint64_t max_sessions = 1,
                                               const std::vector<WireSetting> &extra = {});
// Extended CONNECT of that dialect (:protocol webtransport, or
// webtransport-h3 for draft-15; draft-02 adds sec-webtransport-http3-draft02).
WireFields wire_connect_request(WireDialect d, const std::string &authority, const std::string &path,
                                const WireFields &extra = {});

// ---- parsers of what uvwt sent
// Complete frames at the start of `bytes` (a trailing partial frame is left out).
std::vector<WireFrame> wire_frames(std::span<const std::uint8_t> bytes);
std::vector<WireSetting> wire_parse_settings(std::span<const std::uint8_t> payload);
// Decodes a QPACK field section with no dynamic table; nullopt if it cannot.
std::optional<WireFields> wire_decode_fields(std::span<const std::uint8_t> section);
// Complete capsules in `bytes` (the concatenated DATA frame payloads).
std::vector<WireCapsule> wire_capsules(std::span<const std::uint8_t> bytes);
std::optional<std::string> wire_field(const WireFields &f, std::string_view name);

class WirePeer final : public detail::QuicApp, public detail::Acceptor {
 public:
  struct Options {
    std::vector<WireSetting> settings = wire_dialect_settings(WireDialect::draft13);
    bool send_control = true;
    TransportConfig transport = default_transport();
    static TransportConfig default_transport();
  };

  struct StreamLog {
    WireBytes data;  // every byte received, in order
    bool fin = false;
    std::optional<std::uint64_t> reset_code;         // RESET_STREAM received
    std::optional<std::uint64_t> final_size;         // its Final Size
    std::optional<std::uint64_t> stop_sending_code;  // STOP_SENDING received (from ngtcp2's frame log)
    bool closed = false;                             // QUIC stream fully closed
  };

  struct CloseLog {
    bool closed = false;     // CONNECTION_CLOSE received (or the connection ended)
    bool from_peer = false;  // uvwt sent a CONNECTION_CLOSE
    bool application = false;
    std::uint64_t code = 0;  // exactly as on the wire (H3_NO_ERROR is 0x100)
    std::string reason;
  };

  // Client: connects to 127.0.0.1:port (the test certificate is pinned).
  static std::unique_ptr<WirePeer> connect(uv_loop_t *loop, std::uint16_t port, Options opts);
  static std::unique_ptr<WirePeer> connect(uv_loop_t *loop, std::uint16_t port);
  // Server: listens on 127.0.0.1, ephemeral port, the test certificate.
  static std::unique_ptr<WirePeer> listen(uv_loop_t *loop, Options opts);
  static std::unique_ptr<WirePeer> listen(uv_loop_t *loop);
  ~WirePeer() override;
  WirePeer(const WirePeer &) = delete;
  WirePeer &operator=(const WirePeer &) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] bool handshake_done() const noexcept { return handshake_done_; }
  [[nodiscard]] bool connected() const noexcept { return quic_ != nullptr; }

  // ---- raw QUIC
  std::int64_t open_bidi();  // -1 when no stream credit
  std::int64_t open_uni();
  void send(std::int64_t sid, std::span<const std::uint8_t> bytes, bool fin = false);
  void reset_stream(std::int64_t sid, std::uint64_t code);
  // Stream bytes ngtcp2 has taken from `sid` (what a reset's final size says).
  [[nodiscard]] std::uint64_t sent(std::int64_t sid) const;
  // Drops every packet both ways while on: bytes sent then never arrive.
  void set_blackhole(bool on);
  void stop_sending(std::int64_t sid, std::uint64_t code);
  void send_datagram(std::span<const std::uint8_t> payload);
  void close_connection(std::uint64_t code, const std::string &reason = {});

  // ---- HTTP/3 and WebTransport
  std::int64_t send_request(const WireFields &fields, bool fin = false);
  void send_response(std::int64_t sid, const WireFields &fields) { send(sid, wire_headers_frame(fields)); }
  // One capsule in one DATA frame.
  void send_capsule(std::int64_t sid, std::uint64_t type, std::span<const std::uint8_t> value, bool fin = false);
  // Opens a stream with a WebTransport preamble naming `session_id`, then `payload`.
  std::int64_t open_wt_stream(bool bidi, std::uint64_t session_id, std::span<const std::uint8_t> payload = {},
                              bool fin = false);

  // ---- what uvwt sent
  [[nodiscard]] const std::map<std::int64_t, StreamLog> &streams() const noexcept { return streams_; }
  // The log of `sid` (an empty one if nothing happened on it yet).
  [[nodiscard]] const StreamLog &stream(std::int64_t sid) const;
  // uvwt's SETTINGS, once its whole SETTINGS frame arrived.
  [[nodiscard]] std::optional<std::vector<WireSetting>> peer_settings() const;
  [[nodiscard]] std::optional<std::uint64_t> peer_setting(std::uint64_t id) const;
  // Frames on a request stream, in order (complete ones).
  [[nodiscard]] std::vector<WireFrame> frames(std::int64_t sid) const;
  // First non-interim HEADERS on `sid`, decoded (client: the response; server: the request).
  [[nodiscard]] std::optional<WireFields> headers(std::int64_t sid) const;
  [[nodiscard]] std::optional<int> status(std::int64_t sid) const;
  // Capsules in the DATA frames of `sid`.
  [[nodiscard]] std::vector<WireCapsule> capsules(std::int64_t sid) const;
  // Server: the bidi streams the client opened, in order.
  [[nodiscard]] std::vector<std::int64_t> requests() const;
  [[nodiscard]] const std::vector<WireBytes> &datagrams() const noexcept { return datagrams_; }
  // CONNECTION_CLOSE as received; `closed` is set once it arrived.
  [[nodiscard]] CloseLog close_log() const;

  // Closes the QUIC connection (no linger) and every handle; runs `tl`'s loop
  // until done. Must be called before the peer is destroyed.
  void close(TestLoop &tl);

  // QuicApp
  void on_handshake_completed() override;
  bool on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) override;
  void on_stream_close(std::int64_t sid, bool has_code, std::uint64_t code) override;
  void on_stream_reset(std::int64_t sid, std::uint64_t final_size, std::uint64_t code) override;
  void on_stop_sending(std::int64_t sid, std::uint64_t code) override;
  void on_acked_stream_data(std::int64_t, std::uint64_t) override {}
  void on_extend_max_stream_data(std::int64_t sid) override;
  void on_extend_max_local_streams(bool) override {}
  void on_datagram(const std::uint8_t *data, std::size_t len) override;
  void next_stream_write(detail::StreamWrite &w) override;
  void on_stream_written(std::int64_t sid, std::size_t n, bool fin_sent) override;
  void on_stream_blocked(std::int64_t sid, bool shut) override;
  const ngtcp2_vec *next_datagram() override;
  void on_datagram_written(bool sent) override;
  void on_quic_closed(const Error &err) override;
  [[nodiscard]] bool wants_frame_log() const override { return true; }
  void on_frame_log(const char *line) override;  // records received STOP_SENDING frames

  // Acceptor (server mode)
  bool accept_initial(detail::UdpSocket &sock, const detail::RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                      const ngtcp2_cid *original_dcid) override;

 private:
  WirePeer(uv_loop_t *loop, Options opts);
  struct Out {
    std::deque<WireBytes> chunks;  // kept until the peer goes: ngtcp2 does not copy
    std::uint64_t queued = 0, sent = 0;
    bool fin = false, fin_sent = false, queued_for_write = false, shut = false;
  };
  void queue_write(std::int64_t sid);
  void capture_peer_close();

  uv_loop_t *loop_;
  Options opts_;
  std::shared_ptr<detail::Endpoint> ep_;
  std::shared_ptr<detail::TlsClientContext> client_tls_;
  std::shared_ptr<detail::TlsServerContext> server_tls_;
  std::unique_ptr<detail::QuicConnection> quic_;
  std::uint16_t port_ = 0;
  bool handshake_done_ = false;
  bool quic_closed_ = false;
  std::map<std::int64_t, StreamLog> streams_;
  std::map<std::int64_t, Out> out_;
  std::deque<std::int64_t> write_queue_;
  std::deque<WireBytes> dgram_out_;
  ngtcp2_vec dgram_vec_{};
  std::vector<WireBytes> datagrams_;
  CloseLog close_log_;
  std::int64_t peer_control_ = -1;
};

}  // namespace uvwt::test
