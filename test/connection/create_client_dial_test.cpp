// Connection::create_client races a host's addresses with the dialer of
// Client::connect (Happy Eyeballs, RFC 8305 §5): a name whose first address
// (IPv6 here) does not answer still connects through its second (IPv4), soon
// after the 250 ms attempt delay, and the connection returned is the one that
// connected. The resolver is the config's test hook: the machine's own names
// resolve to one family only.

#include <uvwt/uvwt.hpp>

#include <chrono>

#include "catch.hpp"
#include "testing/testing.hpp"
#include "quic/socket_addr.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

// A bound UDP socket that never reads: packets vanish without an ICMP error.
struct SilentPort {
  uv_udp_t udp{};
  std::uint16_t port = 0;
  SilentPort(TestLoop &tl, const std::string &host) {
    uv_udp_init(&tl.loop, &udp);
    auto a = detail::SockAddr::parse(host, 0);
    REQUIRE(a);
    REQUIRE(uv_udp_bind(&udp, a->sa(), 0) == 0);
    sockaddr_storage ss{};
    int len = sizeof ss;
    uv_udp_getsockname(&udp, reinterpret_cast<sockaddr *>(&ss), &len);
    port = detail::SockAddr::from(reinterpret_cast<sockaddr *>(&ss), static_cast<socklen_t>(len)).port();
  }
  void close() { uv_close(reinterpret_cast<uv_handle_t *>(&udp), nullptr); }
};

struct DialOutcome {
  Error err{Errc::closed, "not called"};
  std::shared_ptr<Connection> conn;
  int calls = 0;
  std::chrono::steady_clock::duration took{};
};

}  // namespace

TEST_CASE("create_client: a silent first address (::1) hands over to the second (127.0.0.1) at once",
          "[connection][loop][dialer]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->set_default_handler([](std::shared_ptr<Session>, const SessionRequest &) {});
  SilentPort silent(tl, "::1");
  ClientConfig cfg = client_config();  // connect_timeout 5 s: the old single-address path would wait it out
  testing::resolve_to(cfg, {{"::1", silent.port}, {"127.0.0.1", 0}});

  auto out = std::make_shared<DialOutcome>();
  const auto t0 = std::chrono::steady_clock::now();
  auto conn = Connection::create_client(&tl.loop, cfg, "dual.test", server->port(), "/", std::nullopt,
                                        [out, t0](const Error &e, std::shared_ptr<Connection> c) {
                                          ++out->calls;
                                          out->err = e;
                                          out->conn = std::move(c);
                                          out->took = std::chrono::steady_clock::now() - t0;
                                        });
  REQUIRE(conn);
  CHECK(out->calls == 0);  // never from inside create_client
  REQUIRE(tl.run_until([&] { return out->calls > 0; }, 8'000));
  INFO(out->err.to_string());
  REQUIRE(out->err.ok());
  REQUIRE(out->conn == conn);  // the object returned is the one that connected
  CHECK(conn->is_connected());
  REQUIRE(conn->remote_address());
  CHECK(conn->remote_address()->host == "127.0.0.1");
  CHECK(conn->remote_address()->port == server->port());
  CHECK(conn->get_ready_session_id().has_value());
  CHECK(out->took >= std::chrono::milliseconds(240));  // the attempt delay, not at once
  CHECK(out->took < std::chrono::milliseconds(2'000));
  // Still usable after the handover: a second session on the same connection.
  bool second = false;
  conn->open_session("/", {}, [&second](const Error &e, std::shared_ptr<Session> s) { second = e.ok() && s; });
  REQUIRE(tl.run_until([&] { return second; }, 5'000));
  close_all(tl, conn, server);
  CHECK(out->calls == 1);
  silent.close();
}

TEST_CASE("create_client: a refused first address hands over; every address failing fails once",
          "[connection][loop][dialer]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->set_default_handler([](std::shared_ptr<Session>, const SessionRequest &) {});
  SilentPort gone(tl, "::1");
  const auto refused = gone.port;
  gone.close();  // nothing listens there any more: the kernel refuses
  uv_run(&tl.loop, UV_RUN_NOWAIT);

  ClientConfig cfg = client_config();
  testing::resolve_to(cfg, {{"::1", refused}, {"127.0.0.1", 0}});
  auto out = std::make_shared<DialOutcome>();
  auto conn = Connection::create_client(&tl.loop, cfg, "dual.test", server->port(), "/", std::nullopt,
                                        [out](const Error &e, std::shared_ptr<Connection> c) {
                                          ++out->calls;
                                          out->err = e;
                                          out->conn = std::move(c);
                                        });
  REQUIRE(tl.run_until([&] { return out->calls > 0; }, 8'000));
  INFO(out->err.to_string());
  REQUIRE(out->err.ok());
  CHECK(out->conn == conn);
  CHECK(conn->remote_address()->host == "127.0.0.1");
  close_all(tl, conn, server);

  // Both addresses dead: the callback runs once, with an error, and the
  // connection the user holds is FAILED.
  ClientConfig dead = client_config();
  dead.connect_timeout = std::chrono::milliseconds(1'500);
  testing::resolve_to(dead, {{"::1", refused}, {"127.0.0.1", refused}});
  auto failed = std::make_shared<DialOutcome>();
  auto lost = Connection::create_client(&tl.loop, dead, "dual.test", refused, "/", std::nullopt,
                                        [failed](const Error &e, std::shared_ptr<Connection> c) {
                                          ++failed->calls;
                                          failed->err = e;
                                          failed->conn = std::move(c);
                                        });
  REQUIRE(tl.run_until([&] { return failed->calls > 0; }, 8'000));
  CHECK_FALSE(failed->err.ok());
  CHECK(failed->conn == nullptr);
  CHECK(lost->state() == ConnectionState::failed);
  REQUIRE(tl.run_until([&] { return lost->is_closed(); }, 5'000));
  CHECK(failed->calls == 1);
}

TEST_CASE("create_client: closing while the race runs ends every attempt, the callback once",
          "[connection][loop][dialer]") {
  TestLoop tl;
  SilentPort a(tl, "::1");
  SilentPort b(tl, "127.0.0.1");
  ClientConfig cfg = client_config();
  testing::resolve_to(cfg, {{"::1", a.port}, {"127.0.0.1", b.port}});
  auto out = std::make_shared<DialOutcome>();
  auto conn = Connection::create_client(&tl.loop, cfg, "dual.test", 443, "/", std::nullopt,
                                        [out](const Error &e, std::shared_ptr<Connection>) {
                                          ++out->calls;
                                          out->err = e;
                                        });
  // Both attempts started (the second after 250 ms), neither answered.
  tl.run_until([] { return false; }, 400);
  CHECK(conn->state() == ConnectionState::connecting);
  bool closed = false;
  conn->close(0, "changed my mind", [&closed] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed && out->calls > 0; }, 5'000));
  CHECK_FALSE(out->err.ok());
  CHECK(out->calls == 1);
  a.close();
  b.close();
}
