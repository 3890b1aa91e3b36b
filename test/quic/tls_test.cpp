// TLS layer checks without QUIC: the same sessions the QUIC layer gets, run as
// plain TLS 1.3 over an in-memory pipe (TlsSession with a null conn_ref).

#include "catch.hpp"
#include "quic/certificate.hpp"
#include "quic/tls_context.hpp"
#include "quic/tls_session.hpp"

#include <ngtcp2/ngtcp2_crypto.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace uvwt;
using namespace uvwt::detail;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("uvwt-tls-" + std::string(6, 'X'))).string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string &name, const std::string &content) const {
    const auto p = path / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

// One direction of the in-memory transport per deque.
struct PipeEnd {
  gnutls_session_t session = nullptr;
  std::deque<unsigned char> *in = nullptr;
  std::deque<unsigned char> *out = nullptr;

  static ssize_t push(gnutls_transport_ptr_t p, const void *data, size_t size) {
    auto *self = static_cast<PipeEnd *>(p);
    const auto *bytes = static_cast<const unsigned char *>(data);
    self->out->insert(self->out->end(), bytes, bytes + size);
    return static_cast<ssize_t>(size);
  }
  static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t size) {
    auto *self = static_cast<PipeEnd *>(p);
    if (self->in->empty()) {
      gnutls_transport_set_errno(self->session, EAGAIN);
      return -1;
    }
    const size_t n = std::min(size, self->in->size());
    std::copy_n(self->in->begin(), n, static_cast<unsigned char *>(data));
    self->in->erase(self->in->begin(), self->in->begin() + static_cast<std::ptrdiff_t>(n));
    return static_cast<ssize_t>(n);
  }
};

struct Pipe {
  std::deque<unsigned char> to_client, to_server;
  PipeEnd client_end, server_end;

  void attach(gnutls_session_t client, gnutls_session_t server) {
    client_end = {client, &to_client, &to_server};
    server_end = {server, &to_server, &to_client};
    for (PipeEnd *e : {&client_end, &server_end}) {
      gnutls_transport_set_ptr(e->session, e);
      gnutls_transport_set_push_function(e->session, &PipeEnd::push);
      gnutls_transport_set_pull_function(e->session, &PipeEnd::pull);
    }
  }
};

struct HandshakeResult {
  int client = GNUTLS_E_AGAIN;
  int server = GNUTLS_E_AGAIN;
  [[nodiscard]] bool ok() const { return client == 0 && server == 0; }
};

bool pending(int rv) { return rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED; }

// Steps both sides until each has finished or failed; a side left waiting
// after its peer failed keeps GNUTLS_E_AGAIN.
HandshakeResult handshake(gnutls_session_t client, gnutls_session_t server, Pipe &pipe) {
  pipe.attach(client, server);
  HandshakeResult r;
  for (int round = 0; round < 50 && (pending(r.client) || pending(r.server)); ++round) {
    if (pending(r.client)) r.client = gnutls_handshake(client);
    if (pending(r.server)) r.server = gnutls_handshake(server);
    if (!pending(r.client) && !pending(r.server)) break;
    if ((!pending(r.client) || !pending(r.server)) && pipe.to_client.empty() && pipe.to_server.empty()) break;
  }
  return r;
}

// Lets the client read what the server sent after its handshake (tickets).
void drain_client(gnutls_session_t client) {
  char buf[256];
  for (int i = 0; i < 10; ++i) {
    const ssize_t n = gnutls_record_recv(client, buf, sizeof buf);
    if (n == GNUTLS_E_AGAIN) return;
    REQUIRE(n >= 0);
  }
}

std::chrono::system_clock::time_point now() { return std::chrono::system_clock::now(); }

CertificateSpec spec(std::vector<std::string> names, bool ca = false) {
  CertificateSpec s;
  s.names = std::move(names);
  s.not_before = now() - std::chrono::hours{1};
  s.not_after = now() + std::chrono::hours{24};
  s.is_ca = ca;
  return s;
}

// A private CA and two leaves it signed: a valid one and an expired one.
struct Pki {
  CertificatePair ca, leaf, expired, self_signed;
  Pki() {
    REQUIRE_FALSE(make_certificate(spec({"uvwt test CA"}, true), nullptr, ca));
    REQUIRE_FALSE(make_certificate(spec({"localhost", "127.0.0.1"}), &ca, leaf));
    auto old = spec({"localhost"});
    old.not_before = now() - std::chrono::hours{48};
    old.not_after = now() - std::chrono::hours{24};
    REQUIRE_FALSE(make_certificate(old, &ca, expired));
    REQUIRE_FALSE(generate_self_signed_certificate({"localhost"}, self_signed));
  }
};

