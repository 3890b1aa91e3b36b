// Client -> uvwt CONNECT-UDP proxy -> uvwt WebTransport server, all on
// loopback (RFC 9298 tunnels carrying the client's QUIC packets).

#include <uvwt/client.hpp>

#include "client/proxy_fixture.hpp"
#include "connection/connection_impl.hpp"
#include "client/client_impl.hpp"
#include "connection/proxy_tunnel.hpp"
#include "server/server_hooks.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("proxy: session through the proxy echoes bidi, uni and datagrams with checksums", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
  auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
  INFO(r.err.to_string());
  REQUIRE(r.err.ok());
  REQUIRE(r.session);
  CHECK(r.session->is_ready());

  const Bytes big = pattern(300'000, 7);
  auto bidi = echo_over_bidi(r.session, big);
  REQUIRE(tl.run_until([&] { return bidi->done; }, 20'000));
  REQUIRE(bidi->got.size() == big.size());
  CHECK(checksum(bidi->got) == checksum(big));

  // Uni: the server echoes on a uni stream of its own.
  Bytes uni_got;
  bool uni_done = false;
  r.session->on_uni_stream([&](std::shared_ptr<Stream> st) {
    st->on_data([&](std::span<const std::uint8_t> d, bool fin) {
      uni_got.insert(uni_got.end(), d.begin(), d.end());
      uni_done = uni_done || fin;
    });
  });
  const Bytes uni = pattern(50'000, 9);
  r.session->open_uni_stream([&](const Error &e, std::shared_ptr<Stream> st) {
    REQUIRE(e.ok());
    st->write_and_end(uni);
  });
  REQUIRE(tl.run_until([&] { return uni_done; }, 20'000));
  CHECK(checksum(uni_got) == checksum(uni));

  // Datagrams: the inner datagram room is what the tunnel leaves.
  const std::size_t max = r.session->max_datagram_size();
  CHECK(max >= 1000);
  CHECK(max < 1400);
  int echoed = 0;
  r.session->on_datagram([&](std::span<const std::uint8_t> d) {
    if (d.size() == 800 && d[0] == 0xab) ++echoed;
  });
  Bytes dg(800, 0xab);
  for (int i = 0; i < 20; ++i) CHECK(r.session->send_datagram(dg).ok());
  REQUIRE(tl.run_until([&] { return echoed >= 15; }, 10'000));

  const auto st = rig.proxy->stats();
  CHECK(st.tunnels_opened == 1);
  CHECK(st.tunnels_active == 1);
  CHECK(st.bytes_to_targets > big.size());
  CHECK(st.bytes_from_targets > big.size());
  close_client(tl, client);
  close_rig(tl, rig);
}

TEST_CASE("proxy: several tunnels share one proxy connection", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
  auto a = connect_client(tl, *client, url_of(rig.target->port(), "/a"));
  auto b = connect_client(tl, *client, url_of(rig.target->port(), "/b"));
  auto c = connect_client(tl, *client, url_of(rig.target->port(), "/c"));
  REQUIRE(a.err.ok());
  REQUIRE(b.err.ok());
  REQUIRE(c.err.ok());
  auto impl = std::dynamic_pointer_cast<detail::ClientImpl>(client);
  REQUIRE(impl);
  CHECK(impl->proxy_connections() == 1);
  CHECK(rig.proxy_server->stats().connections_accepted == 1);
  CHECK(rig.proxy->stats().tunnels_opened == 3);
  CHECK(rig.target->stats().connections_accepted == 3);
  // Each tunnel carries its own session: echo on all three at once.
  std::vector<std::shared_ptr<EchoResult>> echoes;
  for (auto &s : {a.session, b.session, c.session}) echoes.push_back(echo_over_bidi(s, pattern(40'000, 3)));
  REQUIRE(tl.run_until([&] { return echoes[0]->done && echoes[1]->done && echoes[2]->done; }, 20'000));
  for (auto &e : echoes) CHECK(checksum(e->got) == checksum(pattern(40'000, 3)));
  // Closing one session ends its tunnel only.
  bool closed = false;
  a.session->close(0, "done", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed && rig.proxy->stats().tunnels_active == 2; }, 10'000));
  auto e2 = echo_over_bidi(b.session, pattern(1000, 4));
  REQUIRE(tl.run_until([&] { return e2->done; }, 10'000));
  close_client(tl, client);
  REQUIRE(tl.run_until([&] { return rig.proxy->stats().tunnels_active == 0; }, 10'000));
  close_rig(tl, rig);
}

TEST_CASE("proxy: session close codes cross the tunnel both ways", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  std::shared_ptr<Session> server_side;
  SessionCloseInfo server_saw;
  bool server_closed = false;
  rig.target->route("/close", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    server_side = s;
    s->on_closed([&](const SessionCloseInfo &i) {
      server_saw = i;
      server_closed = true;
    });
  });
  auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
  auto r = connect_client(tl, *client, url_of(rig.target->port(), "/close"));
  REQUIRE(r.err.ok());
  r.session->close(4242, "bye from the client");
  REQUIRE(tl.run_until([&] { return server_closed; }, 10'000));
  CHECK(server_saw.code == 4242);
  CHECK(server_saw.reason == "bye from the client");
  CHECK(server_saw.remote);

  auto r2 = connect_client(tl, *client, url_of(rig.target->port(), "/close"));
  REQUIRE(r2.err.ok());
  SessionCloseInfo client_saw;
  bool client_closed = false;
  r2.session->on_closed([&](const SessionCloseInfo &i) {
    client_saw = i;
    client_closed = true;
  });
  REQUIRE(tl.run_until([&] { return server_side && server_side->is_ready(); }));
  server_side->close(77, "bye from the server");
  REQUIRE(tl.run_until([&] { return client_closed; }, 10'000));
  CHECK(client_saw.code == 77);
  CHECK(client_saw.reason == "bye from the server");
  server_side.reset();
  close_client(tl, client);
  close_rig(tl, rig);
}

TEST_CASE("proxy: Connection::create_client with proxy_addr", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  ClientConfig cfg = client_config();
  cfg.proxy.server_certificate_hashes = {test_certificate().sha256};
  bool done = false;
  Error err;
  std::shared_ptr<Connection> conn;
  auto pending = Connection::create_client(&tl.loop, cfg, "127.0.0.1", rig.target->port(), "/echo",
                                           Address{"127.0.0.1", rig.proxy_server->port()},
                                           [&](const Error &e, std::shared_ptr<Connection> c) {
                                             err = e;
                                             conn = c;
                                             done = true;
                                           });
  REQUIRE(pending);
  REQUIRE(tl.run_until([&] { return done; }, 15'000));
  INFO(err.to_string());
  REQUIRE(err.ok());
  REQUIRE(conn == pending);
  auto id = conn->get_ready_session_id();
  REQUIRE(id);
  auto e = echo_over_bidi(conn->get_session(*id), pattern(100'000, 5));
  REQUIRE(tl.run_until([&] { return e->done; }, 15'000));
  CHECK(checksum(e->got) == checksum(pattern(100'000, 5)));
  CHECK(rig.proxy->stats().tunnels_opened == 1);
  // The target saw the proxy's relay socket, not the client's.
  CHECK(rig.target->connections().front()->remote_address()->port != conn->local_address()->port);
  bool closed = false;
  conn->close(0, "done", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed && rig.proxy->stats().tunnels_active == 0; }, 10'000));
  close_rig(tl, rig);
}

TEST_CASE("proxy: refusals name the proxy leg: policy 403, auth 407, bad template 400", "[proxy][loop]") {
  TestLoop tl;
  SECTION("default policy denies loopback targets") {
    UdpProxyConfig pc;  // allow_private_targets off
    auto rig = start_proxy_rig(tl, pc);
    auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    CHECK(r.err.errc == Errc::proxy_refused);
    CHECK(r.err.http_status == 403);
    CHECK(rig.target->stats().connections_accepted == 0);
    CHECK(rig.proxy->stats().tunnels_refused == 1);
    close_client(tl, client);
    close_rig(tl, rig);
  }
  SECTION("allow-list of hosts and ports") {
    UdpProxyConfig pc = loopback_proxy_config();
    pc.policy.allowed_hosts = {"localhost"};
    auto rig = start_proxy_rig(tl, pc);
    auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));  // 127.0.0.1 is not "localhost"
    CHECK(r.err.errc == Errc::proxy_refused);
    CHECK(r.err.http_status == 403);
    auto ok = connect_client(tl, *client, url_of(rig.target->port(), "/echo", "localhost"));
    CHECK(ok.err.ok());
    close_client(tl, client);
    close_rig(tl, rig);
  }
  SECTION("proxy-authorization checked by the hook") {
    UdpProxyConfig pc = loopback_proxy_config();
    pc.authenticate = require_proxy_authorization("Bearer letmein");
    auto rig = start_proxy_rig(tl, pc);
    auto anon = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    auto r = connect_client(tl, *anon, url_of(rig.target->port(), "/echo"));
    CHECK(r.err.errc == Errc::proxy_authentication);
    CHECK(r.err.http_status == 407);
    ClientConfig cfg = proxied_client_config(rig.proxy_server->port());
    cfg.proxy.headers = {{"Proxy-Authorization", "Bearer letmein"}};
    auto authed = make_client(tl, cfg);
    auto ok = connect_client(tl, *authed, url_of(rig.target->port(), "/echo"));
    INFO(ok.err.to_string());
    CHECK(ok.err.ok());
    close_client(tl, anon);
    close_client(tl, authed);
    close_rig(tl, rig);
  }
  SECTION("a template the proxy does not serve") {
    auto rig = start_proxy_rig(tl);
    auto client =
        make_client(tl, proxied_client_config(rig.proxy_server->port(), "/other/{target_host}/{target_port}"));
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    CHECK(r.err.errc == Errc::proxy_refused);
    CHECK(r.err.http_status == 400);
    close_client(tl, client);
    close_rig(tl, rig);
  }
}

TEST_CASE("proxy: certificate checks apply to each leg on its own", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  std::array<std::uint8_t, 32> wrong{};
  wrong[0] = 1;
  {
    ClientConfig cfg = proxied_client_config(rig.proxy_server->port());
    cfg.proxy.server_certificate_hashes = {wrong};
    auto client = make_client(tl, cfg);
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    CHECK(r.err.errc == Errc::proxy_certificate);
    CHECK(rig.proxy_server->stats().connections_accepted >= 1);
    close_client(tl, client);
  }
  {
    ClientConfig cfg = proxied_client_config(rig.proxy_server->port());
    cfg.server_certificate_hashes = {wrong};  // the target's pin only
    auto client = make_client(tl, cfg);
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    CHECK(r.err.errc == Errc::certificate);
    CHECK(rig.proxy->stats().tunnels_opened >= 1);  // the proxy leg was fine
    close_client(tl, client);
  }
  close_rig(tl, rig);
}

TEST_CASE("proxy: the proxy dying mid-session fails the session cleanly", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
  auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
  REQUIRE(r.err.ok());
  SessionCloseInfo info;
  bool closed = false;
  r.session->on_closed([&](const SessionCloseInfo &i) {
    info = i;
    closed = true;
  });
  close_server(tl, rig.proxy_server);  // CONNECTION_CLOSE to the client's proxy connection
  REQUIRE(tl.run_until([&] { return closed; }, 10'000));
  CHECK(info.error.errc == Errc::proxy_connection);
  CHECK(info.error.message.find("proxy") != std::string::npos);
  auto conn = r.session->connection();
  REQUIRE(tl.run_until([&] { return conn->is_closed(); }, 10'000));
  conn.reset();
  r.session.reset();
  close_client(tl, client);
  close_server(tl, rig.target);
}

TEST_CASE("proxy: impairment on either leg still delivers intact data", "[proxy][loop]") {
  TestLoop tl;
  ServerConfig lossy_target = server_config();
  SECTION("client <-> proxy leg") {
    auto rig = start_proxy_rig(tl);
    ClientConfig cfg = proxied_client_config(rig.proxy_server->port());
    uvwt::testing::impairment(cfg).enabled = true;  // the proxy connection's socket: the outer leg
    uvwt::testing::impairment(cfg).loss = 0.03;
    uvwt::testing::impairment(cfg).reorder = 0.02;
    uvwt::testing::impairment(cfg).seed = 11;
    cfg.connect_timeout = std::chrono::milliseconds(15'000);
    auto client = make_client(tl, cfg);
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    REQUIRE(r.err.ok());
    const Bytes data = pattern(200'000, 12);
    auto e = echo_over_bidi(r.session, data);
    REQUIRE(tl.run_until([&] { return e->done; }, 30'000));
    CHECK(checksum(e->got) == checksum(data));
    close_client(tl, client);
    close_rig(tl, rig);
  }
  SECTION("proxy <-> target leg") {
    uvwt::testing::impairment(lossy_target).enabled = true;  // the target server's socket
    uvwt::testing::impairment(lossy_target).loss = 0.03;
    uvwt::testing::impairment(lossy_target).delay_ms = 5;
    uvwt::testing::impairment(lossy_target).seed = 13;
    auto rig = start_proxy_rig(tl, loopback_proxy_config(), lossy_target);
    auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    REQUIRE(r.err.ok());
    const Bytes data = pattern(200'000, 14);
    auto e = echo_over_bidi(r.session, data);
    REQUIRE(tl.run_until([&] { return e->done; }, 30'000));
    CHECK(checksum(e->got) == checksum(data));
    close_client(tl, client);
    close_rig(tl, rig);
  }
}

namespace {
struct Recorder final : detail::UdpTunnelHandler {
  std::vector<Bytes> got;
  bool closed = false;
  void on_tunnel_response(int, const Headers &) override {}
  void on_tunnel_datagram(std::span<const std::uint8_t> p) override { got.emplace_back(p.begin(), p.end()); }
  void on_tunnel_closed(const Error &) override { closed = true; }
};
}  // namespace

TEST_CASE("proxy: the CONNECT-UDP exchange on the wire (RFC 9298 §2, §3.4, §5)", "[proxy][loop][wire]") {
  TestLoop tl;
  auto server = start_server(tl, proxy_server_config());
  std::vector<detail::UdpTunnelRequest> requests;
  std::shared_ptr<detail::ConnectionImpl> server_conn;
  auto recorder = std::make_shared<Recorder>();
  REQUIRE(detail::set_connection_hook(*server, [&](const std::shared_ptr<detail::ConnectionImpl> &c) {
    server_conn = c;
    c->h3()->set_udp_tunnel_acceptor([&, raw = c.get()](const detail::UdpTunnelRequest &req) {
      requests.push_back(req);
      CHECK(raw->h3()->accept_udp_tunnel(req.stream_id, recorder).ok());
    });
  }));
  ClientConfig cfg = client_config();
  cfg.proxy.url = "https://127.0.0.1:" + std::to_string(server->port());
  cfg.proxy.server_certificate_hashes = {test_certificate().sha256};
  cfg.proxy.headers = {{"proxy-authorization", "Basic dTpw"}};
  detail::ProxySpec spec;
  REQUIRE(detail::make_proxy_spec(cfg, std::nullopt, spec).ok());
  std::shared_ptr<detail::ProxyTunnel> tunnel;
  Error err;
  bool done = false;
  detail::open_proxy_tunnel(std::make_shared<detail::Deferred>(&tl.loop), spec, nullptr, "2001:db8::1", 443,
                            [&](const Error &e, std::shared_ptr<detail::ProxyTunnel> t) {
                              err = e;
                              tunnel = std::move(t);
                              done = true;
                            });
  REQUIRE(tl.run_until([&] { return done; }));
  INFO(err.to_string());
  REQUIRE(err.ok());
  REQUIRE(tunnel);
  REQUIRE(requests.size() == 1);
  const auto &req = requests.front();
  // §2: IPv6 target percent-encoded into the default template.
  CHECK(req.path == "/.well-known/masque/udp/2001%3Adb8%3A%3A1/443/");
  CHECK(req.authority == "127.0.0.1:" + std::to_string(server->port()));
  CHECK(req.capsule_protocol);  // §3.4 / RFC 9297 §3.4: "capsule-protocol: ?1"
  bool auth = false;
  for (const auto &[k, v] : req.headers) auth = auth || (k == "proxy-authorization" && v == "Basic dTpw");
  CHECK(auth);
  // The tunnel leaves room for a full 1200-byte QUIC packet (RFC 9000 §14).
  CHECK(tunnel->max_udp_payload() >= 1200);
  CHECK(tunnel->max_udp_payload() <= 1452);

  // §5: the client's HTTP Datagram is quarter stream id, context id 0, payload.
  const std::uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};
  REQUIRE(tunnel->send({}, {}, 0, hello, sizeof hello, 0) == detail::SendStatus::ok);
  auto *client_h3 = tunnel->proxy_connection()->h3();
  const ngtcp2_vec *wire = client_h3->next_datagram();
  REQUIRE(wire != nullptr);
  const std::int64_t sid = tunnel->stream_id();
  REQUIRE(sid < 4 * 64);  // one-byte quarter stream id
  REQUIRE(wire->len == 2 + sizeof hello);
  CHECK(wire->base[0] == static_cast<std::uint8_t>(sid / 4));
  CHECK(wire->base[1] == 0x00);
  CHECK(std::memcmp(wire->base + 2, hello, sizeof hello) == 0);
  REQUIRE(tl.run_until([&] { return recorder->got.size() == 1; }));
  CHECK(recorder->got.front() == Bytes(hello, hello + sizeof hello));

  // Received side: only context 0 reaches the tunnel (§4, §5).
  const std::uint8_t other_ctx[] = {static_cast<std::uint8_t>(sid / 4), 0x02, 'x'};
  const std::uint8_t ctx0[] = {static_cast<std::uint8_t>(sid / 4), 0x00, 'y'};
  server_conn->h3()->on_datagram(other_ctx, sizeof other_ctx);
  CHECK(recorder->got.size() == 1);
  server_conn->h3()->on_datagram(ctx0, sizeof ctx0);
  REQUIRE(recorder->got.size() == 2);
  CHECK(recorder->got.back() == Bytes{'y'});

  // Ending the tunnel: FIN from the client, the proxy side hears it.
  tunnel->release();
  REQUIRE(tl.run_until([&] { return recorder->closed; }));
  tunnel.reset();
  server_conn.reset();
  close_server(tl, server);
}

TEST_CASE("proxy: ReconnectingClient, Browser and ClientFleet go through the proxy", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  const ClientConfig cfg = proxied_client_config(rig.proxy_server->port());
  const std::string url = url_of(rig.target->port(), "/echo");
  {
    auto client = make_client(tl, cfg);
    auto rc = ReconnectingClient::create(client, url);
    std::shared_ptr<Session> s;
    bool got = false;
    rc->get_session(std::chrono::milliseconds(10'000), [&](std::shared_ptr<Session> x) {
      s = std::move(x);
      got = true;
    });
    REQUIRE(tl.run_until([&] { return got; }, 15'000));
    REQUIRE(s);
    auto e = echo_over_bidi(s, pattern(10'000, 21));
    REQUIRE(tl.run_until([&] { return e->done; }));
    CHECK(checksum(e->got) == checksum(pattern(10'000, 21)));
    bool closed = false;
    rc->close([&] { closed = true; });
    REQUIRE(tl.run_until([&] { return closed; }));
    s.reset();
    close_client(tl, client);
  }
  {
    auto client = make_client(tl, cfg);
    auto browser = Browser::create(client);
    Error err;
    std::shared_ptr<Session> s;
    bool done = false;
    browser->navigate(url, [&](const Error &e, std::shared_ptr<Session> x) {
      err = e;
      s = std::move(x);
      done = true;
    });
    REQUIRE(tl.run_until([&] { return done; }, 15'000));
    REQUIRE(err.ok());
    REQUIRE(s);
    bool closed = false;
    browser->close([&] { closed = true; });
    REQUIRE(tl.run_until([&] { return closed; }));
    s.reset();
    close_client(tl, client);
  }
  {
    std::vector<std::shared_ptr<Client>> clients{make_client(tl, cfg), make_client(tl, cfg)};
    Error ferr;
    auto fleet = ClientFleet::create(&tl.loop, clients, ferr);
    REQUIRE(fleet);
    std::vector<std::shared_ptr<Session>> sessions;
    bool done = false;
    fleet->connect_all(url, [&](std::vector<std::shared_ptr<Session>> v) {
      sessions = std::move(v);
      done = true;
    });
    REQUIRE(tl.run_until([&] { return done; }, 15'000));
    CHECK(sessions.size() == 2);
    sessions.clear();
    bool closed = false;
    fleet->close_all([&] { closed = true; });
    REQUIRE(tl.run_until([&] { return closed; }));
  }
  CHECK(rig.proxy->stats().tunnels_opened == 4);
  CHECK(rig.target->stats().connections_accepted == 4);
  close_rig(tl, rig);
}

TEST_CASE("proxy: per-connection tunnel and byte limits, idle timeout", "[proxy][loop]") {
  TestLoop tl;
  SECTION("max_tunnels_per_connection answers 429") {
    UdpProxyConfig pc = loopback_proxy_config();
    pc.max_tunnels_per_connection = 1;
    auto rig = start_proxy_rig(tl, pc);
    auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    auto a = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    REQUIRE(a.err.ok());
    auto b = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    CHECK(b.err.errc == Errc::proxy_refused);
    CHECK(b.err.http_status == 429);
    a.session.reset();
    close_client(tl, client);
    close_rig(tl, rig);
  }
  SECTION("max_bytes_per_connection closes the tunnel that crosses it") {
    UdpProxyConfig pc = loopback_proxy_config();
    pc.max_bytes_per_connection = 200'000;
    auto rig = start_proxy_rig(tl, pc);
    auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    // A second, quiet session keeps the proxy connection (the budget's owner) open.
    auto keeper = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    REQUIRE(keeper.err.ok());
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    REQUIRE(r.err.ok());
    SessionCloseInfo info;
    bool closed = false;
    r.session->on_closed([&](const SessionCloseInfo &i) {
      info = i;
      closed = true;
    });
    auto e = echo_over_bidi(r.session, pattern(1'000'000, 31));
    REQUIRE(tl.run_until([&] { return closed; }, 15'000));
    CHECK_FALSE(e->done);  // cut before the megabyte made it back
    CHECK(info.error.errc == Errc::proxy_connection);
    const auto st = rig.proxy->stats();
    CHECK(st.bytes_to_targets + st.bytes_from_targets <= 200'000 + 2 * 1500);
    // The same proxy connection gets no new tunnel once its budget is spent.
    auto again = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    CHECK(again.err.errc == Errc::proxy_refused);
    CHECK(again.err.http_status == 429);
    CHECK(rig.proxy_server->stats().connections_accepted == 1);
    r.session.reset();
    keeper.session.reset();
    close_client(tl, client);
    close_rig(tl, rig);
  }
  SECTION("an idle tunnel is closed") {
    UdpProxyConfig pc = loopback_proxy_config();
    pc.tunnel_idle_timeout = std::chrono::milliseconds(400);
    auto rig = start_proxy_rig(tl, pc);
    auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
    auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
    REQUIRE(r.err.ok());
    SessionCloseInfo info;
    bool closed = false;
    r.session->on_closed([&](const SessionCloseInfo &i) {
      info = i;
      closed = true;
    });
    REQUIRE(tl.run_until([&] { return closed; }, 10'000));
    CHECK(info.error.errc == Errc::proxy_connection);
    CHECK(rig.proxy->stats().tunnels_active == 0);
    r.session.reset();
    close_client(tl, client);
    close_rig(tl, rig);
  }
}
