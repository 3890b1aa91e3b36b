// Send order and send groups (W3C WebTransport API, WebTransportSendStream
// sendOrder / sendGroup; docs/api/stream.md, "Send order"): with all data
// queued at once and a connection that cannot send it all at once, the
// receiver sees the streams finish in the order the scheduler served them.

#include <uvwt/uvwt.hpp>

#include <map>
#include <optional>
#include <vector>

#include "catch.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

struct Sink {
  std::vector<std::uint8_t> finished;  // each stream's tag (its first byte), in FIN order
  std::map<Stream *, std::uint8_t> tag;
};

// The server reads every incoming unidirectional stream and notes when each ends.
void route_sink(Server &server, const std::shared_ptr<Sink> &sink) {
  server.route("/sink", [sink](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_uni_stream([sink](std::shared_ptr<Stream> st) {
      Stream *raw = st.get();
      st->on_data([sink, raw, keep = st](std::span<const std::uint8_t> d, bool fin) {
        if (!d.empty() && !sink->tag.contains(raw)) sink->tag[raw] = d[0];
        if (fin) sink->finished.push_back(sink->tag[raw]);
      });
    });
  });
}

struct Sender {
  std::int64_t order = 0;
  SendGroup group;
  std::uint8_t tag = 0;
};

// Opens one stream per sender, then, once all are open, queues `bytes` on
// each in one turn (in the given order), so the scheduler alone decides.
std::vector<std::uint8_t> run(const std::vector<Sender> &senders, std::size_t bytes,
                              const std::function<SendGroup(Session &, int)> &group_of = {}) {
  TestLoop tl;
  auto sink = std::make_shared<Sink>();
  ServerConfig scfg = server_config();
  // A small receive window: the sender is held to it, so streams compete.
  scfg.initial_max_data = 256 * 1024;
  scfg.wt_initial_max_data = 256 * 1024;
  auto server = start_server(tl, scfg);
  route_sink(*server, sink);
  ClientConfig ccfg = client_config();
  ccfg.stream_send_buffer = bytes + 1;
  ccfg.connection_send_buffer = bytes * senders.size() + 1;
  auto c = connect(tl, server->port(), "/sink", ccfg);
  REQUIRE(c.err.ok());
  std::vector<std::shared_ptr<Stream>> streams(senders.size());
  std::size_t opened = 0;
  for (std::size_t i = 0; i < senders.size(); ++i) {
    c.session->open_uni_stream([&, i](const Error &e, std::shared_ptr<Stream> st) {
      REQUIRE(e.ok());
      streams[i] = st;
      if (++opened < senders.size()) return;
      for (std::size_t k = 0; k < senders.size(); ++k) {
        streams[k]->set_send_order(senders[k].order);
        if (group_of) streams[k]->set_send_group(group_of(*c.session, static_cast<int>(k)));
        CHECK(streams[k]->send_order() == senders[k].order);
        streams[k]->write_and_end(Bytes(bytes, senders[k].tag));
      }
    });
  }
  REQUIRE(tl.run_until([&] { return sink->finished.size() == senders.size(); }, 120'000));
  close_all(tl, c.conn, server);
  return sink->finished;
}

}  // namespace

TEST_CASE("send order: the stream with the highest send order finishes first", "[session][loop][send_order]") {
  // Queued last, served first; the two of order 0 take turns after it.
  const auto done = run({{0, {}, 'a'}, {0, {}, 'b'}, {10, {}, 'c'}}, 4u << 20);
  REQUIRE(done.size() == 3);
  CHECK(done[0] == 'c');
}

TEST_CASE("send groups share the connection as equals", "[session][loop][send_group]") {
  // Group one holds two streams, group two one stream, all of order 0: per
  // stream turns would finish the lone stream (queued last) last; per group
  // turns give it half of the connection, so it finishes first.
  std::vector<SendGroup> groups;
  const auto done = run({{0, {}, 'a'}, {0, {}, 'b'}, {0, {}, 'c'}}, 2u << 20, [&](Session &s, int k) {
    if (groups.empty()) groups = {s.create_send_group(), s.create_send_group()};
    return k < 2 ? groups[0] : groups[1];
  });
  REQUIRE(done.size() == 3);
  CHECK(done[0] == 'c');
  REQUIRE(groups.size() == 2);
  CHECK_FALSE(groups[0] == groups[1]);
  CHECK(groups[0].id != 0);
}

// ngtcp2 reports our own STOP_SENDING through the same callback a peer's
// would use; it must not stop our send side (RFC 9000 3.5: STOP_SENDING asks
// the peer to stop; the sender of it keeps sending).
TEST_CASE("our own stop_sending leaves our send side open", "[session][loop][stop_sending]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::string got;
  bool fin = false;
  server->route("/sink", [&](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([&](std::shared_ptr<Stream> st) {
      st->on_data([&, keep = st](std::span<const std::uint8_t> d, bool f) {
        got.append(d.begin(), d.end());
        fin = fin || f;
      });
    });
  });
  auto c = connect(tl, server->port(), "/sink");
  REQUIRE(c.err.ok());
  std::optional<Error> stream_error, write_done;
  c.session->open_bidi_stream([&](const Error &e, std::shared_ptr<Stream> st) {
    REQUIRE(e.ok());
    st->on_error([&](const Error &x) { stream_error = x; });
    st->stop_sending(7);
    st->write_and_end(Bytes{'h', 'e', 'l', 'l', 'o'}, [&, keep = st](const Error &x) { write_done = x; });
  });
  REQUIRE(tl.run_until([&] { return fin || stream_error.has_value(); }, 10'000));
  CHECK(got == "hello");
  CHECK(fin);
  INFO((stream_error ? stream_error->to_string() : std::string("none")));
  // The peer answers our STOP_SENDING with RESET_STREAM (RFC 9000 3.5): that
  // reset of the receive side is the only error allowed.
  if (stream_error) CHECK(stream_error->message.find("reset by peer") != std::string::npos);
  REQUIRE(tl.run_until([&] { return write_done.has_value(); }, 10'000));
  CHECK(write_done->ok());
  close_all(tl, c.conn, server);
}
