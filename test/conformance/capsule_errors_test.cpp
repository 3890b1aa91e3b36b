// Issue 10 point 2: every malformed capsule is answered on the wire with the
// draft's code on the CONNECT stream (RESET_STREAM and STOP_SENDING) and
// reaches the application as Errc::protocol. Each rule cites its text.

#include "conformance/conformance_fixture.hpp"

namespace uvwt::test {

namespace {
constexpr std::uint64_t kH3MessageError = 0x10e;
constexpr std::uint64_t kWtFlowControlError = 0x045d4487;
constexpr std::uint64_t kCloseSession = 0x2843;

// The server aborted the CONNECT stream with `code` both ways, and its
// application saw the session fail with Errc::protocol and that code.
void expect_session_aborted(TestLoop &tl, WtServer &srv, WirePeer &peer, std::int64_t sid, std::uint64_t code) {
  REQUIRE(tl.run_until([&] {
    return peer.stream(sid).reset_code.has_value() && peer.stream(sid).stop_sending_code.has_value() &&
           srv.closed.has_value();
  }));
  CHECK(*peer.stream(sid).reset_code == code);
  CHECK(*peer.stream(sid).stop_sending_code == code);
  CHECK(srv.closed->error.errc == Errc::protocol);
  CHECK(srv.closed->error.code == code);
  // A stream error, not a connection error: the connection stays up.
  CHECK_FALSE(peer.close_log().closed);
}

WireDialect pick_dialect() {
  WireDialect d = WireDialect::draft13;
  SECTION("draft-13") { d = WireDialect::draft13; }
  SECTION("draft-15") { d = WireDialect::draft15; }
  return d;
}
}  // namespace

TEST_CASE("conformance: WT_CLOSE_SESSION claiming 2^62-1 bytes aborts the session with H3_MESSAGE_ERROR",
          "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  const WireDialect d = pick_dialect();
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // draft-ietf-webtrans-http3 section 6: the message is at most 1024 bytes,
  // so the capsule is malformed as soon as its length is read (RFC 9297 3.3:
  // a malformed message, RFC 9114 4.1.2: stream error H3_MESSAGE_ERROR). The
  // length alone decides: nothing of the value is buffered or awaited.
  peer->send(sid, wire_data_frame(wire_capsule_header(kCloseSession, (1ull << 62) - 1)));
  expect_session_aborted(tl, srv, *peer, sid, kH3MessageError);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: WT_CLOSE_SESSION with a 2 MiB reason aborts the session with H3_MESSAGE_ERROR",
          "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // Section 6 (-13..-16): "its length MUST NOT exceed 1024 bytes"; -16 adds
  // "the receiver MUST reset the stream with code H3_MESSAGE_ERROR".
  const WireBytes reason(2u << 20, 'r');
  peer->send(sid, wire_data_frame(wire_capsule(kCloseSession, wire_close_session_value(1, reason))));
  expect_session_aborted(tl, srv, *peer, sid, kH3MessageError);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: WT_CLOSE_SESSION with a reason that is not UTF-8 aborts the session with H3_MESSAGE_ERROR",
          "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  const WireDialect d = pick_dialect();
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // Section 6: "A UTF-8 encoded error message"; -16: "If the Application
  // Error Message ... is not valid UTF-8, the receiver MUST reset the stream
  // with code H3_MESSAGE_ERROR."
  const WireBytes bad = {'o', 'k', 0xc3, 0x28, 0xff};
  peer->send_capsule(sid, kCloseSession, wire_close_session_value(5, bad));
  expect_session_aborted(tl, srv, *peer, sid, kH3MessageError);
  CHECK_FALSE(peer->stream(sid).fin);  // not answered as a clean close
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: WT_MAX_STREAMS above 2^60 aborts the session with the dialect's code", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  WireDialect d = WireDialect::draft13;
  std::uint64_t expected = 0;
  std::uint64_t type = 0x190B4D3F;
  SECTION("draft-13/14: the value is malformed (5.6.2: cannot exceed 2^60; RFC 9297 3.3)") {
    d = WireDialect::draft13;
    expected = kH3MessageError;
  }
  SECTION("draft-15/16: 5.6.2 of -16 closes the session with WT_FLOW_CONTROL_ERROR") {
    d = WireDialect::draft15;
    expected = kWtFlowControlError;
  }
  SECTION("draft-15/16, unidirectional limit") {
    d = WireDialect::draft15;
    expected = kWtFlowControlError;
    type = 0x190B4D40;
  }
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  peer->send_capsule(sid, type, wire_varint(1ull << 61));
  expect_session_aborted(tl, srv, *peer, sid, expected);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: a capsule cut off by FIN is an error, not a clean close", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  const WireDialect d = pick_dialect();
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // RFC 9297 3.3: "If the receive side of a stream carrying capsules is
  // terminated cleanly ... and the last capsule on the stream was truncated,
  // this MUST be treated as if it were a malformed or incomplete message."
  const WireBytes partial = wire_cat({wire_capsule_header(kCloseSession, 10), wire_bytes("\0\0\0\1ab")});
  peer->send(sid, wire_data_frame(partial), true);
  REQUIRE(tl.run_until([&] { return peer->stream(sid).reset_code.has_value() && srv.closed.has_value(); }));
  CHECK(*peer->stream(sid).reset_code == kH3MessageError);
  CHECK_FALSE(peer->stream(sid).fin);
  CHECK(srv.closed->error.errc == Errc::protocol);
  CHECK(srv.closed->error.code == kH3MessageError);
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: data after WT_CLOSE_SESSION resets the CONNECT stream with H3_MESSAGE_ERROR", "[conformance]") {
  TestLoop tl;
  WtServer srv(tl);
  auto peer = WirePeer::connect(&tl.loop, srv.server->port());
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // Section 6 (-13..-16): "If any additional stream data is received on the
  // CONNECT stream after receiving a WT_CLOSE_SESSION capsule, the stream
  // MUST be reset with code H3_MESSAGE_ERROR."
  const auto close = wire_capsule(kCloseSession, wire_close_session_value(3, wire_bytes("x")));
  SECTION("in the same DATA frame: the application sees the protocol error") {
    peer->send(sid, wire_data_frame(wire_cat({close, wire_capsule(0x78ae, {})})));
    expect_session_aborted(tl, srv, *peer, sid, kH3MessageError);
  }
  SECTION("in a later DATA frame: the session had closed cleanly, the stream is reset all the same") {
    peer->send(sid, wire_data_frame(close));
    REQUIRE(tl.run_until([&] { return srv.closed.has_value() && peer->stream(sid).fin; }));
    CHECK(srv.closed->code == 3u);
    peer->send(sid, wire_data_frame(wire_bytes("more")));
    REQUIRE(tl.run_until([&] { return peer->stream(sid).stop_sending_code.has_value(); }));
    CHECK(*peer->stream(sid).stop_sending_code == kH3MessageError);
  }
  peer->close(tl);
  srv.close();
}

}  // namespace uvwt::test
