#pragma once

// The echo behaviour every loopback test talks to: bidi streams echoed with
// backpressure, uni streams echoed on a new uni stream, datagrams echoed.

#include <memory>

#include <uvwt/server.hpp>
#include <uvwt/session.hpp>

namespace uvwt::test {

// The callbacks take their stream / session (Stream::on_data(Stream&, ...)
// and the like): every loopback test that echoes goes through those overloads.
inline void echo_bidi(const std::shared_ptr<Stream> &st) {
  st->on_writable([](Stream &s) { s.resume(); });
  st->on_data([](Stream &s, std::span<const std::uint8_t> data, bool fin) {
    if (!data.empty()) s.write(Bytes(data.begin(), data.end()));
    if (fin) s.end();
    if (!s.writable()) s.pause();  // resume once the peer has acked half
  });
}

inline void echo_uni(const std::shared_ptr<Stream> &st) {
  auto buf = std::make_shared<Bytes>();
  st->on_data([buf](Stream &in, std::span<const std::uint8_t> data, bool fin) {
    buf->insert(buf->end(), data.begin(), data.end());
    if (!fin) return;
    auto s = in.session();  // null once the session is gone: nothing to answer on
    if (!s) return;
    s->open_uni_stream([buf](const Error &err, std::shared_ptr<Stream> out) {
      if (err || !out) return;
      out->write_and_end(std::move(*buf));
    });
  });
}

inline Server::SessionHandler echo_handler() {
  return [](std::shared_ptr<Session> s, const SessionRequest &) {
    s->on_bidi_stream([](Session &, std::shared_ptr<Stream> st) { echo_bidi(st); });
    s->on_uni_stream([](Session &, std::shared_ptr<Stream> st) { echo_uni(st); });
    s->on_datagram([](Session &session, std::span<const std::uint8_t> d) {
      (void)session.send_datagram(d);  // a full queue drops the echo: datagrams are unreliable
    });
  };
}

}  // namespace uvwt::test
