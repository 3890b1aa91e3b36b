// Loopback tests of ClientFleet: round robin from the first client,
// connect_all with an unreachable member, bounded concurrency, close_all.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "client/client_fixture.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
// A client whose socket drops everything: its connects time out after 300 ms.
ClientConfig unreachable_config() {
  ClientConfig c = client_config();
  uvwt::testing::impairment(c).enabled = true;
  uvwt::testing::impairment(c).blackhole = true;
  c.connect_timeout = Duration(300);
  return c;
}

std::shared_ptr<ClientFleet> make_fleet(TestLoop &tl, std::vector<std::shared_ptr<Client>> clients,
                                        std::size_t max_concurrent = 0) {
  Error err;
  auto fleet = ClientFleet::create(&tl.loop, std::move(clients), err, max_concurrent);
  REQUIRE(err.ok());
  REQUIRE(fleet);
  return fleet;
}
}  // namespace

TEST_CASE("ClientFleet hands clients out round robin, starting with the first", "[client][loop][fleet]") {
  TestLoop tl;
  std::vector<std::shared_ptr<Client>> clients{make_client(tl), make_client(tl), make_client(tl)};
  auto fleet = make_fleet(tl, clients);
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

  // A closed fleet answers connect_all with nothing, on a later turn.
  bool answered = false;
  fleet->connect_all("https://127.0.0.1:1/x", [&](std::vector<std::shared_ptr<Session>> s) {
    CHECK(s.empty());
    answered = true;
  });
  CHECK_FALSE(answered);
  REQUIRE(tl.run_until([&] { return answered; }, 1'000));
}

TEST_CASE("ClientFleet::create refuses an empty fleet and null clients", "[client][loop][fleet]") {
  TestLoop tl;
  Error err;
  auto empty = ClientFleet::create(&tl.loop, {}, err);
  CHECK_FALSE(empty);
  CHECK(err.errc == Errc::client);
  CHECK(err.message.find("at least one client") != std::string::npos);
  auto c = make_client(tl);
  err = Error();
  CHECK_FALSE(ClientFleet::create(&tl.loop, {c, nullptr}, err));
  CHECK(err.errc == Errc::client);
  close_client(tl, c);
}

TEST_CASE("ClientFleet::connect_all keeps the successes, in client order", "[client][loop][fleet]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  const ClientConfig unreachable = unreachable_config();
  std::vector<std::shared_ptr<Client>> clients{make_client(tl), make_client(tl, unreachable), make_client(tl),
                                               make_client(tl)};
  const std::size_t limit = GENERATE(0, 1, 2);  // 0: the first client's config
  auto fleet = make_fleet(tl, clients, limit);

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

namespace {
// Captures log lines of warning level and above while alive.
struct LogCapture {
  std::vector<std::pair<LogLevel, std::string>> lines;
  LogLevel old = log_level();
  LogCapture() {
    set_log_level(LogLevel::warning);
    set_log_hook([this](LogLevel l, std::string_view m) { lines.emplace_back(l, std::string(m)); });
  }
  ~LogCapture() {
    set_log_hook(nullptr);
    set_log_level(old);
  }
  [[nodiscard]] int count(LogLevel level, const std::string &needle) const {
    int n = 0;
    for (const auto &[l, m] : lines) n += l == level && m.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
};
}  // namespace

TEST_CASE("ClientFleet::connect_all logs each failure as a warning", "[client][loop][fleet]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  const ClientConfig unreachable = unreachable_config();
  std::vector<std::shared_ptr<Client>> clients{make_client(tl, unreachable), make_client(tl),
                                               make_client(tl, unreachable)};
  auto fleet = make_fleet(tl, clients);
  std::vector<std::shared_ptr<Session>> sessions;
  bool done = false;
  {
    LogCapture logs;
    fleet->connect_all(url_of(server->port(), "/echo"), [&](std::vector<std::shared_ptr<Session>> s) {
      sessions = std::move(s);
      done = true;
    });
    REQUIRE(tl.run_until([&] { return done; }, 10'000));
    CHECK(logs.count(LogLevel::warning, "client fleet: client 0 failed to connect") == 1);
    CHECK(logs.count(LogLevel::warning, "client fleet: client 2 failed to connect") == 1);
    CHECK(logs.count(LogLevel::warning, "client fleet: client 1") == 0);
    CHECK(logs.count(LogLevel::warning, "timeout") >= 2);
  }
  CHECK(sessions.size() == 1);
  bool closed = false;
  fleet->close_all([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  close_server(tl, server);
}

TEST_CASE("ClientFleet::close_all while connect_all is running", "[client][loop][fleet]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig slow = client_config();
  uvwt::testing::impairment(slow).enabled = true;
  uvwt::testing::impairment(slow).delay_ms = 300;  // handshakes still under way when close_all comes
  std::vector<std::shared_ptr<Client>> clients{make_client(tl, slow), make_client(tl, slow), make_client(tl, slow)};
  auto fleet = make_fleet(tl, clients, 1);
  std::vector<std::shared_ptr<Session>> sessions;
  bool connected = false, closed = false;
  fleet->connect_all(url_of(server->port(), "/echo"), [&](std::vector<std::shared_ptr<Session>> s) {
    sessions = std::move(s);
    connected = true;
  });
  tl.run_for(100);
  CHECK_FALSE(connected);
  fleet->close_all([&] { closed = true; });
  CHECK(fleet->client_count() == 0);
  REQUIRE(tl.run_until([&] { return connected && closed; }, 10'000));
  CHECK(sessions.empty());
  for (auto &c : clients) {
    CHECK(c->is_closed());
    CHECK(c->diagnostics().connection_states.empty());
    CHECK(c->stats().connections_successful == 0);
  }
  // The first client's connect was cancelled; the others never started on an open client.
  CHECK(clients[0]->stats().connections_failed == 1);
  close_server(tl, server);
}
