// Loopback tests of session flow control and the session-count rules over a
// real uvwt client and server, each dialect forced, flow control on and off
// (docs/protocol.md, "What uvwt does, dialect by dialect"). White-box where a
// test must see that flow control really was engaged.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "connection/connection_impl.hpp"
#include "h3/h3_connection.hpp"
#include "session/session_impl.hpp"
#include "support/echo_client.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

const detail::SessionFlowControl &fc_of(const std::shared_ptr<Session> &s) {
  auto impl = std::dynamic_pointer_cast<detail::SessionImpl>(s);
  REQUIRE(impl);
  return impl->flow_control();
}

detail::H3Connection *h3_of(const std::shared_ptr<Connection> &c) {
  auto *impl = dynamic_cast<detail::ConnectionImpl *>(c.get());
  REQUIRE(impl != nullptr);
  return impl->h3();
}

// Flow control off: no WT_INITIAL_* announced, and so one session per connection.
template <class Cfg>
void flow_control_off(Cfg &c) {
  c.wt_initial_max_data = 0;
  c.wt_initial_max_streams_bidi = 0;
  c.wt_initial_max_streams_uni = 0;
  c.max_sessions_per_connection = 1;
}

template <class Cfg>
void tiny_window(Cfg &c, std::uint64_t data, std::uint64_t streams) {
  c.wt_initial_max_data = data;
  c.wt_initial_max_streams_bidi = streams;
  c.wt_initial_max_streams_uni = streams;
}

struct Pair {
  std::shared_ptr<Server> server;
  Connected c;
  std::shared_ptr<Session> server_session;
};

Pair open_pair(TestLoop &tl, const ServerConfig &scfg, const ClientConfig &ccfg,
               const Server::SessionHandler &extra = {}) {
  Pair p;
  p.server = start_server(tl, scfg);
  auto ss = std::make_shared<std::shared_ptr<Session>>();
  p.server->route("/echo", [ss, extra](std::shared_ptr<Session> s, const SessionRequest &r) {
    *ss = s;
    echo_handler()(s, r);
    if (extra) extra(s, r);
  });
  p.c = connect(tl, p.server->port(), "/echo", ccfg);
  REQUIRE(p.c.err.ok());
  REQUIRE(p.c.session);
  REQUIRE(tl.run_until([&] { return *ss != nullptr; }));
  p.server_session = *ss;
  return p;
}

bool echo_datagram(TestLoop &tl, const std::shared_ptr<Session> &s, const Bytes &d) {
  auto got = std::make_shared<bool>(false);
  s->on_datagram([got, d](std::span<const std::uint8_t> p) {
    if (Bytes(p.begin(), p.end()) == d) *got = true;
  });
  for (int attempt = 0; attempt < 5 && !*got; ++attempt) {
    REQUIRE(s->send_datagram(d).ok());
    tl.run_until([&] { return *got; }, 1'000);
  }
  return *got;
}

Bytes uni_echo(TestLoop &tl, const std::shared_ptr<Session> &s, const Bytes &msg) {
  auto got = std::make_shared<Bytes>();
  auto fin = std::make_shared<bool>(false);
  s->on_uni_stream([got, fin](std::shared_ptr<Stream> st) {
    st->on_data([got, fin](std::span<const std::uint8_t> d, bool f) {
      got->insert(got->end(), d.begin(), d.end());
      *fin = *fin || f;
    });
  });
  s->open_uni_stream([msg](const Error &err, std::shared_ptr<Stream> st) {
    REQUIRE(err.ok());
    st->write_and_end(msg);
  });
  REQUIRE(tl.run_until([&] { return *fin; }));
  return *got;
}

}  // namespace

