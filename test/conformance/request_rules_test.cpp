// Issue 10 points 2 and 3: the rules about requests, header sections,
// SETTINGS, datagrams and protocol negotiation, checked byte by byte against
// uvwt in both roles. Each test cites the text it checks.

#include "conformance/conformance_fixture.hpp"

namespace uvwt::test {

namespace {
constexpr std::uint64_t kH3NoError = 0x100;
constexpr std::uint64_t kH3ExcessiveLoad = 0x107;
constexpr std::uint64_t kH3SettingsError = 0x109;
constexpr std::uint64_t kH3RequestRejected = 0x10b;
constexpr std::uint64_t kH3MessageError = 0x10e;
constexpr std::uint64_t kH3DatagramError = 0x33;
constexpr std::uint64_t kWtAlpnError = 0x0817b3dd;

// A refused request: the status, a FIN after it, no session, and the
// connection still usable for a proper CONNECT.
void expect_refused_then_usable(TestLoop &tl, WtServer &srv, WirePeer &peer, std::int64_t sid, int status) {
  REQUIRE(tl.run_until([&] { return peer.status(sid).has_value() && peer.stream(sid).fin; }));
  CHECK(peer.status(sid) == status);
  CHECK(srv.sessions == 0);
  CHECK_FALSE(peer.close_log().closed);
  const auto ok = peer.send_request(wire_connect_request(WireDialect::draft13, "localhost", "/wt"));
  REQUIRE(tl.run_until([&] { return peer.status(ok).has_value(); }));
  CHECK(peer.status(ok) == 200);
}
}  // namespace

TEST_CASE("conformance: extended CONNECT with :scheme other than https gets 400", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
  // draft-ietf-webtrans-http3 3.2 (-13..-16): "The :scheme field MUST be https."
  auto req = wire_connect_request(WireDialect::draft13, "localhost", "/wt");
  req[1].second = "http";
  expect_refused_then_usable(tl, srv, *peer, peer->send_request(req), 400);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: SETTINGS_MAX_FIELD_SECTION_SIZE is announced and enforced per request", "[conformance]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  const std::uint64_t limit = GENERATE(std::uint64_t{16u << 10}, std::uint64_t{8u << 10});  // default, configured
  cfg.max_field_section_size = limit;
  WtServer srv(tl, cfg);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
  // RFC 9114 4.2.2: the limit "can be conveyed ... in the SETTINGS_MAX_FIELD_SECTION_SIZE parameter" (0x06).
  CHECK(peer->peer_setting(0x06) == limit);

  // RFC 9114 4.2.2: "A server that receives a larger header section than it
  // is willing to handle can send an HTTP 431 (Request Header Fields Too
  // Large) status code"; 4.1: it stops reading with H3_NO_ERROR. A stream
  // error, never the connection (it used to close with H3_INTERNAL_ERROR).
  WireFields extra;
  SECTION("a single 100 KB value") { extra = {{"x-big", std::string(100'000, 'a')}}; }
  SECTION("10 000 fields") {
    for (int i = 0; i < 10'000; ++i) extra.emplace_back("x-h" + std::to_string(i), "v");
  }
  SECTION("a small encoding that decodes over the limit (name + value + 32 per field)") {
    // 1000 one-byte fields: about 4 KB on the wire, 33 KB by the RFC's count.
    for (int i = 0; i < 1000; ++i) extra.emplace_back("a", "");
  }
  const auto sid = peer->send_request(wire_connect_request(WireDialect::draft13, "localhost", "/wt", extra));
  REQUIRE(tl.run_until([&] { return peer->stream(sid).stop_sending_code.has_value(); }));
  CHECK(*peer->stream(sid).stop_sending_code == kH3NoError);
  expect_refused_then_usable(tl, srv, *peer, sid, 431);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: a client discards a response header section over its limit", "[conformance]") {
  TestLoop tl;
  WirePeer::Options o;
  o.settings = wire_dialect_settings(WireDialect::draft13, 1);
  auto peer = WirePeer::listen(&tl.loop, o);
  auto r = start_uvwt_client(tl, peer->port());
  REQUIRE(tl.run_until([&] { return !peer->requests().empty() && peer->headers(peer->requests()[0]).has_value(); }));
  const auto sid = peer->requests()[0];
  // RFC 9114 4.2.2: "A client can discard responses that it cannot process":
  // the request is aborted with H3_EXCESSIVE_LOAD (8.1) and the application
  // told why (Errc::protocol), the connection untouched.
  CHECK(peer->peer_setting(0x06) == 16u << 10);
  peer->send_response(sid, {{":status", "200"}, {"x-big", std::string(100'000, 'b')}});
  REQUIRE(tl.run_until([&] { return r->done; }));
  CHECK(r->err.errc == Errc::protocol);
  CHECK(r->err.code == kH3ExcessiveLoad);
  REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value(); }));
  CHECK(*peer->stream(sid).reset_code == kH3ExcessiveLoad);
  REQUIRE(tl.run_until([&] { return peer->stream(sid).stop_sending_code.has_value(); }));
  CHECK(*peer->stream(sid).stop_sending_code == kH3ExcessiveLoad);
  close_client(tl, r);
  peer->close(tl);
}

TEST_CASE("conformance: the server answers CONNECT only once the client's SETTINGS arrived", "[conformance]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.peer_settings_timeout = std::chrono::milliseconds(600);
  WtServer srv(tl, cfg);
  WirePeer::Options o;
  o.send_control = false;  // this peer's SETTINGS come when the test says
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), o);
  REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
  // draft-ietf-webtrans-http3 7.1 (3.1 of -16): "the server MUST NOT process
  // any incoming WebTransport requests until the client's SETTINGS have been received".
  const auto sid = peer->send_request(wire_connect_request(WireDialect::draft13, "localhost", "/wt"));
  SECTION("they come: the CONNECT is answered then") {
    tl.run_for(200);
    CHECK_FALSE(peer->status(sid).has_value());
    CHECK(srv.sessions == 0);
    peer->send(peer->open_uni(), wire_control_stream(wire_dialect_settings(WireDialect::draft13)));
    REQUIRE(tl.run_until([&] { return peer->status(sid).has_value(); }));
    CHECK(peer->status(sid) == 200);
    CHECK(srv.sessions == 1);
  }
  SECTION("they never come: refused unprocessed (H3_REQUEST_REJECTED) after peer_settings_timeout") {
    REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value(); }));
    CHECK(*peer->stream(sid).reset_code == kH3RequestRejected);
    CHECK_FALSE(peer->status(sid).has_value());
    CHECK(srv.sessions == 0);
  }
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: no datagrams to a client that did not enable HTTP datagrams", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  SECTION("draft-13 client without SETTINGS_H3_DATAGRAM: no dialect fits, the CONNECT is refused, nothing is sent") {
    WirePeer::Options o;
    o.settings = {{0x08, 1}, {0x14e9cd29, 1}};
    auto peer = WirePeer::connect(&tl.loop, srv.server->port(), o);
    REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
    // draft-ietf-webtrans-http3-13 3.1: "both the client and the server MUST
    // indicate support for HTTP/3 datagrams by sending a SETTINGS_H3_DATAGRAM
    // value set to 1"; RFC 9297 2.1.1: no DATAGRAM frames before that. The
    // server negotiates no dialect with such a client (docs/protocol.md,
    // "Choosing the dialect") and answers 400.
    const auto sid = peer->send_request(wire_connect_request(WireDialect::draft13, "localhost", "/wt"));
    REQUIRE(tl.run_until([&] { return peer->status(sid).has_value(); }));
    CHECK(peer->status(sid) == 400);
    CHECK(srv.sessions == 0);
    tl.run_for(200);
    CHECK(peer->datagrams().empty());
    peer->close(tl);
  }
  SECTION("draft-15 client without SETTINGS_H3_DATAGRAM: its session is malformed (H3_MESSAGE_ERROR)") {
    WirePeer::Options o;
    o.settings = {{0x08, 1}, {0x2c7cf000, 1}};
    auto peer = WirePeer::connect(&tl.loop, srv.server->port(), o);
    REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
    // draft-ietf-webtrans-http3-15/16 3.1: clients send SETTINGS_H3_DATAGRAM=1;
    // otherwise "the server MUST treat all ... sessions as malformed" (RFC 9114 4.1.2).
    const auto sid = peer->send_request(wire_connect_request(WireDialect::draft15, "localhost", "/wt"));
    REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value(); }));
    CHECK(*peer->stream(sid).reset_code == kH3MessageError);
    CHECK(srv.sessions == 0);
    peer->close(tl);
  }
  srv.close();
}

