// Loopback tests of the server: routing, accept hook, TLS failures, timeouts,
// shutdown, loss recovery and re-entrancy.

#include <uvwt/uvwt.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include <unistd.h>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "testing/testing.hpp"

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
  const ClientConfig cfg = lossy_client_config(0.05, 42, 0.05);
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
  // A second session fits, a third is refused unprocessed: its CONNECT
  // stream reset with H3_REQUEST_REJECTED (draft-15 section 5.2), not a 429.
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
  CHECK(third.errc == Errc::session);
  CHECK(third.code == 0x10b);  // H3_REQUEST_REJECTED
  CHECK(third.http_status == 0);
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

TEST_CASE("server-wide max_sessions: over the limit is 429, closes make room even with user on_closed",
          "[server][loop][limits]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.max_sessions = 2;
  cfg.max_sessions_per_connection = 16;  // the server-wide limit is the one that bites
  auto server = start_server(tl, cfg);
  int user_closed = 0;
  server->route("/echo", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    // A handler that takes the session's on_closed slot for itself.
    s->on_closed([&](const SessionCloseInfo &) { ++user_closed; });
  });
  auto a = connect(tl, server->port(), "/echo");
  REQUIRE(a.err.ok());
  auto b = connect(tl, server->port(), "/echo");  // a second connection: the limit spans connections
  REQUIRE(b.err.ok());
  REQUIRE(tl.run_until([&] { return server->stats().sessions_active == 2; }));
  auto open = [&](const std::shared_ptr<Connection> &c) {
    auto r = std::make_shared<std::pair<bool, Error>>();
    std::shared_ptr<Session> session;
    c->open_session("/echo", {}, [r, &session](const Error &e, std::shared_ptr<Session> s) {
      r->second = e;
      r->first = true;
      session = s;
    });
    REQUIRE(tl.run_until([&] { return r->first; }));
    return std::make_pair(r->second, session);
  };
  auto [over, none] = open(b.conn);
  CHECK(over.errc == Errc::http_status);
  CHECK(over.http_status == 429);
  CHECK(none == nullptr);
  CHECK(server->stats().sessions_rejected >= 1);

  // Free one slot from the client side, one from the server side: each must be counted.
  bool a_closed = false;
  a.session->close(0, "bye", [&] { a_closed = true; });
  REQUIRE(tl.run_until([&] { return a_closed && server->stats().sessions_active == 1; }));
  auto [ok1, s1] = open(b.conn);
  REQUIRE(ok1.ok());
  REQUIRE(s1);
  CHECK(server->stats().sessions_active == 2);
  auto [over2, none2] = open(a.conn);
  CHECK(over2.http_status == 429);
  for (const auto &c : server->connections())
    for (const auto &info : c->get_all_sessions())
      if (auto s = c->get_session(info.session_id)) s->close(7, "server side");
  REQUIRE(tl.run_until([&] { return server->stats().sessions_active == 0; }));
  CHECK(user_closed == 3);  // the user's callbacks ran too
  auto [ok2, s2] = open(a.conn);
  CHECK(ok2.ok());
  CHECK(s2 != nullptr);
  CHECK(server->stats().sessions_accepted == 4);
  b.conn->close(0, "", {});
  close_all(tl, a.conn, server);
}

