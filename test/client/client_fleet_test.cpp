// Loopback tests of ClientFleet: round robin from the first client,
// connect_all with an unreachable member, bounded concurrency, close_all.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "client/client_fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("ClientFleet hands clients out round robin, starting with the first", "[client][loop][fleet]") {
  TestLoop tl;
  std::vector<std::shared_ptr<Client>> clients{make_client(tl), make_client(tl), make_client(tl)};
  auto fleet = ClientFleet::create(&tl.loop, clients);
  CHECK(fleet->client_count() == 3);
  Error err;
  for (int i = 0; i < 7; ++i) {
    CHECK(fleet->get_client(err) == clients[static_cast<std::size_t>(i % 3)]);
    CHECK(err.ok());
  }
  bool closed = false;
  fleet->close_all([&] { closed = true; });
  CHECK_FALSE(closed);
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  CHECK(fleet->client_count() == 0);
  for (auto &c : clients) CHECK(c->is_closed());
  CHECK(fleet->get_client(err) == nullptr);
  CHECK(err.errc == Errc::client);

  auto empty = ClientFleet::create(&tl.loop, {});
  CHECK(empty->get_client(err) == nullptr);
  CHECK(err.errc == Errc::client);
  bool answered = false;
  empty->connect_all("https://127.0.0.1:1/x", [&](std::vector<std::shared_ptr<Session>> s) {
    CHECK(s.empty());
    answered = true;
  });
  CHECK_FALSE(answered);
  REQUIRE(tl.run_until([&] { return answered; }, 1'000));
}

TEST_CASE("ClientFleet::connect_all keeps the successes, in client order", "[client][loop][fleet]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig unreachable = client_config();
  unreachable.impairment.enabled = true;
  unreachable.impairment.blackhole = true;
  unreachable.connect_timeout = Duration(300);
  std::vector<std::shared_ptr<Client>> clients{make_client(tl), make_client(tl, unreachable), make_client(tl),
                                               make_client(tl)};
  const std::size_t limit = GENERATE(0, 1, 2);  // 0: the first client's config
  auto fleet = ClientFleet::create(&tl.loop, clients, limit);

  // Count handshakes in flight at the server to observe the bound.
  std::size_t in_flight = 0, peak = 0;
  server->on_connection([&](std::shared_ptr<Connection> c) {
    peak = std::max(peak, ++in_flight);
    c->wait_ready(Duration(2'000), [&](const Error &) { --in_flight; });
  });

  std::vector<std::shared_ptr<Session>> sessions;
  bool done = false;
  fleet->connect_all(url_of(server->port(), "/echo"), [&](std::vector<std::shared_ptr<Session>> s) {
    sessions = std::move(s);
    done = true;
  });
  CHECK_FALSE(done);
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
  REQUIRE(sessions.size() == 3);
  CHECK(sessions[0]->connection() != sessions[1]->connection());
  for (auto &s : sessions) CHECK(s->is_ready());
  CHECK(clients[0]->stats().connections_successful == 1);
  CHECK(clients[1]->stats().connections_failed == 1);
  CHECK(clients[2]->stats().connections_successful == 1);
  CHECK(clients[3]->stats().connections_successful == 1);
  if (limit == 1) CHECK(peak == 1);
  if (limit == 2) CHECK(peak <= 2);

  bool closed = false;
  fleet->close_all([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  for (auto &s : sessions) CHECK(s->is_closed());
  close_server(tl, server);
}