const Pki &pki() {
  static const Pki instance;
  return instance;
}

std::shared_ptr<TlsServerContext> server_ctx(const CertificatePair &pair, std::vector<std::string> alpn = {"h3"}) {
  TlsServerOptions o;
  o.cert_pem = pair.cert_pem;
  o.key_pem = pair.key_pem;
  o.alpn = std::move(alpn);
  Error err;
  auto ctx = TlsServerContext::create(o, err);
  INFO(err.to_string());
  REQUIRE(ctx);
  return ctx;
}

std::shared_ptr<TlsClientContext> client_ctx(TlsClientOptions o) {
  Error err;
  auto ctx = TlsClientContext::create(o, err);
  INFO(err.to_string());
  REQUIRE(ctx);
  return ctx;
}

TlsClientOptions trusting_ca(const TempDir &dir) {
  TlsClientOptions o;
  o.use_system_trust = false;
  o.ca_file = dir.write("ca.pem", pki().ca.cert_pem);
  return o;
}

struct Connection {
  std::unique_ptr<TlsSession> client, server;
  Pipe pipe;
  HandshakeResult result;
};

std::unique_ptr<Connection> connect(TlsClientContext &cctx, TlsServerContext &sctx, std::string_view name) {
  auto c = std::make_unique<Connection>();
  Error err;
  c->server = TlsSession::create_server(sctx, nullptr, err);
  REQUIRE(c->server);
  c->client = TlsSession::create_client(cctx, nullptr, name, err);
  INFO(err.to_string());
  REQUIRE(c->client);
  c->result = handshake(c->client->native(), c->server->native(), c->pipe);
  return c;
}

