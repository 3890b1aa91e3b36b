// WT_MAX_STREAM_DATA (0x190B4D3E) and WT_STREAM_DATA_BLOCKED (0x190B4D42),
// per dialect. draft-ietf-webtrans-http3-14 and -16 section 5.4: "The
// WT_MAX_STREAM_DATA and WT_STREAM_DATA_BLOCKED capsules ... are not used and
// are prohibited. Endpoints MUST treat receipt of a WT_MAX_STREAM_DATA or a
// WT_STREAM_DATA_BLOCKED capsule as a session error." Draft-02 and -07
// define neither: an unknown capsule type is skipped (RFC 9297 3.2).

#include "conformance/conformance_fixture.hpp"

namespace uvwt::test {

namespace {
constexpr std::uint64_t kH3MessageError = 0x10e;
constexpr std::uint64_t kMaxStreamData = 0x190B4D3E;
constexpr std::uint64_t kStreamDataBlocked = 0x190B4D42;

// WT_MAX_STREAM_DATA / WT_STREAM_DATA_BLOCKED value: Stream ID, then a limit
// (draft-ietf-webtrans-http2 6.6, 6.9). Stream 4: an id the client could use.
WireBytes per_stream_value() { return wire_cat({wire_varint(4), wire_varint(65536)}); }
}  // namespace

TEST_CASE("conformance: WT_MAX_STREAM_DATA / WT_STREAM_DATA_BLOCKED end a draft-13/-15 session",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl);
  WireDialect d = WireDialect::draft13;
  std::uint64_t type = kMaxStreamData;
  SECTION("draft-13, WT_MAX_STREAM_DATA") {}
  SECTION("draft-13, WT_STREAM_DATA_BLOCKED") { type = kStreamDataBlocked; }
  SECTION("draft-15, WT_MAX_STREAM_DATA") { d = WireDialect::draft15; }
  SECTION("draft-15, WT_STREAM_DATA_BLOCKED") {
    d = WireDialect::draft15;
    type = kStreamDataBlocked;
  }
  auto peer =
      WirePeer::connect(&tl.loop, srv.server->port(), WirePeer::Options{.settings = wire_dialect_settings(d, 1)});
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  peer->send_capsule(sid, type, per_stream_value());
  REQUIRE(tl.run_until([&] {
    return peer->stream(sid).reset_code.has_value() && peer->stream(sid).stop_sending_code.has_value() &&
           srv.closed.has_value();
  }));
  // The draft names no code for this session error: H3_MESSAGE_ERROR, the
  // code of every other capsule the message must not carry.
  CHECK(*peer->stream(sid).reset_code == kH3MessageError);
  CHECK(*peer->stream(sid).stop_sending_code == kH3MessageError);
  CHECK(srv.closed->error.errc == Errc::protocol);
  CHECK(srv.closed->error.code == kH3MessageError);
  CHECK_FALSE(peer->close_log().closed);  // the connection stays up
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: draft-02/-07 skip WT_MAX_STREAM_DATA / WT_STREAM_DATA_BLOCKED as unknown capsules",
          "[conformance][flow]") {
  TestLoop tl;
  WtServer srv(tl);
  WireDialect d = WireDialect::draft02;
  SECTION("draft-02") {}
  SECTION("draft-07") { d = WireDialect::draft07; }
  auto peer =
      WirePeer::connect(&tl.loop, srv.server->port(), WirePeer::Options{.settings = wire_dialect_settings(d, 1)});
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  peer->send_capsule(sid, kMaxStreamData, per_stream_value());
  peer->send_capsule(sid, kStreamDataBlocked, per_stream_value());
  // Parsing went on past them: the close that follows on the same stream is
  // a clean close with its code, not an error.
  peer->send_capsule(sid, 0x2843, wire_close_session_value(7, wire_bytes("bye")), true);
  REQUIRE(tl.run_until([&] { return srv.closed.has_value(); }));
  CHECK(srv.closed->error.ok());
  CHECK(srv.closed->code == 7);
  CHECK(srv.closed->reason == "bye");
  CHECK_FALSE(peer->stream(sid).reset_code.has_value());
  peer->close(tl);
  srv.close();
}

}  // namespace uvwt::test
