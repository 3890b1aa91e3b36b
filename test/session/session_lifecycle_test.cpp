// Loopback tests of the session life cycle edges: closing against a silent
// peer, streams and datagrams that arrive before their session is ready or
// after it is gone, and callbacks never running inside the call that started
// the work. White-box: they reach the HTTP/3 layer's test hooks.

#include <uvwt/uvwt.hpp>

#include <array>
#include <chrono>
#include <map>
#include <set>

#include "catch.hpp"
#include "connection/connection_impl.hpp"
#include "h3/h3_connection.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
detail::H3Connection *h3_of(const std::shared_ptr<Connection> &c) {
  auto *impl = dynamic_cast<detail::ConnectionImpl *>(c.get());
  REQUIRE(impl != nullptr);
  REQUIRE(impl->h3() != nullptr);
  return impl->h3();
}

long long ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

bool mentions(const Error &e, const char *what) { return e.message.find(what) != std::string::npos; }

// The client's only session that is still waiting for its response.
std::shared_ptr<detail::SessionImpl> connecting_session(detail::H3Connection *h3) {
  for (const auto &s : h3->sessions())
    if (s->state() == SessionState::connecting) return s;
  return nullptr;
}
}  // namespace

TEST_CASE("session close completes within session_close_timeout when the peer never answers", "[session][loop]") {
  TestLoop tl;
  auto scfg = server_config();
  scfg.session_close_timeout = std::chrono::milliseconds(300);
  auto server = start_server(tl, scfg);
  std::shared_ptr<Session> ss;
  std::optional<SessionCloseInfo> server_seen;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    ss = s;
    s->on_closed([&](const SessionCloseInfo &ci) { server_seen = ci; });
  });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  REQUIRE(tl.run_until([&] { return ss != nullptr; }));
  // The client turns deaf: it neither reads the close capsule nor sends its FIN.
  h3_of(c.conn)->ignore_session_close_for_test(true);
  std::optional<SessionCloseInfo> client_seen;
  c.session->on_closed([&](const SessionCloseInfo &ci) { client_seen = ci; });

  bool returned = false, inside = false, done = false;
  const auto t0 = std::chrono::steady_clock::now();
  ss->close(77, "are you there", [&] {
    inside = inside || !returned;
    done = true;
  });
  returned = true;
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
  const auto took = ms_since(t0);
  CHECK_FALSE(inside);
  // Only the backstop can have completed it, and it did so in bounded time.
  CHECK(took >= 250);
  CHECK(took < 5'000);
  CHECK(ss->is_closed());
  REQUIRE(server_seen.has_value());
  CHECK(server_seen->code == 77);
  CHECK(server_seen->reason == "are you there");
  CHECK_FALSE(server_seen->remote);
  // STOP_SENDING on the CONNECT stream ends the deaf client's session too.
  REQUIRE(tl.run_until([&] { return client_seen.has_value(); }));
  CHECK(c.session->is_closed());
  close_all(tl, c.conn, server);
}

TEST_CASE("a normal session close completes without waiting for the backstop", "[session][loop]") {
  TestLoop tl;
  auto scfg = server_config();
  scfg.session_close_timeout = std::chrono::milliseconds(8'000);
  auto server = start_server(tl, scfg);
  std::shared_ptr<Session> ss;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) { ss = s; });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  REQUIRE(tl.run_until([&] { return ss != nullptr; }));
  std::optional<SessionCloseInfo> client_seen;
  c.session->on_closed([&](const SessionCloseInfo &ci) { client_seen = ci; });
  bool done = false;
  const auto t0 = std::chrono::steady_clock::now();
  ss->close(9, "prompt", [&] { done = true; });
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
  CHECK(ms_since(t0) < 4'000);
  REQUIRE(tl.run_until([&] { return client_seen.has_value(); }));
  CHECK(client_seen->code == 9);
  CHECK(client_seen->remote);
  close_all(tl, c.conn, server);
}

