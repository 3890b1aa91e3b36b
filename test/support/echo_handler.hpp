#pragma once

// The echo behaviour every loopback test talks to: bidi streams echoed with
// backpressure, uni streams echoed on a new uni stream, datagrams echoed.

#include <memory>

#include <uvwt/server.hpp>
#include <uvwt/session.hpp>

namespace uvwt::test {

inline void echo_bidi(const std::shared_ptr<Stream> &st) {
  std::weak_ptr<Stream> w = st;
  st->on_writable([w] {
    if (auto s = w.lock()) s->resume();
  });
  st->on_data([w](std::span<const std::uint8_t> data, bool fin) {
    auto s = w.lock();
    if (!s) return;
    if (!data.empty()) s->write(Bytes(data.begin(), data.end()));
    if (fin) s->end();
    if (!s->writable()) s->pause();  // resume once the peer has acked half
  });
}

inline void echo_uni(const std::shared_ptr<Session> &session, const std::shared_ptr<Stream> &st) {
  auto buf = std::make_shared<Bytes>();
  std::weak_ptr<Session> ws = session;
  st->on_data([buf, ws](std::span<const std::uint8_t> data, bool fin) {
    buf->insert(buf->end(), data.begin(), data.end());
    if (!fin) return;
    auto s = ws.lock();
    if (!s) return;
    s->open_uni_stream([buf](const Error &err, std::shared_ptr<Stream> out) {
      if (err || !out) return;
      out->write_and_end(std::move(*buf));
    });
  });
}

inline Server::SessionHandler echo_handler() {
  return [](std::shared_ptr<Session> s, const SessionRequest &) {
    std::weak_ptr<Session> ws = s;
    s->on_bidi_stream([](std::shared_ptr<Stream> st) { echo_bidi(st); });
    s->on_uni_stream([ws](std::shared_ptr<Stream> st) {
      if (auto s = ws.lock()) echo_uni(s, st);
    });
    s->on_datagram([ws](std::span<const std::uint8_t> d) {
      if (auto s = ws.lock()) (void)s->send_datagram(d);
    });
  };
}

}  // namespace uvwt::test
