// Unit tests of the session flow-control bookkeeping and of the per-dialect
// rules deciding when it is on (draft-ietf-webtrans-http3-13/-15 section 5).

#include <uvwt/config.hpp>

#include "catch.hpp"
#include "h3/client_dialect.hpp"
#include "h3/wt_codes.hpp"
#include "h3/wt_flow_settings.hpp"
#include "session/session_flow_control.hpp"

using namespace uvwt;
using namespace uvwt::detail;

TEST_CASE("SessionFlowControl off limits nothing and sends nothing", "[unit][flow]") {
  SessionFlowControl fc;
  CHECK_FALSE(fc.enabled());
  CHECK(fc.send_credit() == SessionFlowControl::kUnlimited);
  CHECK(fc.can_open(true));
  CHECK(fc.on_payload_received(1ull << 40));
  CHECK(fc.on_peer_stream(false));
  fc.on_consumed(1ull << 40);
  CHECK_FALSE(fc.take_max_data_update());
  CHECK_FALSE(fc.take_data_blocked());
  CHECK_FALSE(fc.take_streams_blocked(true));
}

TEST_CASE("SessionFlowControl send side: credit, stream limits, BLOCKED once per limit", "[unit][flow]") {
  SessionFlowControl fc;
  fc.enable({1000, 10, 10}, {100, 1, 0});
  CHECK(fc.send_credit() == 100);
  fc.on_payload_sent(60);
  CHECK(fc.send_credit() == 40);
  CHECK_FALSE(fc.take_data_blocked());  // still credit left
  fc.on_payload_sent(40);
  CHECK(fc.send_credit() == 0);
  CHECK(fc.take_data_blocked() == 100u);
  CHECK_FALSE(fc.take_data_blocked());  // once per limit
  CHECK(fc.on_max_data(150));
  CHECK(fc.send_credit() == 50);
  CHECK_FALSE(fc.on_max_data(150));  // section 5.6.4: must increase
  CHECK_FALSE(fc.on_max_data(120));
  CHECK(fc.can_open(true));
  CHECK_FALSE(fc.can_open(false));  // no uni credit at all
  CHECK(fc.take_streams_blocked(false) == 0u);
  fc.on_opened(true);
  CHECK_FALSE(fc.can_open(true));
  CHECK(fc.take_streams_blocked(true) == 1u);
  CHECK(fc.on_max_streams(true, 3));
  CHECK(fc.can_open(true));
  CHECK_FALSE(fc.on_max_streams(true, 2));                  // decreasing
  CHECK_FALSE(fc.on_max_streams(false, (1ull << 60) + 1));  // section 5.6.2: at most 2^60
  CHECK(fc.on_max_streams(false, 1ull << 60));
  CHECK(fc.counters().max_data_received == 1);
  CHECK(fc.counters().max_streams_received == 2);
}

TEST_CASE("SessionFlowControl: a capsule may repeat the initial SETTINGS value once", "[unit][flow]") {
  SessionFlowControl fc;
  fc.enable({1, 1, 1}, {100, 5, 5});
  CHECK(fc.on_max_data(100));
  CHECK_FALSE(fc.on_max_data(100));
  CHECK(fc.on_max_streams(false, 5));
  CHECK_FALSE(fc.on_max_streams(false, 5));
}

TEST_CASE("SessionFlowControl receive side: limits enforced, top-ups batched at half a window", "[unit][flow]") {
  SessionFlowControl fc;
  fc.enable({1000, 4, 2}, {0, 0, 0});
  CHECK(fc.on_payload_received(1000));
  CHECK_FALSE(fc.take_max_data_update());  // nothing consumed yet
  fc.on_consumed(499);
  CHECK_FALSE(fc.take_max_data_update());  // 501 left: more than half
  fc.on_consumed(1);
  CHECK(fc.take_max_data_update() == 1500u);  // consumed + window
  CHECK_FALSE(fc.take_max_data_update());
  CHECK(fc.on_payload_received(500));
  CHECK_FALSE(fc.on_payload_received(1));  // 1501 > 1500
  // Streams: cumulative, closed ones come back once half the window is free.
  CHECK(fc.on_peer_stream(false));
  CHECK(fc.on_peer_stream(false));
  CHECK_FALSE(fc.on_peer_stream(false));  // third uni stream over 2
  fc.on_peer_stream_closed(false);
  CHECK(fc.take_max_streams_update(false) == 3u);  // 1 closed + 2
  for (int i = 0; i < 4; ++i) CHECK(fc.on_peer_stream(true));
  fc.on_peer_stream_closed(true);
  CHECK_FALSE(fc.take_max_streams_update(true));  // 3 of 4 still in use
  fc.on_peer_stream_closed(true);
  CHECK(fc.take_max_streams_update(true) == 6u);
  CHECK(fc.counters().max_data_sent == 1);
  CHECK(fc.counters().max_streams_sent == 2);
}

