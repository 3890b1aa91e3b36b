#pragma once

#include <uvwt/error.hpp>

#include <gnutls/gnutls.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace uvwt::detail {

// TLS 1.3 only (QUIC forbids older versions), the cipher suites QUIC defines,
// and no middlebox-compatibility ChangeCipherSpec, which QUIC must not send.
extern const char *const kQuicTlsPriority;

struct TlsServerOptions {
  std::string cert_file, key_file;  // PEM files, or:
  std::string cert_pem, key_pem;    // PEM in memory (used when cert_file is empty)
  std::vector<std::string> alpn = {"h3"};
  bool keylog = false;          // append secrets to $SSLKEYLOGFILE
  bool session_tickets = true;  // issue tickets so that clients can resume
  // GnuTLS's master ticket key (64 bytes): empty makes a random one. Ticket
  // encryption keys are derived from it, a new one each ticket lifetime.
  std::vector<std::uint8_t> ticket_key;
  std::uint32_t ticket_lifetime_s = 6 * 3600;
  bool early_data = false;  // accept 0-RTT from resuming clients (replay-checked)
  // Mutual TLS: trust anchors for client certificates (file, or PEM text).
  // Set, certificates are requested and verified; require_client_cert
  // refuses clients presenting none.
  std::string client_ca_file, client_ca_pem;
  bool require_client_cert = false;
};

struct TlsClientOptions {
  bool verify_peer = true;
  std::string ca_file;  // extra trust anchors (PEM), on top of or instead of the system's
  bool use_system_trust = true;
  // SHA-256 of acceptable leaf certificates (DER). When present they replace
  // chain and host name checks, as browsers' serverCertificateHashes do.
  std::vector<std::array<std::uint8_t, 32>> pinned_sha256;
  std::string client_cert_file, client_key_file;  // optional, for mutual TLS
  std::vector<std::string> alpn = {"h3"};
  bool keylog = false;
  bool early_data = false;  // send 0-RTT when resuming with a ticket that allows it
};

// Credentials and settings one server endpoint shares among its connections.
class TlsServerContext : public std::enable_shared_from_this<TlsServerContext> {
 public:
  // Errc::configuration naming the file (or "certificate"/"key" for PEM in
  // memory) when a certificate or key is missing, unreadable, malformed or the
  // two do not match.
  static std::shared_ptr<TlsServerContext> create(const TlsServerOptions &opts, Error &err);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext &) = delete;
  TlsServerContext &operator=(const TlsServerContext &) = delete;

  [[nodiscard]] gnutls_certificate_credentials_t credentials() const noexcept { return cred_; }
  [[nodiscard]] gnutls_priority_t priority() const noexcept { return priority_; }
  [[nodiscard]] const std::vector<std::string> &alpn() const noexcept { return alpn_; }
  // Null when session tickets are off.
  [[nodiscard]] const gnutls_datum_t *ticket_key() const noexcept {
    return ticket_key_.data != nullptr ? &ticket_key_ : nullptr;
  }
  // Null when early data is off.
  [[nodiscard]] gnutls_anti_replay_t anti_replay() const noexcept { return anti_replay_; }
  [[nodiscard]] bool keylog() const noexcept { return keylog_; }
  [[nodiscard]] std::uint32_t ticket_lifetime_s() const noexcept { return ticket_lifetime_s_; }
  // SHA-256 of the leaf certificate served, as clients pin it.
  [[nodiscard]] const std::array<std::uint8_t, 32> &certificate_sha256() const noexcept { return cert_sha256_; }
  // What each session asks of clients: GNUTLS_CERT_IGNORE without mutual TLS.
  [[nodiscard]] gnutls_certificate_request_t client_cert_request() const noexcept { return client_cert_request_; }

 private:
  struct ReplayCache;
  static int verify_client(gnutls_session_t session);
  TlsServerContext() = default;

  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  gnutls_datum_t ticket_key_{nullptr, 0};
  gnutls_anti_replay_t anti_replay_ = nullptr;
  std::unique_ptr<ReplayCache> replay_cache_;
  std::vector<std::string> alpn_;
  std::array<std::uint8_t, 32> cert_sha256_{};
  gnutls_certificate_request_t client_cert_request_ = GNUTLS_CERT_IGNORE;
  std::uint32_t ticket_lifetime_s_ = 6 * 3600;
  bool keylog_ = false;
};

// Trust anchors and verification policy one client endpoint uses.
class TlsClientContext : public std::enable_shared_from_this<TlsClientContext> {
 public:
  // Errc::configuration naming the file when ca_file or the client
  // certificate/key cannot be used.
  static std::shared_ptr<TlsClientContext> create(const TlsClientOptions &opts, Error &err);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext &) = delete;
  TlsClientContext &operator=(const TlsClientContext &) = delete;

  [[nodiscard]] gnutls_certificate_credentials_t credentials() const noexcept { return cred_; }
  [[nodiscard]] gnutls_priority_t priority() const noexcept { return priority_; }
  [[nodiscard]] const std::vector<std::string> &alpn() const noexcept { return alpn_; }
  [[nodiscard]] bool verify_peer() const noexcept { return verify_peer_; }
  [[nodiscard]] const std::vector<std::array<std::uint8_t, 32>> &pinned_sha256() const noexcept { return pinned_; }
  [[nodiscard]] bool keylog() const noexcept { return keylog_; }
  [[nodiscard]] bool early_data() const noexcept { return early_data_; }

 private:
  TlsClientContext() = default;

  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  std::vector<std::string> alpn_;
  std::vector<std::array<std::uint8_t, 32>> pinned_;
  bool verify_peer_ = true;
  bool keylog_ = false;
  bool early_data_ = false;
};

}  // namespace uvwt::detail
