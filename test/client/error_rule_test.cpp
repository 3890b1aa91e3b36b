// libuv's error rule for every public call with a completion callback in
// lib/client and lib/connection: none of them returns an error, so each must
// call back exactly once, never from inside the call, whatever goes wrong.
// Every check counts the calls after the loop has run to completion.

#include <uvwt/uvwt.hpp>

#include <map>

#include "catch.hpp"
#include "client/client_fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
// A counter per call shape; on_call() checks it is not called synchronously.
struct Calls {
  std::map<std::string, int> n;
  std::function<void()> on(const std::string &name) {
    n[name];  // registered: expected once
    return [this, name] { ++n[name]; };
  }
  void check_each_once() const {
    for (const auto &[name, count] : n) {
      INFO(name);
      CHECK(count == 1);
    }
  }
};
}  // namespace

TEST_CASE("Client, ReconnectingClient, Browser, ClientFleet: every failing call calls back once",
          "[client][loop][error-rule]") {
  TestLoop tl;
  Calls calls;
  // closed_port() turns the loop: taken before any call under test.
  const std::uint16_t nobody = closed_port(tl), nobody2 = closed_port(tl);
  auto client = make_client(tl);
  auto after = [](std::function<void()> f) {
    return [f](const Error &e, std::shared_ptr<Session> s) {
      CHECK_FALSE(e.ok());
      CHECK_FALSE(s);
      f();
    };
  };
  client->connect("http://bad", after(calls.on("connect: bad URL")));
  ConnectOptions negative;
  negative.timeout = Duration(-1);
  client->connect(url_of(nobody, "/"), negative, after(calls.on("connect: negative timeout")));

  auto browser = Browser::create(client);
  browser->back([f = calls.on("browser back: nowhere")](const Error &e, std::shared_ptr<Session> s) {
    CHECK(e.ok());
    CHECK_FALSE(s);
    f();
  });
  browser->navigate("ftp://nope", after(calls.on("browser navigate: bad URL")));

  auto rc = ReconnectingClient::create(client, "not a url");
  rc->get_session(Duration(100), [f = calls.on("reconnecting get_session")](std::shared_ptr<Session> s) {
    CHECK_FALSE(s);
    f();
  });
  for (const auto &[name, count] : calls.n) CHECK(count == 0);  // nothing synchronous
  uv_run(&tl.loop, UV_RUN_DEFAULT);
  rc->close(calls.on("reconnecting close"));
  browser->close(calls.on("browser close"));

  Error err;
  auto fleet = ClientFleet::create(&tl.loop, {client}, err);
  REQUIRE(fleet);
  fleet->close_all(calls.on("fleet close_all"));
  fleet->connect_all(url_of(nobody2, "/"), [f = calls.on("fleet connect_all after close")](auto sessions) {
    CHECK(sessions.empty());
    f();
  });
  client->close(calls.on("client close (first)"));
  client->close(calls.on("client close (second)"));
  client->connect("https://127.0.0.1:9/", after(calls.on("connect: closed client")));
  uv_run(&tl.loop, UV_RUN_DEFAULT);
  calls.check_each_once();
}

TEST_CASE("Connection and ConnectionLoadBalancer: every failing call calls back once",
          "[connection][loop][error-rule]") {
  TestLoop tl;
  Calls calls;
  const std::uint16_t nobody = closed_port(tl);  // turns the loop: before any call under test
  auto conn = Connection::create_client(&tl.loop, client_config(), "", 4433, "/", std::nullopt,
                                        [f = calls.on("create_client: no host")](const Error &e, auto c) {
                                          CHECK_FALSE(e.ok());
                                          CHECK_FALSE(c);
                                          f();
                                        });
  REQUIRE(conn);
  uv_run(&tl.loop, UV_RUN_DEFAULT);
  auto failed = [](std::function<void()> f) {
    return [f](const Error &e, auto &&...) {
      CHECK_FALSE(e.ok());
      f();
    };
  };
  conn->open_session("/", {}, failed(calls.on("open_session on a failed connection")));
  conn->wait_ready(Duration(50), failed(calls.on("wait_ready")));
  conn->wait_for_ready_session(Duration(50), failed(calls.on("wait_for_ready_session")));
  conn->wait_closed(calls.on("wait_closed"));
  conn->close(0, "again", calls.on("close (first)"));
  conn->close(0, "again", calls.on("close (second)"));

  Error err;
  auto lb = ConnectionLoadBalancer::create(&tl.loop, {Address{"127.0.0.1", nobody}}, err);
  REQUIRE(lb);
  lb->get_connection(client_config(), "/", "no-such-strategy", failed(calls.on("lb: unknown strategy")));
  lb->shutdown(calls.on("lb shutdown"));
  lb->get_connection(client_config(), failed(calls.on("lb: after shutdown")));
  for (const auto &[name, count] : calls.n)
    if (name.rfind("create_client", 0) != 0) CHECK(count == 0);
  uv_run(&tl.loop, UV_RUN_DEFAULT);
  calls.check_each_once();
}