bool contains(const std::string &s, std::string_view what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("the QUIC priority string is accepted and negotiates TLS 1.3", "[quic][tls]") {
  gnutls_priority_t p = nullptr;
  const char *err_pos = nullptr;
  REQUIRE(gnutls_priority_init(&p, kQuicTlsPriority, &err_pos) == 0);
  gnutls_priority_deinit(p);

  TempDir dir;
  auto sctx = server_ctx(pki().leaf);
  auto cctx = client_ctx(trusting_ca(dir));
  auto c = connect(*cctx, *sctx, "localhost");
  REQUIRE(c->result.ok());
  CHECK(gnutls_protocol_get_version(c->client->native()) == GNUTLS_TLS1_3);
  CHECK(c->client->alpn() == "h3");
  CHECK(c->server->alpn() == "h3");
  CHECK(c->client->verify_error().ok());
}

TEST_CASE("a released server session keeps answering what was negotiated", "[quic][tls]") {
  TempDir dir;
  auto sctx = server_ctx(pki().leaf);
  auto cctx = client_ctx(trusting_ca(dir));
  auto c = connect(*cctx, *sctx, "localhost");
  REQUIRE(c->result.ok());
  const bool resumed = c->server->resumed();
  REQUIRE_FALSE(c->server->released());
  c->server->release();
  CHECK(c->server->released());
  CHECK(c->server->native() == nullptr);
  CHECK(c->server->alpn() == "h3");
  CHECK(c->server->resumed() == resumed);
  CHECK_FALSE(c->server->early_data_accepted());
  CHECK_FALSE(c->server->peer_certificate_sha256().has_value());  // the client sent none
  c->server->release();                                           // twice is harmless
  CHECK(c->server->released());
}

TEST_CASE("verify_peer_certificate judges the peer's certificate", "[quic][tls]") {
  TempDir dir;
  // The client does not verify in the handshake; each policy is applied afterwards.
  auto insecure_with_ca = trusting_ca(dir);
  insecure_with_ca.verify_peer = false;
  auto cctx = client_ctx(insecure_with_ca);
  TlsClientOptions bare;
  bare.verify_peer = false;
  bare.use_system_trust = false;
  auto cctx_no_ca = client_ctx(bare);

  auto run = [](TlsClientContext &cc, const CertificatePair &served) {
    auto sctx = server_ctx(served);
    auto c = connect(cc, *sctx, "localhost");
    REQUIRE(c->result.ok());
    return c;
  };
  VerifyPolicy policy;
  policy.host = "localhost";

  SECTION("trusted CA and right name") {
    auto c = run(*cctx, pki().leaf);
    CHECK(verify_peer_certificate(c->client->native(), policy).ok());
    policy.host = "127.0.0.1";
    CHECK(verify_peer_certificate(c->client->native(), policy).ok());
  }
  SECTION("wrong host name or address") {
    auto c = run(*cctx, pki().leaf);
    for (const char *host : {"example.com", "::1", "127.0.0.2"}) {
      policy.host = host;
      Error e = verify_peer_certificate(c->client->native(), policy);
      CHECK(e.errc == Errc::certificate);
      CHECK(contains(e.message, "host name mismatch"));
    }
  }
  SECTION("unknown CA") {
    auto c = run(*cctx_no_ca, pki().leaf);
    Error e = verify_peer_certificate(c->client->native(), policy);
    CHECK(e.errc == Errc::certificate);
    CHECK(contains(e.message, "unknown CA"));
  }
  SECTION("self-signed leaf nobody trusts") {
    auto c = run(*cctx, pki().self_signed);
    Error e = verify_peer_certificate(c->client->native(), policy);
    CHECK(e.errc == Errc::certificate);
    CHECK(contains(e.message, "unknown CA"));
  }
  SECTION("expired leaf from a trusted CA") {
    auto c = run(*cctx, pki().expired);
    Error e = verify_peer_certificate(c->client->native(), policy);
    CHECK(e.errc == Errc::certificate);
    CHECK(contains(e.message, "expired"));
  }
  SECTION("pinned hash replaces chain and name checks") {
    auto c = run(*cctx_no_ca, pki().self_signed);
    policy.pinned_sha256 = {pki().leaf.sha256, pki().self_signed.sha256};
    policy.host = "not-the-name.example";
    CHECK(verify_peer_certificate(c->client->native(), policy).ok());
  }
  SECTION("pinned hash mismatch") {
    auto c = run(*cctx, pki().leaf);
    policy.pinned_sha256 = {pki().self_signed.sha256};
    Error e = verify_peer_certificate(c->client->native(), policy);
    CHECK(e.errc == Errc::certificate);
    CHECK(contains(e.message, "pinned hash mismatch"));
  }
  SECTION("a pin does not excuse an expired certificate") {
    auto c = run(*cctx, pki().expired);
    policy.pinned_sha256 = {pki().expired.sha256};
    Error e = verify_peer_certificate(c->client->native(), policy);
    CHECK(e.errc == Errc::certificate);
    CHECK(contains(e.message, "expired"));
  }
  SECTION("insecure accepts anything") {
    auto c = run(*cctx_no_ca, pki().expired);
    policy.verify_peer = false;
    CHECK(verify_peer_certificate(c->client->native(), policy).ok());
  }
}

TEST_CASE("client sessions verify inside the handshake", "[quic][tls]") {
  TempDir dir;
  SECTION("trusted by ca_file with the right name") {
    auto cctx = client_ctx(trusting_ca(dir));
    auto c = connect(*cctx, *server_ctx(pki().leaf), "localhost");
    CHECK(c->result.ok());
    CHECK(c->client->verify_error().ok());
  }
  SECTION("a self-signed server certificate given as ca_file is trusted") {
    TlsClientOptions o;
    o.use_system_trust = false;
    o.ca_file = dir.write("self.pem", pki().self_signed.cert_pem);
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().self_signed), "localhost.");
    CHECK(c->result.ok());
    CHECK(c->client->verify_error().ok());
  }
  SECTION("IP literal: no SNI, IP SAN checked") {
    auto cctx = client_ctx(trusting_ca(dir));
    auto c = connect(*cctx, *server_ctx(pki().leaf), "127.0.0.1");
    CHECK(c->result.ok());
    char name[64];
    size_t size = sizeof name;
    unsigned type = 0;
    CHECK(gnutls_server_name_get(c->server->native(), name, &size, &type, 0) == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
  }
  SECTION("host name is sent as SNI") {
    auto cctx = client_ctx(trusting_ca(dir));
    auto c = connect(*cctx, *server_ctx(pki().leaf), "localhost");
    REQUIRE(c->result.ok());
    char name[64];
    size_t size = sizeof name;
    unsigned type = 0;
    REQUIRE(gnutls_server_name_get(c->server->native(), name, &size, &type, 0) == 0);
    CHECK(std::string(name) == "localhost");
  }
  SECTION("unknown CA fails the handshake with a certificate error") {
    TlsClientOptions o;
    o.use_system_trust = false;
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().leaf), "localhost");
    CHECK(c->result.client < 0);
    CHECK_FALSE(c->result.server == 0);
    CHECK(c->client->verify_error().errc == Errc::certificate);
    CHECK(contains(c->client->verify_error().message, "unknown CA"));
  }
  SECTION("wrong host name fails the handshake") {
    auto cctx = client_ctx(trusting_ca(dir));
    auto c = connect(*cctx, *server_ctx(pki().leaf), "www.example.com");
    CHECK(c->result.client < 0);
    CHECK(contains(c->client->verify_error().message, "host name mismatch"));
  }
  SECTION("pinned hash accepts an untrusted self-signed certificate") {
    TlsClientOptions o;
    o.use_system_trust = false;
    o.pinned_sha256 = {pki().self_signed.sha256};
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().self_signed), "127.0.0.1");
    CHECK(c->result.ok());
    CHECK(c->client->verify_error().ok());
  }
  SECTION("wrong pin fails the handshake") {
    TlsClientOptions o;
    o.pinned_sha256 = {pki().leaf.sha256};
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().self_signed), "localhost");
    CHECK(c->result.client < 0);
    CHECK(c->client->verify_error().errc == Errc::certificate);
    CHECK(contains(c->client->verify_error().message, "pinned hash mismatch"));
  }
  SECTION("insecure client accepts an expired untrusted certificate") {
    TlsClientOptions o;
    o.verify_peer = false;
    o.use_system_trust = false;
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().expired), "whatever");
    CHECK(c->result.ok());
    CHECK(c->client->verify_error().ok());
  }
  SECTION("verification needs a name unless pinned or insecure") {
    auto cctx = client_ctx(trusting_ca(dir));
    Error err;
    CHECK_FALSE(TlsSession::create_client(*cctx, nullptr, "", err));
    CHECK(err.errc == Errc::configuration);
  }
}

