// Loopback tests of mutual TLS: a server given a client CA asks for client
// certificates; requiring one refuses a client without one or with one from
// another issuer, and lets in a client whose certificate the CA signed.

#include <uvwt/uvwt.hpp>

#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <optional>
#include <utility>

#include "catch.hpp"
#include "support/bounded_run.hpp"
#include "client/client_fixture.hpp"
#include "quic/certificate.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
CertificatePair make_cert(const std::string &name, bool is_ca, const CertificatePair *issuer) {
  detail::CertificateSpec spec;
  spec.names = {name};
  spec.not_before = std::chrono::system_clock::now() - std::chrono::hours(1);
  spec.not_after = std::chrono::system_clock::now() + std::chrono::hours(24);
  spec.is_ca = is_ca;
  CertificatePair out;
  REQUIRE(detail::make_certificate(spec, issuer, out).ok());
  return out;
}

// Client certificates are read from files: writes them to a private directory.
struct CertFiles {
  std::filesystem::path dir;
  CertFiles() {
    dir = std::filesystem::temp_directory_path() / ("uvwt-mtls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  ~CertFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  ClientConfig with(const CertificatePair &p, const std::string &name) const {
    const auto cert = (dir / (name + ".pem")).string(), key = (dir / (name + ".key")).string();
    REQUIRE(write_certificate_files(p, cert, key).ok());
    ClientConfig c = client_config();
    c.certfile = cert;
    c.keyfile = key;
    return c;
  }
};
}  // namespace

TEST_CASE("Mutual TLS: a server requiring client certificates checks them against its client CA",
          "[client][loop][mtls]") {
  TestLoop tl;
  const auto ca = make_cert("uvwt test client CA", true, nullptr);
  const auto signed_by_ca = make_cert("client-1", false, &ca);
  // Issued by a CA of the same name but another key: the client offers it
  // (the issuer name matches the server's request), the server's check refuses it.
  const auto impostor_ca = make_cert("uvwt test client CA", true, nullptr);
  const auto impostor = make_cert("client-1", false, &impostor_ca);
  // Issued by nobody the server names: the client does not offer it at all.
  const auto stranger = make_cert("stranger", false, nullptr);
  CertFiles files;

  ServerConfig scfg = server_config();
  scfg.client_ca_pem = ca.cert_pem;
  scfg.require_client_certificate = true;
  auto server = start_server(tl, scfg);
  int sessions = 0;
  std::optional<std::array<std::uint8_t, 32>> seen_in_hook, seen_in_handler;
  server->set_accept_hook([&](const SessionRequest &req) {
    seen_in_hook = req.client_certificate_sha256;
    return AcceptDecision::accept();
  });
  server->route("/echo", [&](std::shared_ptr<Session> s, const SessionRequest &req) {
    ++sessions;
    seen_in_handler = req.client_certificate_sha256;
    echo_handler()(std::move(s), req);
  });

  {
    auto anonymous = make_client(tl);
    auto r = connect_client(tl, *anonymous, url_of(server->port(), "/echo"));
    INFO(r.err.to_string());
    CHECK(r.err.errc == Errc::certificate);
    CHECK(r.session == nullptr);
    close_client(tl, anonymous);
  }
  for (const auto &[pair, name] : {std::pair{&impostor, "impostor"}, std::pair{&stranger, "stranger"}}) {
    auto rogue = make_client(tl, files.with(*pair, name));
    auto r = connect_client(tl, *rogue, url_of(server->port(), "/echo"));
    INFO(name << ": " << r.err.to_string());
    CHECK(r.err.errc == Errc::certificate);
    close_client(tl, rogue);
  }
  CHECK(sessions == 0);
  {
    auto good = make_client(tl, files.with(signed_by_ca, "client-1"));
    auto r = connect_client(tl, *good, url_of(server->port(), "/echo"));
    INFO(r.err.to_string());
    REQUIRE(r.err.ok());
    CHECK(r.session->is_ready());
    REQUIRE(tl.run_until([&] { return sessions == 1; }, 5'000));
    // The hook and the handler learn which certificate the client proved it holds.
    REQUIRE(seen_in_hook);
    CHECK(*seen_in_hook == signed_by_ca.sha256);
    REQUIRE(seen_in_handler);
    CHECK(*seen_in_handler == signed_by_ca.sha256);
    close_client(tl, good);
  }
  close_server(tl, server);

  // Requested, not required: a client without a certificate (or with none
  // the server would take) is let in, one with an untrusted certificate is not.
  scfg.require_client_certificate = false;
  auto lenient = start_server(tl, scfg);
  lenient->route("/echo", echo_handler());
  std::vector<std::optional<std::array<std::uint8_t, 32>>> lenient_seen;
  lenient->set_accept_hook([&](const SessionRequest &req) {
    lenient_seen.push_back(req.client_certificate_sha256);
    return AcceptDecision::accept();
  });
  {
    auto anonymous = make_client(tl);
    CHECK(connect_client(tl, *anonymous, url_of(lenient->port(), "/echo")).err.ok());
    REQUIRE(lenient_seen.size() == 1);
    CHECK_FALSE(lenient_seen[0].has_value());
    auto strange = make_client(tl, files.with(stranger, "stranger"));
    CHECK(connect_client(tl, *strange, url_of(lenient->port(), "/echo")).err.ok());
    auto rogue = make_client(tl, files.with(impostor, "impostor"));
    CHECK(connect_client(tl, *rogue, url_of(lenient->port(), "/echo")).err.errc == Errc::certificate);
    auto good = make_client(tl, files.with(signed_by_ca, "client-1"));
    CHECK(connect_client(tl, *good, url_of(lenient->port(), "/echo")).err.ok());
    close_client(tl, anonymous);
    close_client(tl, strange);
    close_client(tl, rogue);
    close_client(tl, good);
  }
  close_server(tl, lenient);
}

TEST_CASE("Mutual TLS settings are validated", "[client][mtls]") {
  ServerConfig c = server_config();
  c.require_client_certificate = true;
  Error e = c.validate();
  CHECK(e.errc == Errc::configuration);
  CHECK(e.message.find("require_client_certificate") != std::string::npos);
  c.client_ca_pem = "not a certificate";
  CHECK(c.validate().ok());
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  Error err;
  CHECK(Server::create(&loop, c, err) == nullptr);
  CHECK(err.errc == Errc::configuration);
  CHECK(err.message.find("client CA") != std::string::npos);
  c.client_ca_file = "/nonexistent/ca.pem";
  CHECK(c.validate().errc == Errc::configuration);  // both given
  c.client_ca_pem.clear();
  CHECK(Server::create(&loop, c, err) == nullptr);
  CHECK(err.message.find("/nonexistent/ca.pem") != std::string::npos);
  uvwt::test::require_drained(&loop);
  CHECK(uv_loop_close(&loop) == 0);
}