TEST_CASE("wt-available-protocols / wt-protocol negotiation", "[server][loop][negotiation]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.protocols = {"chat-v2", "chat-v1"};  // server preference order
  auto server = start_server(tl, scfg);
  std::vector<std::string> offered;
  std::string server_side_protocol;
  server->route("/chat", [&](std::shared_ptr<Session> s, const SessionRequest &req) {
    offered = req.offered_protocols;
    server_side_protocol = s->info().protocol;
  });
  server->set_accept_hook([](const SessionRequest &r) {
    AcceptDecision d;
    if (r.query == "hook") d.protocol = "chat-v1";  // the hook's choice wins over the config
    if (r.query == "require" && r.offered_protocols.empty()) d = AcceptDecision::reject(400);
    return d;
  });
  ClientConfig ccfg = client_config();
  SECTION("the server picks its most preferred protocol the client offers") {
    ccfg.protocols = {"chat-v1", "chat-v2", "other"};
    auto c = connect(tl, server->port(), "/chat", ccfg);
    REQUIRE(c.err.ok());
    CHECK(c.session->info().protocol == "chat-v2");
    REQUIRE(tl.run_until([&] { return !server_side_protocol.empty(); }));
    CHECK(server_side_protocol == "chat-v2");
    CHECK(offered == std::vector<std::string>{"chat-v1", "chat-v2", "other"});
    close_all(tl, c.conn, server);
  }
  SECTION("the accept hook can choose") {
    ccfg.protocols = {"chat-v1", "chat-v2"};
    auto c = connect(tl, server->port(), "/chat?hook", ccfg);
    REQUIRE(c.err.ok());
    CHECK(c.session->info().protocol == "chat-v1");
    close_all(tl, c.conn, server);
  }
  SECTION("no overlap: accepted without a protocol, no wt-protocol sent") {
    ccfg.protocols = {"mqtt"};
    auto c = connect(tl, server->port(), "/chat", ccfg);
    REQUIRE(c.err.ok());
    CHECK(c.session->info().protocol.empty());
    for (const auto &[k, v] : c.session->info().headers) CHECK(k != "wt-protocol");
    REQUIRE(tl.run_until([&] { return offered.size() == 1; }));
    CHECK(server_side_protocol.empty());
    close_all(tl, c.conn, server);
  }
  SECTION("nothing offered: no protocol; a hook may refuse that") {
    auto c = connect(tl, server->port(), "/chat", ccfg);
    REQUIRE(c.err.ok());
    CHECK(c.session->info().protocol.empty());
    auto r = connect(tl, server->port(), "/chat?require", ccfg);
    CHECK(r.err.http_status == 400);
    close_all(tl, c.conn, server);
  }
}

TEST_CASE("the accept hook sees origin, headers and the remote address", "[server][loop][negotiation]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  std::optional<SessionRequest> seen;
  server->set_accept_hook([&](const SessionRequest &r) {
    seen = r;
    return AcceptDecision::accept();
  });
  auto c = connect(tl, server->port(), "");  // the connection only; the session below carries headers
  REQUIRE(c.err.ok());
  std::optional<Error> opened;
  c.conn->open_session("/echo?room=1", {{"origin", "https://app.example"}, {"x-token", "abc123"}},
                       [&](const Error &e, std::shared_ptr<Session>) { opened = e; });
  REQUIRE(tl.run_until([&] { return opened.has_value(); }));
  REQUIRE(opened->ok());
  REQUIRE(seen.has_value());
  CHECK(seen->path == "/echo");
  CHECK(seen->query == "room=1");
  CHECK(seen->origin == "https://app.example");
  CHECK(seen->authority.find(std::to_string(server->port())) != std::string::npos);
  bool token = false;
  for (const auto &[k, v] : seen->headers) token = token || (k == "x-token" && v == "abc123");
  CHECK(token);
  REQUIRE(c.conn->local_address());
  CHECK(seen->remote_address.host == "127.0.0.1");
  CHECK(seen->remote_address.port == c.conn->local_address()->port);
  CHECK(seen->remote_address.port != server->port());
  close_all(tl, c.conn, server);
}

namespace {

// Bidi echo, uni echo and datagram echo over one session; returns when all came back.
void exchange_everything(TestLoop &tl, const std::shared_ptr<Session> &s) {
  const Bytes data = pattern(64 * 1024, 3);
  auto bidi = std::make_shared<Bytes>();
  bool bidi_fin = false;
  s->open_bidi_stream([&, bidi](const Error &err, std::shared_ptr<Stream> st) {
    REQUIRE(err.ok());
    st->on_data([&, bidi](std::span<const std::uint8_t> d, bool f) {
      bidi->insert(bidi->end(), d.begin(), d.end());
      bidi_fin = bidi_fin || f;
    });
    st->write_and_end(data);
  });
  auto uni = std::make_shared<Bytes>();
  bool uni_fin = false;
  s->on_uni_stream([&, uni](std::shared_ptr<Stream> st) {
    st->on_data([&, uni](std::span<const std::uint8_t> d, bool f) {
      uni->insert(uni->end(), d.begin(), d.end());
      uni_fin = uni_fin || f;
    });
  });
  s->open_uni_stream([](const Error &err, std::shared_ptr<Stream> st) {
    REQUIRE(err.ok());
    st->write_and_end(Bytes{'u', 'n', 'i'});
  });
  int dgrams = 0;
  s->on_datagram([&](std::span<const std::uint8_t> d) { dgrams += d.size() == 3 ? 1 : 0; });
  // Datagrams may be lost even on loopback: send until one comes back.
  for (int i = 0; i < 50 && dgrams == 0; ++i) {
    REQUIRE(s->send_datagram(Bytes{'d', 'g', 'm'}).ok());
    tl.run_until([&] { return dgrams > 0; }, 100);
  }
  REQUIRE(tl.run_until([&] { return bidi_fin && uni_fin && dgrams > 0; }));
  CHECK(*bidi == data);
  CHECK(*uni == Bytes{'u', 'n', 'i'});
}

}  // namespace

