// Loopback tests of Browser: navigation history, back/forward/refresh, a
// failing navigation in the middle, queued operations, close.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "client/client_fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
struct Nav {
  Error err;
  std::shared_ptr<Session> session;
  bool done = false;
};

using Op = std::function<void(Browser::SessionCallback)>;

Nav run(TestLoop &tl, const Op &op) {
  auto r = std::make_shared<Nav>();
  op([r](const Error &e, std::shared_ptr<Session> s) {
    r->err = e;
    r->session = std::move(s);
    r->done = true;
  });
  CHECK_FALSE(r->done);
  REQUIRE(tl.run_until([&] { return r->done; }, 10'000));
  return *r;
}

std::string path_of(const std::shared_ptr<Session> &s) { return s ? s->info().path : std::string("(none)"); }
}  // namespace

TEST_CASE("Browser history: navigate, back, forward, refresh, failure in the middle", "[client][loop][browser]") {
  TestLoop tl;
  auto server = start_server(tl);
  for (const char *p : {"/a", "/b", "/c", "/e"}) server->route(p, echo_handler());
  auto client = make_client(tl);
  auto browser = Browser::create(client);
  const auto port = server->port();
  const auto A = url_of(port, "/a"), B = url_of(port, "/b"), C = url_of(port, "/c"), D = url_of(port, "/d"),
             E = url_of(port, "/e");
  using V = std::vector<std::string>;

  CHECK(browser->history().empty());
  CHECK(browser->history_index() == -1);
  CHECK(browser->current_session() == nullptr);
  // Nowhere to go on an empty history: null, nothing changes.
  for (const Op &op : {Op([&](auto cb) { browser->back(cb); }), Op([&](auto cb) { browser->forward(cb); }),
                       Op([&](auto cb) { browser->refresh(cb); })}) {
    auto r = run(tl, op);
    CHECK(r.err.ok());
    CHECK(r.session == nullptr);
  }
  CHECK(client->stats().connections_attempted == 0);

  auto a = run(tl, [&](auto cb) { browser->navigate(A, cb); });
  REQUIRE(a.err.ok());
  CHECK(path_of(a.session) == "/a");
  auto b = run(tl, [&](auto cb) { browser->navigate(B, cb); });
  auto c = run(tl, [&](auto cb) { browser->navigate(C, cb); });
  REQUIRE(c.err.ok());
  CHECK(browser->history() == V{A, B, C});
  CHECK(browser->history_index() == 2);
  CHECK(browser->current_session() == c.session);
  REQUIRE(tl.run_until([&] { return a.session->is_closed() && b.session->is_closed(); }, 5'000));

  // Navigating to the current URL with a live session: the same session, no connect.
  const auto attempts = client->stats().connections_attempted;
  auto same = run(tl, [&](auto cb) { browser->navigate(C, cb); });
  CHECK(same.session == c.session);
  CHECK(client->stats().connections_attempted == attempts);

  auto back1 = run(tl, [&](auto cb) { browser->back(cb); });
  CHECK(path_of(back1.session) == "/b");
  CHECK(browser->history_index() == 1);
  auto back2 = run(tl, [&](auto cb) { browser->back(cb); });
  CHECK(path_of(back2.session) == "/a");
  auto back3 = run(tl, [&](auto cb) { browser->back(cb); });
  CHECK(back3.err.ok());
  CHECK(back3.session == nullptr);
  CHECK(browser->history_index() == 0);
  CHECK(browser->current_session() == back2.session);
  auto fwd = run(tl, [&](auto cb) { browser->forward(cb); });
  CHECK(path_of(fwd.session) == "/b");
  CHECK(browser->history() == V{A, B, C});
  CHECK(browser->history_index() == 1);

  // A failed navigation changes nothing: history, position, current session.
  auto d = run(tl, [&](auto cb) { browser->navigate(D, cb); });
  CHECK(d.err.errc == Errc::http_status);
  CHECK(d.err.http_status == 404);
  CHECK(d.session == nullptr);
  CHECK(browser->history() == V{A, B, C});
  CHECK(browser->history_index() == 1);
  CHECK(browser->current_session() == fwd.session);
  CHECK_FALSE(fwd.session->is_closed());

  // Navigating from the middle drops the forward entries.
  auto e = run(tl, [&](auto cb) { browser->navigate(E, cb); });
  REQUIRE(e.err.ok());
  CHECK(browser->history() == V{A, B, E});
  CHECK(browser->history_index() == 2);
  auto fwd_end = run(tl, [&](auto cb) { browser->forward(cb); });
  CHECK(fwd_end.session == nullptr);

  // Refresh: a new session to the same entry.
  auto re = run(tl, [&](auto cb) { browser->refresh(cb); });
  REQUIRE(re.err.ok());
  CHECK(re.session != e.session);
  CHECK(path_of(re.session) == "/e");
  CHECK(browser->history() == V{A, B, E});
  REQUIRE(tl.run_until([&] { return e.session->is_closed(); }, 5'000));

  // Consecutive duplicates collapse: refresh leaves one entry, and going back
  // to B then navigating to B again keeps the history.
  auto bb = run(tl, [&](auto cb) { browser->back(cb); });
  CHECK(path_of(bb.session) == "/b");
  auto bb2 = run(tl, [&](auto cb) { browser->navigate(B, cb); });
  CHECK(bb2.session == bb.session);
  CHECK(browser->history() == V{A, B, E});

  bool closed = false;
  browser->close([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  CHECK(browser->is_closed());
  CHECK(browser->history().empty());
  CHECK(browser->current_session() == nullptr);
  CHECK(bb.session->is_closed());
  auto after = run(tl, [&](auto cb) { browser->navigate(A, cb); });
  CHECK(after.err.errc == Errc::closed);
  // The client is left open: it is the caller's.
  CHECK_FALSE(client->is_closed());
  CHECK(connect_client(tl, *client, A).err.ok());

  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Browser queues operations issued while one is in flight; close cancels them", "[client][loop][browser]") {
  TestLoop tl;
  auto server = start_server(tl);
  for (const char *p : {"/a", "/b", "/c"}) server->route(p, echo_handler());
  auto client = make_client(tl);
  auto browser = Browser::create(client);
  const auto port = server->port();
  const auto A = url_of(port, "/a"), B = url_of(port, "/b"), C = url_of(port, "/c"), D = url_of(port, "/d");

  std::vector<std::string> order;
  auto record = [&](const std::string &tag) {
    return [&order, tag](const Error &e, std::shared_ptr<Session> s) {
      order.push_back(tag + ":" + (e ? std::string(errc_name(e.errc)) : (s ? s->info().path : "null")));
    };
  };
  browser->navigate(A, record("nav"));
  browser->navigate(B, record("nav"));
  browser->navigate(D, record("nav"));  // fails: nothing changes
  browser->back(record("back"));
  browser->forward(record("fwd"));
  browser->navigate(C, record("nav"));
  CHECK(order.empty());
  REQUIRE(tl.run_until([&] { return order.size() == 6; }, 10'000));
  CHECK(order == std::vector<std::string>{"nav:/a", "nav:/b", "nav:http_status", "back:/a", "fwd:/b", "nav:/c"});
  CHECK(browser->history() == std::vector<std::string>{A, B, C});

  // Close with one navigation in flight and two queued: all cancelled.
  order.clear();
  browser->navigate(A, record("nav"));
  browser->back(record("back"));
  browser->refresh(record("refresh"));
  // Until the first one is connecting, not longer: a resumed handshake on
  // loopback can finish within a millisecond.
  REQUIRE(tl.run_until(
      [&] {
        const auto st = client->diagnostics().connection_states;
        return st.count(ConnectionState::connecting) > 0;
      },
      5'000));
  bool closed = false;
  browser->close([&] {
    closed = true;
    order.push_back("closed");
  });
  REQUIRE(tl.run_until([&] { return closed && order.size() == 4; }, 5'000));
  // The in-flight operation first, then the queued ones in order, then close's own cb.
  CHECK(order == std::vector<std::string>{"nav:cancelled", "back:cancelled", "refresh:cancelled", "closed"});
  const bool drained = tl.run_until([&] { return client->diagnostics().connection_states.empty(); }, 5'000);
  for (auto &[st, n] : client->diagnostics().connection_states) UNSCOPED_INFO(to_string(st) << ": " << n);
  CHECK(drained);

  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Browser: a failing back, forward or refresh changes nothing", "[client][loop][browser]") {
  TestLoop tl;
  auto server = start_server(tl);
  for (const char *p : {"/a", "/b"}) server->route(p, echo_handler());
  std::string refuse;  // path the server answers 503 for
  server->set_accept_hook([&](const SessionRequest &r) {
    return r.path == refuse ? AcceptDecision::reject(503) : AcceptDecision::accept();
  });
  auto client = make_client(tl);
  auto browser = Browser::create(client);
  const auto A = url_of(server->port(), "/a"), B = url_of(server->port(), "/b");
  using V = std::vector<std::string>;

  REQUIRE(run(tl, [&](auto cb) { browser->navigate(A, cb); }).err.ok());
  auto b = run(tl, [&](auto cb) { browser->navigate(B, cb); });
  REQUIRE(b.err.ok());

  refuse = "/a";
  auto back = run(tl, [&](auto cb) { browser->back(cb); });
  CHECK(back.err.errc == Errc::http_status);
  CHECK(back.err.http_status == 503);
  CHECK(back.session == nullptr);
  CHECK(browser->history() == V{A, B});
  CHECK(browser->history_index() == 1);
  CHECK(browser->current_session() == b.session);
  CHECK_FALSE(b.session->is_closed());

  refuse.clear();
  auto a2 = run(tl, [&](auto cb) { browser->back(cb); });
  REQUIRE(a2.err.ok());
  CHECK(browser->history_index() == 0);

  refuse = "/b";
  auto fwd = run(tl, [&](auto cb) { browser->forward(cb); });
  CHECK(fwd.err.errc == Errc::http_status);
  CHECK(fwd.session == nullptr);
  CHECK(browser->history() == V{A, B});
  CHECK(browser->history_index() == 0);
  CHECK(browser->current_session() == a2.session);
  CHECK_FALSE(a2.session->is_closed());

  refuse = "/a";
  auto re = run(tl, [&](auto cb) { browser->refresh(cb); });
  CHECK(re.err.errc == Errc::http_status);
  CHECK(browser->history() == V{A, B});
  CHECK(browser->history_index() == 0);
  CHECK(browser->current_session() == a2.session);
  CHECK_FALSE(a2.session->is_closed());

  bool closed = false;
  browser->close([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Browser: navigating to the current entry whose session ended reloads it in place",
          "[client][loop][browser]") {
  TestLoop tl;
  auto server = start_server(tl);
  for (const char *p : {"/a", "/b", "/c"}) server->route(p, echo_handler());
  auto client = make_client(tl);
  auto browser = Browser::create(client);
  const auto A = url_of(server->port(), "/a"), B = url_of(server->port(), "/b"), C = url_of(server->port(), "/c");
  using V = std::vector<std::string>;
  for (const auto &u : {A, B, C}) REQUIRE(run(tl, [&](auto cb) { browser->navigate(u, cb); }).err.ok());
  auto b = run(tl, [&](auto cb) { browser->back(cb); });
  REQUIRE(b.err.ok());
  CHECK(browser->history_index() == 1);

  // In the middle of the history: B again, forward entry C kept.
  b.session->close(0, "gone", {});
  REQUIRE(tl.run_until([&] { return b.session->is_closed(); }, 5'000));
  auto b2 = run(tl, [&](auto cb) { browser->navigate(B, cb); });
  REQUIRE(b2.err.ok());
  CHECK(b2.session != b.session);
  CHECK(path_of(b2.session) == "/b");
  CHECK(browser->history() == V{A, B, C});
  CHECK(browser->history_index() == 1);
  CHECK(browser->current_session() == b2.session);

  // At the end of the history: one entry.
  auto c = run(tl, [&](auto cb) { browser->forward(cb); });
  REQUIRE(c.err.ok());
  c.session->close(0, "gone", {});
  REQUIRE(tl.run_until([&] { return c.session->is_closed(); }, 5'000));
  auto c2 = run(tl, [&](auto cb) { browser->navigate(C, cb); });
  REQUIRE(c2.err.ok());
  CHECK(c2.session != c.session);
  CHECK(browser->history() == V{A, B, C});
  CHECK(browser->history_index() == 2);

  bool closed = false;
  browser->close([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  close_client(tl, client);
  close_server(tl, server);
}
