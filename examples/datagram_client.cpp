// Sends a few datagrams to an echo server and prints the round trips.
//   datagram_client PORT CERT_SHA256_HEX
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <uvwt/uvwt.hpp>

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PORT CERT_SHA256_HEX\n", argv[0]);
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  uvwt::ClientConfig cfg;
  const auto pin = uvwt::parse_certificate_hash(argv[2]);
  if (!pin) {
    std::fprintf(stderr, "bad certificate hash\n");
    return 2;
  }
  cfg.server_certificate_hashes = {*pin};
  int rc = 1;
  uvwt::Connection::create_client(loop, cfg, "127.0.0.1", static_cast<std::uint16_t>(std::atoi(argv[1])), "/echo",
                                  std::nullopt, [&rc](const uvwt::Error &err, std::shared_ptr<uvwt::Connection> conn) {
                                    if (err) {
                                      std::fprintf(stderr, "connect: %s\n", err.to_string().c_str());
                                      return;
                                    }
                                    auto session = conn->get_session(*conn->get_ready_session_id());
                                    auto sent_at = std::make_shared<std::chrono::steady_clock::time_point>();
                                    auto left = std::make_shared<int>(5);
                                    session->on_datagram([=, &rc](std::span<const std::uint8_t>) {
                                      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now() - *sent_at);
                                      std::printf("echo after %lld us\n", static_cast<long long>(us.count()));
                                      if (--*left == 0) {
                                        rc = 0;
                                        conn->close(0, "done", {});
                                        return;
                                      }
                                      *sent_at = std::chrono::steady_clock::now();
                                      (void)session->send_datagram(uvwt::Bytes{'p', 'i', 'n', 'g'});
                                    });
                                    *sent_at = std::chrono::steady_clock::now();
                                    (void)session->send_datagram(uvwt::Bytes{'p', 'i', 'n', 'g'});
                                  });
  uv_run(loop, UV_RUN_DEFAULT);
  return rc;
}
