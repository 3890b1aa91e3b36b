#pragma once

// Helpers of the client loopback tests on top of test/support/fixture.hpp.

#include <uvwt/client.hpp>

#include <memory>
#include <string>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

namespace uvwt::test {

inline std::string url_of(std::uint16_t port, const std::string &path, const std::string &host = "127.0.0.1") {
  return "https://" + host + ":" + std::to_string(port) + path;
}

inline std::shared_ptr<Client> make_client(TestLoop &tl, const ClientConfig &cfg = client_config()) {
  Error err;
  auto c = Client::create(&tl.loop, cfg, err);
  REQUIRE(err.ok());
  REQUIRE(c);
  return c;
}

struct SessionResult {
  Error err;
  std::shared_ptr<Session> session;
  bool done = false;
};

// Runs the loop until the connect completes; checks it did not complete synchronously.
inline SessionResult connect_client(TestLoop &tl, Client &client, const std::string &url,
                                    const ConnectOptions &opts = {}) {
  auto r = std::make_shared<SessionResult>();
  client.connect(url, opts, [r](const Error &e, std::shared_ptr<Session> s) {
    r->err = e;
    r->session = std::move(s);
    r->done = true;
  });
  CHECK_FALSE(r->done);
  REQUIRE(tl.run_until([&] { return r->done; }, 15'000));
  return *r;
}

// A UDP port nothing listens on (bound, then released).
inline std::uint16_t closed_port(TestLoop &tl) {
  uv_udp_t u;
  uv_udp_init(&tl.loop, &u);
  sockaddr_in a{};
  uv_ip4_addr("127.0.0.1", 0, &a);
  REQUIRE(uv_udp_bind(&u, reinterpret_cast<const sockaddr *>(&a), 0) == 0);
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_udp_getsockname(&u, reinterpret_cast<sockaddr *>(&ss), &len);
  const auto port = ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
  uv_close(reinterpret_cast<uv_handle_t *>(&u), nullptr);
  uv_run(&tl.loop, UV_RUN_NOWAIT);
  return port;
}

inline void close_client(TestLoop &tl, const std::shared_ptr<Client> &c) {
  bool done = false;
  c->close([&] { done = true; });
  CHECK_FALSE(done);
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
  CHECK(c->is_closed());
}

inline void close_server(TestLoop &tl, const std::shared_ptr<Server> &s) {
  bool done = false;
  s->close([&] { done = true; });
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
}

}  // namespace uvwt::test