TEST_CASE("ALPN must agree", "[quic][tls]") {
  TlsClientOptions o;
  o.verify_peer = false;
  o.use_system_trust = false;

  SECTION("server picks from its list") {
    o.alpn = {"h3-29", "h3"};
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().leaf, {"h3"}), "localhost");
    REQUIRE(c->result.ok());
    CHECK(c->client->alpn() == "h3");
  }
  SECTION("no common protocol") {
    o.alpn = {"h2"};
    auto cctx = client_ctx(o);
    auto c = connect(*cctx, *server_ctx(pki().leaf), "localhost");
    CHECK(c->result.server < 0);
    CHECK(c->result.client < 0);
  }
  SECTION("client offering no ALPN at all is refused") {
    auto sctx = server_ctx(pki().leaf);
    Error err;
    auto server = TlsSession::create_server(*sctx, nullptr, err);
    REQUIRE(server);
    auto cctx = client_ctx(o);
    gnutls_session_t raw = nullptr;
    REQUIRE(gnutls_init(&raw, GNUTLS_CLIENT) == 0);
    gnutls_priority_set(raw, cctx->priority());
    gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, cctx->credentials());
    Pipe pipe;
    const auto r = handshake(raw, server->native(), pipe);
    CHECK(r.server == GNUTLS_E_NO_APPLICATION_PROTOCOL);
    CHECK(r.client < 0);
    gnutls_deinit(raw);
  }
  SECTION("server that ignores ALPN is refused by the client") {
    auto cctx = client_ctx(o);
    Error err;
    auto client = TlsSession::create_client(*cctx, nullptr, "localhost", err);
    REQUIRE(client);
    auto sctx = server_ctx(pki().leaf);
    gnutls_session_t raw = nullptr;
    REQUIRE(gnutls_init(&raw, GNUTLS_SERVER) == 0);
    gnutls_priority_set(raw, sctx->priority());
    gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, sctx->credentials());
    Pipe pipe;
    const auto r = handshake(client->native(), raw, pipe);
    CHECK(r.client == GNUTLS_E_NO_APPLICATION_PROTOCOL);
    gnutls_deinit(raw);
  }
  SECTION("contexts reject unusable ALPN lists") {
    Error err;
    o.alpn = {};
    CHECK_FALSE(TlsClientContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    TlsServerOptions so;
    so.cert_pem = pki().leaf.cert_pem;
    so.key_pem = pki().leaf.key_pem;
    so.alpn = {std::string(40, 'x')};
    CHECK_FALSE(TlsServerContext::create(so, err));
    CHECK(err.errc == Errc::configuration);
  }
}