TEST_CASE("dialect matrix: uvwt client x server, each dialect forced, flow control on and off",
          "[session][loop][flow][matrix]") {
  const std::string dialect = GENERATE(as<std::string>{}, "draft02", "draft07", "draft13", "draft15");
  const bool fc = GENERATE(true, false);
  INFO("dialect " << dialect << ", flow control " << (fc ? "on" : "off"));
  TestLoop tl;
  ServerConfig scfg = server_config();
  ClientConfig ccfg = client_config();
  scfg.dialects = {dialect};
  ccfg.dialects = {dialect};
  if (!fc) {
    flow_control_off(scfg);
    flow_control_off(ccfg);
  }
  auto p = open_pair(tl, scfg, ccfg, [](std::shared_ptr<Session> s, const SessionRequest &) {
    // A server-initiated bidi stream with a greeting.
    s->open_bidi_stream([](const Error &err, std::shared_ptr<Stream> st) {
      if (!err) st->write_and_end(Bytes{'h', 'i'});
    });
  });
  CHECK(p.c.session->info().dialect == dialect);
  CHECK(p.server_session->info().dialect == dialect);
  // Only draft-13+ have session flow control, and only with the settings for it.
  const bool expect_fc = fc && (dialect == "draft13" || dialect == "draft15");
  CHECK(fc_of(p.c.session).enabled() == expect_fc);
  CHECK(fc_of(p.server_session).enabled() == expect_fc);

  auto greeting = std::make_shared<Bytes>();
  auto greeting_fin = std::make_shared<bool>(false);
  p.c.session->on_bidi_stream([&](std::shared_ptr<Stream> st) {
    st->on_data([greeting, greeting_fin](std::span<const std::uint8_t> d, bool f) {
      greeting->insert(greeting->end(), d.begin(), d.end());
      *greeting_fin = *greeting_fin || f;
    });
  });
  const Bytes data = pattern(300'000, 5);
  auto r = echo_bidi_stream(p.c.session, data);
  REQUIRE(tl.run_until([&] { return r->done() && *greeting_fin; }, 20'000));
  REQUIRE(r->err.ok());
  CHECK(r->received == data);
  CHECK(*greeting == Bytes{'h', 'i'});
  CHECK(uni_echo(tl, p.c.session, pattern(50'000, 9)) == pattern(50'000, 9));
  CHECK(echo_datagram(tl, p.c.session, pattern(200, 3)));

  // A second session: allowed with flow control; without it the drafts allow
  // one session per connection and the client refuses on its own (the
  // server's limit, or for draft-02, which announces none, its own bound).
  Error second;
  bool second_done = false;
  std::shared_ptr<Session> second_session;
  p.c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session> s) {
    second = e;
    second_session = s;
    second_done = true;
  });
  REQUIRE(tl.run_until([&] { return second_done; }));
  if (fc) {
    CHECK(second.ok());
  } else {
    CHECK(second.errc == Errc::flow_control);
  }
  if (second_session) {
    bool closed = false;
    second_session->close(0, "", [&] { closed = true; });
    REQUIRE(tl.run_until([&] { return closed; }));
  }

  // Close with a code and reason: the server sees them as the peer's.
  std::optional<SessionCloseInfo> seen;
  p.server_session->on_closed([&](const SessionCloseInfo &ci) { seen = ci; });
  bool closed = false;
  p.c.session->close(7, "bye", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed && seen.has_value(); }));
  CHECK(seen->remote);
  CHECK(seen->code == 7);
  CHECK(seen->reason == "bye");
  CHECK(!seen->error);
  close_all(tl, p.c.conn, p.server);
}

TEST_CASE("close(0, \"\") is a bare FIN the peer reads as code 0, empty reason; both closing at once is local",
          "[session][loop][flow][close]") {
  const std::string dialect = GENERATE(as<std::string>{}, "draft02", "draft13", "draft15");
  INFO(dialect);
  TestLoop tl;
  ServerConfig scfg = server_config();
  ClientConfig ccfg = client_config();
  scfg.dialects = {dialect};
  auto p = open_pair(tl, scfg, ccfg);
  std::optional<SessionCloseInfo> server_seen, client_seen;
  p.server_session->on_closed([&](const SessionCloseInfo &ci) { server_seen = ci; });
  p.c.session->on_closed([&](const SessionCloseInfo &ci) { client_seen = ci; });
  SECTION("one side closes") {
    p.c.session->close(0, "", {});
    REQUIRE(tl.run_until([&] { return server_seen && client_seen; }));
    CHECK(server_seen->remote);
    CHECK(server_seen->code == 0);
    CHECK(server_seen->reason.empty());
    CHECK(!server_seen->error);
    CHECK_FALSE(client_seen->remote);
    CHECK(!client_seen->error);
  }
  SECTION("both close at once") {
    p.c.session->close(5, "client", {});
    p.server_session->close(6, "server", {});
    REQUIRE(tl.run_until([&] { return server_seen && client_seen; }));
    // Each side asked for the close itself and is told its own code.
    CHECK_FALSE(client_seen->remote);
    CHECK(client_seen->code == 5);
    CHECK(!client_seen->error);
    CHECK_FALSE(server_seen->remote);
    CHECK(server_seen->code == 6);
    CHECK(!server_seen->error);
  }
  close_all(tl, p.c.conn, p.server);
}

