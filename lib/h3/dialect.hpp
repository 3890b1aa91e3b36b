#pragma once

// Which WebTransport generation a peer speaks, learned from its SETTINGS, and
// the SETTINGS we send so that every generation finds what it looks for
// (docs/protocol.md, "Who speaks what").

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace uvwt::detail {

// Ordered oldest to newest: a larger value is a newer dialect.
enum class Dialect : std::uint8_t { none, draft02, draft07, draft13, draft15 };

// What the peer is: a server must announce more than a client (extended
// CONNECT is the server's setting, RFC 9220 §3), so support is judged per role.
enum class PeerRole : std::uint8_t { client, server };

// What a peer's SETTINGS said that matters to WebTransport. Values are kept
// raw; the booleans are derived from them.
struct PeerSettings {
  bool received = false;                          // the whole SETTINGS frame has been read
  bool enable_connect_protocol = false;           // 0x08 == 1
  bool h3_datagram = false;                       // 0x33 == 1 or 0xffd277 == 1
  std::uint64_t h3_datagram_rfc = 0;              // raw 0x33
  std::uint64_t h3_datagram_draft04 = 0;          // raw 0xffd277
  std::uint64_t enable_webtransport_draft02 = 0;  // 0x2b603742
  std::uint64_t wt_max_sessions_draft07 = 0;      // 0xc671706a
  std::uint64_t wt_max_sessions_draft13 = 0;      // 0x14e9cd29
  std::uint64_t wt_enabled = 0;                   // 0x2c7cf000
  std::uint64_t wt_initial_max_data = 0;          // 0x2b61
  std::uint64_t wt_initial_max_streams_uni = 0;   // 0x2b64
  std::uint64_t wt_initial_max_streams_bidi = 0;  // 0x2b65

  // Records one (id, value) pair; ids that do not matter here are ignored.
  void apply(std::uint64_t id, std::uint64_t value) noexcept;
  // Whether these SETTINGS announce dialect `d` as its draft asks of a peer in
  // `role` (docs/protocol.md, "What uvwt does, dialect by dialect").
  [[nodiscard]] bool supports(Dialect d, PeerRole role) const noexcept;
};

// ":protocol" of the extended CONNECT: "webtransport" up to draft-13,
// "webtransport-h3" from draft-15; empty for none.
std::string_view protocol_token(Dialect d) noexcept;
// "none", "draft02", "draft07", "draft13", "draft15".
const char *dialect_name(Dialect d) noexcept;

// Our side of the WebTransport SETTINGS (the same for server and client).
struct LocalWtSettings {
  // Sessions we accept per connection; 0 announces no WebTransport at all.
  std::uint64_t max_sessions = 16;
  // Session-level flow control (draft-12+): announce the WT_INITIAL_* limits.
  bool flow_control = false;
  std::uint64_t initial_max_data = 1 << 20;
  std::uint64_t initial_max_streams_uni = 100;
  std::uint64_t initial_max_streams_bidi = 100;
  // Also announce the pre-RFC datagram setting 0xffd277 (older Chromium
  // looks for it); clear it when datagrams are off.
  bool h3_datagram_draft04 = true;
  // Generations to announce, bit (1 << Dialect) each: all by default; fewer
  // make a server look like an older one (interop testing).
  std::uint8_t dialects = kAllDialects;
  static constexpr std::uint8_t kAllDialects =
      (1u << static_cast<unsigned>(Dialect::draft02)) | (1u << static_cast<unsigned>(Dialect::draft07)) |
      (1u << static_cast<unsigned>(Dialect::draft13)) | (1u << static_cast<unsigned>(Dialect::draft15));
  [[nodiscard]] bool announces(Dialect d) const noexcept { return (dialects & (1u << static_cast<unsigned>(d))) != 0; }
};

// The dialect of a connection: the newest one both sides announce, ours from
// `local`, the peer's from its SETTINGS. Neither side needs to send anything
// beyond its own draft's rules (a client never sends 0x08).
Dialect negotiate_dialect(const LocalWtSettings &local, const PeerSettings &peer, PeerRole peer_role) noexcept;

// Server: the dialect of one extended CONNECT, the newest both sides announce
// whose `:protocol` token is `protocol`; Dialect::none when none fits. A
// draft-02 header on the request does not decide it: Chromium sends
// `sec-webtransport-http3-draft02: 1` also when the SETTINGS chose draft-07.
Dialect negotiate_request_dialect(const LocalWtSettings &local, const PeerSettings &client,
                                  std::string_view protocol) noexcept;

// Dialect by its dialect_name(); Dialect::none for anything else.
Dialect dialect_from_name(std::string_view name) noexcept;

// Largest output of encode_wt_settings: 8 pairs of 8-byte varints at most.
inline constexpr std::size_t kWtSettingsMaxSize = 8 * 16;

// Bytes the pairs below take (ids listed in `present` are left out).
std::size_t wt_settings_size(const LocalWtSettings &s, std::span<const std::uint64_t> present = {}) noexcept;

// Writes the WebTransport (id, value) varint pairs of the interoperable policy:
// 0x2b603742=1, 0xc671706a=N, 0x14e9cd29=N, 0x2c7cf000=1, 0xffd277=1, and
// 0x2b61/0x2b64/0x2b65 with flow control. Not 0x08 and 0x33: nghttp3 writes
// those itself. An id listed in `present` is skipped, since a SETTINGS frame
// must not repeat an id. Returns the bytes written, or 0 (writing nothing)
// when `cap` is smaller than wt_settings_size().
std::size_t encode_wt_settings(const LocalWtSettings &s, std::uint8_t *out, std::size_t cap,
                               std::span<const std::uint64_t> present = {}) noexcept;

}  // namespace uvwt::detail