TEST_CASE("session tickets let a client resume", "[quic][tls]") {
  TempDir dir;
  auto sctx = server_ctx(pki().leaf);
  auto cctx = client_ctx(trusting_ca(dir));
  std::vector<std::uint8_t> ticket;
  std::uint32_t lifetime = 0;
  {
    Error err;
    Connection c;
    c.server = TlsSession::create_server(*sctx, nullptr, err);
    c.client = TlsSession::create_client(*cctx, nullptr, "localhost", err);
    c.client->set_ticket_handler([&](TlsSession::IssuedTicket t) {
      ticket = std::move(t.data);
      lifetime = t.lifetime_s;
    });
    c.result = handshake(c.client->native(), c.server->native(), c.pipe);
    REQUIRE(c.result.ok());
    CHECK_FALSE(c.client->resumed());
    drain_client(c.client->native());
  }
  REQUIRE_FALSE(ticket.empty());
  // Read from the NewSessionTicket itself: the server context's default lifetime.
  CHECK(lifetime == 6 * 3600);

  Error err;
  Connection c;
  c.server = TlsSession::create_server(*sctx, nullptr, err);
  c.client = TlsSession::create_client(*cctx, nullptr, "localhost", err);
  REQUIRE_FALSE(c.client->set_resumption_data(ticket));
  c.result = handshake(c.client->native(), c.server->native(), c.pipe);
  REQUIRE(c.result.ok());
  CHECK(c.client->resumed());
  CHECK(c.server->resumed());
  CHECK(c.client->alpn() == "h3");
  CHECK_FALSE(c.client->early_data_accepted());
  CHECK(c.server->set_resumption_data(ticket).errc == Errc::configuration);
}

TEST_CASE("server context loads credentials from files and memory", "[quic][tls]") {
  TempDir dir;
  const auto &leaf = pki().leaf;
  const std::string cert = dir.write("cert.pem", leaf.cert_pem);
  const std::string key = dir.write("key.pem", leaf.key_pem);
  Error err;

  SECTION("files") {
    TlsServerOptions o;
    o.cert_file = cert;
    o.key_file = key;
    auto ctx = TlsServerContext::create(o, err);
    INFO(err.to_string());
    REQUIRE(ctx);
    CHECK(ctx->certificate_sha256() == leaf.sha256);
    CHECK(ctx->ticket_key() != nullptr);
    CHECK(ctx->anti_replay() == nullptr);
  }
  SECTION("memory, with a chain and early data") {
    TlsServerOptions o;
    o.cert_pem = leaf.cert_pem + pki().ca.cert_pem;
    o.key_pem = leaf.key_pem;
    o.early_data = true;
    auto ctx = TlsServerContext::create(o, err);
    INFO(err.to_string());
    REQUIRE(ctx);
    CHECK(ctx->certificate_sha256() == leaf.sha256);
    CHECK(ctx->anti_replay() != nullptr);
  }
  SECTION("missing key file is named") {
    TlsServerOptions o;
    o.cert_file = cert;
    o.key_file = (dir.path / "absent.pem").string();
    CHECK_FALSE(TlsServerContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, o.key_file));
  }
  SECTION("unparsable key file is named") {
    TlsServerOptions o;
    o.cert_file = cert;
    o.key_file = dir.write("bad-key.pem", "-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n");
    CHECK_FALSE(TlsServerContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, o.key_file));
  }
  SECTION("unparsable certificate file is named") {
    TlsServerOptions o;
    o.cert_file = dir.write("bad-cert.pem", "hello");
    o.key_file = key;
    CHECK_FALSE(TlsServerContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, o.cert_file));
  }
  SECTION("key of another certificate") {
    TlsServerOptions o;
    o.cert_file = cert;
    o.key_file = dir.write("other-key.pem", pki().self_signed.key_pem);
    CHECK_FALSE(TlsServerContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, "does not match"));
    CHECK(contains(err.message, o.key_file));
  }
  SECTION("nothing configured") {
    CHECK_FALSE(TlsServerContext::create(TlsServerOptions{}, err));
    CHECK(err.errc == Errc::configuration);
  }
}

