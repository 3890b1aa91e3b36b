// Loopback tests of TLS resumption and 0-RTT through the public API:
// tickets kept per authority, resumed handshakes reported and shorter,
// 0-RTT accepted or refused with a clean fallback, rotated keys, expiry.

#include <uvwt/uvwt.hpp>

#include <chrono>
#include <string>

#include "catch.hpp"
#include "client/client_fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

struct Dialled {
  Connected c;
  double seconds = 0;  // create_client to CONNECTED (handshake + SETTINGS)
};

// A bare connection (no session): the time measured is the handshake's.
Dialled dial(TestLoop &tl, std::uint16_t port, const ClientConfig &cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  Dialled d{connect(tl, port, "", cfg), 0};
  d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

// Waits until the server's ticket has reached the cache (it comes after
// the handshake), then closes the connection.
void keep_ticket(TestLoop &tl, Connected &c, const TicketCache &cache, std::size_t want = 1) {
  REQUIRE(c.err.ok());
  REQUIRE(tl.run_until([&] { return cache.size() >= want; }, 5'000));
  close_all(tl, c.conn, nullptr);
}

ClientConfig resuming_client(std::shared_ptr<TicketCache> cache, bool early_data = false) {
  ClientConfig cfg = client_config();
  cfg.ticket_cache = std::move(cache);
  cfg.early_data = early_data;
  return cfg;
}

Bytes ticket_key(std::uint8_t fill) { return Bytes(64, fill); }

// A session on the connection still carries data after the fallback.
void check_session_works(TestLoop &tl, std::shared_ptr<Server> &server, std::uint16_t port, const ClientConfig &cfg) {
  auto r = connect(tl, port, "/echo", cfg);
  REQUIRE(r.err.ok());
  REQUIRE(r.session);
  std::string echoed;
  r.session->on_datagram([&](std::span<const std::uint8_t> d) { echoed.assign(d.begin(), d.end()); });
  const std::string ping = "ping";
  REQUIRE(r.session->send_datagram({reinterpret_cast<const std::uint8_t *>(ping.data()), ping.size()}).ok());
  REQUIRE(tl.run_until([&] { return echoed == ping; }, 5'000));
  close_all(tl, r.conn, nullptr);
  (void)server;
}

}  // namespace

TEST_CASE("a second connection resumes with the first one's ticket", "[resumption][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto cache = TicketCache::create();
  auto cfg = resuming_client(cache);

  auto first = dial(tl, server->port(), cfg);
  REQUIRE(first.c.err.ok());
  CHECK_FALSE(first.c.conn->info().resumed);
  keep_ticket(tl, first.c, *cache);

  auto second = dial(tl, server->port(), cfg);
  REQUIRE(second.c.err.ok());
  CHECK(second.c.conn->info().resumed);
  CHECK(second.c.conn->diagnostics().stats.resumed);
  CHECK_FALSE(second.c.conn->info().early_data_accepted);  // not asked for
  CHECK(cache->stats().used == 1);
  close_all(tl, second.c.conn, nullptr);

  SECTION("without session_resumption no ticket is offered or kept") {
    cfg.session_resumption = false;
    const auto before = cache->stats();
    auto third = dial(tl, server->port(), cfg);
    REQUIRE(third.c.err.ok());
    CHECK_FALSE(third.c.conn->info().resumed);
    close_all(tl, third.c.conn, nullptr);
    CHECK(cache->stats().used == before.used);
    CHECK(cache->stats().stored == before.stored);
  }
  SECTION("another authority (name) does not get the ticket") {
    auto third = connect(tl, server->port(), "", cfg, "localhost");
    if (third.err.ok()) {  // localhost may resolve to ::1 where nothing listens
      CHECK_FALSE(third.conn->info().resumed);
      close_all(tl, third.conn, nullptr);
    }
    CHECK(cache->stats().used == 1);
  }
  close_all(tl, nullptr, server);
}

TEST_CASE("a resumed handshake takes one round trip fewer than a full one with a large certificate",
          "[resumption][loop]") {
  // A certificate too large for the server's first flight: before the client
  // proves its address the server may send only 3x what it received (RFC
  // 9000, 8.1), so the full handshake needs a second round trip. Resumed,
  // no certificate is sent (RFC 8446, 2.2) and one round trip does.
  std::vector<std::string> names;
  for (int i = 0; i < 150; ++i) names.push_back("name-" + std::to_string(i) + ".resumption.test.example");
  CertificatePair big;
  REQUIRE_FALSE(generate_self_signed_certificate(names, big));
  REQUIRE(big.cert_pem.size() > 6000);

  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.cert_pem = big.cert_pem;
  scfg.key_pem = big.key_pem;
  auto server = start_server(tl, scfg);
  auto cache = TicketCache::create();
  auto cfg = resuming_client(cache);
  cfg.server_certificate_hashes = {big.sha256};
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).delay_ms = 50;  // each way on the client's socket: RTT >= 100 ms
  constexpr double kRtt = 0.100;

  auto full = dial(tl, server->port(), cfg);
  REQUIRE(full.c.err.ok());
  CHECK_FALSE(full.c.conn->info().resumed);
  keep_ticket(tl, full.c, *cache);
  auto resumed = dial(tl, server->port(), cfg);
  REQUIRE(resumed.c.err.ok());
  CHECK(resumed.c.conn->info().resumed);
  close_all(tl, resumed.c.conn, server);

  INFO("full " << full.seconds / kRtt << " RTT, resumed " << resumed.seconds / kRtt << " RTT");
  CHECK(full.seconds >= 2 * kRtt);
  CHECK(resumed.seconds >= 1 * kRtt);
  // One round trip fewer; half a round trip of margin for a loaded machine.
  CHECK(full.seconds - resumed.seconds > 0.5 * kRtt);
}

TEST_CASE("0-RTT is accepted by a server that opts in and refused cleanly otherwise",
          "[resumption][early-data][loop]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.early_data = true;
  scfg.session_ticket_key = ticket_key(7);
  auto server = start_server(tl, scfg);
  server->route("/echo", echo_handler());
  const std::uint16_t port = server->port();
  auto cache = TicketCache::create();
  auto cfg = resuming_client(cache, true);

  auto first = dial(tl, port, cfg);
  CHECK_FALSE(first.c.conn->info().early_data_accepted);
  keep_ticket(tl, first.c, *cache);

  SECTION("accepted") {
    auto second = dial(tl, port, cfg);
    REQUIRE(second.c.err.ok());
    CHECK(second.c.conn->info().resumed);
    CHECK(second.c.conn->info().early_data_accepted);
    keep_ticket(tl, second.c, *cache);
    check_session_works(tl, server, port, cfg);
    close_all(tl, nullptr, server);
  }
  SECTION("refused by the same key without early_data: resumed, no 0-RTT, the session works") {
    close_all(tl, nullptr, server);
    scfg.early_data = false;
    Error err;
    auto again = Server::create(&tl.loop, scfg, err);
    REQUIRE(again);
    again->route("/echo", echo_handler());
    REQUIRE(again->listen("127.0.0.1", port).ok());
    auto second = dial(tl, port, cfg);
    REQUIRE(second.c.err.ok());
    CHECK(second.c.conn->info().resumed);
    CHECK_FALSE(second.c.conn->info().early_data_accepted);
    close_all(tl, second.c.conn, nullptr);
    check_session_works(tl, again, port, cfg);
    close_all(tl, nullptr, again);
  }
  SECTION("a server with another ticket key (rotated) makes a full handshake") {
    close_all(tl, nullptr, server);
    scfg.session_ticket_key = ticket_key(8);
    Error err;
    auto again = Server::create(&tl.loop, scfg, err);
    REQUIRE(again);
    again->route("/echo", echo_handler());
    REQUIRE(again->listen("127.0.0.1", port).ok());
    auto second = dial(tl, port, cfg);
    REQUIRE(second.c.err.ok());
    CHECK_FALSE(second.c.conn->info().resumed);
    CHECK_FALSE(second.c.conn->info().early_data_accepted);
    close_all(tl, second.c.conn, nullptr);
    check_session_works(tl, again, port, cfg);
    close_all(tl, nullptr, again);
  }
}

TEST_CASE("a server with session_tickets off issues none and the client makes full handshakes", "[resumption][loop]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.session_tickets = false;
  auto server = start_server(tl, scfg);
  auto cache = TicketCache::create();
  auto cfg = resuming_client(cache, true);
  for (int i = 0; i < 2; ++i) {
    auto d = dial(tl, server->port(), cfg);
    REQUIRE(d.c.err.ok());
    CHECK_FALSE(d.c.conn->info().resumed);
    tl.run_for(300);  // a ticket would have arrived by now
    close_all(tl, d.c.conn, nullptr);
  }
  CHECK(cache->stats().stored == 0);
  close_all(tl, nullptr, server);
}

TEST_CASE("expired tickets are not offered", "[resumption][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto offset = std::make_shared<std::chrono::seconds>(0);
  auto cache = TicketCache::create(8, 2, [offset] { return std::chrono::system_clock::now() + *offset; });
  auto cfg = resuming_client(cache);

  auto first = dial(tl, server->port(), cfg);
  keep_ticket(tl, first.c, *cache);
  const auto kept = cache->size();
  *offset = std::chrono::hours(6) - std::chrono::seconds(60);
  CHECK(cache->size() == kept);  // still within the 6 h lifetime
  *offset = std::chrono::hours(6) + std::chrono::seconds(1);
  CHECK(cache->size() == 0);
  CHECK(cache->stats().expired == kept);
  auto second = dial(tl, server->port(), cfg);
  REQUIRE(second.c.err.ok());
  CHECK_FALSE(second.c.conn->info().resumed);
  close_all(tl, second.c.conn, server);
}

TEST_CASE("a Client keeps its own ticket cache and resumes with it", "[resumption][client][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  REQUIRE(client->config().ticket_cache);
  auto first = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(first.err.ok());
  CHECK_FALSE(first.session->connection()->info().resumed);
  REQUIRE(tl.run_until([&] { return client->config().ticket_cache->size() >= 1; }, 5'000));
  auto second = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(second.err.ok());
  CHECK(second.session->connection()->info().resumed);
  close_client(tl, client);
  close_server(tl, server);
}