TEST_CASE("conformance: a draft-15 client's ':protocol webtransport' (capsule-based variant) gets 501",
          "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  WirePeer::Options o;
  o.settings = wire_dialect_settings(WireDialect::draft15);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), o);
  REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
  // draft-ietf-webtrans-http3-15/16 2.1.2: over HTTP/3 "webtransport" is the
  // token of the capsule-based protocol of draft-ietf-webtrans-http2, which
  // uvwt does not implement: refused rather than answered 200.
  auto req = wire_connect_request(WireDialect::draft13, "localhost", "/wt");
  const auto sid = peer->send_request(req);
  REQUIRE(tl.run_until([&] { return peer->status(sid).has_value() && peer->stream(sid).fin; }));
  CHECK(peer->status(sid) == 501);
  CHECK(srv.sessions == 0);
  // The same client with "webtransport-h3" is served.
  const auto ok = peer->send_request(wire_connect_request(WireDialect::draft15, "localhost", "/wt"));
  REQUIRE(tl.run_until([&] { return peer->status(ok).has_value(); }));
  CHECK(peer->status(ok) == 200);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: STOP_SENDING on the CONNECT stream ends the session", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // draft-ietf-webtrans-http3 section 6: the session ends when the CONNECT
  // stream "is closed, either cleanly or abruptly, on either side". ngtcp2
  // 1.x answers STOP_SENDING with RESET_STREAM (same code, RFC 9000 3.5) and
  // reports it to uvwt at the next write on the stream: here the server's
  // own WT_DRAIN_SESSION.
  peer->stop_sending(sid, 0x10c);
  REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value(); }));
  CHECK(*peer->stream(sid).reset_code == 0x10cu);
  srv.session->drain();
  REQUIRE(tl.run_until([&] { return srv.closed.has_value(); }));
  CHECK(srv.closed->remote);
  CHECK(srv.closed->error.errc == Errc::session);
  // uvwt stops reading the stream as well: the session is gone.
  REQUIRE(tl.run_until([&] { return peer->stream(sid).stop_sending_code.has_value(); }));
  CHECK(*peer->stream(sid).stop_sending_code == 0x170d7b68u);  // WT_SESSION_GONE
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: malformed datagrams close the connection with H3_DATAGRAM_ERROR", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // RFC 9297 2.1: "Receipt of a QUIC DATAGRAM frame whose payload is too
  // short to allow parsing the Quarter Stream ID field MUST be treated as an
  // HTTP/3 connection error of type H3_DATAGRAM_ERROR", and so is a Quarter
  // Stream ID above 2^60-1.
  WireBytes bad;
  SECTION("empty") {}
  SECTION("truncated quarter stream id") { bad = {0xc0, 0x00, 0x01}; }
  SECTION("quarter stream id 2^60") { bad = wire_varint_len(1ull << 60, 8); }
  peer->send_datagram(bad);
  REQUIRE(tl.run_until([&] { return peer->close_log().closed; }));
  const auto c = peer->close_log();
  CHECK(c.from_peer);
  CHECK(c.application);
  CHECK(c.code == kH3DatagramError);
  REQUIRE(tl.run_until([&] { return srv.closed.has_value(); }));
  CHECK(srv.closed->error.errc == Errc::protocol);
  CHECK(srv.closed->error.code == kH3DatagramError);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: SETTINGS values out of range close the connection with H3_SETTINGS_ERROR", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  WirePeer::Options o;
  // RFC 8441 3 / RFC 9220 3 (ENABLE_CONNECT_PROTOCOL), RFC 9297 2.1.1
  // (H3_DATAGRAM, "MUST terminate the connection with error
  // H3_SETTINGS_ERROR"), draft-ietf-webtrans-http3-16 3.1 (WT_ENABLED:
  // values greater than 1 are H3_SETTINGS_ERROR).
  SECTION("SETTINGS_WT_ENABLED = 2") { o.settings = {{0x08, 1}, {0x33, 1}, {0x2c7cf000, 2}}; }
  SECTION("SETTINGS_H3_DATAGRAM = 2") { o.settings = {{0x08, 1}, {0x33, 2}, {0x14e9cd29, 1}}; }
  SECTION("pre-RFC H3_DATAGRAM = 2") { o.settings = {{0x08, 1}, {0xffd277, 2}, {0x14e9cd29, 1}}; }
  SECTION("SETTINGS_ENABLE_CONNECT_PROTOCOL = 2") { o.settings = {{0x08, 2}, {0x33, 1}, {0x14e9cd29, 1}}; }
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), o);
  REQUIRE(tl.run_until([&] { return peer->close_log().closed; }));
  const auto c = peer->close_log();
  CHECK(c.from_peer);
  CHECK(c.application);
  CHECK(c.code == kH3SettingsError);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: a uvwt client refuses a server whose WT_ENABLED is out of range", "[conformance]") {
  TestLoop tl;
  WirePeer::Options o;
  o.settings = {{0x08, 1}, {0x33, 1}, {0x2c7cf000, 7}};
  auto peer = WirePeer::listen(&tl.loop, o);
  auto r = start_uvwt_client(tl, peer->port());
  REQUIRE(tl.run_until([&] { return r->done; }));
  CHECK(r->err.errc == Errc::protocol);
  REQUIRE(tl.run_until([&] { return peer->close_log().closed; }));
  CHECK(peer->close_log().code == kH3SettingsError);
  close_client(tl, r);
  peer->close(tl);
}

