// Connection::wait_ready / wait_for_ready_session: every way a session or its
// connection can end answers a waiter at once with that error (the reference
// library fails its waiter at once too), timeout 0 does not wait, and the
// reference's 30 s defaults exist.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "common/clock.hpp"
#include "connection/connection_impl.hpp"
#include "h3/h3_connection.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

struct Waited {
  Error err{Errc::closed, "not called"};
  SessionId id = 0;
  bool done = false;
  std::uint64_t at_ns = 0;
};

// Starts a 30 s wait (longer than any test here runs), so only the event under
// test can answer it in time.
std::shared_ptr<Waited> wait_session(const std::shared_ptr<Connection> &c) {
  auto w = std::make_shared<Waited>();
  c->wait_for_ready_session(std::chrono::seconds(30), [w](const Error &e, SessionId id) {
    w->err = e;
    w->id = id;
    w->done = true;
    w->at_ns = detail::now_ns();
  });
  return w;
}

double seconds_since(std::uint64_t start_ns, std::uint64_t end_ns) {
  return static_cast<double>(end_ns - start_ns) / 1e9;
}

std::shared_ptr<detail::ConnectionImpl> impl_of(const std::shared_ptr<Connection> &c) {
  auto impl = std::dynamic_pointer_cast<detail::ConnectionImpl>(c);
  REQUIRE(impl);
  return impl;
}

}  // namespace