TEST_CASE("a client uses the older dialect a server announces", "[server][loop][negotiation]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  std::string expect;
  SECTION("draft-02 only") {
    scfg.dialects = {"draft02"};
    expect = "draft02";
  }
  SECTION("draft-07 only") {
    scfg.dialects = {"draft07"};
    expect = "draft07";
  }
  SECTION("draft-13 and draft-07: the newer one") {
    scfg.dialects = {"draft07", "draft13"};
    expect = "draft13";
  }
  SECTION("all (default): the newest") { expect = "draft15"; }
  auto server = start_server(tl, scfg);
  std::string server_dialect;
  server->route("/echo", [&](std::shared_ptr<Session> s, const SessionRequest &r) {
    server_dialect = s->info().dialect;
    echo_handler()(s, r);
  });
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  CHECK(c.session->info().dialect == expect);
  REQUIRE(tl.run_until([&] { return !server_dialect.empty(); }));
  CHECK(server_dialect == expect);
  CHECK(c.conn->protocol_handler().peer_settings().dialect == expect);
  exchange_everything(tl, c.session);
  close_all(tl, c.conn, server);
}

TEST_CASE("ServerConfig::dialects rejects unknown names", "[server][config]") {
  ServerConfig cfg = server_config();
  cfg.dialects = {"draft02", "draft99"};
  const Error e = cfg.validate();
  CHECK(e.errc == Errc::configuration);
  CHECK(e.message.find("dialects") != std::string::npos);
  cfg.dialects = {"draft15"};
  CHECK(cfg.validate().ok());
  cfg.drain_timeout = std::chrono::milliseconds(-1);
  CHECK(cfg.validate().errc == Errc::configuration);
}

