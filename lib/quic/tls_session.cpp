#include "quic/tls_session.hpp"

#include "common/log.hpp"
#include "quic/certificate.hpp"
#include "quic/tls_context.hpp"
#include "quic/ticket_fields.hpp"

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace uvwt::detail {

namespace {

// --- NSS key log (SSLKEYLOGFILE) -------------------------------------------

struct KeylogFile {
  std::mutex mutex;
  std::FILE *file = nullptr;
};

// Opened on first use and kept for the life of the process: every session of
// every endpoint appends to the same file, as browsers and curl do.
KeylogFile *keylog_file() {
  static KeylogFile *instance = []() -> KeylogFile * {
    const char *path = std::getenv("SSLKEYLOGFILE");
    if (path == nullptr || *path == '\0') return nullptr;
    // Traffic secrets: readable by the owner only.
    const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    std::FILE *f = fd >= 0 ? ::fdopen(fd, "a") : nullptr;
    if (f == nullptr) {
      UVWT_WARN("cannot open SSLKEYLOGFILE %s: %s", path, std::strerror(errno));
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    auto *k = new KeylogFile();  // intentionally never freed: sessions may log until exit
    k->file = f;
    return k;
  }();
  return instance;
}

int on_keylog(gnutls_session_t session, const char *label, const gnutls_datum_t *secret) {
  KeylogFile *k = keylog_file();
  if (k == nullptr) return 0;
  gnutls_datum_t client_random{nullptr, 0}, server_random{nullptr, 0};
  gnutls_session_get_random(session, &client_random, &server_random);
  std::string line(label);
  line += ' ';
  line += hex_encode({client_random.data, client_random.size});
  line += ' ';
  line += hex_encode({secret->data, secret->size});
  line += '\n';
  std::lock_guard lock(k->mutex);
  std::fwrite(line.data(), 1, line.size(), k->file);
  std::fflush(k->file);
  return 0;
}

// --- certificate verification ---------------------------------------------

std::string format_utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

Error check_validity_period(gnutls_x509_crt_t leaf) {
  const std::time_t now = std::time(nullptr);
  const std::time_t not_after = gnutls_x509_crt_get_expiration_time(leaf);
  const std::time_t not_before = gnutls_x509_crt_get_activation_time(leaf);
  if (not_after != static_cast<std::time_t>(-1) && now > not_after)
    return Error(Errc::certificate, "expired: server certificate expired " + format_utc(not_after));
  if (not_before != static_cast<std::time_t>(-1) && now < not_before)
    return Error(Errc::certificate, "not yet valid: server certificate is valid from " + format_utc(not_before));
  return {};
}

std::string status_text(unsigned status) {
  OwnedDatum out;
  if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out.d, 0) < 0)
    return "verification status " + std::to_string(status);
  std::string text = out.str();
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

// The most useful single reason first: what a user has to fix.
Error describe_chain_failure(unsigned status) {
  const char *reason = "untrusted";
  if ((status & GNUTLS_CERT_SIGNER_NOT_FOUND) != 0) {
    reason = "unknown CA";
  } else if ((status & GNUTLS_CERT_EXPIRED) != 0) {
    reason = "expired";
  } else if ((status & GNUTLS_CERT_NOT_ACTIVATED) != 0) {
    reason = "not yet valid";
  } else if ((status & GNUTLS_CERT_REVOKED) != 0) {
    reason = "revoked";
  } else if ((status & GNUTLS_CERT_PURPOSE_MISMATCH) != 0) {
    reason = "not a TLS server certificate";
  } else if ((status & GNUTLS_CERT_INSECURE_ALGORITHM) != 0) {
    reason = "insecure algorithm";
  } else if ((status & GNUTLS_CERT_SIGNER_NOT_CA) != 0) {
    reason = "issuer is not a CA";
  } else if ((status & GNUTLS_CERT_SIGNATURE_FAILURE) != 0) {
    reason = "bad signature";
  }
  return Error(Errc::certificate, std::string(reason) + ": " + status_text(status));
}

Error check_host(gnutls_x509_crt_t leaf, const std::string &host) {
  if (auto ip = parse_ip_literal(host)) {
    if (gnutls_x509_crt_check_ip(leaf, ip->bytes.data(), static_cast<unsigned>(ip->size), 0) != 0) return {};
  } else if (gnutls_x509_crt_check_hostname2(leaf, host.c_str(), 0) != 0) {
    return {};
  }
  return Error(Errc::certificate, "host name mismatch: server certificate is not valid for " + host);
}

}  // namespace

Error verify_peer_certificate(gnutls_session_t session, const VerifyPolicy &policy) {
  if (!policy.verify_peer && policy.pinned_sha256.empty()) return {};

  unsigned count = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &count);
  if (certs == nullptr || count == 0) return Error(Errc::certificate, "no certificate: the server presented none");
  X509Cert leaf;
  if (int rv = gnutls_x509_crt_init(leaf.out()); rv < 0)
    return Error(Errc::certificate, gnutls_error_text("gnutls_x509_crt_init", rv));
  if (int rv = gnutls_x509_crt_import(leaf.get(), &certs[0], GNUTLS_X509_FMT_DER); rv < 0)
    return Error(Errc::certificate, gnutls_error_text("invalid server certificate", rv));

  if (!policy.pinned_sha256.empty()) {
    const auto digest = sha256_digest({certs[0].data, certs[0].size});
    if (std::find(policy.pinned_sha256.begin(), policy.pinned_sha256.end(), digest) == policy.pinned_sha256.end()) {
      return Error(Errc::certificate,
                   "pinned hash mismatch: server certificate sha256 " + hex_encode(digest) + " is not pinned");
    }
    return check_validity_period(leaf.get());
  }

  // Only the purpose is passed as typed data: the name is checked below so
  // that a name mismatch is told apart from an untrusted chain.
  gnutls_typed_vdata_st purpose{};
  purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
  purpose.data = reinterpret_cast<unsigned char *>(const_cast<char *>(GNUTLS_KP_TLS_WWW_SERVER));
  unsigned status = 0;
  if (int rv = gnutls_certificate_verify_peers(session, &purpose, 1, &status); rv < 0)
    return Error(Errc::certificate, gnutls_error_text("certificate verification failed", rv));
  if (status != 0) return describe_chain_failure(status);
  if (policy.host.empty()) return {};
  return check_host(leaf.get(), policy.host);
}

