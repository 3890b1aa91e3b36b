// Loopback tests of the server: routing, accept hook, TLS failures, timeouts,
// shutdown, loss recovery and re-entrancy.

#include <uvwt/uvwt.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("unknown path answers 404 and the accept hook's status reaches the client", "[server][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  server->route("/room/{id}", [](std::shared_ptr<Session>, const SessionRequest &) {});
  std::map<std::string, std::string> params;
  server->set_accept_hook([&](const SessionRequest &r) {
    if (r.path == "/room/42") params = r.params;
    if (r.query == "deny") return AcceptDecision::reject(403);
    if (r.query == "busy") return AcceptDecision::reject(429);
    return AcceptDecision::accept();
  });
  auto c404 = connect(tl, server->port(), "/nope");
  CHECK(c404.err.errc == Errc::http_status);
  CHECK(c404.err.http_status == 404);
  auto c403 = connect(tl, server->port(), "/echo?deny");
  CHECK(c403.err.errc == Errc::authentication);
  CHECK(c403.err.http_status == 403);
  auto c429 = connect(tl, server->port(), "/echo?busy");
  CHECK(c429.err.http_status == 429);
  auto ok = connect(tl, server->port(), "/room/42?x=1");
  REQUIRE(ok.err.ok());
  CHECK(params["id"] == "42");
  CHECK(ok.session->info().path == "/room/42?x=1");
  close_all(tl, ok.conn, server);
}