TEST_CASE("client context loads trust anchors and client certificates", "[quic][tls]") {
  TempDir dir;
  Error err;
  SECTION("ca_file") {
    auto o = trusting_ca(dir);
    CHECK(TlsClientContext::create(o, err));
    CHECK(err.ok());
  }
  SECTION("missing ca_file is named") {
    TlsClientOptions o;
    o.ca_file = (dir.path / "nope.pem").string();
    CHECK_FALSE(TlsClientContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, o.ca_file));
  }
  SECTION("ca_file that is a directory is named") {
    TlsClientOptions o;
    o.ca_file = dir.path.string();
    CHECK_FALSE(TlsClientContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, o.ca_file));
  }
  SECTION("ca_file without certificates is named") {
    TlsClientOptions o;
    o.ca_file = dir.write("empty.pem", "no certificates here\n");
    CHECK_FALSE(TlsClientContext::create(o, err));
    CHECK(err.errc == Errc::configuration);
    CHECK(contains(err.message, o.ca_file));
  }
  SECTION("client certificate") {
    TlsClientOptions o;
    o.verify_peer = false;
    o.client_cert_file = dir.write("c.pem", pki().leaf.cert_pem);
    o.client_key_file = dir.write("k.pem", pki().leaf.key_pem);
    CHECK(TlsClientContext::create(o, err));
    o.client_key_file = (dir.path / "missing-key.pem").string();
    CHECK_FALSE(TlsClientContext::create(o, err));
    CHECK(contains(err.message, o.client_key_file));
  }
}

namespace {
ngtcp2_conn *no_conn(ngtcp2_crypto_conn_ref *) { return nullptr; }
}  // namespace

TEST_CASE("QUIC sessions are wired for ngtcp2", "[quic][tls]") {
  TempDir dir;
  ngtcp2_crypto_conn_ref ref{&no_conn, nullptr};
  Error err;
  auto sctx = server_ctx(pki().leaf);
  auto server = TlsSession::create_server(*sctx, &ref, err);
  INFO(err.to_string());
  REQUIRE(server);
  CHECK(server->is_server());
  CHECK(gnutls_session_get_ptr(server->native()) == &ref);

  auto cctx = client_ctx(trusting_ca(dir));
  auto client = TlsSession::create_client(*cctx, &ref, "[::1]", err);
  REQUIRE(client);
  CHECK_FALSE(client->is_server());
  CHECK(gnutls_session_get_ptr(client->native()) == &ref);
  CHECK(client->alpn().empty());

  // Sessions keep their context alive.
  std::weak_ptr<TlsServerContext> weak = sctx;
  sctx.reset();
  CHECK_FALSE(weak.expired());
  server.reset();
  CHECK(weak.expired());
}

TEST_CASE("keylog appends NSS lines to SSLKEYLOGFILE", "[quic][tls]") {
  TempDir dir;
  const auto log = (dir.path / "keys.log").string();
  // The file is opened once per process, on the first session that logs:
  // this is the only test that enables keylog.
  REQUIRE(::setenv("SSLKEYLOGFILE", log.c_str(), 1) == 0);
  TlsServerOptions so;
  so.cert_pem = pki().leaf.cert_pem;
  so.key_pem = pki().leaf.key_pem;
  so.keylog = true;
  Error err;
  auto sctx = TlsServerContext::create(so, err);
  REQUIRE(sctx);
  auto co = trusting_ca(dir);
  co.keylog = true;
  auto cctx = client_ctx(co);
  auto c = connect(*cctx, *sctx, "localhost");
  REQUIRE(c->result.ok());
  ::unsetenv("SSLKEYLOGFILE");

  std::ifstream in(log);
  std::string line;
  int lines = 0;
  bool saw_client_traffic = false;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string label, random, secret;
    fields >> label >> random >> secret;
    CHECK(random.size() == 64);
    CHECK_FALSE(secret.empty());
    if (label == "CLIENT_TRAFFIC_SECRET_0") saw_client_traffic = true;
    ++lines;
  }
  CHECK(lines >= 4);
  CHECK(saw_client_traffic);
}
