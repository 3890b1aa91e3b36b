// Connection::create_client as the reference's create_client: the client's
// headers and user agent on every CONNECT (what Client::connect sends), path
// "/" by default, and the reference's monitor_health defaults.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "connection/connection_impl.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

std::vector<std::string> values(const Headers &hs, const std::string &name) {
  std::vector<std::string> v;
  for (const auto &[k, x] : hs)
    if (k == name) v.push_back(x);
  return v;
}

}  // namespace

TEST_CASE("create_client sends the config's headers and the user agent on every CONNECT",
          "[connection][loop][headers]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<SessionRequest> seen;
  server->route("/h", [&](std::shared_ptr<Session>, const SessionRequest &r) { seen.push_back(r); });

  ClientConfig cfg = client_config();
  cfg.headers = {{"x-tenant", "acme"}, {"authorization", "Bearer t0k3n"}};
  auto plain = connect(tl, server->port(), "/h", cfg);
  REQUIRE(plain.err.ok());
  // A second session on the same connection carries them too.
  bool second = false;
  plain.conn->open_session("/h", {{"x-call", "2"}}, [&](const Error &e, std::shared_ptr<Session>) {
    CHECK(e.ok());
    second = true;
  });
  // A configured user agent replaces the default one; a config header of
  // that name wins over both (the precedence of Client::connect).
  cfg.user_agent = "porter/2.0";
  auto named = connect(tl, server->port(), "/h", cfg);
  REQUIRE(named.err.ok());
  cfg.headers.push_back({"user-agent", "from-headers/1"});
  auto overridden = connect(tl, server->port(), "/h", cfg);
  REQUIRE(overridden.err.ok());
  REQUIRE(tl.run_until([&] { return second && seen.size() == 4; }, 5'000));

  for (const auto &r : seen) {
    CHECK(values(r.headers, "x-tenant") == std::vector<std::string>{"acme"});
    CHECK(values(r.headers, "authorization") == std::vector<std::string>{"Bearer t0k3n"});
    CHECK(values(r.headers, "user-agent").size() == 1);
    CHECK(r.authority == "127.0.0.1:" + std::to_string(server->port()));
  }
  const std::string ua = "uvwt/" + std::string(version());
  CHECK(values(seen[0].headers, "user-agent") == std::vector<std::string>{ua});
  // The session opened by hand: its own header added to the connection's.
  const auto &hand = values(seen[1].headers, "x-call").empty() ? seen[2] : seen[1];
  CHECK(values(hand.headers, "x-call") == std::vector<std::string>{"2"});
  CHECK(values(hand.headers, "user-agent") == std::vector<std::string>{ua});
  CHECK(values(seen[3].headers, "user-agent") == std::vector<std::string>{"from-headers/1"});
  bool porter = false;
  for (const auto &r : seen)
    porter = porter || values(r.headers, "user-agent") == std::vector<std::string>{"porter/2.0"};
  CHECK(porter);

  seen.clear();
  close_all(tl, plain.conn, nullptr);
  close_all(tl, named.conn, nullptr);
  close_all(tl, overridden.conn, server);
}

TEST_CASE("create_client refuses pseudo-headers in the config's headers", "[connection][loop][headers]") {
  TestLoop tl;
  ClientConfig cfg = client_config();
  cfg.headers = {{":path", "/evil"}};
  Error err;
  int calls = 0;
  auto conn = Connection::create_client(&tl.loop, cfg, "127.0.0.1", 4433, "/", std::nullopt,
                                        [&](const Error &e, std::shared_ptr<Connection> c) {
                                          err = e;
                                          ++calls;
                                          CHECK_FALSE(c);
                                        });
  // libuv's rule: the call succeeded (a connection came back), so the
  // callback runs exactly once, on a later turn, with the refusal.
  REQUIRE(conn);
  CHECK(calls == 0);
  uv_run(&tl.loop, UV_RUN_DEFAULT);
  CHECK(calls == 1);
  CHECK(err.errc == Errc::configuration);
  CHECK(conn->state() == ConnectionState::failed);
  CHECK(conn->close_error().errc == Errc::configuration);
}

TEST_CASE("create_client: every rejected argument answers once through the callback, never twice",
          "[connection][loop][error-rule]") {
  TestLoop tl;
  ClientConfig bad_cfg = client_config();
  bad_cfg.max_streams_bidi = 1ull << 61;  // over QUIC's stream limit: validate() refuses it
  struct Case {
    ClientConfig cfg;
    std::string host;
    std::optional<Address> proxy;
  };
  std::vector<Case> cases{{bad_cfg, "127.0.0.1", std::nullopt},
                          {client_config(), "", std::nullopt},
                          {client_config(), "127.0.0.1", Address{"", 0}}};
  std::vector<int> calls(cases.size(), 0);
  std::vector<std::shared_ptr<Connection>> conns;
  for (std::size_t i = 0; i < cases.size(); ++i)
    conns.push_back(Connection::create_client(&tl.loop, cases[i].cfg, cases[i].host, 4433, "/", cases[i].proxy,
                                              [&calls, i](const Error &e, std::shared_ptr<Connection>) {
                                                CHECK_FALSE(e.ok());
                                                ++calls[i];
                                              }));
  uv_run(&tl.loop, UV_RUN_DEFAULT);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    REQUIRE(conns[i]);
    CHECK(calls[i] == 1);
    CHECK(conns[i]->is_closed());
  }
}

TEST_CASE("create_client opens its session on \"/\" by default", "[connection][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<std::string> paths;
  server->set_default_handler([&](std::shared_ptr<Session>, const SessionRequest &r) { paths.push_back(r.path); });
  Error err(Errc::closed, "not called");
  std::shared_ptr<Connection> got;
  auto conn = Connection::create_client(&tl.loop, client_config(), "127.0.0.1", server->port(),
                                        [&](const Error &e, std::shared_ptr<Connection> c) {
                                          err = e;
                                          got = std::move(c);
                                        });
  REQUIRE(conn);
  REQUIRE(tl.run_until([&] { return err.errc != Errc::closed; }, 10'000));
  REQUIRE(err.ok());
  REQUIRE(got);
  const auto id = got->get_ready_session_id();
  REQUIRE(id);
  CHECK(got->get_session_info(*id)->path == "/");
  REQUIRE(tl.run_until([&] { return paths.size() == 1; }));
  CHECK(paths[0] == "/");
  close_all(tl, got, server);
}

TEST_CASE("monitor_health without arguments probes every 30 s with a 5 s timeout", "[connection][loop][health]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto c = connect(tl, server->port(), "");
  REQUIRE(c.err.ok());
  c.conn->monitor_health();
  auto impl = std::dynamic_pointer_cast<detail::ConnectionImpl>(c.conn);
  REQUIRE(impl);
  CHECK(impl->health_interval() == std::chrono::seconds(30));
  CHECK(impl->health_rtt_timeout() == std::chrono::seconds(5));
  CHECK(Connection::kDefaultHealthCheckInterval == std::chrono::seconds(30));
  CHECK(Connection::kDefaultHealthRttTimeout == std::chrono::seconds(5));
  // With a callback and the defaults.
  c.conn->monitor_health([](const HealthReport &) {});
  CHECK(impl->health_interval() == std::chrono::seconds(30));
  c.conn->stop_health_monitor();
  close_all(tl, c.conn, server);
}
