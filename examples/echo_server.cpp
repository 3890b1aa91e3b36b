// A WebTransport echo server on the default libuv loop.
//   echo_server [port [CERT KEY]]     (prints the certificate hash for browsers)
// Without CERT and KEY every run makes a fresh certificate. With them, the
// files are used when they exist and written otherwise, so a restarted server
// keeps the certificate (and hash) its clients pinned.
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <uvwt/uvwt.hpp>

namespace {

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

uvwt::Error load_or_make_certificate(const std::string &cert_path, const std::string &key_path,
                                     uvwt::CertificatePair &cert) {
  if (!cert_path.empty() && std::ifstream(cert_path) && std::ifstream(key_path)) {
    cert.cert_pem = read_file(cert_path);
    cert.key_pem = read_file(key_path);
    return uvwt::certificate_sha256_from_pem(cert.cert_pem, cert.sha256);
  }
  uvwt::Error err = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, cert);
  if (!err && !cert_path.empty()) err = uvwt::write_certificate_files(cert, cert_path, key_path);
  return err;
}

}  // namespace

int main(int argc, char **argv) {
  const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 4433);
  uv_loop_t *loop = uv_default_loop();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a pipe as they happen

  uvwt::CertificatePair cert;
  if (auto err = load_or_make_certificate(argc > 3 ? argv[2] : "", argc > 3 ? argv[3] : "", cert)) {
    std::fprintf(stderr, "%s\n", err.to_string().c_str());
    return 1;
  }
  uvwt::ServerConfig cfg;
  cfg.cert_pem = cert.cert_pem;
  cfg.key_pem = cert.key_pem;
  uvwt::Error err;
  auto server = uvwt::Server::create(loop, cfg, err);
  if (!server || (err = server->listen("127.0.0.1", port))) {
    std::fprintf(stderr, "%s\n", err.to_string().c_str());
    return 1;
  }
  server->route("/echo", [](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    std::printf("session from %s\n", req.remote_address.to_string().c_str());
    // Callbacks get their session / stream: nothing to capture.
    s->on_datagram([](uvwt::Session &session, std::span<const std::uint8_t> d) {
      (void)session.send_datagram(d);  // a full queue drops the echo: datagrams are unreliable
    });
    s->on_bidi_stream([](uvwt::Session &, std::shared_ptr<uvwt::Stream> st) {
      st->on_data([](uvwt::Stream &stream, std::span<const std::uint8_t> d, bool fin) {
        if (!d.empty()) stream.write(uvwt::Bytes(d.begin(), d.end()));
        if (fin) stream.end();
      });
    });
  });
  std::printf("listening on 127.0.0.1:%u, cert sha256 %s\n", server->port(), cert.sha256_hex().c_str());
  return uv_run(loop, UV_RUN_DEFAULT);
}