TEST_CASE("16 MiB through a 64 KiB session window arrives intact", "[session][loop][flow]") {
  const std::string dialect = GENERATE(as<std::string>{}, "draft13", "draft15");
  INFO(dialect);
  TestLoop tl;
  ServerConfig scfg = server_config();
  ClientConfig ccfg = client_config();
  scfg.dialects = {dialect};
  tiny_window(scfg, 64 * 1024, 4);
  tiny_window(ccfg, 64 * 1024, 4);
  auto p = open_pair(tl, scfg, ccfg);
  REQUIRE(fc_of(p.c.session).enabled());
  REQUIRE(fc_of(p.server_session).enabled());
  const Bytes data = pattern(16u << 20, 11);
  auto r = echo_bidi_stream(p.c.session, data);
  REQUIRE(tl.run_until([&] { return r->done(); }, 120'000));
  REQUIRE(r->err.ok());
  REQUIRE(r->received.size() == data.size());
  CHECK(fnv1a(r->received) == fnv1a(data));
  const auto &cfc = fc_of(p.c.session);
  const auto &sfc = fc_of(p.server_session);
  // Both directions ran on top-ups: 16 MiB is 256 windows of 64 KiB, and a
  // top-up comes once half a window is consumed, so at least 256 each way,
  // and not one per packet (at most one per 32 KiB).
  CHECK(sfc.counters().max_data_sent >= 256);
  CHECK(sfc.counters().max_data_sent <= 520);
  CHECK(cfc.counters().max_data_sent >= 256);
  CHECK(cfc.counters().max_data_received == sfc.counters().max_data_sent);
  CHECK(cfc.peer_max_data() >= data.size());
  // Never more in flight than the window allowed.
  CHECK(sfc.received() <= sfc.local_max_data());
  close_all(tl, p.c.conn, p.server);
}

TEST_CASE("stream opens wait for the peer's WT_MAX_STREAMS and complete once it grows", "[session][loop][flow]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  tiny_window(scfg, 1 << 20, 2);
  auto p = open_pair(tl, scfg, client_config());
  REQUIRE(fc_of(p.c.session).enabled());
  std::vector<std::shared_ptr<EchoResult>> results;
  for (std::uint32_t i = 0; i < 12; ++i) results.push_back(echo_bidi_stream(p.c.session, pattern(10'000 + i, i)));
  REQUIRE(tl.run_until(
      [&] { return std::all_of(results.begin(), results.end(), [](const auto &r) { return r->done(); }); }, 20'000));
  for (std::uint32_t i = 0; i < 12; ++i) {
    INFO("stream " << i);
    CHECK(results[i]->err.ok());
    CHECK(results[i]->received == pattern(10'000 + i, i));
  }
  // The client ran out of stream credit and said so; the server topped it up.
  CHECK(fc_of(p.c.session).counters().streams_blocked_sent >= 1);
  CHECK(fc_of(p.server_session).counters().max_streams_sent >= 1);
  close_all(tl, p.c.conn, p.server);
}

TEST_CASE("a client honours the server's WT_MAX_SESSIONS (draft-13)", "[session][loop][flow]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.dialects = {"draft13"};
  scfg.max_sessions_per_connection = 2;
  auto p = open_pair(tl, scfg, client_config());
  Error e2, e3;
  bool d2 = false, d3 = false;
  p.c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) {
    e2 = e;
    d2 = true;
  });
  REQUIRE(tl.run_until([&] { return d2; }));
  CHECK(e2.ok());
  p.c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) {
    e3 = e;
    d3 = true;
  });
  REQUIRE(tl.run_until([&] { return d3; }));
  CHECK(e3.errc == Errc::flow_control);
  CHECK(e3.message.find("allows 2") != std::string::npos);
  close_all(tl, p.c.conn, p.server);
}

TEST_CASE("a server without flow control resets a second CONNECT with H3_REQUEST_REJECTED", "[session][loop][flow]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  flow_control_off(scfg);
  scfg.dialects = {"draft15"};
  auto p = open_pair(tl, scfg, client_config());
  CHECK_FALSE(fc_of(p.c.session).enabled());
  // The client would refuse on its own; make it try, as a peer that ignores
  // the rule would.
  h3_of(p.c.conn)->ignore_session_limit_for_test(true);
  Error e2;
  bool d2 = false;
  p.c.conn->open_session("/echo", {}, [&](const Error &e, std::shared_ptr<Session>) {
    e2 = e;
    d2 = true;
  });
  REQUIRE(tl.run_until([&] { return d2; }));
  CHECK(e2.errc == Errc::session);
  CHECK(e2.code == 0x10b);  // H3_REQUEST_REJECTED
  CHECK(e2.http_status == 0);
  // The first session is untouched.
  CHECK(p.c.session->is_ready());
  CHECK(echo_datagram(tl, p.c.session, pattern(100, 1)));
  close_all(tl, p.c.conn, p.server);
}