TEST_CASE("early streams and datagrams are buffered within bounds until the session is ready", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  constexpr int kStreams = 6, kDatagrams = 20;
  std::map<std::int64_t, std::string> sent;  // server stream id -> payload
  std::map<std::int64_t, Error> server_errors;
  std::vector<std::shared_ptr<Stream>> server_streams;
  server->route("/early", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    for (int i = 0; i < kStreams; ++i) {
      s->open_bidi_stream([&, i](const Error &err, std::shared_ptr<Stream> st) {
        REQUIRE(err.ok());
        server_streams.push_back(st);
        const std::string payload = "b" + std::to_string(i);
        sent[st->id()] = payload;
        const auto id = st->id();
        st->on_error([&, id](const Error &e) { server_errors[id] = e; });
        st->on_data([](std::span<const std::uint8_t>, bool) {});
        st->write(std::string_view(payload));  // no FIN: a rejection must show as a reset
      });
    }
    for (int i = 0; i < kDatagrams; ++i) {
      const std::string d = "d" + std::to_string(i);
      (void)s->send_datagram(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t *>(d.data()), d.size()));
    }
  });

  auto cfg = client_config();
  cfg.max_pending_streams = 3;
  cfg.max_pending_datagrams = 5;
  auto c = connect(tl, server->port(), "", cfg);
  REQUIRE(c.conn);
  auto *h3 = h3_of(c.conn);
  h3->hold_ready_for_test(true);

  // Two sessions wait at once: every bound applies to each of them.
  struct Pending {
    std::shared_ptr<Session> session;
    SessionId id = 0;
    std::map<std::int64_t, std::string> received;
    std::vector<std::string> datagrams;
    bool opened = false;
  };
  std::array<Pending, 2> p;
  for (auto &ps : p) {
    c.conn->open_session("/early", {}, [&ps](const Error &err, std::shared_ptr<Session> s) {
      REQUIRE(err.ok());
      ps.opened = true;
      ps.session = s;
      s->on_bidi_stream([&ps](std::shared_ptr<Stream> st) {
        const auto id = st->id();
        ps.received[id];
        st->on_data([&ps, id](std::span<const std::uint8_t> d, bool) { ps.received[id].append(d.begin(), d.end()); });
      });
      s->on_datagram([&ps](std::span<const std::uint8_t> d) { ps.datagrams.emplace_back(d.begin(), d.end()); });
    });
  }
  REQUIRE(tl.run_until([&] { return h3->sessions().size() == 2; }));
  p[0].id = h3->sessions()[0]->id();
  p[1].id = h3->sessions()[1]->id();
  REQUIRE(p[0].id != p[1].id);
  const auto dropped_before = h3->datagrams_dropped();

  // The responses are held back: per session 3 streams wait and 3 are
  // refused, 5 datagrams wait and the rest are dropped. Every datagram must
  // have arrived before the release: the server's datagram window
  // (max_datagrams_in_flight) spreads them over several round trips.
  auto waiting = [&](const Pending &ps) {
    return h3->early_stream_count(ps.id) == 3 && h3->early_datagram_count(ps.id) == 5;
  };
  REQUIRE(tl.run_until([&] {
    return server_errors.size() == 2 * (kStreams - 3) && waiting(p[0]) && waiting(p[1]) &&
           h3->datagrams_dropped() >= dropped_before + 2 * (kDatagrams - 5);
  }));
  CHECK_FALSE(p[0].opened);
  CHECK_FALSE(p[1].opened);
  for (const auto &[id, e] : server_errors) {
    CHECK(e.errc == Errc::stream);
    CHECK(mentions(e, "WT_BUFFERED_STREAM_REJECTED"));
  }

  h3->release_held_ready_for_test();
  auto delivered = [&](const Pending &ps) {
    if (!ps.opened || ps.received.size() != 3 || ps.datagrams.size() != 5) return false;
    for (const auto &[id, data] : ps.received)
      if (data.size() < 2) return false;
    return true;
  };
  REQUIRE(tl.run_until([&] { return delivered(p[0]) && delivered(p[1]); }));
  std::uint64_t session_dropped = 0;
  for (auto &ps : p) {
    for (const auto &[id, data] : ps.received) {
      CHECK(server_errors.count(id) == 0);  // only streams that were kept arrive
      REQUIRE(sent.count(id) == 1);
      CHECK(data == sent[id]);
    }
    for (const auto &d : ps.datagrams) CHECK(d.rfind('d', 0) == 0);
    CHECK(ps.session->stats().datagrams_dropped >= 1);
    session_dropped += ps.session->stats().datagrams_dropped;
    CHECK(h3->early_stream_count(ps.id) == 0);
    CHECK(h3->early_datagram_count(ps.id) == 0);
  }
  // Once ready nothing more is dropped: every drop was an early one, told to its session.
  CHECK(session_dropped == h3->datagrams_dropped() - dropped_before);
  server_streams.clear();
  close_all(tl, c.conn, server);
}

