#pragma once

// Shared scaffolding of the conformance tests: a uvwt echo server that keeps
// its last session and how it closed, a session opened by the wire peer, and
// a uvwt client connecting to a wire peer playing the server.

#include <memory>
#include <optional>

#include <uvwt/connection.hpp>

#include "conformance/wire_peer.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

namespace uvwt::test {

struct WtServer {
  TestLoop &tl;
  std::shared_ptr<Server> server;
  std::shared_ptr<Session> session;
  std::optional<SessionCloseInfo> closed;
  int sessions = 0;

  explicit WtServer(TestLoop &t, const ServerConfig &cfg = server_config()) : tl(t) {
    server = start_server(tl, cfg);
    server->route("/wt", [this](std::shared_ptr<Session> s, const SessionRequest &r) {
      ++sessions;
      session = s;
      echo_handler()(s, r);
      s->on_closed([this](const SessionCloseInfo &ci) { closed = ci; });
    });
  }
  WtServer(const WtServer &) = delete;
  void close() {
    session.reset();
    close_all(tl, nullptr, server);
  }
};

// The wire peer opens a session of dialect `d` on uvwt's "/wt" and waits for the 200.
inline std::int64_t open_wire_session(TestLoop &tl, WirePeer &peer, WireDialect d) {
  REQUIRE(tl.run_until([&] { return peer.peer_settings().has_value(); }));
  const auto sid = peer.send_request(wire_connect_request(d, "localhost", "/wt"));
  REQUIRE(sid >= 0);
  REQUIRE(tl.run_until([&] { return peer.status(sid).has_value(); }));
  REQUIRE(peer.status(sid) == 200);
  return sid;
}

// A uvwt client's attempt against a wire peer playing the server.
struct ClientAttempt {
  Error err;
  std::shared_ptr<Connection> conn;
  std::shared_ptr<Session> session;
  bool done = false;
};

inline std::shared_ptr<ClientAttempt> start_uvwt_client(TestLoop &tl, std::uint16_t port,
                                                        const ClientConfig &cfg = client_config()) {
  auto r = std::make_shared<ClientAttempt>();
  Connection::create_client(&tl.loop, cfg, "127.0.0.1", port, "/wt", std::nullopt,
                            [r](const Error &e, std::shared_ptr<Connection> c) {
                              r->err = e;
                              r->conn = c;
                              if (c)
                                if (auto id = c->get_ready_session_id()) r->session = c->get_session(*id);
                              r->done = true;
                            });
  return r;
}

inline void close_client(TestLoop &tl, const std::shared_ptr<ClientAttempt> &r) {
  if (!r->conn) return;
  bool done = false;
  r->conn->close(0, "done", [&] { done = true; });
  REQUIRE(tl.run_until([&] { return done; }));
  r->session.reset();
  r->conn.reset();
}

}  // namespace uvwt::test
