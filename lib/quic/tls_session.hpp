#pragma once

#include <uvwt/error.hpp>

#include <gnutls/gnutls.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct ngtcp2_crypto_conn_ref;

namespace uvwt::detail {

class TlsServerContext;
class TlsClientContext;

// How a client judges the server's certificate. Checked in this order:
//  1. pins present: the leaf DER's SHA-256 must equal one of them and the
//     leaf must be inside its validity period; chain and name are not checked
//     (browsers' serverCertificateHashes semantics);
//  2. verify_peer: chain to a trust anchor of the session's credentials,
//     serverAuth usage, validity, then `host` against the SANs (IP SANs when
//     `host` is an IP literal);
//  3. otherwise anything is accepted.
struct VerifyPolicy {
  bool verify_peer = true;
  std::vector<std::array<std::uint8_t, 32>> pinned_sha256;
  std::string host;  // DNS name or IP literal the client asked for
};

// Judges the certificate the peer presented in `session` (during the
// handshake from a verify callback, or after it). Errc::certificate whose
// message starts with the reason: "unknown CA", "host name mismatch",
// "pinned hash mismatch", "expired", "not yet valid", "no certificate", ...
Error verify_peer_certificate(gnutls_session_t session, const VerifyPolicy &policy);

// One gnutls_session_t for one QUIC connection.
//
// With a conn_ref the session is configured for QUIC through ngtcp2's crypto
// helper and `conn_ref` becomes the session pointer (gnutls_session_get_ptr).
// With a null conn_ref it is a plain TLS session for which the caller sets
// the transport (gnutls_transport_set_*), which lets the same setup run over
// an in-memory pipe in tests.
//
// The session's db pointer (gnutls_db_set_ptr) is taken: it leads the GnuTLS
// callbacks back to this object. Session caching through gnutls_db is not
// used (resumption works with tickets).
class TlsSession {
 public:
  // A ticket the server issued, as the client keeps it.
  struct IssuedTicket {
    std::vector<std::uint8_t> data;  // gnutls_session_get_data2: feed back through set_resumption_data()
    std::uint32_t lifetime_s = 0;    // NewSessionTicket.ticket_lifetime (RFC 8446, 4.6.1)
    bool early_data = false;         // it carries the early_data extension (0-RTT allowed)
  };
  // Receives each ticket the server issues.
  using TicketHandler = std::function<void(IssuedTicket ticket)>;
  // Client: told once, when the server's Finished has been processed,
  // whether the server accepted the early data offered.
  using EarlyDataHandler = std::function<void(bool accepted)>;

  static std::unique_ptr<TlsSession> create_server(TlsServerContext &ctx, ngtcp2_crypto_conn_ref *conn_ref, Error &err);
  // `server_name` is sent as SNI and checked against the certificate; an IP
  // literal (brackets allowed) sends no SNI and is checked against IP SANs.
  static std::unique_ptr<TlsSession> create_client(TlsClientContext &ctx, ngtcp2_crypto_conn_ref *conn_ref,
                                                   std::string_view server_name, Error &err);
  ~TlsSession();
  TlsSession(const TlsSession &) = delete;
  TlsSession &operator=(const TlsSession &) = delete;

  [[nodiscard]] gnutls_session_t native() const noexcept { return session_; }
  [[nodiscard]] bool is_server() const noexcept { return server_; }
  // Negotiated protocol; empty until the peer's hello has been processed.
  [[nodiscard]] std::string_view alpn() const noexcept;
  // Why the peer's certificate was refused; ok when it was not.
  [[nodiscard]] const Error &verify_error() const noexcept { return verify_error_; }
  // SHA-256 of the DER of the leaf certificate the peer presented, if any.
  [[nodiscard]] std::optional<std::array<std::uint8_t, 32>> peer_certificate_sha256() const;

  // Client, before the handshake starts: resume a previous session, and
  // offer 0-RTT when `early_data` (the ticket allows it and the context has
  // early data on).
  Error set_resumption_data(std::span<const std::uint8_t> data, bool early_data = false);
  void set_ticket_handler(TicketHandler handler) { on_ticket_ = std::move(handler); }
  void set_early_data_handler(EarlyDataHandler handler) { on_early_data_ = std::move(handler); }
  // Client: whether resumption data allowing 0-RTT was set (early data is offered).
  [[nodiscard]] bool early_data_offered() const noexcept { return early_data_offered_; }
  [[nodiscard]] bool resumed() const noexcept;
  [[nodiscard]] bool early_data_accepted() const noexcept;

  // Server, once the handshake is confirmed: keeps what the accessors above
  // report and frees the GnuTLS session (about 9 KiB, the largest single part
  // of an idle connection). A QUIC server needs no TLS after that: keys are
  // updated from secrets ngtcp2 holds, and a client sends no CRYPTO data in
  // 1-RTT. native() is null afterwards.
  void release();
  [[nodiscard]] bool released() const noexcept { return session_ == nullptr; }

 private:
  TlsSession(bool server, std::shared_ptr<const void> ctx);
  Error init_common(gnutls_priority_t priority, gnutls_certificate_credentials_t cred,
                    const std::vector<std::string> &alpn, ngtcp2_crypto_conn_ref *conn_ref, bool keylog);

  static int on_verify(gnutls_session_t session);
  void ticket_received(const gnutls_datum_t *msg);
  static int on_handshake_message(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
                                  const gnutls_datum_t *msg);

  gnutls_session_t session_ = nullptr;
  std::shared_ptr<const void> ctx_;  // keeps credentials and priorities alive
  VerifyPolicy policy_;
  Error verify_error_;
  TicketHandler on_ticket_;
  EarlyDataHandler on_early_data_;
  bool early_data_offered_ = false;
  bool server_;
  // What the accessors answer once the session is released.
  std::string alpn_kept_;
  std::optional<std::array<std::uint8_t, 32>> peer_sha256_kept_;
  bool resumed_kept_ = false, early_data_kept_ = false;
};

}  // namespace uvwt::detail
