// The wire peer itself, against uvwt in both roles: it must see exactly what
// a conforming uvwt sends (SETTINGS, 200 to a CONNECT, echoed stream bytes
// and datagrams, the answer to WT_CLOSE_SESSION), so that the conformance
// tests built on it can trust what it records.

#include "conformance/wire_peer.hpp"

#include <uvwt/connection.hpp>

#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

namespace uvwt::test {

TEST_CASE("wire peer: draft-13 client opens a session, echoes a stream and a datagram, closes", "[conformance]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::optional<SessionCloseInfo> closed;
  server->route("/echo", [&closed](std::shared_ptr<Session> s, const SessionRequest &r) {
    echo_handler()(s, r);
    s->on_closed([&closed](const SessionCloseInfo &ci) { closed = ci; });
  });
  auto peer = WirePeer::connect(&tl.loop, server->port());
  REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
  // docs/protocol.md "Server policy": every generation's settings at once.
  CHECK(peer->peer_setting(0x08) == 1u);
  CHECK(peer->peer_setting(0x33) == 1u);
  CHECK(peer->peer_setting(0x2b603742) == 1u);
  CHECK(peer->peer_setting(0x14e9cd29).has_value());
  CHECK(peer->peer_setting(0x2c7cf000) == 1u);

  const auto sid = peer->send_request(wire_connect_request(WireDialect::draft13, "localhost", "/echo"));
  REQUIRE(sid == 0);
  REQUIRE(tl.run_until([&] { return peer->status(sid).has_value(); }));
  CHECK(peer->status(sid) == 200);

  const auto payload = wire_bytes("hello");
  const auto bidi = peer->open_wt_stream(true, 0, payload, true);
  REQUIRE(tl.run_until([&] { return peer->stream(bidi).fin; }));
  CHECK(peer->stream(bidi).data == payload);  // echoed bidi data carries no preamble back

  const auto dgram = wire_cat({wire_varint(0), wire_bytes("dg")});  // quarter stream id 0
  peer->send_datagram(dgram);
  REQUIRE(tl.run_until([&] { return !peer->datagrams().empty(); }));
  CHECK(peer->datagrams().front() == dgram);

  peer->send_capsule(sid, 0x2843, wire_close_session_value(7, wire_bytes("bye")));
  // RFC 9297 / draft-13 section 6: the receiver of WT_CLOSE_SESSION ends its side with FIN.
  REQUIRE(tl.run_until([&] { return peer->stream(sid).fin; }));
  CHECK_FALSE(peer->stream(sid).reset_code.has_value());
  REQUIRE(tl.run_until([&] { return closed.has_value(); }));
  CHECK(closed->remote);
  CHECK(closed->code == 7u);
  CHECK(closed->reason == "bye");
  peer->close(tl);
  close_all(tl, nullptr, server);
}

TEST_CASE("wire peer: plays a server for a uvwt client", "[conformance]") {
  TestLoop tl;
  WirePeer::Options o;
  o.settings = wire_dialect_settings(WireDialect::draft15);
  auto peer = WirePeer::listen(&tl.loop, o);
  Connected r;
  bool done = false;
  Connection::create_client(&tl.loop, client_config(), "127.0.0.1", peer->port(), "/wt", std::nullopt,
                            [&](const Error &e, std::shared_ptr<Connection> c) {
                              r.err = e;
                              r.conn = c;
                              done = true;
                            });
  REQUIRE(tl.run_until([&] { return !peer->requests().empty() && peer->headers(peer->requests()[0]).has_value(); }));
  const auto sid = peer->requests()[0];
  const auto req = *peer->headers(sid);
  CHECK(wire_field(req, ":method") == "CONNECT");
  CHECK(wire_field(req, ":protocol") == "webtransport-h3");  // draft-15 token (docs/protocol.md)
  CHECK(wire_field(req, ":scheme") == "https");
  CHECK(wire_field(req, ":path") == "/wt");
  peer->send_response(sid, {{":status", "200"}});
  REQUIRE(tl.run_until([&] { return done; }));
  REQUIRE(r.err.ok());
  auto id = r.conn->get_ready_session_id();
  REQUIRE(id.has_value());
  CHECK(r.conn->get_session(*id)->info().dialect == "draft15");
  bool cdone = false;
  r.conn->close(0, "done", [&] { cdone = true; });
  REQUIRE(tl.run_until([&] { return cdone; }));
  peer->close(tl);
}

}  // namespace uvwt::test