TEST_CASE("flow control per dialect follows both sides' SETTINGS", "[unit][flow]") {
  LocalWtSettings local;
  local.max_sessions = 16;
  local.flow_control = true;
  PeerSettings peer;
  SECTION("draft-13/14: both WT_MAX_SESSIONS > 1") {
    peer.wt_max_sessions_draft13 = 16;
    CHECK(wt_flow_control_enabled(Dialect::draft13, local, peer));
    // Missing WT_INITIAL_* mean 0.
    const WtLimits l = peer_wt_limits(peer);
    CHECK(l.max_data == 0);
    CHECK(l.max_streams_bidi == 0);
    peer.wt_max_sessions_draft13 = 1;
    CHECK_FALSE(wt_flow_control_enabled(Dialect::draft13, local, peer));
    peer.wt_max_sessions_draft13 = 16;
    local.max_sessions = 1;
    CHECK_FALSE(wt_flow_control_enabled(Dialect::draft13, local, peer));
  }
  SECTION("draft-15/16: both send a non-zero WT_INITIAL_*") {
    CHECK_FALSE(wt_flow_control_enabled(Dialect::draft15, local, peer));
    peer.wt_initial_max_streams_uni = 1;
    CHECK(wt_flow_control_enabled(Dialect::draft15, local, peer));
    local.flow_control = false;
    CHECK_FALSE(wt_flow_control_enabled(Dialect::draft15, local, peer));
  }
  SECTION("draft-02 and draft-07 have none") {
    peer.wt_max_sessions_draft13 = 16;
    peer.wt_initial_max_data = 100;
    CHECK_FALSE(wt_flow_control_enabled(Dialect::draft02, local, peer));
    CHECK_FALSE(wt_flow_control_enabled(Dialect::draft07, local, peer));
  }
}

TEST_CASE("session limits per dialect: one without flow control, the server's announced maximum", "[unit][flow]") {
  CHECK(wt_server_session_limit(Dialect::draft15, false, 16) == 1);
  CHECK(wt_server_session_limit(Dialect::draft13, false, 16) == 1);
  CHECK(wt_server_session_limit(Dialect::draft15, true, 16) == 16);
  CHECK(wt_server_session_limit(Dialect::draft02, false, 16) == 16);
  PeerSettings server;
  server.wt_max_sessions_draft13 = 3;
  server.wt_max_sessions_draft07 = 2;
  CHECK(wt_client_session_limit(Dialect::draft13, true, server, 16) == 3);
  CHECK(wt_client_session_limit(Dialect::draft13, false, server, 16) == 1);
  CHECK(wt_client_session_limit(Dialect::draft07, false, server, 16) == 2);
  CHECK(wt_client_session_limit(Dialect::draft15, false, server, 16) == 1);
  CHECK(wt_client_session_limit(Dialect::draft15, true, server, 16) == 16);
}

TEST_CASE("client_dialect picks the newest dialect both sides allow", "[unit][flow]") {
  PeerSettings all;
  all.enable_connect_protocol = true;
  all.h3_datagram = true;
  all.enable_webtransport_draft02 = 1;
  all.wt_max_sessions_draft07 = 5;
  all.wt_max_sessions_draft13 = 5;
  all.wt_enabled = 1;
  const auto bit = [](Dialect d) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(d)); };
  CHECK(client_dialect(all, LocalWtSettings::kAllDialects) == Dialect::draft15);
  CHECK(client_dialect(all, bit(Dialect::draft13)) == Dialect::draft13);
  CHECK(client_dialect(all, bit(Dialect::draft02) | bit(Dialect::draft07)) == Dialect::draft07);
  CHECK(client_dialect(all, bit(Dialect::draft02)) == Dialect::draft02);
  PeerSettings old = all;
  old.wt_enabled = 0;
  CHECK(client_dialect(old, bit(Dialect::draft15)) == Dialect::none);
}

TEST_CASE("config: WT_INITIAL_* limits are validated", "[unit][flow][config]") {
  ClientConfig c;
  CHECK(c.validate().ok());
  CHECK(c.wt_initial_max_data > 0);  // flow control on by default
  c.wt_initial_max_data = 0;
  c.wt_initial_max_streams_bidi = 0;
  c.wt_initial_max_streams_uni = 0;
  CHECK(c.validate().errc == Errc::configuration);  // off needs one session per connection
  c.max_sessions_per_connection = 1;
  CHECK(c.validate().ok());
  c.wt_initial_max_streams_bidi = 5;
  CHECK(c.validate().errc == Errc::configuration);  // streams but no data credit
  c.wt_initial_max_data = 1;
  CHECK(c.validate().ok());
  c.wt_initial_max_streams_uni = (1ull << 60) + 1;
  CHECK(c.validate().message.find("wt_initial_max_streams_uni") != std::string::npos);
  c.wt_initial_max_streams_uni = 1;
  c.dialects = {"draft13", "draft99"};
  CHECK(c.validate().message.find("dialects") != std::string::npos);
}
