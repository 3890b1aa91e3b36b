#include "quic/tls_context.hpp"

#include "common/log.hpp"
#include "quic/certificate.hpp"

#include <cstring>
#include <ctime>
#include <mutex>
#include <unordered_map>

namespace uvwt::detail {

const char *const kQuicTlsPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:"
    "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

namespace {

// GnuTLS copies ALPN names into fixed slots of this size and count.
constexpr std::size_t kMaxAlpnNameSize = 32;
constexpr std::size_t kMaxAlpnNames = 8;

Error check_alpn(const std::vector<std::string> &alpn) {
  if (alpn.empty()) return Error(Errc::configuration, "alpn: at least one protocol is required");
  if (alpn.size() > kMaxAlpnNames) return Error(Errc::configuration, "alpn: at most 8 protocols");
  for (const auto &p : alpn) {
    if (p.empty() || p.size() > kMaxAlpnNameSize)
      return Error(Errc::configuration, "alpn: protocol names must be 1 to 32 bytes");
  }
  return {};
}

Error init_priority(gnutls_priority_t &out) {
  const char *err_pos = nullptr;
  if (int rv = gnutls_priority_init(&out, kQuicTlsPriority, &err_pos); rv < 0) {
    out = nullptr;
    return Error(Errc::configuration,
                 gnutls_error_text("TLS priority", rv) + " at \"" + (err_pos ? err_pos : "") + "\"");
  }
  return {};
}

struct CertList {
  gnutls_x509_crt_t *certs = nullptr;
  unsigned size = 0;
  CertList() = default;
  CertList(const CertList &) = delete;
  CertList &operator=(const CertList &) = delete;
  ~CertList() {
    for (unsigned i = 0; i < size; ++i) gnutls_x509_crt_deinit(certs[i]);
    if (certs != nullptr) gnutls_free(certs);
  }
};

void warn_if_outside_validity(gnutls_x509_crt_t leaf, const std::string &cert_label) {
  const std::time_t now = std::time(nullptr);
  if (gnutls_x509_crt_get_expiration_time(leaf) < now) {
    UVWT_WARN("%s has expired: clients will reject it", cert_label.c_str());
  } else if (gnutls_x509_crt_get_activation_time(leaf) > now) {
    UVWT_WARN("%s is not valid yet: clients will reject it", cert_label.c_str());
  }
}

// Parses each half separately first, so that the error names the half at
// fault instead of GnuTLS's generic "base64 decoding error".
Error load_key_pair(gnutls_certificate_credentials_t cred, const std::string &cert_pem, const std::string &key_pem,
                    const std::string &cert_label, const std::string &key_label,
                    std::array<std::uint8_t, 32> *leaf_sha256) {
  const gnutls_datum_t cert_data = as_datum(cert_pem);
  const gnutls_datum_t key_data = as_datum(key_pem);

  CertList list;
  int rv = gnutls_x509_crt_list_import2(&list.certs, &list.size, &cert_data, GNUTLS_X509_FMT_PEM, 0);
  if (rv < 0 || list.size == 0) {
    return Error(Errc::configuration,
                 "invalid " + cert_label + ": " + (rv < 0 ? gnutls_strerror(rv) : "no certificate"));
  }
  warn_if_outside_validity(list.certs[0], cert_label);
  if (leaf_sha256 != nullptr) {
    OwnedDatum der;
    if ((rv = gnutls_x509_crt_export2(list.certs[0], GNUTLS_X509_FMT_DER, &der.d)) < 0)
      return Error(Errc::configuration, "invalid " + cert_label + ": " + gnutls_strerror(rv));
    *leaf_sha256 = sha256_digest(der.bytes());
  }

  X509Key key;
  if ((rv = gnutls_x509_privkey_init(key.out())) < 0)
    return Error(Errc::configuration, gnutls_error_text("gnutls_x509_privkey_init", rv));
  if ((rv = gnutls_x509_privkey_import2(key.get(), &key_data, GNUTLS_X509_FMT_PEM, nullptr, 0)) < 0)
    return Error(Errc::configuration,
                 "invalid " + key_label + ": " +
                     (rv == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ? "no private key found" : gnutls_strerror(rv)));

  rv = gnutls_certificate_set_x509_key_mem2(cred, &cert_data, &key_data, GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rv == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
    return Error(Errc::configuration, cert_label + " does not match " + key_label);
  }
  if (rv < 0) {
    return Error(Errc::configuration, "cannot use " + cert_label + " with " + key_label + ": " + gnutls_strerror(rv));
  }
  return {};
}

// Files when names are given, else PEM text; labels name the source in errors.
Error load_key_pair_from(gnutls_certificate_credentials_t cred, const std::string &cert_file,
                         const std::string &key_file, const std::string &cert_pem, const std::string &key_pem,
                         std::array<std::uint8_t, 32> *leaf_sha256) {
  if (!cert_file.empty() || !key_file.empty()) {
    if (cert_file.empty()) return Error(Errc::configuration, "key file given without certificate file");
    if (key_file.empty()) return Error(Errc::configuration, "certificate file given without key file");
    std::string cert, key;
    if (Error e = read_file(cert_file, "certificate", cert)) return e;
    if (Error e = read_file(key_file, "key", key)) return e;
    return load_key_pair(cred, cert, key, "certificate file " + cert_file, "key file " + key_file, leaf_sha256);
  }
  if (cert_pem.empty() || key_pem.empty()) return Error(Errc::configuration, "a certificate and its key are required");
  return load_key_pair(cred, cert_pem, key_pem, "certificate (PEM in memory)", "key (PEM in memory)", leaf_sha256);
}

// GnuTLS's master key for tickets: the configured one (shared by workers
// behind one address) or a fresh random one.
Error init_ticket_key(const std::vector<std::uint8_t> &configured, gnutls_datum_t &out) {
  if (configured.empty()) {
    if (int rv = gnutls_session_ticket_key_generate(&out); rv < 0) {
      out = {nullptr, 0};
      return Error(Errc::configuration, gnutls_error_text("gnutls_session_ticket_key_generate", rv));
    }
    return {};
  }
  out.data = static_cast<unsigned char *>(gnutls_malloc(configured.size()));
  if (out.data == nullptr) return Error(Errc::configuration, "session_ticket_key: out of memory");
  std::memcpy(out.data, configured.data(), configured.size());
  out.size = static_cast<unsigned>(configured.size());
  return {};
}

}  // namespace

// Remembers ClientHellos carrying early data within GnuTLS's replay window,
// so that a captured 0-RTT flight cannot be played twice.
struct TlsServerContext::ReplayCache {
  std::mutex mutex;
  std::unordered_map<std::string, std::time_t> seen;
  std::time_t next_purge = 0;