TEST_CASE("conformance: a wt-protocol the client never offered", "[conformance]") {
  TestLoop tl;
  WirePeer::Options o;
  ClientConfig cfg = client_config();
  cfg.protocols = {"chat.v1", "chat.v2"};
  std::string answer;
  bool alpn_error = true;
  SECTION("draft-15: not offered -> WT_ALPN_ERROR") {
    o.settings = wire_dialect_settings(WireDialect::draft15);
    answer = "\"chat.v3\"";
  }
  SECTION("draft-15: not a string -> WT_ALPN_ERROR") {
    o.settings = wire_dialect_settings(WireDialect::draft15);
    answer = "chat.v1";  // a token, not an sf-string
  }
  SECTION("draft-13: ignored, the session opens without a protocol") {
    o.settings = wire_dialect_settings(WireDialect::draft13);
    answer = "\"chat.v3\"";
    alpn_error = false;
  }
  auto peer = WirePeer::listen(&tl.loop, o);
  auto r = start_uvwt_client(tl, peer->port(), cfg);
  REQUIRE(tl.run_until([&] { return !peer->requests().empty() && peer->headers(peer->requests()[0]).has_value(); }));
  const auto sid = peer->requests()[0];
  CHECK(wire_field(*peer->headers(sid), "wt-available-protocols") == "\"chat.v1\", \"chat.v2\"");
  peer->send_response(sid, {{":status", "200"}, {"wt-protocol", answer}});
  REQUIRE(tl.run_until([&] { return r->done; }));
  if (alpn_error) {
    // draft-ietf-webtrans-http3-15/16 3.3: "the client MUST close the
    // WebTransport session with a WT_ALPN_ERROR error code".
    CHECK(r->err.errc == Errc::protocol);
    CHECK(r->err.code == kWtAlpnError);
    REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value(); }));
    CHECK(*peer->stream(sid).reset_code == kWtAlpnError);
  } else {
    REQUIRE(r->err.ok());
    REQUIRE(r->session);
    CHECK(r->session->info().protocol.empty());
  }
  close_client(tl, r);
  peer->close(tl);
}

}  // namespace uvwt::test
