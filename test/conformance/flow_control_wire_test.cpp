// Issue 10 points 1, 3 and 4 on the wire: session flow control as a strict
// peer sees it (SETTINGS, WT_MAX_* top-ups, BLOCKED capsules, limits
// enforced with WT_FLOW_CONTROL_ERROR), the session-count rules
// (H3_REQUEST_REJECTED) and the bare-FIN close. The wire peer plays the
// client; every check reads the bytes uvwt sent. Sections cited are those of
// draft-ietf-webtrans-http3-15 unless said otherwise (-13/-14 section 5.1
// for the draft-13 trigger).

#include <uvwt/uvwt.hpp>

#include "conformance/conformance_fixture.hpp"
#include "session/session_impl.hpp"

namespace uvwt::test {

namespace {
constexpr std::uint64_t kWtFlowControlError = 0x045d4487;
constexpr std::uint64_t kH3RequestRejected = 0x10b;
constexpr std::uint64_t kMaxData = 0x190B4D3D;
constexpr std::uint64_t kMaxStreamsBidi = 0x190B4D3F;
constexpr std::uint64_t kMaxStreamsUni = 0x190B4D40;
constexpr std::uint64_t kDataBlocked = 0x190B4D41;
constexpr std::uint64_t kStreamsBlockedUni = 0x190B4D44;
constexpr std::uint64_t kInitialMaxData = 0x2b61;
constexpr std::uint64_t kInitialMaxStreamsUni = 0x2b64;
constexpr std::uint64_t kInitialMaxStreamsBidi = 0x2b65;
constexpr std::uint64_t kWtMaxSessions = 0x14e9cd29;

// A strict draft-13 client allowing 16 sessions: flow control is on, and
// without WT_INITIAL_* uvwt has no credit at all (section 5.1 of -13/-14).
WirePeer::Options draft13_client(const std::vector<WireSetting> &extra = {}) {
  WirePeer::Options o;
  o.settings = wire_dialect_settings(WireDialect::draft13, 16, extra);
  return o;
}

WirePeer::Options draft15_client(const std::vector<WireSetting> &extra = {}) {
  WirePeer::Options o;
  o.settings = wire_dialect_settings(WireDialect::draft15, 1, extra);
  return o;
}

std::vector<WireCapsule> capsules_of(const WirePeer &peer, std::int64_t sid, std::uint64_t type) {
  std::vector<WireCapsule> out;
  for (auto &c : peer.capsules(sid))
    if (c.type == type) out.push_back(c);
  return out;
}

// The single varint that is a flow-control capsule's whole value, checked
// to be encoded minimally (RFC 9000 16 allows longer forms; uvwt never uses them).
std::uint64_t capsule_number(const WireCapsule &c) {
  REQUIRE(!c.value.empty());
  const std::size_t len = std::size_t{1} << (c.value[0] >> 6);
  REQUIRE(c.value.size() == len);
  std::uint64_t v = c.value[0] & 0x3f;
  for (std::size_t i = 1; i < len; ++i) v = (v << 8) | c.value[i];
  CHECK(wire_varint(v) == c.value);
  return v;
}

const detail::SessionFlowControl &fc_of(const std::shared_ptr<Session> &s) {
  auto impl = std::dynamic_pointer_cast<detail::SessionImpl>(s);
  REQUIRE(impl);
  return impl->flow_control();
}

void expect_flow_control_error(TestLoop &tl, WtServer &srv, WirePeer &peer, std::int64_t sid) {
  REQUIRE(tl.run_until([&] {
    return peer.stream(sid).reset_code.has_value() && peer.stream(sid).stop_sending_code.has_value() &&
           srv.closed.has_value();
  }));
  CHECK(*peer.stream(sid).reset_code == kWtFlowControlError);
  CHECK(*peer.stream(sid).stop_sending_code == kWtFlowControlError);
  CHECK(srv.closed->error.errc == Errc::protocol);
  CHECK(srv.closed->error.code == kWtFlowControlError);
  CHECK_FALSE(peer.close_log().closed);  // a session error, not a connection error
}

ServerConfig tiny(std::uint64_t data, std::uint64_t bidi, std::uint64_t uni) {
  ServerConfig c = server_config();
  c.wt_initial_max_data = data;
  c.wt_initial_max_streams_bidi = bidi;
  c.wt_initial_max_streams_uni = uni;
  return c;
}
}  // namespace

TEST_CASE("conformance: uvwt announces its WT_INITIAL_* limits, and none with flow control off",
          "[conformance][flow]") {
  TestLoop tl;
  SECTION("configured limits") {
    WtServer srv(tl, tiny(70'000, 5, 6));
    auto peer = WirePeer::connect(&tl.loop, srv.server->port());
    REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
    // Section 5.5 / 9.2: 0x2b61 data, 0x2b64 uni, 0x2b65 bidi.
    CHECK(peer->peer_setting(kInitialMaxData) == 70'000u);
    CHECK(peer->peer_setting(kInitialMaxStreamsUni) == 6u);
    CHECK(peer->peer_setting(kInitialMaxStreamsBidi) == 5u);
    CHECK(peer->peer_setting(kWtMaxSessions) == 16u);
    peer->close(tl);
    srv.close();
  }
  SECTION("flow control off: one session, no limits announced") {
    ServerConfig c = tiny(0, 0, 0);
    c.max_sessions_per_connection = 1;
    WtServer srv(tl, c);
    auto peer = WirePeer::connect(&tl.loop, srv.server->port());
    REQUIRE(tl.run_until([&] { return peer->peer_settings().has_value(); }));
    CHECK_FALSE(peer->peer_setting(kInitialMaxData).has_value());
    CHECK_FALSE(peer->peer_setting(kInitialMaxStreamsUni).has_value());
    CHECK_FALSE(peer->peer_setting(kInitialMaxStreamsBidi).has_value());
    CHECK(peer->peer_setting(kWtMaxSessions) == 1u);  // -13: WT_MAX_SESSIONS 1 keeps it off
    peer->close(tl);
    srv.close();
  }
}

TEST_CASE("conformance: zero initial limits (draft-13, no WT_INITIAL_*) block uvwt until WT_MAX_DATA arrives",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), draft13_client());
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  REQUIRE(fc_of(srv.session).enabled());
  // Our bidi stream: uvwt's echo of "hello" may not carry a single byte.
  const auto bidi = peer->open_wt_stream(true, static_cast<std::uint64_t>(sid), wire_bytes("hello"));
  // Section 5.6.5: uvwt says it is blocked, at limit 0.
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, kDataBlocked).empty(); }));
  CHECK(capsule_number(capsules_of(*peer, sid, kDataBlocked).front()) == 0);
  tl.run_for(300);
  CHECK(peer->stream(bidi).data.empty());
  // Three bytes of credit: exactly three bytes of payload.
  peer->send_capsule(sid, kMaxData, wire_varint(3));
  REQUIRE(tl.run_until([&] { return peer->stream(bidi).data.size() >= 3; }));
  tl.run_for(200);
  CHECK(peer->stream(bidi).data == wire_bytes("hel"));
  // Blocked again at the new limit, reported once per limit.
  REQUIRE(tl.run_until([&] { return capsules_of(*peer, sid, kDataBlocked).size() >= 2; }));
  CHECK(capsule_number(capsules_of(*peer, sid, kDataBlocked)[1]) == 3);
  peer->send_capsule(sid, kMaxData, wire_varint(1000));
  REQUIRE(tl.run_until([&] { return peer->stream(bidi).data == wire_bytes("hello"); }));
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: zero stream credit holds uvwt's stream open until WT_MAX_STREAMS, with WT_STREAMS_BLOCKED",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl);
  // Data credit but no uni stream credit.
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), draft13_client({{kInitialMaxData, 100'000}}));
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // The echo handler answers a uni stream on a uni stream of its own.
  peer->open_wt_stream(false, static_cast<std::uint64_t>(sid), wire_bytes("ping"), true);
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, kStreamsBlockedUni).empty(); }));
  CHECK(capsule_number(capsules_of(*peer, sid, kStreamsBlockedUni).front()) == 0);
  auto uvwt_uni = [&]() -> std::optional<std::int64_t> {
    for (const auto &[id, log] : peer->streams())
      if ((id & 3) == 3 && log.data.size() >= 2 &&
          WireBytes(log.data.begin(), log.data.begin() + 2) == wire_varint(0x54))
        return id;
    return std::nullopt;
  };
  tl.run_for(300);
  CHECK_FALSE(uvwt_uni().has_value());  // section 5.6.2: no stream past the limit
  peer->send_capsule(sid, kMaxStreamsUni, wire_varint(1));
  REQUIRE(tl.run_until([&] { return uvwt_uni() && peer->stream(*uvwt_uni()).fin; }));
  // 0x54, the session id, then the payload (section 4.2).
  CHECK(peer->stream(*uvwt_uni()).data ==
        wire_cat({wire_varint(0x54), wire_varint(static_cast<std::uint64_t>(sid)), wire_bytes("ping")}));
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: uvwt tops the peer up with WT_MAX_DATA and WT_MAX_STREAMS as the application consumes",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl, tiny(4096, 2, 2));
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(),
                                draft13_client({{kInitialMaxData, 1 << 20}, {kInitialMaxStreamsBidi, 100}}));
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // 3000 bytes (within the 4096 window) echoed: more than half the window
  // consumed, so one WT_MAX_DATA = consumed + 4096 must come, and only one.
  const WireBytes payload(3000, 'x');
  const auto bidi = peer->open_wt_stream(true, static_cast<std::uint64_t>(sid), payload, true);
  REQUIRE(tl.run_until([&] { return peer->stream(bidi).fin; }));
  CHECK(peer->stream(bidi).data == payload);
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, kMaxData).empty(); }));
  const auto tops = capsules_of(*peer, sid, kMaxData);
  REQUIRE(tops.size() == 1);
  const std::uint64_t v = capsule_number(tops[0]);
  CHECK(v >= 4096 + 2048);  // consumed at least half the window when sent
  CHECK(v <= 4096 + 3000);
  // The stream is done both ways: one of the two bidi slots comes back,
  // reaching half the window, so WT_MAX_STREAMS(bidi) = 1 closed + 2.
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, kMaxStreamsBidi).empty(); }));
  CHECK(capsule_number(capsules_of(*peer, sid, kMaxStreamsBidi).front()) == 3);
  CHECK(capsules_of(*peer, sid, kMaxStreamsUni).empty());  // no uni stream was used
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: a peer over uvwt's limits gets WT_FLOW_CONTROL_ERROR on the CONNECT stream",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl, tiny(1000, 2, 2));
  WireDialect d = WireDialect::draft13;
  WirePeer::Options opts = draft13_client({{kInitialMaxData, 1 << 20}});
  SECTION("draft-13") {}
  SECTION("draft-15") {
    d = WireDialect::draft15;
    opts = draft15_client({{kInitialMaxData, 1 << 20}});
  }
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), opts);
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  REQUIRE(fc_of(srv.session).enabled());
  SECTION("stream data past WT_MAX_DATA (section 5.6.4)") {
    // Paused reader: nothing consumed, so no top-up can move the limit.
    srv.session->on_bidi_stream([](std::shared_ptr<Stream> st) { st->pause(); });
    peer->open_wt_stream(true, static_cast<std::uint64_t>(sid), WireBytes(1000, 'a'));
    peer->open_wt_stream(true, static_cast<std::uint64_t>(sid), WireBytes(1, 'b'));
    expect_flow_control_error(tl, srv, *peer, sid);
  }
  SECTION("a stream past WT_MAX_STREAMS (section 5.6.2)") {
    for (int i = 0; i < 3; ++i) peer->open_wt_stream(false, static_cast<std::uint64_t>(sid), wire_bytes("u"));
    expect_flow_control_error(tl, srv, *peer, sid);
  }
  SECTION("a WT_MAX_DATA that does not increase (section 5.6.4)") {
    peer->send_capsule(sid, kMaxData, wire_varint(2 << 20));
    peer->send_capsule(sid, kMaxData, wire_varint(2 << 20));
    expect_flow_control_error(tl, srv, *peer, sid);
  }
  SECTION("a WT_MAX_STREAMS that decreases (section 5.6.2)") {
    peer->send_capsule(sid, kMaxStreamsBidi, wire_varint(10));
    peer->send_capsule(sid, kMaxStreamsBidi, wire_varint(9));
    expect_flow_control_error(tl, srv, *peer, sid);
  }
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: draft-15 flow control follows the client's non-zero WT_INITIAL_MAX_DATA",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), draft15_client({{kInitialMaxData, 3}}));
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft15);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  REQUIRE(fc_of(srv.session).enabled());
  const auto bidi = peer->open_wt_stream(true, static_cast<std::uint64_t>(sid), wire_bytes("hello"));
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, kDataBlocked).empty(); }));
  CHECK(capsule_number(capsules_of(*peer, sid, kDataBlocked).front()) == 3);
  CHECK(peer->stream(bidi).data == wire_bytes("hel"));
  peer->close(tl);
  srv.close();
}