TEST_CASE("wait_for_ready_session: a refused session answers the waiter at once with its error",
          "[connection][loop][ready]") {
  TestLoop tl;
  auto server = start_server(tl);
  // The hook decides on routed paths; "/nowhere" has no route: 404.
  for (const char *p : {"/echo", "/forbidden", "/busy", "/moved"}) server->route(p, echo_handler());
  server->set_accept_hook([](const SessionRequest &r) {
    if (r.path == "/forbidden") return AcceptDecision::reject(403);
    if (r.path == "/busy") return AcceptDecision::reject(503);
    if (r.path == "/moved") return AcceptDecision::reject(301);
    return AcceptDecision::accept();
  });
  auto c = connect(tl, server->port(), "");
  REQUIRE(c.err.ok());

  struct Case {
    std::string path;
    Errc errc;
    int status;
  };
  for (const Case &k : {Case{"/nowhere", Errc::http_status, 404}, Case{"/forbidden", Errc::authentication, 403},
                        Case{"/busy", Errc::http_status, 503}, Case{"/moved", Errc::http_status, 301}}) {
    INFO(k.path);
    const std::uint64_t start = detail::now_ns();
    auto w = wait_session(c.conn);
    Error open_err;
    bool opened = false;
    c.conn->open_session(k.path, {}, [&](const Error &e, std::shared_ptr<Session>) {
      open_err = e;
      opened = true;
    });
    REQUIRE(tl.run_until([&] { return w->done && opened; }, 5'000));
    CHECK(w->err.errc == k.errc);
    CHECK(w->err.http_status == k.status);
    CHECK(w->err.errc == open_err.errc);
    CHECK(seconds_since(start, w->at_ns) < 3.0);
    CHECK(c.conn->is_connected());  // a refused session leaves the connection open
  }

  // A later session that succeeds still answers a new waiter with its id.
  auto ok = wait_session(c.conn);
  std::shared_ptr<Session> s;
  c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session> x) {
    CHECK(e.ok());
    s = std::move(x);
  });
  REQUIRE(tl.run_until([&] { return ok->done && s; }, 5'000));
  CHECK(ok->err.ok());
  CHECK(ok->id == s->id());
  close_all(tl, c.conn, server);
}

TEST_CASE("wait_for_ready_session: a CONNECT stream reset or a session closed before it is ready answers at once",
          "[connection][loop][ready]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<std::shared_ptr<Session>> server_sessions;
  server->route("/echo", [&](std::shared_ptr<Session> s, const SessionRequest &) { server_sessions.push_back(s); });
  auto c = connect(tl, server->port(), "");
  REQUIRE(c.err.ok());
  // The server's 2xx is held back on the client, so the session is still
  // opening when the server ends it.
  impl_of(c.conn)->h3()->hold_ready_for_test(true);

  SECTION("reset") {
    auto w = wait_session(c.conn);
    c.conn->open_session("/echo", {}, [](const Error &, std::shared_ptr<Session>) {});
    REQUIRE(tl.run_until([&] { return server_sessions.size() == 1; }, 5'000));
    const std::uint64_t start = detail::now_ns();
    auto server_conn = impl_of(server_sessions[0]->connection());
    server_conn->h3()->reset_stream(static_cast<std::int64_t>(server_sessions[0]->id()), 0x10c);
    server_conn->quic()->write_now();
    REQUIRE(tl.run_until([&] { return w->done; }, 5'000));
    CHECK(w->err.errc == Errc::session);
    CHECK(w->err.message.find("reset") != std::string::npos);
    CHECK(seconds_since(start, w->at_ns) < 3.0);
  }
  SECTION("closed by the server") {
    auto w = wait_session(c.conn);
    c.conn->open_session("/echo", {}, [](const Error &, std::shared_ptr<Session>) {});
    REQUIRE(tl.run_until([&] { return server_sessions.size() == 1; }, 5'000));
    const std::uint64_t start = detail::now_ns();
    server_sessions[0]->close(42, "go away");
    REQUIRE(tl.run_until([&] { return w->done; }, 5'000));
    CHECK(w->err);
    CHECK(w->err.errc != Errc::timeout);
    CHECK(seconds_since(start, w->at_ns) < 3.0);
  }
  impl_of(c.conn)->h3()->hold_ready_for_test(false);
  server_sessions.clear();
  close_all(tl, c.conn, server);
}

TEST_CASE("wait_for_ready_session: the connection closing or being lost answers at once", "[connection][loop][ready]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());

  SECTION("closed locally") {
    auto c = connect(tl, server->port(), "");
    REQUIRE(c.err.ok());
    auto w = wait_session(c.conn);
    bool closed = false;
    c.conn->close(0, "bye", [&] { closed = true; });
    REQUIRE(tl.run_until([&] { return w->done && closed; }, 5'000));
    CHECK(w->err.errc == Errc::connection);
  }
  SECTION("closed by the server") {
    auto c = connect(tl, server->port(), "");
    REQUIRE(c.err.ok());
    auto w = wait_session(c.conn);
    for (auto &sc : server->connections()) sc->close(0x100, "server says bye");
    REQUIRE(tl.run_until([&] { return w->done; }, 5'000));
    CHECK(w->err.errc == Errc::connection);
  }
  SECTION("lost") {
    ClientConfig cfg = client_config();
    cfg.idle_timeout = std::chrono::milliseconds(600);
    auto c = connect(tl, server->port(), "", cfg);
    REQUIRE(c.err.ok());
    auto w = wait_session(c.conn);
    ImpairmentConfig imp;
    imp.enabled = true;
    imp.blackhole = true;
    uvwt::testing::set_impairment(*c.conn, imp);
    const std::uint64_t start = detail::now_ns();
    REQUIRE(tl.run_until([&] { return w->done; }, 10'000));
    CHECK(w->err);
    CHECK(w->err.errc != Errc::closed);
    CHECK(c.conn->state() == ConnectionState::failed);
    CHECK(seconds_since(start, w->at_ns) < 5.0);
  }
  close_all(tl, nullptr, server);
}

TEST_CASE("wait_ready / wait_for_ready_session: timeout 0 answers at once, the defaults are 30 s",
          "[connection][loop][ready]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "");
  REQUIRE(c.err.ok());

  // 0 does not wait: no ready session now is a timeout now.
  auto w0 = std::make_shared<Waited>();
  const std::uint64_t start = detail::now_ns();
  c.conn->wait_for_ready_session(Duration(0), [w0](const Error &e, SessionId) {
    w0->err = e;
    w0->done = true;
    w0->at_ns = detail::now_ns();
  });
  CHECK_FALSE(w0->done);
  REQUIRE(tl.run_until([&] { return w0->done; }, 5'000));
  CHECK(w0->err.errc == Errc::timeout);
  CHECK(seconds_since(start, w0->at_ns) < 1.0);
  // wait_ready(0) on a connected connection: ok, on a later turn.
  Error r0(Errc::closed, "not called");
  bool r0_done = false;
  c.conn->wait_ready(Duration(0), [&](const Error &e) {
    r0 = e;
    r0_done = true;
  });
  CHECK_FALSE(r0_done);
  REQUIRE(tl.run_until([&] { return r0_done; }));
  CHECK(r0.ok());

  // The reference's defaults: both waits without a timeout argument.
  bool ready_done = false;
  c.conn->wait_ready([&](const Error &e) {
    CHECK(e.ok());
    ready_done = true;
  });
  auto wd = std::make_shared<Waited>();
  c.conn->wait_for_ready_session([wd](const Error &e, SessionId id) {
    wd->err = e;
    wd->id = id;
    wd->done = true;
  });
  std::shared_ptr<Session> s;
  c.conn->open_session("/echo", {}, [&](const Error &, std::shared_ptr<Session> x) { s = std::move(x); });
  REQUIRE(tl.run_until([&] { return ready_done && wd->done && s; }, 5'000));
  CHECK(wd->err.ok());
  CHECK(wd->id == s->id());
  // With a ready session, timeout 0 returns it.
  auto w1 = std::make_shared<Waited>();
  c.conn->wait_for_ready_session(Duration(0), [w1](const Error &e, SessionId id) {
    w1->err = e;
    w1->id = id;
    w1->done = true;
  });
  REQUIRE(tl.run_until([&] { return w1->done; }));
  CHECK(w1->err.ok());
  CHECK(w1->id == s->id());
  CHECK(Connection::kDefaultWaitTimeout == std::chrono::seconds(30));
  close_all(tl, c.conn, server);
}

TEST_CASE("wait_ready: timeout 0 on a connection still connecting is a timeout at once", "[connection][loop][ready]") {
  TestLoop tl;
  auto server = start_server(tl);
  Error r0(Errc::closed, "not called");
  bool r0_done = false;
  bool connected = false;
  auto conn = Connection::create_client(&tl.loop, client_config(), "127.0.0.1", server->port(), "", std::nullopt,
                                        [&](const Error &e, std::shared_ptr<Connection>) { connected = e.ok(); });
  REQUIRE(conn);
  conn->wait_ready(Duration(0), [&](const Error &e) {
    r0 = e;
    r0_done = true;
  });
  REQUIRE(tl.run_until([&] { return r0_done; }));
  CHECK(r0.errc == Errc::timeout);
  CHECK_FALSE(conn->is_connected());
  REQUIRE(tl.run_until([&] { return connected; }));
  close_all(tl, conn, server);
}
