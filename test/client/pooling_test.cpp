// Connection pooling (ClientConfig::pool_connections): sessions to one
// authority share a connection while the server allows several sessions on
// it, and a new connection is opened once it does not.

#include <uvwt/uvwt.hpp>

#include <set>

#include "catch.hpp"
#include "client/client_fixture.hpp"
#include "client/client_impl.hpp"
#include "connection/connection_impl.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
ClientConfig pooling_config() {
  ClientConfig cfg = client_config();
  cfg.pool_connections = true;
  return cfg;
}

std::shared_ptr<Server> server_allowing(TestLoop &tl, std::size_t sessions) {
  ServerConfig sc = server_config();
  sc.max_sessions_per_connection = sessions;
  auto server = start_server(tl, sc);
  server->route("/echo", echo_handler());
  return server;
}

std::set<Connection *> connections_of(const std::vector<std::shared_ptr<Session>> &ss) {
  std::set<Connection *> out;
  for (const auto &s : ss) out.insert(s->connection().get());
  return out;
}
}  // namespace

TEST_CASE("Pooling: sessions share one connection while the server allows it; closes are independent",
          "[client][loop][pooling]") {
  TestLoop tl;
  auto server = server_allowing(tl, 4);
  auto client = make_client(tl, pooling_config());
  std::vector<std::shared_ptr<Session>> ss;
  for (int i = 0; i < 3; ++i) {
    auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
    REQUIRE(r.err.ok());
    ss.push_back(r.session);
  }
  CHECK(connections_of(ss).size() == 1);
  CHECK(client->stats().pooled_sessions == 2);
  CHECK(client->diagnostics().connection_states[ConnectionState::connected] == 1);

  // Closing one session leaves the others working.
  bool closed = false;
  ss[0]->close(0, "one", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  std::string echoed;
  ss[1]->on_datagram([&](std::span<const std::uint8_t> d) { echoed.assign(d.begin(), d.end()); });
  const std::string ping = "still here";
  REQUIRE(ss[1]->send_datagram({reinterpret_cast<const std::uint8_t *>(ping.data()), ping.size()}).ok());
  REQUIRE(tl.run_until([&] { return echoed == ping; }, 5'000));
  CHECK(ss[2]->is_ready());
  CHECK(ss[1]->connection()->is_connected());

  // The connection goes with its last session.
  auto conn = ss[1]->connection();
  ss[1]->close(0, "two", {});
  ss[2]->close(0, "three", {});
  REQUIRE(tl.run_until([&] { return conn->is_closed(); }, 5'000));
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Pooling: a server allowing one session per connection gets a new connection per session",
          "[client][loop][pooling]") {
  TestLoop tl;
  auto server = server_allowing(tl, 1);
  auto client = make_client(tl, pooling_config());
  std::vector<std::shared_ptr<Session>> ss;
  for (int i = 0; i < 2; ++i) {
    auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
    REQUIRE(r.err.ok());
    ss.push_back(r.session);
  }
  CHECK(connections_of(ss).size() == 2);
  CHECK(client->stats().pooled_sessions == 0);
  CHECK(client->diagnostics().connection_states[ConnectionState::connected] == 2);
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Pooling: max_sessions_per_pooled_connection caps the sharing; off by default", "[client][loop][pooling]") {
  TestLoop tl;
  auto server = server_allowing(tl, 8);
  ClientConfig cfg = pooling_config();
  cfg.max_sessions_per_pooled_connection = 2;
  auto client = make_client(tl, cfg);
  auto plain = make_client(tl);
  std::vector<std::shared_ptr<Session>> ss, unpooled;
  for (int i = 0; i < 3; ++i) {
    auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
    REQUIRE(r.err.ok());
    ss.push_back(r.session);
    auto u = connect_client(tl, *plain, url_of(server->port(), "/echo"));
    REQUIRE(u.err.ok());
    unpooled.push_back(u.session);
  }
  CHECK(connections_of(ss).size() == 2);
  CHECK(client->stats().pooled_sessions == 1);
  CHECK(connections_of(unpooled).size() == 3);
  close_client(tl, client);
  close_client(tl, plain);
  close_server(tl, server);
}

TEST_CASE("Pooling: a linger keeps the idle connection for the next connect", "[client][loop][pooling]") {
  TestLoop tl;
  auto server = server_allowing(tl, 4);
  ClientConfig cfg = pooling_config();
  cfg.pool_idle_linger = Duration(5'000);
  auto client = make_client(tl, cfg);
  auto first = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(first.err.ok());
  auto conn = first.session->connection();
  bool closed = false;
  first.session->close(0, "done", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  tl.run_for(200);
  CHECK(conn->is_connected());
  auto second = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(second.err.ok());
  CHECK(second.session->connection() == conn);
  CHECK(client->stats().pooled_sessions == 1);
  close_client(tl, client);
  close_server(tl, server);
}