TlsSession::TlsSession(bool server, std::shared_ptr<const void> ctx) : ctx_(std::move(ctx)), server_(server) {}

TlsSession::~TlsSession() {
  if (session_ != nullptr) gnutls_deinit(session_);
}

Error TlsSession::init_common(gnutls_priority_t priority, gnutls_certificate_credentials_t cred,
                              const std::vector<std::string> &alpn, ngtcp2_crypto_conn_ref *conn_ref, bool keylog) {
  if (int rv = gnutls_priority_set(session_, priority); rv < 0)
    return Error(Errc::handshake, gnutls_error_text("gnutls_priority_set", rv));
  if (int rv = gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, cred); rv < 0)
    return Error(Errc::handshake, gnutls_error_text("gnutls_credentials_set", rv));

  std::vector<gnutls_datum_t> protocols;
  protocols.reserve(alpn.size());
  for (const auto &p : alpn) protocols.push_back(as_datum(p));
  // The peer must agree on a protocol: QUIC requires ALPN (RFC 9001, 8.1).
  const unsigned alpn_flags = server_ ? (GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE) : GNUTLS_ALPN_MANDATORY;
  if (int rv =
          gnutls_alpn_set_protocols(session_, protocols.data(), static_cast<unsigned>(protocols.size()), alpn_flags);
      rv < 0)
    return Error(Errc::configuration, gnutls_error_text("gnutls_alpn_set_protocols", rv));

  gnutls_db_set_ptr(session_, this);
  gnutls_handshake_set_hook_function(session_, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST,
                                     &TlsSession::on_handshake_message);
  if (keylog && keylog_file() != nullptr) gnutls_session_set_keylog_function(session_, on_keylog);

  if (conn_ref != nullptr) {
    gnutls_session_set_ptr(session_, conn_ref);
    const int rv = server_ ? ngtcp2_crypto_gnutls_configure_server_session(session_)
                           : ngtcp2_crypto_gnutls_configure_client_session(session_);
    if (rv != 0) return Error(Errc::handshake, "ngtcp2 could not configure the TLS session");
  }
  return {};
}

