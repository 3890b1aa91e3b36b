// A reset stream's final size counts toward the session's WT_MAX_DATA
// (draft-ietf-webtrans-http3-16 section 5.4; -14 sections 5.4 and 5.6.4):
// "implementing WT_MAX_DATA requires that the QUIC stack provide the
// WebTransport implementation with information about the final size of
// streams ... This guarantees that both endpoints agree on how much
// WebTransport session flow control credit was consumed by the sender".
//
// The wire peer delivers part of a stream, then sends more while its packets
// are dropped, then resets: the RESET_STREAM's Final Size (RFC 9000 4.5)
// covers bytes uvwt never received, and uvwt must count them both ways:
// toward its limit (past it: WT_FLOW_CONTROL_ERROR) and as consumed (the
// top-up gives them back).

#include "conformance/conformance_fixture.hpp"
#include "session/session_impl.hpp"

namespace uvwt::test {

namespace {
constexpr std::uint64_t kWtFlowControlError = 0x045d4487;
constexpr std::uint64_t kMaxData = 0x190B4D3D;
constexpr std::uint64_t kInitialMaxData = 0x2b61;
constexpr std::uint64_t kInitialMaxStreamsUni = 0x2b64;
constexpr std::uint64_t kWindow = 4096;

std::uint64_t max_data_value(const WireCapsule &c) {
  REQUIRE(!c.value.empty());
  std::uint64_t n = c.value[0] & 0x3f;
  for (std::size_t i = 1; i < c.value.size(); ++i) n = (n << 8) | c.value[i];
  return n;
}

std::vector<std::uint64_t> max_data_tops(const WirePeer &peer, std::int64_t sid) {
  std::vector<std::uint64_t> out;
  for (auto &c : peer.capsules(sid))
    if (c.type == kMaxData) out.push_back(max_data_value(c));
  return out;
}

std::uint64_t session_received(const std::shared_ptr<Session> &s) {
  auto impl = std::dynamic_pointer_cast<detail::SessionImpl>(s);
  REQUIRE(impl);
  return impl->flow_control().received();
}

// Opens a uni stream, lets `delivered` payload bytes arrive, then sends
// `unseen` more into a blackhole and resets the stream: its final size is
// delivered + unseen while uvwt saw only `delivered`.
void reset_with_unseen_tail(TestLoop &tl, WtServer &srv, WirePeer &peer, std::int64_t session, std::size_t delivered,
                            std::size_t unseen) {
  const auto uni = peer.open_wt_stream(false, static_cast<std::uint64_t>(session), WireBytes(delivered, 'a'));
  REQUIRE(tl.run_until([&] { return session_received(srv.session) == delivered; }));
  const std::uint64_t header = wire_wt_uni_preamble(static_cast<std::uint64_t>(session)).size();
  peer.set_blackhole(true);
  peer.send(uni, WireBytes(unseen, 'b'));
  REQUIRE(tl.run_until([&] { return peer.sent(uni) == header + delivered + unseen; }));
  peer.reset_stream(uni, 0x52e4a40fa8db);  // an application code, WT_APPLICATION_ERROR range
  tl.run_for(50);
  CHECK(session_received(srv.session) == delivered);  // the tail really was lost
  peer.set_blackhole(false);                          // the RESET_STREAM gets through on retransmission
}
}  // namespace

TEST_CASE("conformance: a reset stream's final size is counted and given back by WT_MAX_DATA", "[conformance][flow]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.wt_initial_max_data = kWindow;
  WtServer srv(tl, cfg);
  WirePeer::Options opts;
  opts.settings =
      wire_dialect_settings(WireDialect::draft13, 16, {{kInitialMaxData, 1 << 20}, {kInitialMaxStreamsUni, 100}});
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), opts);
  const auto sid = open_wire_session(tl, *peer, WireDialect::draft13);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  // 1000 delivered (under half the window: no top-up yet), 2500 lost, then
  // the reset: final size 3500. Consumed is then 3500, past half the window,
  // so exactly one WT_MAX_DATA = 3500 + 4096. Without the final size uvwt
  // would count 1000 and never top the peer up: the peer, which counts
  // 3500, would have 596 bytes of credit left for good.
  reset_with_unseen_tail(tl, srv, *peer, sid, 1000, 2500);
  REQUIRE(tl.run_until([&] { return !max_data_tops(*peer, sid).empty(); }));
  CHECK(max_data_tops(*peer, sid) == std::vector<std::uint64_t>{3500 + kWindow});
  CHECK(session_received(srv.session) == 3500);
  CHECK_FALSE(srv.closed.has_value());
  peer->close(tl);
  srv.close();
}

TEST_CASE("conformance: a final size past WT_MAX_DATA is WT_FLOW_CONTROL_ERROR", "[conformance][flow]") {
  TestLoop tl;
  ServerConfig cfg = server_config();
  cfg.wt_initial_max_data = kWindow;
  WtServer srv(tl, cfg);
  // Paused readers: nothing is consumed, so the limit stays at 4096.
  WirePeer::Options opts;
  WireDialect d = WireDialect::draft13;
  SECTION("draft-13") {
    opts.settings =
        wire_dialect_settings(WireDialect::draft13, 16, {{kInitialMaxData, 1 << 20}, {kInitialMaxStreamsUni, 100}});
  }
  SECTION("draft-15") {
    d = WireDialect::draft15;
    opts.settings =
        wire_dialect_settings(WireDialect::draft15, 1, {{kInitialMaxData, 1 << 20}, {kInitialMaxStreamsUni, 100}});
  }
  auto peer = WirePeer::connect(&tl.loop, srv.server->port(), opts);
  const auto sid = open_wire_session(tl, *peer, d);
  REQUIRE(tl.run_until([&] { return srv.session != nullptr; }));
  srv.session->on_uni_stream([](std::shared_ptr<Stream> st) { st->pause(); });
  // 1000 delivered, 3500 lost: final size 4500 > 4096 (section 5.6.4).
  reset_with_unseen_tail(tl, srv, *peer, sid, 1000, 3500);
  REQUIRE(tl.run_until([&] {
    return peer->stream(sid).reset_code.has_value() && peer->stream(sid).stop_sending_code.has_value() &&
           srv.closed.has_value();
  }));
  CHECK(*peer->stream(sid).reset_code == kWtFlowControlError);
  CHECK(*peer->stream(sid).stop_sending_code == kWtFlowControlError);
  CHECK(srv.closed->error.errc == Errc::protocol);
  CHECK(srv.closed->error.code == kWtFlowControlError);
  CHECK_FALSE(peer->close_log().closed);  // a session error, not a connection error
  peer->close(tl);
  srv.close();
}

}  // namespace uvwt::test