  static int add(void *ptr, std::time_t exp_time, const gnutls_datum_t *key, const gnutls_datum_t * /*data*/) {
    auto *self = static_cast<ReplayCache *>(ptr);
    const std::time_t now = std::time(nullptr);
    std::lock_guard lock(self->mutex);
    if (now >= self->next_purge) {
      std::erase_if(self->seen, [now](const auto &kv) { return kv.second < now; });
      self->next_purge = now + 1;
    }
    auto [it, inserted] =
        self->seen.try_emplace(std::string(reinterpret_cast<const char *>(key->data), key->size), exp_time);
    if (!inserted && it->second >= now) return GNUTLS_E_DB_ENTRY_EXISTS;
    it->second = exp_time;
    return 0;
  }
};

std::shared_ptr<TlsServerContext> TlsServerContext::create(const TlsServerOptions &opts, Error &err) {
  err = {};
  if ((err = check_alpn(opts.alpn))) return nullptr;
  std::shared_ptr<TlsServerContext> ctx(new TlsServerContext());
  ctx->alpn_ = opts.alpn;
  ctx->keylog_ = opts.keylog;

  if (int rv = gnutls_certificate_allocate_credentials(&ctx->cred_); rv < 0) {
    ctx->cred_ = nullptr;
    err = Error(Errc::configuration, gnutls_error_text("gnutls_certificate_allocate_credentials", rv));
    return nullptr;
  }
  if ((err = load_key_pair_from(ctx->cred_, opts.cert_file, opts.key_file, opts.cert_pem, opts.key_pem,
                                &ctx->cert_sha256_)))
    return nullptr;
  if ((err = init_priority(ctx->priority_))) return nullptr;
  if (!opts.client_ca_file.empty() || !opts.client_ca_pem.empty()) {
    std::string pem = opts.client_ca_pem;
    const std::string label =
        opts.client_ca_file.empty() ? "client CA (PEM in memory)" : "client CA file " + opts.client_ca_file;
    if (!opts.client_ca_file.empty() && (err = read_file(opts.client_ca_file, "client CA", pem))) return nullptr;
    const gnutls_datum_t data = as_datum(pem);
    const int rv = gnutls_certificate_set_x509_trust_mem(ctx->cred_, &data, GNUTLS_X509_FMT_PEM);
    if (rv <= 0) {
      err = Error(Errc::configuration, "invalid " + label + ": " + (rv < 0 ? gnutls_strerror(rv) : "no certificate"));
      return nullptr;
    }
    gnutls_certificate_set_verify_function(ctx->cred_, &TlsServerContext::verify_client);
    ctx->client_cert_request_ = opts.require_client_cert ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST;
  } else if (opts.require_client_cert) {
    err = Error(Errc::configuration, "require_client_certificate needs a client CA to verify against");
    return nullptr;
  }

  ctx->ticket_lifetime_s_ = opts.ticket_lifetime_s;
  if ((opts.session_tickets || opts.early_data) && (err = init_ticket_key(opts.ticket_key, ctx->ticket_key_)))
    return nullptr;
  if (opts.early_data) {
    if (int rv = gnutls_anti_replay_init(&ctx->anti_replay_); rv < 0) {
      ctx->anti_replay_ = nullptr;
      err = Error(Errc::configuration, gnutls_error_text("gnutls_anti_replay_init", rv));
      return nullptr;
    }
    ctx->replay_cache_ = std::make_unique<ReplayCache>();
    gnutls_anti_replay_set_add_function(ctx->anti_replay_, &ReplayCache::add);
    gnutls_anti_replay_set_ptr(ctx->anti_replay_, ctx->replay_cache_.get());
  }
  UVWT_DEBUG("TLS server context ready (certificate sha256 %s)", hex_encode(ctx->cert_sha256_).c_str());
  return ctx;
}

// Runs while the client's Certificate is processed, so that a refused client
// never completes the handshake (GnuTLS answers -1 with a bad_certificate alert).
int TlsServerContext::verify_client(gnutls_session_t session) {
  unsigned count = 0;
  if (gnutls_certificate_get_peers(session, &count) == nullptr || count == 0) return 0;  // REQUIRE is GnuTLS's job
  unsigned status = 0;
  if (int rv = gnutls_certificate_verify_peers2(session, &status); rv < 0) {
    UVWT_INFO("client certificate refused: %s", gnutls_strerror(rv));
    return -1;
  }
  if (status != 0) {
    OwnedDatum text;
    gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text.d, 0);
    UVWT_INFO("client certificate refused: %s", text.d.data != nullptr ? text.str().c_str() : "untrusted");
    return -1;
  }
  return 0;
}