std::unique_ptr<TlsSession> TlsSession::create_server(TlsServerContext &ctx, ngtcp2_crypto_conn_ref *conn_ref,
                                                      Error &err) {
  err = {};
  std::unique_ptr<TlsSession> self(new TlsSession(true, ctx.shared_from_this()));
  unsigned flags = GNUTLS_SERVER;
  // QUIC carries no EndOfEarlyData message (RFC 9001, 8.3).
  if (conn_ref != nullptr) flags |= GNUTLS_NO_END_OF_EARLY_DATA;
  if (ctx.anti_replay() != nullptr) flags |= GNUTLS_ENABLE_EARLY_DATA;
  if (int rv = gnutls_init(&self->session_, flags); rv < 0) {
    self->session_ = nullptr;
    err = Error(Errc::handshake, gnutls_error_text("gnutls_init", rv));
    return nullptr;
  }
  if ((err = self->init_common(ctx.priority(), ctx.credentials(), ctx.alpn(), conn_ref, ctx.keylog()))) return nullptr;
  if (ctx.client_cert_request() != GNUTLS_CERT_IGNORE)
    gnutls_certificate_server_set_request(self->session_, ctx.client_cert_request());
  if (const gnutls_datum_t *key = ctx.ticket_key()) {
    if (int rv = gnutls_session_ticket_enable_server(self->session_, key); rv < 0) {
      err = Error(Errc::handshake, gnutls_error_text("gnutls_session_ticket_enable_server", rv));
      return nullptr;
    }
    // The lifetime tickets announce, and GnuTLS's key rotation period.
    gnutls_db_set_cache_expiration(self->session_, static_cast<int>(ctx.ticket_lifetime_s()));
  }
  if (ctx.anti_replay() != nullptr) {
    gnutls_anti_replay_enable(self->session_, ctx.anti_replay());
    // QUIC tickets must announce 0xffffffff to permit 0-RTT (RFC 9001, 4.6.1).
    if (conn_ref != nullptr) gnutls_record_set_max_early_data_size(self->session_, 0xffffffffu);
  }
  return self;
}

std::unique_ptr<TlsSession> TlsSession::create_client(TlsClientContext &ctx, ngtcp2_crypto_conn_ref *conn_ref,
                                                      std::string_view server_name, Error &err) {
  err = {};
  if (server_name.size() >= 2 && server_name.front() == '[' && server_name.back() == ']') {
    server_name.remove_prefix(1);
    server_name.remove_suffix(1);
  } else if (server_name.size() > 1 && server_name.back() == '.') {
    // "example.com." names the same host; SNI must not carry the dot (RFC 6066, 3).
    server_name.remove_suffix(1);
  }
  std::unique_ptr<TlsSession> self(new TlsSession(false, ctx.shared_from_this()));
  self->policy_.verify_peer = ctx.verify_peer();
  self->policy_.pinned_sha256 = ctx.pinned_sha256();
  self->policy_.host = std::string(server_name);
  const bool checks_name = self->policy_.verify_peer && self->policy_.pinned_sha256.empty();
  if (checks_name && server_name.empty()) {
    err = Error(Errc::configuration, "a server name is required to verify the server certificate");
    return nullptr;
  }

  unsigned flags = GNUTLS_CLIENT;
  if (conn_ref != nullptr) flags |= GNUTLS_NO_END_OF_EARLY_DATA;
  if (ctx.early_data()) flags |= GNUTLS_ENABLE_EARLY_DATA;
  if (int rv = gnutls_init(&self->session_, flags); rv < 0) {
    self->session_ = nullptr;
    err = Error(Errc::handshake, gnutls_error_text("gnutls_init", rv));
    return nullptr;
  }
  if ((err = self->init_common(ctx.priority(), ctx.credentials(), ctx.alpn(), conn_ref, ctx.keylog()))) return nullptr;

  // SNI carries host names only (RFC 6066, 3).
  if (!server_name.empty() && !parse_ip_literal(server_name)) {
    if (int rv = gnutls_server_name_set(self->session_, GNUTLS_NAME_DNS, server_name.data(), server_name.size());
        rv < 0) {
      err = Error(Errc::configuration, gnutls_error_text("server name", rv));
      return nullptr;
    }
  }
  if (self->policy_.verify_peer || !self->policy_.pinned_sha256.empty())
    gnutls_session_set_verify_function(self->session_, &TlsSession::on_verify);
  return self;
}

void TlsSession::release() {
  if (session_ == nullptr) return;
  alpn_kept_ = std::string(alpn());
  peer_sha256_kept_ = peer_certificate_sha256();
  resumed_kept_ = resumed();
  early_data_kept_ = early_data_accepted();
  gnutls_deinit(session_);
  session_ = nullptr;
}