TEST_CASE("shutdown() without a timeout uses ServerConfig::shutdown_timeout", "[server][loop][shutdown]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.shutdown_timeout = std::chrono::milliseconds(400);
  cfg.drain_timeout = std::chrono::milliseconds(60'000);  // capped by the shutdown timeout
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  bool draining = false;
  std::optional<SessionCloseInfo> closed;
  c.session->on_draining([&] { draining = true; });
  c.session->on_closed([&](const SessionCloseInfo &ci) { closed = ci; });
  const auto started = std::chrono::steady_clock::now();
  bool shut = false;
  server->shutdown([&] { shut = true; });  // the client ignores the drain request
  REQUIRE(tl.run_until([&] { return shut; }, 10'000));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(took >= std::chrono::milliseconds(390));
  CHECK(took < std::chrono::milliseconds(5'000));
  CHECK(draining);
  REQUIRE(tl.run_until([&] { return closed.has_value(); }, 5'000));
  CHECK(closed->remote);
  close_all(tl, c.conn, nullptr);
}

TEST_CASE("drain_timeout: sessions that do not wrap up are closed after it", "[server][loop][shutdown]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.shutdown_timeout = std::chrono::milliseconds(30'000);
  cfg.drain_timeout = std::chrono::milliseconds(300);
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  bool draining = false;
  std::optional<SessionCloseInfo> closed;
  std::optional<Error> conn_closed;
  c.session->on_draining([&] { draining = true; });
  c.session->on_closed([&](const SessionCloseInfo &ci) { closed = ci; });
  c.conn->on_closed([&](const Error &e) { conn_closed = e; });
  const auto started = std::chrono::steady_clock::now();
  bool shut = false;
  server->shutdown([&] { shut = true; });
  REQUIRE(tl.run_until([&] { return closed.has_value(); }, 10'000));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(took >= std::chrono::milliseconds(290));
  CHECK(draining);
  CHECK(closed->remote);
  CHECK(closed->code == 0);
  CHECK(closed->reason == "server shutting down");
  // Well before the 30 s shutdown timeout: the connection is closed cleanly too.
  REQUIRE(tl.run_until([&] { return shut && conn_closed.has_value(); }, 10'000));
  // A peer's close is reported with its reason; no timeout, no transport error.
  CHECK(conn_closed->errc == Errc::connection);
  CHECK(conn_closed->message.find("server shutting down") != std::string::npos);
  CHECK(c.conn->protocol_handler().goaway_received());
  c = {};
}

TEST_CASE("a shutdown ends early when clients wrap up their drained sessions", "[server][loop][shutdown]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.shutdown_timeout = std::chrono::milliseconds(30'000);
  cfg.drain_timeout = std::chrono::milliseconds(20'000);
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  std::optional<SessionCloseInfo> closed;
  c.session->on_draining([&] { c.session->close(5, "wrapping up"); });
  c.session->on_closed([&](const SessionCloseInfo &ci) { closed = ci; });
  bool shut = false;
  server->shutdown([&] { shut = true; });
  // Both timeouts are far away: only the early close can finish it in time.
  REQUIRE(tl.run_until([&] { return shut; }, 10'000));
  REQUIRE(closed.has_value());
  CHECK(!closed->remote);
  CHECK(closed->code == 5);
  REQUIRE(tl.run_until([&] { return c.conn->is_closed(); }, 5'000));
  CHECK(c.conn->close_error().message.find("server shutting down") != std::string::npos);
  c = {};
}

TEST_CASE("a CONNECT in flight when the shutdown starts is answered, not cut", "[server][loop][shutdown]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).delay_ms = 100;  // each way: the GOAWAY notice and the CONNECT cross
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());
  bool shut = false;
  server->shutdown(std::chrono::milliseconds(10'000), [&] { shut = true; });
  std::optional<Error> second;
  c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) { second = e; });
  REQUIRE(tl.run_until([&] { return second.has_value(); }, 10'000));
  CHECK(second->errc == Errc::http_status);
  CHECK(second->http_status == 429);
  c.session->close(0, "bye");
  REQUIRE(tl.run_until([&] { return shut; }, 15'000));
  close_all(tl, c.conn, nullptr);
}

TEST_CASE("listen(\"localhost\") binds both loopback families on one port", "[server][loop]") {
  TestLoop tl;
  auto server = start_server(tl, server_config(), "localhost");
  server->route("/echo", echo_handler());
  std::set<std::string> hosts;
  for (const auto &a : server->local_addresses()) {
    hosts.insert(a.host);
    CHECK(a.port == server->port());
  }
  CHECK(hosts.count("127.0.0.1") == 1);
  CHECK(hosts.count("::1") == 1);  // the IPv6 loopback test above shows this host has it
  auto v4 = connect(tl, server->port(), "/echo", client_config(), "127.0.0.1");
  REQUIRE(v4.err.ok());
  auto v6 = connect(tl, server->port(), "/echo", client_config(), "::1");
  REQUIRE(v6.err.ok());
  v6.conn->close(0, "", {});
  close_all(tl, v4.conn, server);
}

TEST_CASE("max_sessions holds for CONNECTs that arrive together", "[server][loop][limits]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.max_sessions = 1;
  auto server = start_server(tl, cfg);
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "");
  REQUIRE(c.err.ok());
  int ok = 0, refused = 0;
  for (int i = 0; i < 3; ++i)  // sent in one flight, read by the server in one turn
    c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) {
      if (e.ok()) ++ok;
      if (e.http_status == 429) ++refused;
    });
  REQUIRE(tl.run_until([&] { return ok + refused == 3; }));
  CHECK(ok == 1);
  CHECK(refused == 2);
  CHECK(server->stats().sessions_active == 1);
  close_all(tl, c.conn, server);
}