TEST_CASE("a stream for a session that is gone is reset with WT_SESSION_GONE", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  int streams_seen = 0;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&](std::shared_ptr<Stream> st) {
      ++streams_seen;
      st->on_data([](std::span<const std::uint8_t>, bool) {});
    });
  });
  server->route("/no", [&](std::shared_ptr<Session>, const SessionRequest &) { ++streams_seen; });
  server->set_accept_hook(
      [](const SessionRequest &r) { return r.path == "/no" ? AcceptDecision::reject(403) : AcceptDecision::accept(); });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  auto *h3 = h3_of(c.conn);
  auto live = std::dynamic_pointer_cast<detail::SessionImpl>(c.session);
  REQUIRE(live);

  // Opens, on the live session, a stream whose header names `target`.
  auto stray = [&](SessionId target) {
    auto err = std::make_shared<std::optional<Error>>();
    h3->open_wt_stream_for_test(live, target, true, [&, err](const Error &e, std::int64_t sid) {
      REQUIRE(e.ok());
      auto st = h3->wt_stream(sid);
      REQUIRE(st);
      st->on_error([err](const Error &x) { *err = x; });
      st->write(std::string_view("late"), {});
    });
    return err;
  };

  SECTION("closed and forgotten by the server") {
    std::shared_ptr<Session> second;
    c.conn->open_session("/x", {}, [&](const Error &, std::shared_ptr<Session> s) { second = s; });
    REQUIRE(tl.run_until([&] { return second != nullptr; }));
    const SessionId gone = second->id();
    bool closed = false;
    second->close(3, "gone", [&] { closed = true; });
    REQUIRE(tl.run_until([&] { return closed; }));
    auto conns = server->connections();
    REQUIRE(conns.size() == 1);
    auto *server_h3 = h3_of(conns.front());
    // Wait until the server dropped the session from its table entirely.
    REQUIRE(tl.run_until([&] { return server_h3->session(gone) == nullptr; }));
    auto err = stray(gone);
    REQUIRE(tl.run_until([&] { return err->has_value(); }));
    CHECK((*err)->errc == Errc::stream);
    CHECK(mentions(**err, "WT_SESSION_GONE"));
  }
  SECTION("rejected by the accept hook while its stream raced ahead") {
    std::optional<Error> open_err;
    c.conn->open_session("/no", {}, [&](const Error &e, std::shared_ptr<Session>) { open_err = e; });
    auto pending = connecting_session(h3);
    REQUIRE(pending);
    auto err = stray(pending->id());
    REQUIRE(tl.run_until([&] { return open_err.has_value() && err->has_value(); }));
    CHECK(open_err->http_status == 403);
    CHECK(mentions(**err, "WT_SESSION_GONE"));
  }
  CHECK(streams_seen == 0);
  close_all(tl, c.conn, server);
}

TEST_CASE("session and stream callbacks never run inside the call that caused them", "[session][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  bool echo_acked = false;
  server->route("/x", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&](std::shared_ptr<Stream> st) {
      auto buf = std::make_shared<std::string>();
      std::weak_ptr<Stream> w = st;
      st->on_data([&, buf, w](std::span<const std::uint8_t> d, bool fin) {
        buf->append(d.begin(), d.end());
        if (!fin) return;
        if (auto s2 = w.lock())
          s2->write_and_end(Bytes(buf->begin(), buf->end()), [&](const Error &e) { echo_acked = e.ok(); });
      });
    });
  });
  auto c = connect(tl, server->port(), "/x");
  REQUIRE(c.session);
  bool returned = false, inside = false;

  SECTION("Stream::resume delivers held data on a later turn") {
    std::shared_ptr<Stream> st;
    c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) { st = s; });
    REQUIRE(tl.run_until([&] { return st != nullptr; }));
    std::string got;
    bool fin_seen = false;
    st->on_data([&](std::span<const std::uint8_t> d, bool fin) {
      inside = inside || !returned;
      got.append(d.begin(), d.end());
      fin_seen = fin_seen || fin;
    });
    st->pause();
    st->write_and_end(Bytes{'h', 'e', 'l', 'l', 'o'});
    // Acknowledged by our QUIC stack: the echo sits in the paused stream.
    REQUIRE(tl.run_until([&] { return echo_acked; }));
    CHECK(got.empty());
    st->resume();
    returned = true;
    REQUIRE(tl.run_until([&] { return fin_seen; }));
    CHECK(got == "hello");
  }
  SECTION("Session::close reports stream errors and completion later") {
    std::shared_ptr<Stream> st;
    c.session->open_bidi_stream([&](const Error &, std::shared_ptr<Stream> s) { st = s; });
    REQUIRE(tl.run_until([&] { return st != nullptr; }));
    std::optional<Error> stream_err, write_err;
    st->on_error([&](const Error &e) {
      inside = inside || !returned;
      stream_err = e;
    });
    st->write(std::string_view("pending"), [&](const Error &e) {
      inside = inside || !returned;
      write_err = e;
    });
    bool done = false;
    c.session->close(5, "bye", [&] {
      inside = inside || !returned;
      done = true;
    });
    returned = true;
    REQUIRE(tl.run_until([&] { return done && stream_err.has_value() && write_err.has_value(); }));
    CHECK(stream_err->errc == Errc::session);
    CHECK(stream_err->code == 5);
  }
  SECTION("closing a session that is still connecting") {
    std::optional<Error> open_err;
    bool opened = false, done = false;
    c.conn->open_session("/x", {}, [&](const Error &e, std::shared_ptr<Session> s) {
      inside = inside || !returned;
      open_err = e;
      opened = s == nullptr;
    });
    auto pending = connecting_session(h3_of(c.conn));
    REQUIRE(pending);
    pending->close(1, "never mind", [&] {
      inside = inside || !returned;
      done = true;
    });
    returned = true;
    REQUIRE(tl.run_until([&] { return done && open_err.has_value(); }));
    CHECK(opened);
    CHECK(open_err->errc == Errc::cancelled);
  }
  CHECK_FALSE(inside);
  close_all(tl, c.conn, server);
}
