// Loopback tests of uvwt::Client: connect, each error category, header
// merging, statistics and diagnostics, closing with connects in flight.

#include <uvwt/uvwt.hpp>

#include <chrono>
#include <cmath>
#include <string>

#include "catch.hpp"
#include "client/client_fixture.hpp"
#include "connection/connection_impl.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("Client connects, the session works, closing it closes its connection", "[client][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);

  auto r = connect_client(tl, *client, url_of(server->port(), "/echo?room=7"));
  REQUIRE(r.err.ok());
  REQUIRE(r.session);
  CHECK(r.session->is_ready());
  CHECK(r.session->info().path == "/echo?room=7");
  REQUIRE(r.session->connection());
  CHECK(r.session->connection()->is_connected());

  // Datagram echo through the session the client handed out.
  std::string echoed;
  r.session->on_datagram([&](std::span<const std::uint8_t> d) { echoed.assign(d.begin(), d.end()); });
  const std::string ping = "ping";
  REQUIRE(r.session->send_datagram({reinterpret_cast<const std::uint8_t *>(ping.data()), ping.size()}).ok());
  REQUIRE(tl.run_until([&] { return echoed == "ping"; }, 5'000));

  auto st = client->stats();
  CHECK(st.connections_attempted == 1);
  CHECK(st.connections_successful == 1);
  CHECK(st.connections_failed == 0);
  CHECK(st.min_connect_time > 0);
  CHECK(st.min_connect_time == st.max_connect_time);
  CHECK(st.total_connect_time == st.max_connect_time);
  CHECK(st.created_at > 0);
  auto d = client->diagnostics();
  CHECK(d.connection_states[ConnectionState::connected] == 1);
  CHECK(d.issues().empty());

  // The user's on_closed still works next to the client's own watcher.
  bool user_closed = false;
  r.session->on_closed([&](const SessionCloseInfo &) { user_closed = true; });
  r.session->close(0, "bye", {});
  REQUIRE(tl.run_until([&] { return user_closed && client->diagnostics().connection_states.empty(); }, 5'000));

  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client reaches a server by name, racing IPv6 and IPv4", "[client][loop][dns]") {
  TestLoop tl;
  // Only IPv4: if localhost resolves to ::1 first, that attempt is refused
  // and 127.0.0.1 must still win.
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo", "localhost"));
  REQUIRE(r.err.ok());
  CHECK(r.session->info().authority == "localhost:" + std::to_string(server->port()));
  REQUIRE(r.session->connection()->remote_address());
  CHECK(r.session->connection()->remote_address()->host == "127.0.0.1");
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client connect errors tell their category", "[client][loop][errors]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  const auto port = server->port();

  auto bad_scheme = connect_client(tl, *client, "http://127.0.0.1:" + std::to_string(port) + "/echo");
  CHECK(bad_scheme.err.errc == Errc::invalid_url);
  CHECK(bad_scheme.session == nullptr);
  CHECK(connect_client(tl, *client, "https:///echo").err.errc == Errc::invalid_url);
  CHECK(client->stats().connections_attempted == 0);  // URLs that do not parse are no attempts

  auto dns = connect_client(tl, *client, "https://nonexistent.invalid/echo");
  CHECK(dns.err.errc == Errc::dns);
  CHECK(dns.err.message.find("nonexistent.invalid") != std::string::npos);

  ConnectOptions short_timeout;
  short_timeout.timeout = Duration(1'500);
  auto refused = connect_client(tl, *client, url_of(closed_port(tl), "/echo"), short_timeout);
  INFO(refused.err.to_string());
  CHECK((refused.err.errc == Errc::refused || refused.err.errc == Errc::timeout));

  auto not_found = connect_client(tl, *client, url_of(port, "/nope"));
  CHECK(not_found.err.errc == Errc::http_status);
  CHECK(not_found.err.http_status == 404);

  {
    ClientConfig cfg = client_config();
    cfg.server_certificate_hashes.clear();  // system trust only: our CA is unknown
    auto strict = make_client(tl, cfg);
    auto ca = connect_client(tl, *strict, url_of(port, "/echo"));
    CHECK(ca.err.errc == Errc::certificate);
    close_client(tl, strict);
  }
  {
    ClientConfig cfg = client_config();
    const std::uint16_t nobody = closed_port(tl);
    cfg.proxy.url = "https://127.0.0.1:" + std::to_string(nobody);
    auto proxied = make_client(tl, cfg);
    const auto accepted_before = server->stats().connections_accepted;
    auto p = connect_client(tl, *proxied, url_of(port, "/echo"));
    // The proxy leg failed, and says so: never a silent direct connection.
    CHECK(p.err.errc == Errc::proxy_connection);
    CHECK(p.err.message.find("proxy 127.0.0.1:" + std::to_string(nobody)) != std::string::npos);
    CHECK(server->stats().connections_accepted == accepted_before);  // never silently direct
    close_client(tl, proxied);
  }
  {
    ClientConfig cfg = client_config();
    uvwt::testing::impairment(cfg).enabled = true;
    uvwt::testing::impairment(cfg).blackhole = true;
    auto silent = make_client(tl, cfg);
    ConnectOptions o;
    o.timeout = Duration(300);
    auto t = connect_client(tl, *silent, url_of(port, "/echo"), o);
    CHECK(t.err.errc == Errc::timeout);
    close_client(tl, silent);
  }
  CHECK(connect_client(tl, *client, url_of(port, "/echo"), ConnectOptions{{}, {{":path", "/x"}}}).err.errc ==
        Errc::configuration);
  {
    ClientConfig cfg = client_config();
    cfg.max_connections = 1;
    auto limited = make_client(tl, cfg);
    auto first = connect_client(tl, *limited, url_of(port, "/echo"));
    REQUIRE(first.err.ok());
    auto second = connect_client(tl, *limited, url_of(port, "/echo"));
    CHECK(second.err.errc == Errc::client);
    CHECK(second.err.message.find("max_connections") != std::string::npos);
    close_client(tl, limited);
  }

  auto st = client->stats();
  CHECK(st.connections_attempted == 4);
  CHECK(st.connections_failed == 4);
  CHECK(st.connections_successful == 0);
  CHECK(st.avg_connect_time() == 0.0);

  close_client(tl, client);
  auto after = connect_client(tl, *client, url_of(port, "/echo"));
  CHECK(after.err.errc == Errc::closed);
  close_server(tl, server);
}

TEST_CASE("CONNECT headers: config < set_default_headers < per call, user-agent always", "[client][loop][headers]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<Headers> seen;
  std::vector<std::string> authorities;
  server->route("/h", [&](std::shared_ptr<Session>, const SessionRequest &req) {
    seen.push_back(req.headers);
    authorities.push_back(req.authority);
  });
  ClientConfig cfg = client_config();
  cfg.headers = {{"x-a", "config"}, {"x-b", "config"}, {"x-c", "config"}};
  auto client = make_client(tl, cfg);
  client->set_default_headers({{"X-B", "default"}, {"x-c", "default"}});
  ConnectOptions opts;
  opts.headers = {{"x-c", "call"}};
  auto r1 = connect_client(tl, *client, url_of(server->port(), "/h"), opts);
  REQUIRE(r1.err.ok());
  auto r2 = connect_client(tl, *client, url_of(server->port(), "/h"), ConnectOptions{{}, {{"user-agent", "mine/1"}}});
  REQUIRE(r2.err.ok());
  REQUIRE(tl.run_until([&] { return seen.size() == 2; }, 5'000));

  auto values = [](const Headers &hs, const std::string &name) {
    std::vector<std::string> v;
    for (const auto &[k, x] : hs)
      if (k == name) v.push_back(x);
    return v;
  };
  CHECK(values(seen[0], "x-a") == std::vector<std::string>{"config"});
  CHECK(values(seen[0], "x-b") == std::vector<std::string>{"default"});
  CHECK(values(seen[0], "x-c") == std::vector<std::string>{"call"});
  CHECK(values(seen[0], "user-agent") == std::vector<std::string>{"uvwt/" + std::string(version())});
  CHECK(values(seen[1], "user-agent") == std::vector<std::string>{"mine/1"});
  CHECK(values(seen[1], "x-c") == std::vector<std::string>{"default"});
  CHECK(authorities[0] == "127.0.0.1:" + std::to_string(server->port()));

  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client statistics: slow connects are measured, low success rate is reported", "[client][loop][stats]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());

  ClientConfig slow_cfg = client_config();
  uvwt::testing::impairment(slow_cfg).enabled = true;
  uvwt::testing::impairment(slow_cfg).delay_ms = 60;  // each way, on the client's socket
  auto slow = make_client(tl, slow_cfg);
  auto r = connect_client(tl, *slow, url_of(server->port(), "/echo"));
  REQUIRE(r.err.ok());
  auto st = slow->stats();
  CHECK(st.connections_successful == 1);
  CHECK(st.min_connect_time >= 0.2);  // handshake, SETTINGS and CONNECT: two round trips of 120 ms at least
  CHECK(st.avg_connect_time() == st.min_connect_time);
  CHECK(slow->diagnostics().issues().empty());  // slow, but not 5 s slow
  close_client(tl, slow);

  auto client = make_client(tl);
  REQUIRE(connect_client(tl, *client, url_of(server->port(), "/echo")).err.ok());
  for (int i = 0; i < 10; ++i)
    CHECK(connect_client(tl, *client, url_of(server->port(), "/missing")).err.http_status == 404);
  auto d = client->diagnostics();
  CHECK(d.stats.connections_attempted == 11);
  CHECK(d.stats.connections_successful == 1);
  CHECK(d.stats.connections_failed == 10);
  REQUIRE(d.issues().size() == 1);
  CHECK(d.issues()[0] == "Low connection success rate: 9.09%");
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Closing a client cancels connects in flight and closes every connection", "[client][loop][close]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).delay_ms = 200;  // handshakes take a while
  auto client = make_client(tl, cfg);
  auto fast = make_client(tl);
  auto live = connect_client(tl, *fast, url_of(server->port(), "/echo"));
  REQUIRE(live.err.ok());

  std::vector<Error> results;
  for (const std::string host : {"127.0.0.1", "localhost", "nonexistent.invalid"})
    client->connect(url_of(server->port(), "/echo", host), [&](const Error &e, std::shared_ptr<Session> s) {
      CHECK(s == nullptr);
      results.push_back(e);
    });
  tl.run_for(50);              // DNS done, handshakes under way
  CHECK(results.size() <= 1);  // at most the unresolvable name failed by now
  CHECK(client->diagnostics().connection_states[ConnectionState::connecting] >= 1);
  bool closed = false;
  client->close([&] { closed = true; });
  CHECK(client->is_closed());
  REQUIRE(tl.run_until([&] { return closed && results.size() == 3; }, 5'000));
  int cancelled = 0;
  for (const auto &e : results) cancelled += e.errc == Errc::cancelled ? 1 : 0;
  CHECK(cancelled >= 2);
  CHECK(client->diagnostics().connection_states.empty());
  CHECK(client->stats().connections_failed == 3);

  // A client with a live session: close() ends the session too.
  bool session_closed = false;
  live.session->on_closed([&](const SessionCloseInfo &) { session_closed = true; });
  close_client(tl, fast);
  CHECK(session_closed);
  CHECK(live.session->is_closed());
  close_client(tl, client);  // twice is fine
  close_server(tl, server);
}

TEST_CASE("Client connects to an IPv6 literal in brackets", "[client][loop][ipv6]") {
  TestLoop tl;
  auto server = start_server(tl, server_config(), "::1");
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  auto r = connect_client(tl, *client, "https://[::1]:" + std::to_string(server->port()) + "/echo?v6");
  REQUIRE(r.err.ok());
  CHECK(r.session->info().authority == "[::1]:" + std::to_string(server->port()));
  CHECK(r.session->info().path == "/echo?v6");
  CHECK(r.session->connection()->remote_address()->host == "::1");
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client connect timeout covers the whole sequence", "[client][loop][timeout]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  using std::chrono::milliseconds;
  using Clock = std::chrono::steady_clock;

  {
    // Nothing gets through: the 300 ms budget ends it long before the 10 s a
    // single handshake attempt may take.
    ClientConfig cfg = client_config();
    uvwt::testing::impairment(cfg).enabled = true;
    uvwt::testing::impairment(cfg).blackhole = true;
    REQUIRE(cfg.handshake_timeout >= milliseconds(10'000));
    auto silent = make_client(tl, cfg);
    ConnectOptions o;
    o.timeout = Duration(300);
    const auto t0 = Clock::now();
    auto t = connect_client(tl, *silent, url_of(server->port(), "/echo"), o);
    const auto took = Clock::now() - t0;
    CHECK(t.err.errc == Errc::timeout);
    CHECK(t.err.message.find("timed out after 300 ms") != std::string::npos);
    CHECK(took >= milliseconds(290));
    CHECK(took < milliseconds(2'000));
    close_client(tl, silent);
  }
  {
    // The handshake completes and the CONNECT reaches the server, whose
    // answer never comes back: the same budget ends the wait for it.
    std::shared_ptr<Connection> server_conn;
    server->on_connection([&](std::shared_ptr<Connection> c) { server_conn = std::move(c); });
    int hook_calls = 0;
    server->set_accept_hook([&](const SessionRequest &) {
      ++hook_calls;
      ImpairmentConfig im;
      im.enabled = true;
      im.blackhole = true;
      if (server_conn) uvwt::testing::set_impairment(*server_conn, im);  // drops the 200 about to be sent
      return AcceptDecision::accept();
    });
    auto client = make_client(tl);
    ConnectOptions o;
    o.timeout = Duration(1'000);
    const auto t0 = Clock::now();
    auto r = connect_client(tl, *client, url_of(server->port(), "/echo"), o);
    const auto took = Clock::now() - t0;
    CHECK(r.err.errc == Errc::timeout);
    CHECK(r.session == nullptr);
    CHECK(hook_calls == 1);
    CHECK(took >= milliseconds(990));
    CHECK(took < milliseconds(3'000));
    REQUIRE(server_conn);
    uvwt::testing::set_impairment(*server_conn, ImpairmentConfig{});
    server_conn.reset();
    close_client(tl, client);
  }
  close_server(tl, server);
}

TEST_CASE("Client connect: no common ALPN protocol is a handshake error", "[client][loop][errors]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.alpn = {"foo"};
  auto client = make_client(tl, cfg);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
  INFO(r.err.to_string());
  CHECK(r.err.errc == Errc::handshake);
  CHECK(r.err.message.find("alert") != std::string::npos);
  CHECK(r.session == nullptr);
  CHECK(client->stats().connections_failed == 1);
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client max_connections counts connects started in the same turn", "[client][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.max_connections = 2;
  auto client = make_client(tl, cfg);
  std::vector<Error> errs(3);
  std::vector<std::shared_ptr<Session>> sessions(3);
  int done = 0;
  for (std::size_t i = 0; i < 3; ++i)
    client->connect(url_of(server->port(), "/echo"), [&, i](const Error &e, std::shared_ptr<Session> s) {
      errs[i] = e;
      sessions[i] = std::move(s);
      ++done;
    });
  CHECK(done == 0);
  REQUIRE(tl.run_until([&] { return done == 3; }, 10'000));
  CHECK(errs[0].ok());
  CHECK(errs[1].ok());
  CHECK(errs[2].errc == Errc::client);
  CHECK(errs[2].message.find("max_connections") != std::string::npos);
  CHECK(client->stats().connections_attempted == 3);
  CHECK(client->stats().connections_failed == 1);

  // A session that ends gives its slot back.
  REQUIRE(sessions[0]);
  sessions[0]->close(0, "done", {});
  // Its connection is gone once its closing period ends.
  REQUIRE(tl.run_until(
      [&] {
        auto states = client->diagnostics().connection_states;
        return states.size() == 1 && states[ConnectionState::connected] == 1;
      },
      5'000));
  auto again = connect_client(tl, *client, url_of(server->port(), "/echo"));
  CHECK(again.err.ok());
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client max_streams bounds the streams a session opens at once", "[client][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.max_streams = 2;
  auto client = make_client(tl, cfg);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(r.err.ok());

  struct Opened {
    Error err;
    std::shared_ptr<Stream> st;
    bool done = false;
  };
  auto open = [&](bool bidi) {
    auto o = std::make_shared<Opened>();
    auto cb = [o](const Error &e, std::shared_ptr<Stream> st) {
      o->err = e;
      o->st = std::move(st);
      o->done = true;
    };
    if (bidi)
      r.session->open_bidi_stream(cb);
    else
      r.session->open_uni_stream(cb);
    CHECK_FALSE(o->done);
    REQUIRE(tl.run_until([&] { return o->done; }, 5'000));
    return *o;
  };
  auto a = open(true);
  REQUIRE(a.err.ok());
  auto b = open(false);
  REQUIRE(b.err.ok());
  auto c = open(true);
  CHECK(c.err.errc == Errc::flow_control);
  CHECK(c.err.message.find("max_streams (2)") != std::string::npos);
  CHECK(c.st == nullptr);
  CHECK(open(false).err.errc == Errc::flow_control);

  // Once a stream has closed on both sides its slot is free again.
  bool a_closed = false;
  std::string echoed;
  a.st->on_closed([&] { a_closed = true; });
  a.st->on_data([&](std::span<const std::uint8_t> d, bool) { echoed.append(d.begin(), d.end()); });
  a.st->write_and_end(Bytes{'h', 'i'});
  REQUIRE(tl.run_until([&] { return a_closed; }, 5'000));
  CHECK(echoed == "hi");
  auto d = open(true);
  CHECK(d.err.ok());
  CHECK(open(false).err.errc == Errc::flow_control);

  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client diagnostics report a really slow connect", "[client][loop][stats][slow]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  // 1.3 s each way on the client's socket: the handshake and the CONNECT are
  // at least two round trips of 2.6 s, so the connect takes more than 5 s
  // (three today, since the server's SETTINGS wait for the client's Finished).
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).delay_ms = 1'300;
  cfg.connect_timeout = Duration(30'000);
  cfg.handshake_timeout = Duration(30'000);
  cfg.idle_timeout = Duration(60'000);
  auto client = make_client(tl, cfg);
  auto r = std::make_shared<SessionResult>();
  client->connect(url_of(server->port(), "/echo"), [r](const Error &e, std::shared_ptr<Session> s) {
    r->err = e;
    r->session = std::move(s);
    r->done = true;
  });
  REQUIRE(tl.run_until([&] { return r->done; }, 30'000));
  REQUIRE(r->err.ok());
  auto d = client->diagnostics();
  CHECK(d.stats.avg_connect_time() > 5.0);
  REQUIRE(d.issues().size() == 1);
  const std::string issue = d.issues()[0];
  INFO(issue);
  const std::string prefix = "Slow average connection time: ";
  REQUIRE(issue.rfind(prefix, 0) == 0);
  const std::string number = issue.substr(prefix.size());
  // "N.NNs", the average rounded to two decimals.
  REQUIRE(number.size() >= 5);
  CHECK(number.back() == 's');
  CHECK(number[number.size() - 4] == '.');
  CHECK(std::abs(std::stod(number) - d.stats.avg_connect_time()) <= 0.005 + 1e-9);
  // With a 2.6 s RTT the closing period (3 PTO) would outlast the test.
  auto impl = std::dynamic_pointer_cast<detail::ConnectionImpl>(r->session->connection());
  REQUIRE(impl);
  impl->set_linger(false);
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client connect: timeout 0 means the config's connect_timeout, as the reference", "[client][loop][timeout]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  using std::chrono::milliseconds;
  using Clock = std::chrono::steady_clock;
  ConnectOptions zero;
  zero.timeout = Duration(0);
  {
    auto client = make_client(tl);
    auto r = connect_client(tl, *client, url_of(server->port(), "/echo"), zero);
    CHECK(r.err.ok());
    CHECK(r.session);
    close_client(tl, client);
  }
  {
    // A silent server: the config's 400 ms end it.
    ClientConfig cfg = client_config();
    uvwt::testing::impairment(cfg).enabled = true;
    uvwt::testing::impairment(cfg).blackhole = true;
    cfg.connect_timeout = Duration(400);
    auto silent = make_client(tl, cfg);
    const auto t0 = Clock::now();
    auto t = connect_client(tl, *silent, url_of(server->port(), "/echo"), zero);
    const auto took = Clock::now() - t0;
    CHECK(t.err.errc == Errc::timeout);
    CHECK(t.err.message.find("timed out after 400 ms") != std::string::npos);
    CHECK(took >= milliseconds(390));
    CHECK(took < milliseconds(3'000));
    // A negative timeout is still an error of the caller.
    ConnectOptions negative;
    negative.timeout = Duration(-5);
    auto n = connect_client(tl, *silent, url_of(server->port(), "/echo"), negative);
    CHECK(n.err.errc == Errc::configuration);
    close_client(tl, silent);
  }
  close_server(tl, server);
}
