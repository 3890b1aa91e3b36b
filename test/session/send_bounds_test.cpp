// The local send bounds an application meets when it writes faster than the
// network drains: a stream's stream_send_buffer and the session's
// datagram_send_queue refuse the excess with Errc::flow_control instead of
// buffering it.

#include <uvwt/uvwt.hpp>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("send bounds: stream_send_buffer and datagram_send_queue refuse the excess", "[session][loop][limits]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  ClientConfig cfg = client_config();
  cfg.stream_send_buffer = 4096;
  cfg.datagram_send_queue = 4;
  auto c = connect(tl, server->port(), "/echo", cfg);
  REQUIRE(c.err.ok());

  // All in one turn: nothing can drain in between.
  std::size_t refused = 0, sent = 0;
  for (int i = 0; i < 10; ++i) {
    const Error e = c.session->send_datagram(Bytes(100, 1));
    if (e) {
      CHECK(e.errc == Errc::flow_control);
      ++refused;
    } else {
      ++sent;
    }
  }
  CHECK(sent == 4);
  CHECK(refused == 6);

  std::optional<Error> first, second;
  c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
    REQUIRE(e.ok());
    st->on_data([](std::span<const std::uint8_t>, bool) {});
    st->write(Bytes(8192, 2), [&](const Error &x) { first = x; });  // below the bound when written: taken
    st->write(Bytes(1, 3), [&](const Error &x) { second = x; });    // at the bound: refused
  });
  REQUIRE(tl.run_until([&] { return first.has_value() && second.has_value(); }));
  CHECK(first->ok());
  CHECK(second->errc == Errc::flow_control);
  close_all(tl, c.conn, server);
}
