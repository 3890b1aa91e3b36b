// The parent project's program: a server and a client on one loop, one
// datagram echoed, everything closed, uv_loop_close() == 0.
#include <uv.h>

#include <cstdio>
#include <string>

#include <uvwt/uvwt.hpp>

int main() {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uvwt::CertificatePair cert;
  uvwt::Error err = uvwt::generate_self_signed_certificate({"127.0.0.1"}, cert);
  uvwt::ServerConfig scfg;
  scfg.cert_pem = cert.cert_pem;
  scfg.key_pem = cert.key_pem;
  auto server = err ? nullptr : uvwt::Server::create(&loop, scfg, err);
  if (server) err = server->listen("127.0.0.1", 0);
  if (err) {
    std::printf("server: %s\n", err.to_string().c_str());
    return 1;
  }
  server->route("/echo", [](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &) {
    std::weak_ptr<uvwt::Session> w = s;
    s->on_datagram([w](std::span<const std::uint8_t> d) {
      if (auto s = w.lock()) (void)s->send_datagram(d);
    });
  });

  uvwt::ClientConfig ccfg;
  ccfg.server_certificate_hashes = {cert.sha256};
  auto client = uvwt::Client::create(&loop, ccfg, err);
  std::string echoed;
  client->connect("https://127.0.0.1:" + std::to_string(server->port()) + "/echo",
                  [&](const uvwt::Error &e, std::shared_ptr<uvwt::Session> s) {
                    if (e) {
                      std::printf("connect: %s\n", e.to_string().c_str());
                      client->close([&] { server->close(); });
                      return;
                    }
                    s->on_datagram([&, s](std::span<const std::uint8_t> d) {
                      echoed.assign(d.begin(), d.end());
                      client->close([&] { server->close(); });
                    });
                    const std::string ping = "ping";
                    (void)s->send_datagram(std::span(reinterpret_cast<const std::uint8_t *>(ping.data()), ping.size()));
                  });
  uv_run(&loop, UV_RUN_DEFAULT);
  client.reset();
  server.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  const int rc = uv_loop_close(&loop);
  std::printf("uvwt %s as a subproject: echoed '%s', uv_loop_close %d\n", std::string(uvwt::version()).c_str(),
              echoed.c_str(), rc);
  return echoed == "ping" && rc == 0 ? 0 : 1;
}
