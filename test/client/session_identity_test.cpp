// The session Client::connect hands out is the session itself: the same
// object every other path reaches (stream->session(), get_session()), whose
// on_closed keeps the documented contract, and whose user callbacks cannot
// disturb the client's own bookkeeping (it closes the connection it owns when
// the session ends).

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "client/client_fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("Client session: on_closed registered after the close still gets a deferred call",
          "[client][loop][session-identity]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(r.err.ok());
  bool closed = false;
  r.session->close(7, "done", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 5'000));
  REQUIRE(r.session->is_closed());

  int calls = 0;
  std::uint32_t code = 0;
  r.session->on_closed([&](const SessionCloseInfo &ci) {
    ++calls;
    code = ci.code;
  });
  CHECK(calls == 0);  // never from inside the call
  REQUIRE(tl.run_until([&] { return calls == 1; }, 2'000));
  CHECK(code == 7);
  close_client(tl, client);
  close_server(tl, server);
  uv_run(&tl.loop, UV_RUN_DEFAULT);  // to completion: still exactly once
  CHECK(calls == 1);
}

TEST_CASE("Client session: stream->session() and get_session() are the session connect handed out",
          "[client][loop][session-identity]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(r.err.ok());
  CHECK(r.session->connection()->get_session(r.session->id()) == r.session);
  std::shared_ptr<Stream> st;
  r.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> s) {
    REQUIRE(e.ok());
    st = std::move(s);
  });
  REQUIRE(tl.run_until([&] { return st != nullptr; }, 5'000));
  CHECK(st->session() == r.session);
  st.reset();
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("Client session: the user's on_closed on any handle leaves the client's bookkeeping alone",
          "[client][loop][session-identity]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(r.err.ok());
  REQUIRE(client->diagnostics().connection_states[ConnectionState::connected] == 1);

  // The session as the connection knows it: a user reaching it this way
  // must not displace what the client watches.
  auto same = r.session->connection()->get_session(r.session->id());
  REQUIRE(same);
  int user_calls = 0;
  same->on_closed([&](const SessionCloseInfo &) { ++user_calls; });
  r.session->close(0, "bye", {});
  // The client closes the connection it owned for this session.
  REQUIRE(tl.run_until([&] { return user_calls == 1 && client->diagnostics().connection_states.empty(); }, 5'000));
  close_client(tl, client);
  close_server(tl, server);
  CHECK(user_calls == 1);
}

TEST_CASE("Client dropped without close(): the connections it owned close, as a dropped Server's do",
          "[client][loop][session-identity]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  auto client = make_client(tl);
  auto r = connect_client(tl, *client, url_of(server->port(), "/echo"));
  REQUIRE(r.err.ok());
  auto conn = r.session->connection();
  client.reset();
  REQUIRE(tl.run_until([&] { return r.session->is_closed() && conn->is_closed(); }, 5'000));
  close_server(tl, server);
}