TEST_CASE(
    "conformance: without flow control, flow-control capsules are ignored and a second session is "
    "refused with H3_REQUEST_REJECTED",
    "[conformance][flow]") {
  TestLoop tl;
  ServerConfig c = tiny(0, 0, 0);
  c.max_sessions_per_connection = 1;
  WtServer srv(tl, c);
  WireDialect d = WireDialect::draft15;
  WirePeer::Options opts = draft15_client();
  SECTION("draft-15: no WT_INITIAL_* from either side") {}
  SECTION("draft-13: WT_MAX_SESSIONS 1") {
    d = WireDialect::draft13;
    opts = draft13_client();
  }
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), opts);
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  CHECK_FALSE(fc_of(srv.session).enabled());
  // Section 5.1: ignored, even a "decreasing" one.
  peer->send_capsule(sid, kMaxData, wire_varint(100));
  peer->send_capsule(sid, kMaxData, wire_varint(50));
  const auto bidi = peer->open_wt_stream(true, static_cast<std::uint64_t>(sid), wire_bytes("still here"), true);
  REQUIRE(tl.run_until([&] { return peer->stream(bidi).fin; }));
  CHECK(peer->stream(bidi).data == wire_bytes("still here"));
  CHECK_FALSE(srv.closed.has_value());
  // Section 5.1: "MUST reset the excessive CONNECT streams with a
  // H3_REQUEST_REJECTED"; no response is sent.
  const auto second = peer->send_request(wire_connect_request(d, "localhost", "/wt"));
  REQUIRE(tl.run_until([&] {
    return peer->stream(second).reset_code.has_value() && peer->stream(second).stop_sending_code.has_value();
  }));
  CHECK(*peer->stream(second).reset_code == kH3RequestRejected);
  CHECK(*peer->stream(second).stop_sending_code == kH3RequestRejected);
  CHECK_FALSE(peer->status(second).has_value());
  CHECK(srv.sessions == 1);
  CHECK_FALSE(srv.closed.has_value());
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: over the session limit the server resets CONNECT with H3_REQUEST_REJECTED, not 429",
          "[conformance][flow]") {
  TestLoop tl;
  ServerConfig c = server_config();
  c.max_sessions_per_connection = 2;
  WtServer srv(tl, c);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), draft13_client());
  open_wire_session(tl, *peer, WireDialect::draft13);
  open_wire_session(tl, *peer, WireDialect::draft13);
  const auto third = peer->send_request(wire_connect_request(WireDialect::draft13, "localhost", "/wt"));
  REQUIRE(tl.run_until([&] { return peer->stream(third).reset_code.has_value(); }));
  CHECK(*peer->stream(third).reset_code == kH3RequestRejected);
  CHECK_FALSE(peer->status(third).has_value());
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: close(0, \"\") is a bare FIN; a FIN without capsule is close(0, \"\")",
          "[conformance][close]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  SECTION("uvwt closes with code 0 and no reason") {
    srv.session->close(0, "", {});
    REQUIRE(tl.run_until([&] { return peer->stream(sid).fin; }));
    // Section 6: a clean FIN means code 0 and an empty message; no capsule.
    CHECK(peer->capsules(sid).empty());
    for (const auto &f : peer->frames(sid)) CHECK(f.type != 0x00);  // no DATA frame at all
  }
  SECTION("uvwt closes with a code: WT_CLOSE_SESSION then FIN") {
    srv.session->close(9, "", {});
    REQUIRE(tl.run_until([&] { return peer->stream(sid).fin; }));
    const auto caps = peer->capsules(sid);
    REQUIRE(caps.size() == 1);
    CHECK(caps[0].type == 0x2843);
    CHECK(caps[0].value == WireBytes{0, 0, 0, 9});
  }
  SECTION("the peer sends a bare FIN") {
    peer->send(sid, {}, true);
    REQUIRE(tl.run_until([&] { return srv.closed.has_value(); }));
    CHECK(srv.closed->remote);
    CHECK(srv.closed->code == 0);
    CHECK(srv.closed->reason.empty());
    CHECK(!srv.closed->error);
    REQUIRE(tl.run_until([&] { return peer->stream(sid).fin; }));
    CHECK(peer->capsules(sid).empty());  // answered with a bare FIN too
  }
  peer->close(tl);
  srv.close();
}

}  // namespace uvwt::test

