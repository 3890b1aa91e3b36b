// Streams and datagrams that arrive for a session that never becomes ready
// are held at most pending_session_timeout: then the streams are refused with
// WT_BUFFERED_STREAM_REJECTED and the datagrams dropped and counted, on
// either side. White-box: the HTTP/3 layer's test hooks make the session
// late (client) or never opened at all (server).

#include <uvwt/uvwt.hpp>

#include <chrono>
#include <map>

#include "catch.hpp"
#include "connection/connection_impl.hpp"
#include "h3/h3_connection.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;
using Clock = std::chrono::steady_clock;

namespace {
detail::H3Connection *h3_of(const std::shared_ptr<Connection> &c) {
  auto *impl = dynamic_cast<detail::ConnectionImpl *>(c.get());
  REQUIRE(impl != nullptr);
  REQUIRE(impl->h3() != nullptr);
  return impl->h3();
}
long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}
bool mentions(const Error &e, const char *what) { return e.message.find(what) != std::string::npos; }
}  // namespace

TEST_CASE("early arrivals: a stream for a session never opened is refused after pending_session_timeout",
          "[session][loop][limits]") {
  TestLoop tl;
  ServerConfig scfg = server_config();
  scfg.pending_session_timeout = std::chrono::milliseconds(400);
  auto server = start_server(tl, scfg);
  server->route("/x", [](std::shared_ptr<Session>, const SessionRequest &) {});
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  auto *h3 = h3_of(c.conn);
  auto live = std::dynamic_pointer_cast<detail::SessionImpl>(c.session);
  const SessionId never = live->id() + 4 * 50;  // a request stream the client never opens

  std::optional<Error> err;
  constexpr std::size_t kBytes = 256 * 1024;
  const auto t0 = Clock::now();  // before the stream exists: it cannot expire sooner than 400 ms after this
  h3->open_wt_stream_for_test(live, never, true, [&](const Error &e, std::int64_t sid) {
    REQUIRE(e.ok());
    auto st = h3->wt_stream(sid);
    REQUIRE(st);
    st->on_error([&](const Error &x) { err = x; });
    st->write(pattern(kBytes), {});  // no FIN: it would wait for ever
  });
  auto conns = server->connections();
  REQUIRE(conns.size() == 1);
  auto *server_h3 = h3_of(conns.front());
  REQUIRE(tl.run_until([&] { return server_h3->early_stream_count(never) == 1; }));
  REQUIRE(tl.run_until([&] { return err.has_value(); }, 5'000));
  CHECK(ms_since(t0) >= 400);  // held first, refused on time
  CHECK(err->errc == Errc::stream);
  CHECK(mentions(*err, "WT_BUFFERED_STREAM_REJECTED"));
  CHECK(server_h3->early_stream_count(never) == 0);
  // The connection and its real session live on.
  CHECK_FALSE(c.conn->is_closed());
  CHECK_FALSE(c.session->is_closed());
  close_all(tl, c.conn, server);
}

TEST_CASE("early arrivals: streams and datagrams for a late session expire on the client", "[session][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::map<std::int64_t, Error> server_errors;
  std::vector<std::shared_ptr<Stream>> server_streams;
  server->route("/early", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    for (int i = 0; i < 2; ++i) {
      s->open_bidi_stream([&](const Error &err, std::shared_ptr<Stream> st) {
        REQUIRE(err.ok());
        server_streams.push_back(st);
        const auto id = st->id();
        st->on_error([&, id](const Error &e) { server_errors[id] = e; });
        st->on_data([](std::span<const std::uint8_t>, bool) {});
        st->write(std::string_view("early"));
      });
    }
    for (int i = 0; i < 3; ++i) (void)s->send_datagram(Bytes{1, 2, 3});
  });
  ClientConfig cfg = client_config();
  cfg.pending_session_timeout = std::chrono::milliseconds(400);
  auto c = connect(tl, server->port(), "", cfg);
  REQUIRE(c.conn);
  auto *h3 = h3_of(c.conn);
  h3->hold_ready_for_test(true);
  std::shared_ptr<Session> late;
  std::size_t streams_seen = 0, datagrams_seen = 0;
  const auto t0 = Clock::now();  // nothing can arrive for the session before this
  c.conn->open_session("/early", {}, [&](const Error &err, std::shared_ptr<Session> s) {
    REQUIRE(err.ok());
    late = s;
    s->on_bidi_stream([&](std::shared_ptr<Stream>) { ++streams_seen; });
    s->on_datagram([&](std::span<const std::uint8_t>) { ++datagrams_seen; });
  });
  REQUIRE(tl.run_until([&] { return h3->sessions().size() == 1; }));
  const SessionId id = h3->sessions()[0]->id();
  const auto dropped_before = h3->datagrams_dropped();
  REQUIRE(tl.run_until([&] { return h3->early_stream_count(id) == 2 && h3->early_datagram_count(id) == 3; }));
  REQUIRE(tl.run_until([&] { return server_errors.size() == 2; }, 5'000));
  CHECK(ms_since(t0) >= 400);
  for (const auto &[sid, e] : server_errors) CHECK(mentions(e, "WT_BUFFERED_STREAM_REJECTED"));
  CHECK(h3->early_stream_count(id) == 0);
  CHECK(h3->early_datagram_count(id) == 0);
  CHECK(h3->datagrams_dropped() == dropped_before + 3);

  // When the session finally arrives nothing expired is delivered.
  h3->release_held_ready_for_test();
  REQUIRE(tl.run_until([&] { return late != nullptr; }));
  tl.run_for(100);
  CHECK(streams_seen == 0);
  CHECK(datagrams_seen == 0);
  server_streams.clear();
  close_all(tl, c.conn, server);
}
