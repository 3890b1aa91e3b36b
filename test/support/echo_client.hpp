#pragma once

// The client half of the echo tests: writes bytes on a new bidi stream with
// backpressure (write while writable(), resume on on_writable) and collects
// what comes back.

#include <algorithm>
#include <functional>
#include <memory>

#include <uvwt/session.hpp>
#include <uvwt/stream.hpp>

namespace uvwt::test {

struct EchoResult {
  Bytes received;
  bool fin = false;
  bool opened = false;
  Error err;
  [[nodiscard]] bool done() const noexcept { return fin || !err.ok(); }
};

inline std::uint64_t fnv1a(std::span<const std::uint8_t> d, std::uint64_t h = 1469598103934665603ull) {
  for (auto b : d) h = (h ^ b) * 1099511628211ull;
  return h;
}

inline std::shared_ptr<EchoResult> echo_bidi_stream(const std::shared_ptr<Session> &s, Bytes data,
                                                    std::size_t piece = 64 * 1024) {
  auto r = std::make_shared<EchoResult>();
  s->open_bidi_stream([r, piece, data = std::move(data)](const Error &err, std::shared_ptr<Stream> st) mutable {
    if (err) {
      r->err = err;
      return;
    }
    r->opened = true;
    st->on_data([r](std::span<const std::uint8_t> d, bool fin) {
      r->received.insert(r->received.end(), d.begin(), d.end());
      if (fin) r->fin = true;
    });
    st->on_error([r](const Error &e) { r->err = e; });
    auto src = std::make_shared<Bytes>(std::move(data));
    auto off = std::make_shared<std::size_t>(0);
    auto pump = std::make_shared<std::function<void()>>();
    std::weak_ptr<Stream> ws = st;
    *pump = [ws, src, off, pump, piece] {
      auto st = ws.lock();
      if (!st) return;
      while (*off < src->size() && st->writable()) {
        const std::size_t n = std::min(piece, src->size() - *off);
        st->write(Bytes(src->begin() + static_cast<std::ptrdiff_t>(*off),
                        src->begin() + static_cast<std::ptrdiff_t>(*off + n)));
        *off += n;
      }
      if (*off == src->size()) {
        st->end();
        *pump = nullptr;  // breaks the self-reference
      }
    };
    st->on_writable([pump] {
      if (*pump) (*pump)();
    });
    (*pump)();
  });
  return r;
}

}  // namespace uvwt::test
