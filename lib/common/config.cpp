#include <uvwt/config.hpp>

#include "common/log.hpp"
#include "common/test_hooks.hpp"

namespace uvwt {

namespace {
Error bad(const char *field, const std::string &why) {
  return {Errc::configuration, std::string("invalid ") + field + ": " + why};
}

// Session flow control may only be off where no session shares its
// connection (draft-ietf-webtrans-http3-15 section 5.1).
Error validate_wt_flow_control(const TransportConfig &c) {
  constexpr std::uint64_t kMaxStreams = 1ull << 60;  // section 5.6.2
  constexpr std::uint64_t kMaxData = (1ull << 62) - 1;
  if (c.wt_initial_max_data > kMaxData) return bad("wt_initial_max_data", "must be below 2^62");
  if (c.wt_initial_max_streams_bidi > kMaxStreams) return bad("wt_initial_max_streams_bidi", "must be at most 2^60");
  if (c.wt_initial_max_streams_uni > kMaxStreams) return bad("wt_initial_max_streams_uni", "must be at most 2^60");
  const bool off =
      c.wt_initial_max_data == 0 && c.wt_initial_max_streams_bidi == 0 && c.wt_initial_max_streams_uni == 0;
  if (off && c.max_sessions_per_connection > 1)
    return bad("wt_initial_max_data",
               "session flow control can only be off (all wt_initial_* 0) with "
               "max_sessions_per_connection = 1");
  if (!off && c.wt_initial_max_data == 0)
    return bad("wt_initial_max_data", "must be positive when stream limits are set (no session could send)");
  return {};
}

Error validate_dialects(const std::vector<std::string> &names) {
  for (const auto &n : names)
    if (n != "draft02" && n != "draft07" && n != "draft13" && n != "draft15")
      return bad("dialects", "unknown dialect \"" + n + "\" (draft02, draft07, draft13, draft15)");
  return {};
}

Error validate_transport(const TransportConfig &c) {
  if (c.idle_timeout.count() <= 0) return bad("idle_timeout", "must be positive");
  if (c.handshake_timeout.count() <= 0) return bad("handshake_timeout", "must be positive");
  if (c.keep_alive_interval.count() < 0) return bad("keep_alive_interval", "must not be negative");
  if (c.initial_max_data < 1024) return bad("initial_max_data", "must be at least 1024");
  if (c.initial_max_stream_data < 1024) return bad("initial_max_stream_data", "must be at least 1024");
  if (c.max_streams_bidi == 0 || c.max_streams_bidi > (1ull << 60)) return bad("max_streams_bidi", "out of range");
  if (c.max_streams_uni == 0 || c.max_streams_uni > (1ull << 60)) return bad("max_streams_uni", "out of range");
  if (c.max_datagram_frame_size > 65535) return bad("max_datagram_frame_size", "must be at most 65535");
  if (c.stream_send_buffer < 1024) return bad("stream_send_buffer", "must be at least 1024");
  if (c.connection_send_buffer < 1024) return bad("connection_send_buffer", "must be at least 1024");
  if (c.datagram_send_queue == 0) return bad("datagram_send_queue", "must be positive");
  if (c.max_datagrams_per_packet == 0 || c.max_datagrams_per_packet > 1024)
    return bad("max_datagrams_per_packet", "must be in 1..1024");
  if (c.max_datagrams_in_flight > 65536) return bad("max_datagrams_in_flight", "must be in 0..65536");
  if (c.max_sessions_per_connection == 0) return bad("max_sessions_per_connection", "must be positive");
  if (Error e = validate_wt_flow_control(c)) return e;
  if (c.session_close_timeout.count() <= 0) return bad("session_close_timeout", "must be positive");
  if (c.pending_session_timeout.count() <= 0) return bad("pending_session_timeout", "must be positive");
  // At most 32 KiB: nghttp3's QPACK decoder fails the whole connection
  // (H3_INTERNAL_ERROR) on a single large decoded value (a 100 KB one did),
  // and a Huffman-coded section decodes to at most 8/5 of its size.
  if (c.max_field_section_size < 1024 || c.max_field_section_size > (32u << 10))
    return bad("max_field_section_size", "must be between 1024 and 32768");
  if (c.peer_settings_timeout.count() <= 0) return bad("peer_settings_timeout", "must be positive");
  const auto &im = testing::impairment_of(c);
  for (double p : {im.loss, im.duplicate, im.reorder, im.corrupt})
    if (p < 0.0 || p > 1.0) return bad("impairment", "probabilities must be in [0, 1]");
  return {};
}

// draft-ietf-quic-load-balancers-19, Section 4.2: the limits on the server
// id and nonce lengths, and Section 4.3.1: single-pass encryption covers
// exactly one AES block. The worker steering byte follows the encoded part.
Error validate_quic_lb(const QuicLbConfig &lb, const WorkerConfig &w) {
  if (w.worker_count == 0) return bad("worker.worker_count", "must be positive");
  if (w.worker_id >= w.worker_count) return bad("worker.worker_id", "must be below worker_count");
  if (!lb.enabled()) {
    if (!lb.key.empty()) return bad("quic_lb.key", "needs a server_id");
    return {};
  }
  if (lb.config_id > 6) return bad("quic_lb.config_id", "must be 0..6 (7 marks unroutable ids)");
  if (lb.server_id.size() > 15) return bad("quic_lb.server_id", "must be 1..15 bytes");
  if (lb.nonce_len < 4 || lb.nonce_len > 18) return bad("quic_lb.nonce_len", "must be 4..18");
  const std::size_t encoded = lb.server_id.size() + lb.nonce_len;
  if (encoded > 19) return bad("quic_lb.nonce_len", "server_id + nonce_len must be at most 19 bytes");
  if (w.worker_count > 1 && encoded > 18)
    return bad("quic_lb.nonce_len", "server_id + nonce_len must be at most 18 bytes with workers (steering byte)");
  if (!lb.key.empty()) {
    if (lb.key.size() != 16) return bad("quic_lb.key", "must be 16 bytes (AES-128) or empty (plaintext)");
    if (encoded != 16)
      return bad("quic_lb.key",
                 "single-pass encryption needs server_id + nonce_len == 16 (four-pass is not supported)");
  }
  return {};
}

}  // namespace

Error ClientConfig::validate() const {
  if (Error e = validate_transport(*this)) return e;
  if (connect_timeout.count() <= 0) return bad("connect_timeout", "must be positive");
  if (max_retries < -1) return bad("max_retries", "must be -1 (unlimited) or >= 0");
  if (retry_delay.count() < 0) return bad("retry_delay", "must not be negative");
  if (retry_backoff < 1.0) return bad("retry_backoff", "must be >= 1.0");
  if (max_retry_delay < retry_delay) return bad("max_retry_delay", "must be >= retry_delay");
  if (alpn.empty()) return bad("alpn", "must not be empty");
  for (const auto &a : alpn)
    if (a.empty() || a.size() > 255) return bad("alpn", "entries must be 1..255 bytes");
  if (certfile.empty() != keyfile.empty()) return bad("certfile/keyfile", "give both or neither");
  if (max_connections == 0) return bad("max_connections", "must be positive");
  if (max_concurrent_handshakes == 0) return bad("max_concurrent_handshakes", "must be positive");
  if (max_streams == 0) return bad("max_streams", "must be positive");
  for (const auto &[k, v] : headers) {
    if (k.empty()) return bad("headers", "empty header name");
    for (char ch : k)
      if (ch >= 'A' && ch <= 'Z') return bad("headers", "header names must be lower-case: " + k);
  }
  if (Error e = validate_dialects(dialects)) return e;
  if (proxy.enabled() && proxy.connect_timeout.count() <= 0) return bad("proxy.connect_timeout", "must be positive");
  return {};
}

ClientConfig ClientConfig::development() {
  ClientConfig c;
  c.verify_peer = false;
  c.connect_timeout = Duration(10'000);
  c.max_retries = 3;
  c.retry_delay = Duration(500);
  UVWT_WARN("ClientConfig::development(): certificate verification is OFF; never use this in production");
  return c;
}

ClientConfig ClientConfig::production() {
  ClientConfig c;
  c.verify_peer = true;
  c.connect_timeout = Duration(30'000);
  c.max_retries = 5;
  c.retry_delay = Duration(1'000);
  c.max_retry_delay = Duration(30'000);
  c.keep_alive_interval = Duration(20'000);
  return c;
}

Error ServerConfig::validate() const {
  if (Error e = validate_transport(*this)) return e;
  const bool files = !certfile.empty() || !keyfile.empty();
  const bool mem = !cert_pem.empty() || !key_pem.empty();
  if (!files && !mem) return bad("certfile/keyfile", "a certificate and key are required (files or PEM)");
  if (files && (certfile.empty() || keyfile.empty())) return bad("certfile/keyfile", "give both");
  if (mem && (cert_pem.empty() || key_pem.empty())) return bad("cert_pem/key_pem", "give both");
  if (alpn.empty()) return bad("alpn", "must not be empty");
  if (max_connections == 0) return bad("max_connections", "must be positive");
  if (max_sessions == 0) return bad("max_sessions", "must be positive");
  if (!stateless_reset_secret.empty() && stateless_reset_secret.size() < 16)
    return bad("stateless_reset_secret", "needs at least 16 bytes (or none for a random key)");
  if (Error e = validate_quic_lb(quic_lb, worker)) return e;
  if (max_handshakes == 0) return bad("max_handshakes", "must be positive");
  if (max_unvalidated_handshakes > max_handshakes)
    return bad("max_unvalidated_handshakes", "must not exceed max_handshakes");
  if (max_handshakes_per_address == 0) return bad("max_handshakes_per_address", "must be positive");
  if (retry_token_lifetime.count() <= 0) return bad("retry_token_lifetime", "must be positive");
  if (stateless_answers_per_second > 0 && stateless_answer_burst == 0)
    return bad("stateless_answer_burst", "must be positive when stateless answers are allowed");
  if (shutdown_timeout.count() < 0) return bad("shutdown_timeout", "must not be negative");
  if (drain_timeout.count() < 0) return bad("drain_timeout", "must not be negative");
  if (Error e = validate_dialects(dialects)) return e;
  if (require_client_certificate && client_ca_file.empty() && client_ca_pem.empty())
    return bad("require_client_certificate", "needs client_ca_file or client_ca_pem to verify against");
  if (!client_ca_file.empty() && !client_ca_pem.empty())
    return bad("client_ca_file/client_ca_pem", "give one or the other");
  // GnuTLS takes ticket lifetimes in whole seconds; RFC 8446 section 4.6.1
  // caps them at 7 days.
  if (session_ticket_lifetime < Duration(1'000) || session_ticket_lifetime > Duration(7LL * 24 * 3600 * 1000))
    return bad("session_ticket_lifetime", "must be between 1 s and 7 days");
  if (!session_ticket_key.empty() && session_ticket_key.size() != 64)
    return bad("session_ticket_key", "must be exactly 64 bytes (or empty for a random key)");
  if (early_data && !session_tickets) return bad("early_data", "needs session_tickets");
  return {};
}

}  // namespace uvwt
