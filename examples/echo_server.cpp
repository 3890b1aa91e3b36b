// A WebTransport echo server on the default libuv loop.
//   echo_server [port]        (prints the certificate hash for browsers)
#include <uv.h>

#include <cstdio>
#include <cstdlib>

#include <uvwt/uvwt.hpp>

int main(int argc, char **argv) {
  const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 4433);
  uv_loop_t *loop = uv_default_loop();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a pipe as they happen

  uvwt::CertificatePair cert;
  if (auto err = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, cert)) {
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
    std::weak_ptr<uvwt::Session> ws = s;
    s->on_datagram([ws](std::span<const std::uint8_t> d) {
      if (auto s = ws.lock()) (void)s->send_datagram(d);
    });
    s->on_bidi_stream([](std::shared_ptr<uvwt::Stream> st) {
      std::weak_ptr<uvwt::Stream> w = st;
      st->on_data([w](std::span<const std::uint8_t> d, bool fin) {
        auto st = w.lock();
        if (!st) return;
        if (!d.empty()) st->write(uvwt::Bytes(d.begin(), d.end()));
        if (fin) st->end();
      });
    });
  });
  std::printf("listening on 127.0.0.1:%u, cert sha256 %s\n", server->port(), cert.sha256_hex().c_str());
  return uv_run(loop, UV_RUN_DEFAULT);
}