TEST_CASE("certificate failures are certificate errors; a pinned hash succeeds", "[server][loop][tls]") {
  TestLoop tl;
  // Wildcard: reachable on 127.0.0.2 too, an address the certificate lacks.
  auto server = start_server(tl, server_config(), "0.0.0.0");
  server->route("/echo", echo_handler());
  SECTION("unknown CA") {
    ClientConfig cfg = client_config();
    cfg.server_certificate_hashes.clear();
    cfg.use_system_trust = true;
    auto c = connect(tl, server->port(), "/echo", cfg);
    CHECK(c.err.errc == Errc::certificate);
  }
  SECTION("wrong host name") {
    // Trusted through ca_file (the self-signed leaf is its own CA), wrong name.
    const auto dir = std::filesystem::temp_directory_path() / ("uvwt-ca-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto ca = (dir / "ca.pem").string();
    std::ofstream(ca) << test_certificate().cert_pem;
    ClientConfig cfg = client_config();
    cfg.server_certificate_hashes.clear();
    cfg.ca_file = ca;
    auto ok = connect(tl, server->port(), "/echo", cfg, "127.0.0.1");
    CHECK(ok.err.ok());
    if (ok.conn) {
      bool done = false;
      ok.conn->close(0, "", [&] { done = true; });
      REQUIRE(tl.run_until([&] { return done; }));
    }
    Error err;
    std::shared_ptr<Connection> conn;
    bool done = false;
    Connection::create_client(&tl.loop, cfg, "127.0.0.2", server->port(), "/echo", std::nullopt,
                              [&](const Error &e, std::shared_ptr<Connection> c) {
                                err = e;
                                conn = c;
                                done = true;
                              });
    REQUIRE(tl.run_until([&] { return done; }, 15'000));
    // 127.0.0.2 is not in the certificate: it must fail as a certificate error.
    CHECK(err.errc == Errc::certificate);
    std::filesystem::remove_all(dir);
  }
  SECTION("wrong pinned hash") {
    ClientConfig cfg = client_config();
    auto bad = test_certificate().sha256;
    bad[0] ^= 0xff;
    cfg.server_certificate_hashes = {bad};
    auto c = connect(tl, server->port(), "/echo", cfg);
    CHECK(c.err.errc == Errc::certificate);
  }
  SECTION("pinned hash") {
    auto c = connect(tl, server->port(), "/echo");
    REQUIRE(c.err.ok());
    bool done = false;
    c.conn->close(0, "", [&] { done = true; });
    REQUIRE(tl.run_until([&] { return done; }));
  }
  bool closed = false;
  server->close([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
}

TEST_CASE("an idle connection times out on both sides", "[server][loop]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.idle_timeout = std::chrono::milliseconds(400);
  auto server = start_server(tl, scfg);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.idle_timeout = std::chrono::milliseconds(400);
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  std::optional<Error> why;
  c.conn->on_closed([&](const Error &e) { why = e; });
  REQUIRE(tl.run_until([&] { return why.has_value(); }, 5'000));
  CHECK(why->errc == Errc::timeout);
  CHECK(c.conn->state() == ConnectionState::failed);
  CHECK(c.session->is_closed());
  REQUIRE(tl.run_until([&] { return server->stats().connections_active == 0; }, 5'000));
  close_all(tl, nullptr, server);
}

TEST_CASE("server shutdown during a transfer ends it cleanly on both sides", "[server][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.session);
  bool draining = false;
  std::optional<SessionCloseInfo> closed;
  c.session->on_draining([&] { draining = true; });
  c.session->on_closed([&](const SessionCloseInfo &ci) { closed = ci; });
  std::shared_ptr<Stream> st;
  std::optional<Error> stream_err;
  c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) {
    st = s;
    s->on_error([&](const Error &e) { stream_err = e; });
    s->on_data([](std::span<const std::uint8_t>, bool) {});
    s->write(pattern(512 * 1024));
  });
  REQUIRE(tl.run_until([&] { return st != nullptr; }));
  bool shut = false;
  server->shutdown(std::chrono::milliseconds(300), [&] { shut = true; });
  REQUIRE(tl.run_until([&] { return shut; }, 10'000));
  CHECK(server->is_closed());
  REQUIRE(tl.run_until([&] { return closed.has_value() && c.conn->is_closed(); }, 10'000));
  CHECK(draining);
  CHECK(stream_err.has_value());
  close_all(tl, c.conn, nullptr);
}

TEST_CASE("a transfer completes intact under 5% loss with reordering", "[server][loop][impairment]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.impairment.enabled = true;
  cfg.impairment.loss = 0.05;
  cfg.impairment.reorder = 0.05;
  cfg.impairment.seed = 42;
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.session);
  const Bytes data = pattern(1u << 20, 5);
  auto got = std::make_shared<Bytes>();
  bool fin = false;
  c.session->open_bidi_stream([&, got](const Error &err, std::shared_ptr<Stream> st) {
    REQUIRE(err.ok());
    st->on_data([&, got](std::span<const std::uint8_t> d, bool f) {
      got->insert(got->end(), d.begin(), d.end());
      fin = fin || f;
    });
    st->write_and_end(data);
  });
  REQUIRE(tl.run_until([&] { return fin; }, 60'000));
  CHECK(*got == data);
  const auto d = c.conn->diagnostics();
  CHECK(d.stats.packets_lost > 0);
  CHECK(d.packet_loss_rate > 0.0);
  close_all(tl, c.conn, server);
}

TEST_CASE("objects can be closed and dropped from inside their own callbacks", "[server][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::shared_ptr<Server> keep = server;
  bool server_closed = false;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&, s](std::shared_ptr<Stream> st) {
      st->on_data([&, s, st](std::span<const std::uint8_t>, bool) {
        // Close the session, the stream and the whole server from in here.
        st->reset(1);
        s->close(9, "from callback");
        keep->close([&] { server_closed = true; });
        keep.reset();
      });
    });
  });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  server.reset();
  bool conn_closed = false;
  c.conn->on_closed([&](const Error &) { conn_closed = true; });
  c.session->on_closed([&](const SessionCloseInfo &) {
    // Closing the connection from the session's own close callback.
    c.conn->close(0, "", {});
  });
  c.session->open_bidi_stream([](const Error &, std::shared_ptr<Stream> st) { st->write(std::string_view("go")); });
  REQUIRE(tl.run_until([&] { return server_closed && conn_closed; }, 10'000));
  c = {};
}

TEST_CASE("address validation with Retry still lets clients in", "[server][loop]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.validate_address = true;
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  CHECK(server->stats().retries_sent == 1);
  CHECK(server->stats().connections_accepted == 1);
  bool got = false;
  c.session->on_datagram([&](std::span<const std::uint8_t>) { got = true; });
  REQUIRE(c.session->send_datagram(Bytes{1, 2, 3}).ok());
  REQUIRE(tl.run_until([&] { return got; }));
  close_all(tl, c.conn, server);
}

TEST_CASE("IPv6 loopback works end to end", "[server][loop]") {
  TestLoop tl;
  auto server = start_server(tl, server_config(), "::1");
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo", client_config(), "::1");
  REQUIRE(c.err.ok());
  REQUIRE(c.conn->remote_address());
  CHECK(c.conn->remote_address()->host == "::1");
  CHECK(c.conn->remote_address()->to_string() == "[::1]:" + std::to_string(server->port()));
  close_all(tl, c.conn, server);
}

TEST_CASE("server limits: connections and sessions per connection", "[server][loop]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.max_connections = 1;
  cfg.max_sessions_per_connection = 2;
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  // A second session fits, a third is refused with 429.
  int ok = 0;
  Error third;
  bool third_done = false;
  c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) { ok += e.ok() ? 1 : 0; });
  REQUIRE(tl.run_until([&] { return ok == 1; }));
  c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) {
    third = e;
    third_done = true;
  });
  REQUIRE(tl.run_until([&] { return third_done; }));
  CHECK(third.http_status == 429);
  // A second connection is refused while the first is open, at once
  // (CONNECTION_REFUSED in reply to its Initial), not by its connect timeout.
  ClientConfig patient = client_config();
  patient.connect_timeout = std::chrono::milliseconds(10'000);
  const auto t0 = std::chrono::steady_clock::now();
  auto c2 = connect(tl, server->port(), "/echo", patient);
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  INFO(c2.err.to_string() << " after " << took << " ms");
  CHECK(c2.err.errc == Errc::refused);
  CHECK(c2.err.message.find("too many connections") != std::string::npos);
  CHECK(took < 3'000);
  CHECK_FALSE(c2.conn);
  CHECK(server->stats().connections_rejected >= 1);
  CHECK(server->stats().connections_active == 1);
  close_all(tl, c.conn, server);
}

TEST_CASE("qlog files are written when a directory is configured", "[server][loop]") {
  TestLoop tl;
  const auto dir = std::filesystem::temp_directory_path() / ("uvwt-qlog-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.qlog_dir = dir.string();
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  close_all(tl, c.conn, server);
  std::size_t files = 0, bytes = 0;
  for (const auto &e : std::filesystem::directory_iterator(dir)) {
    ++files;
    bytes += std::filesystem::file_size(e.path());
  }
  CHECK(files == 1);
  CHECK(bytes > 100);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a server dropped without close() shuts its connections and frees the loop", "[server][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  server.reset();  // no close(): the destructor must still leave nothing behind
  REQUIRE(tl.run_until([&] { return c.conn->is_closed(); }, 5'000));
  c = {};
}