namespace uvwt::test {

TEST_CASE("conformance: a uvwt client honours a draft-13 server's zero limits until WT_MAX_STREAMS and WT_MAX_DATA",
          "[conformance][flow]") {
  TestLoop tl;
  WirePeer::Options o;
  // A strict draft-13 server allowing 16 sessions and announcing no
  // WT_INITIAL_*: flow control on, zero credit (-13/-14 section 5.1).
  o.settings = wire_dialect_settings(WireDialect::draft13, 16);
  auto peer = WirePeer::listen(&tl.loop, o);
  auto attempt = start_uvwt_client(tl, peer->port());
  REQUIRE(tl.run_until([&] { return !peer->requests().empty() && peer->headers(peer->requests()[0]).has_value(); }));
  const auto sid = peer->requests()[0];
  // The client announced its own limits (section 5.5).
  REQUIRE(peer->peer_settings().has_value());
  CHECK(peer->peer_setting(0x2b61) == ClientConfig{}.wt_initial_max_data);
  CHECK(peer->peer_setting(0x2b65) == ClientConfig{}.wt_initial_max_streams_bidi);
  peer->send_response(sid, {{":status", "200"}});
  REQUIRE(tl.run_until([&] { return attempt->done; }));
  REQUIRE(attempt->err.ok());
  REQUIRE(attempt->session);
  CHECK(attempt->session->info().dialect == "draft13");
  std::shared_ptr<Stream> opened;
  attempt->session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
    REQUIRE(e.ok());
    opened = st;
    st->write(wire_bytes("hello"));
  });
  // Section 5.6.3: blocked at the bidi limit 0 (type 0x190B4D43).
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, 0x190B4D43).empty(); }));
  CHECK(capsule_number(capsules_of(*peer, sid, 0x190B4D43).front()) == 0);
  tl.run_for(200);
  CHECK_FALSE(opened);  // the open waits, its callback deferred
  peer->send_capsule(sid, kMaxStreamsBidi, wire_varint(1));
  REQUIRE(tl.run_until([&] { return opened != nullptr; }));
  // The stream header goes out without data credit; the payload does not.
  const WireBytes header = wire_cat({wire_varint(0x41), wire_varint(static_cast<std::uint64_t>(sid))});
  REQUIRE(tl.run_until([&] { return peer->stream(opened->id()).data.size() >= header.size(); }));
  REQUIRE(tl.run_until([&] { return !capsules_of(*peer, sid, kDataBlocked).empty(); }));
  CHECK(capsule_number(capsules_of(*peer, sid, kDataBlocked).front()) == 0);
  CHECK(peer->stream(opened->id()).data == header);
  CHECK_FALSE(opened->writable());  // no session credit
  peer->send_capsule(sid, kMaxData, wire_varint(5));
  const WireBytes all = wire_cat({header, wire_bytes("hello")});
  REQUIRE(tl.run_until([&] { return peer->stream(opened->id()).data == all; }));
  // 5 of 5 used: still not writable; the next top-up says so through on_writable.
  CHECK_FALSE(opened->writable());
  bool told = false;
  opened->on_writable([&] { told = true; });
  peer->send_capsule(sid, kMaxData, wire_varint(1000));
  REQUIRE(tl.run_until([&] { return told; }));
  CHECK(opened->writable());
  opened.reset();
  close_client(tl, attempt);
  peer->close(tl);
}

}  // namespace uvwt::test