TlsServerContext::~TlsServerContext() {
  if (anti_replay_ != nullptr) gnutls_anti_replay_deinit(anti_replay_);
  if (ticket_key_.data != nullptr) {
    gnutls_memset(ticket_key_.data, 0, ticket_key_.size);
    gnutls_free(ticket_key_.data);
  }
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
  if (cred_ != nullptr) gnutls_certificate_free_credentials(cred_);
}

std::shared_ptr<TlsClientContext> TlsClientContext::create(const TlsClientOptions &opts, Error &err) {
  err = {};
  if ((err = check_alpn(opts.alpn))) return nullptr;
  std::shared_ptr<TlsClientContext> ctx(new TlsClientContext());
  ctx->alpn_ = opts.alpn;
  ctx->pinned_ = opts.pinned_sha256;
  ctx->verify_peer_ = opts.verify_peer;
  ctx->keylog_ = opts.keylog;
  ctx->early_data_ = opts.early_data;

  if (int rv = gnutls_certificate_allocate_credentials(&ctx->cred_); rv < 0) {
    ctx->cred_ = nullptr;
    err = Error(Errc::configuration, gnutls_error_text("gnutls_certificate_allocate_credentials", rv));
    return nullptr;
  }
  const bool chain_checked = opts.verify_peer && opts.pinned_sha256.empty();
  if (chain_checked && opts.use_system_trust) {
    const int rv = gnutls_certificate_set_x509_system_trust(ctx->cred_);
    if (rv < 0) {
      UVWT_WARN("system trust store unavailable (%s)", gnutls_strerror(rv));
    } else if (rv == 0) {
      UVWT_WARN("system trust store holds no certificates");
    }
  }
  if (!opts.ca_file.empty()) {
    std::string pem;
    if ((err = read_file(opts.ca_file, "CA", pem))) return nullptr;
    const gnutls_datum_t data = as_datum(pem);
    const int rv = gnutls_certificate_set_x509_trust_mem(ctx->cred_, &data, GNUTLS_X509_FMT_PEM);
    if (rv <= 0) {
      err = Error(Errc::configuration,
                  "invalid CA file " + opts.ca_file + ": " + (rv < 0 ? gnutls_strerror(rv) : "no certificate"));
      return nullptr;
    }
  }
  if (!opts.client_cert_file.empty() || !opts.client_key_file.empty()) {
    if ((err = load_key_pair_from(ctx->cred_, opts.client_cert_file, opts.client_key_file, {}, {}, nullptr)))
      return nullptr;
  }
  if ((err = init_priority(ctx->priority_))) return nullptr;
  if (!opts.verify_peer && opts.pinned_sha256.empty()) {
    UVWT_WARN("TLS peer verification is disabled: any server certificate will be accepted");
  }
  return ctx;
}

TlsClientContext::~TlsClientContext() {
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
  if (cred_ != nullptr) gnutls_certificate_free_credentials(cred_);
}

}  // namespace uvwt::detail