std::string_view TlsSession::alpn() const noexcept {
  if (session_ == nullptr) return alpn_kept_;
  gnutls_datum_t p{nullptr, 0};
  if (gnutls_alpn_get_selected_protocol(session_, &p) < 0 || p.data == nullptr) return {};
  return {reinterpret_cast<const char *>(p.data), p.size};
}

Error TlsSession::set_resumption_data(std::span<const std::uint8_t> data, bool early_data) {
  if (server_) return Error(Errc::configuration, "resumption data is for client sessions");
  if (int rv = gnutls_session_set_data(session_, data.data(), data.size()); rv < 0)
    return Error(Errc::configuration, gnutls_error_text("invalid resumption data", rv));
  const auto *ctx = static_cast<const TlsClientContext *>(ctx_.get());
  early_data_offered_ = early_data && ctx->early_data();
  return {};
}

std::optional<std::array<std::uint8_t, 32>> TlsSession::peer_certificate_sha256() const {
  if (session_ == nullptr) return peer_sha256_kept_;
  unsigned count = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(session_, &count);
  if (certs == nullptr || count == 0) return std::nullopt;
  return sha256_digest({certs[0].data, certs[0].size});
}

bool TlsSession::resumed() const noexcept {
  return session_ == nullptr ? resumed_kept_ : gnutls_session_is_resumed(session_) != 0;
}

bool TlsSession::early_data_accepted() const noexcept {
  if (session_ == nullptr) return early_data_kept_;
  return (gnutls_session_get_flags(session_) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
}

int TlsSession::on_verify(gnutls_session_t session) {
  auto *self = static_cast<TlsSession *>(gnutls_db_get_ptr(session));
  if (self == nullptr) return -1;
  self->verify_error_ = verify_peer_certificate(session, self->policy_);
  if (self->verify_error_) {
    UVWT_INFO("server certificate refused: %s", self->verify_error_.message.c_str());
    return -1;  // GnuTLS aborts the handshake with a bad_certificate alert
  }
  return 0;
}

int TlsSession::on_handshake_message(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
                                     const gnutls_datum_t *msg) {
  if (when != GNUTLS_HOOK_POST || incoming == 0) return 0;
  auto *self = static_cast<TlsSession *>(gnutls_db_get_ptr(session));
  if (self == nullptr) return 0;

  // GNUTLS_ALPN_MANDATORY rejects a peer offering only other protocols, but
  // not one that sends no ALPN at all: catch that here. The server judges the
  // ClientHello; the client, by the server's Finished, what EncryptedExtensions said.
  const bool alpn_due = self->server_ ? htype == GNUTLS_HANDSHAKE_CLIENT_HELLO : htype == GNUTLS_HANDSHAKE_FINISHED;
  if (alpn_due && self->alpn().empty()) {
    UVWT_INFO("TLS peer did not negotiate an application protocol");
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  }

  if (!self->server_ && htype == GNUTLS_HANDSHAKE_FINISHED && self->on_early_data_) {
    // EncryptedExtensions, read before the server's Finished, said whether
    // the early data was accepted (RFC 8446, 4.2.10).
    self->on_early_data_(self->early_data_accepted());
  }
  if (!self->server_ && htype == GNUTLS_HANDSHAKE_NEW_SESSION_TICKET && self->on_ticket_) self->ticket_received(msg);
  return 0;
}

void TlsSession::ticket_received(const gnutls_datum_t *msg) {
  IssuedTicket t;
  gnutls_datum_t data{nullptr, 0};
  if (gnutls_session_get_data2(session_, &data) < 0) return;
  // The packed session knows when the ticket expires; GnuTLS's hook does not
  // always pass the NewSessionTicket body, so the lifetime comes from there.
  const std::time_t expires = gnutls_db_check_entry_expire_time(&data);
  const std::time_t now = std::time(nullptr);
  t.lifetime_s = expires > now ? static_cast<std::uint32_t>(expires - now) : 0;
  t.data.assign(data.data, data.data + data.size);
  gnutls_free(data.data);
  // Whether the ticket allows 0-RTT: read from the message when GnuTLS hands
  // it over; else left to GnuTLS, which offers early data only with a
  // ticket that allows it.
  t.early_data = true;
  if (msg != nullptr) {
    if (const auto f = parse_new_session_ticket({msg->data, msg->size})) {
      t.lifetime_s = std::min(t.lifetime_s, f->lifetime_s);
      t.early_data = f->early_data;
    }
  }
  on_ticket_(std::move(t));
}

}  // namespace uvwt::detail
