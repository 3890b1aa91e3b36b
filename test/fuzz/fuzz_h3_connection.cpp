// The HTTP/3 + WebTransport connection (lib/h3 + lib/session) driven through
// its QuicApp interface by a scripted QUIC side (stack_shim/), in either role.
// A fixed valid setup runs first (handshake done, the peer's control and QPACK
// streams with SETTINGS of one dialect, optionally an accepted session); then
// the input is a script of transport events: stream bytes on any stream id
// with or without FIN, datagrams, resets, STOP_SENDING, stream closes, write
// pumps with partial acceptance, acks, flow-control events, and application
// actions on the session. The fake transport aborts on any call ngtcp2 would
// refuse (credit beyond what arrived, a close code outside HTTP/3's range...).
//
// Input: byte 0 = role (bit 0: client), session at setup (bit 1), dialect
// (bits 2-3); then events, each an opcode byte and its operands.

#include <uv.h>

#include <string>
#include <string_view>
#include <utility>

#include <uvwt/log.hpp>
#include <uvwt/session.hpp>
#include <uvwt/stream.hpp>

#include "common/deferred.hpp"
#include "fuzz_support.hpp"
#include "h3/h3_connection.hpp"
#include "h3/wt_codes.hpp"
#include "quic/quic_connection.hpp"
#include "session/session_impl.hpp"
#include "session/stream_impl.hpp"

using namespace uvwt;
using namespace uvwt::detail;

namespace {

using Bytes8 = std::vector<std::uint8_t>;

void put_varint(Bytes8 &out, std::uint64_t v) {
  if (v < 64) {
    out.push_back(static_cast<std::uint8_t>(v));
  } else if (v < 16384) {
    out.push_back(static_cast<std::uint8_t>(0x40 | (v >> 8)));
    out.push_back(static_cast<std::uint8_t>(v));
  } else if (v < (1ull << 30)) {
    for (int i = 3; i >= 0; --i)
      out.push_back(static_cast<std::uint8_t>((i == 3 ? 0x80 : 0) | ((v >> (8 * i)) & 0xff)));
  } else {
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<std::uint8_t>((i == 7 ? 0xc0 : 0) | ((v >> (8 * i)) & 0xff)));
  }
}

void put_frame(Bytes8 &out, std::uint64_t type, const Bytes8 &payload) {
  put_varint(out, type);
  put_varint(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

// QPACK prefixed integer (RFC 9204 section 4.1.1, RFC 7541 section 5.1).
void put_prefixed(Bytes8 &out, std::uint8_t first, unsigned prefix_bits, std::size_t v) {
  const std::size_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    out.push_back(static_cast<std::uint8_t>(first | v));
    return;
  }
  out.push_back(static_cast<std::uint8_t>(first | max));
  for (v -= max; v >= 128; v /= 128) out.push_back(static_cast<std::uint8_t>(0x80 | (v % 128)));
  out.push_back(static_cast<std::uint8_t>(v));
}

// HEADERS frame with literal field lines with literal names (RFC 9204
// section 4.5.6), no dynamic table, no Huffman.
Bytes8 headers_frame(const std::vector<std::pair<std::string_view, std::string_view>> &fields) {
  Bytes8 block = {0x00, 0x00};  // required insert count 0, base 0
  for (const auto &[name, value] : fields) {
    put_prefixed(block, 0x20, 3, name.size());
    block.insert(block.end(), name.begin(), name.end());
    put_prefixed(block, 0x00, 7, value.size());
    block.insert(block.end(), value.begin(), value.end());
  }
  Bytes8 out;
  put_frame(out, kFrameHeaders, block);
  return out;
}

enum class Dial : std::uint8_t { d02, d07, d13, d15 };

// Control stream: type 0x00 then SETTINGS as a peer of that dialect sends it.
Bytes8 control_stream(Dial d) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> s = {{kSettingsEnableConnectProtocol, 1},
                                                            {kSettingsH3Datagram, 1}};
  switch (d) {
    case Dial::d02:
      s = {{kSettingsEnableWebtransport, 1}, {kSettingsH3Datagram, 1}, {kSettingsH3DatagramDraft04, 1}};
      break;
    case Dial::d07:
      s.push_back({kSettingsWebtransportMaxSessionsDraft07, 1});
      break;
    case Dial::d13:
      s.push_back({kSettingsWtMaxSessions, 4});
      break;
    case Dial::d15:
      s.push_back({kSettingsWtEnabled, 1});
      break;
  }
  Bytes8 payload;
  for (const auto &[id, v] : s) {
    put_varint(payload, id);
    put_varint(payload, v);
  }
  Bytes8 out = {static_cast<std::uint8_t>(kStreamTypeControl)};
  put_frame(out, kFrameSettings, payload);
  return out;
}

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  [[nodiscard]] bool done() const noexcept { return at_ >= in_.size(); }
  std::uint8_t u8() { return done() ? 0 : in_[at_++]; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() << 8 | u8()); }
  std::span<const std::uint8_t> take(std::size_t n) {
    n = std::min(n, in_.size() - at_);
    auto s = in_.subspan(at_, n);
    at_ += n;
    return s;
  }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t at_ = 0;
};

// Stream and session error codes a peer plausibly sends, plus raw ones.
std::uint64_t pick_code(Reader &r) {
  static constexpr std::uint64_t kCodes[] = {0,
                                             kH3NoError,
                                             kH3RequestCancelled,
                                             kH3MessageError,
                                             kWtSessionGone,
                                             kWtBufferedStreamRejected,
                                             kWtAppErrorFirst,
                                             kWtAppErrorFirst + 0x1e,
                                             kWtAppErrorLast,
                                             kH3ConnectError};
  const std::uint8_t b = r.u8();
  if (b < sizeof kCodes / sizeof kCodes[0]) return kCodes[b];
  return kWtAppErrorFirst + r.u16();
}

// The owner: accepts every session (but "/reject"), and gives each session
// the echo behaviour of the test server, bounded.
class Owner final : public H3Owner {
 public:
  std::shared_ptr<Connection> owner_connection() override { return nullptr; }
  void on_h3_ready() override { ready = true; }
  ConnectDecision on_session_request(const ConnectRequest &req) override {
    if (req.path == "/reject") return ConnectDecision::reject(404);
    return {};
  }
  void on_session_accepted(const std::shared_ptr<SessionImpl> &s, ConnectDecision &) override { serve(s); }
  void on_transport_closed(const Error &) override { transport_closed = true; }
  void on_error_counted() override { ++errors; }
  void on_activity() override {}

  static void serve(const std::shared_ptr<Session> &s) {
    std::weak_ptr<Session> ws = s;
    s->on_bidi_stream([](std::shared_ptr<Stream> st) {
      std::weak_ptr<Stream> w = st;
      st->on_data([w](std::span<const std::uint8_t> d, bool fin) {
        auto s = w.lock();
        if (!s) return;
        if (!d.empty() && s->writable()) s->write(Bytes(d.begin(), d.end()));
        if (fin) s->end();
      });
    });
    s->on_uni_stream([](std::shared_ptr<Stream> st) { st->on_data([](std::span<const std::uint8_t>, bool) {}); });
    s->on_datagram([ws](std::span<const std::uint8_t> d) {
      if (auto s = ws.lock()) (void)s->send_datagram(d);
    });
  }

  bool ready = false, transport_closed = false;
  int errors = 0;
};

uv_loop_t *loop() {
  static uv_loop_t *l = [] {
    uvwt::set_log_level(LogLevel::off);  // peer errors are the normal case here
    auto *x = new uv_loop_t;
    uv_loop_init(x);
    return x;
  }();
  return l;
}

void run_loop() {
  for (int i = 0; i < 4; ++i) uv_run(loop(), UV_RUN_NOWAIT);
}

struct Harness {
  Owner owner;
  TransportConfig cfg;
  ServerConfig server_cfg;
  QuicConnection quic;
  std::unique_ptr<H3Connection> h3;
  std::shared_ptr<Session> client_session;

  explicit Harness(bool server) : quic(server) {
    cfg.max_pending_streams = 4;
    cfg.max_pending_datagrams = 4;
    cfg.stream_send_buffer = 4096;
    cfg.connection_send_buffer = 16384;
    h3 = std::make_unique<H3Connection>(owner, std::make_shared<Deferred>(loop()), server, cfg,
                                        server ? &server_cfg : nullptr, Address{});
    h3->attach(&quic);
  }

  [[nodiscard]] bool closed() const { return quic.close_requested(); }

  // Delivers stream bytes the way ngtcp2 would, or not at all.
  void stream_data(std::int64_t sid, bool fin, std::span<const std::uint8_t> data) {
    if (closed()) return;
    if (quic.is_local(sid) && ((sid & 2) != 0 || !quic.known(sid))) return;  // our uni, or never opened
    auto &st = quic.stream(sid);
    if (st.closed || st.fin_received || st.reset_received) return;
    if (st.read_shut) {  // ngtcp2 counts the bytes for flow control, the app never sees them
      return;
    }
    st.received += data.size();
    st.fin_received = fin;
    const bool ok = h3->on_stream_data(sid, fin, data.empty() ? nullptr : data.data(), data.size());
    // false means a connection error, already recorded (quic_app.hpp).
    FUZZ_CHECK(ok || closed());
  }

  void pump(std::size_t budget, bool accept_datagrams) {
    for (int i = 0; i < 64 && !closed(); ++i) {
      if (h3->next_datagram() != nullptr) {
        h3->on_datagram_written(accept_datagrams);
        continue;
      }
      StreamWrite w;
      h3->next_stream_write(w);
      if (w.stream_id < 0) return;
      FUZZ_CHECK(quic.known(w.stream_id));
      auto &st = quic.stream(w.stream_id);
      FUZZ_CHECK(!st.fin_written || (w.total() == 0 && !w.fin) || st.write_shut || st.closed);
      if (st.write_shut || st.closed) {
        h3->on_stream_blocked(w.stream_id, true);
        continue;
      }
      if (budget == 0 && w.total() > 0) {
        h3->on_stream_blocked(w.stream_id, false);
        return;
      }
      const std::size_t n = std::min(w.total(), budget);
      budget -= n;
      const bool fin = w.fin && n == w.total();
      st.written += n;
      st.fin_written = st.fin_written || fin;
      h3->on_stream_written(w.stream_id, n, fin);
      if (n == 0 && !fin) return;
    }
  }

  void ack_all() {
    for (const auto &[sid, st] : quic.streams()) {
      if (st.written > st.acked && !st.closed) {
        const std::uint64_t n = st.written - st.acked;
        quic.stream(sid).acked = st.written;
        h3->on_acked_stream_data(sid, n);
      }
    }
  }

  void close_stream(std::int64_t sid, bool has_code, std::uint64_t code) {
    if (!quic.known(sid) || quic.stream(sid).closed) return;
    quic.stream(sid).closed = true;
    if (!quic.is_local(sid)) ++quic.peer_streams_closed[(sid & 2) != 0 ? 1 : 0];
    h3->on_stream_close(sid, has_code, code);
  }

  void setup(Dial d, bool with_session) {
    h3->on_handshake_completed();
    const auto ctrl = control_stream(d);
    const std::uint8_t qenc[] = {0x02}, qdec[] = {0x03};
    const std::int64_t base = quic.server() ? 2 : 3;  // the peer's first uni stream
    stream_data(base, false, ctrl);
    stream_data(base + 4, false, qenc);
    stream_data(base + 8, false, qdec);
    run_loop();
    FUZZ_CHECK(!closed() && owner.ready);  // handshake done and, for a client, the server's SETTINGS seen
    if (!with_session) return;
    const std::string_view proto = d == Dial::d15 ? "webtransport-h3" : "webtransport";
    if (quic.server()) {
      std::vector<std::pair<std::string_view, std::string_view>> f = {
          {":method", "CONNECT"},      {":protocol", proto}, {":scheme", "https"},
          {":authority", "localhost"}, {":path", "/echo"},   {"origin", "https://localhost"}};
      if (d == Dial::d02) f.push_back({"sec-webtransport-http3-draft02", "1"});
      stream_data(0, false, headers_frame(f));
    } else {
      h3->open_session("localhost", "/echo", {}, {}, [this](const Error &e, std::shared_ptr<Session> s) {
        if (!e && s) {
          client_session = s;
          Owner::serve(s);
        }
      });
      pump(1 << 16, true);
      std::vector<std::pair<std::string_view, std::string_view>> f = {{":status", "200"}};
      if (d == Dial::d02) f.push_back({"sec-webtransport-http3-draft", "draft02"});
      stream_data(0, false, headers_frame(f));
    }
    run_loop();
    // The setup is valid input: it must always yield a ready session.
    FUZZ_CHECK(!closed() && any_session() != nullptr && any_session()->is_ready());
    FUZZ_CHECK(quic.server() || client_session != nullptr);
    pump(1 << 16, true);
    ack_all();
  }

  std::shared_ptr<SessionImpl> any_session() {
    auto all = h3->sessions();
    return all.empty() ? nullptr : all.front();
  }

  void app_action(Reader &r, std::int64_t sid) {
    const std::uint8_t what = r.u8();
    if (what % 8 == 5 || what % 8 == 6) {  // GOAWAY, as a server going away sends it
      if (!quic.server()) return;
      if (what % 8 == 5)
        h3->shutdown_notice();
      else
        h3->shutdown_final();
      return;
    }
    if (what % 8 == 7) {  // the application acts on one WebTransport stream
      auto st = h3->wt_stream(sid);
      if (!st) return;
      switch (r.u8() % 4) {
        case 0:
          st->reset(r.u8());
          break;
        case 1:
          st->stop_sending(r.u8());
          break;
        case 2:
          st->pause();
          break;
        case 3:
          st->resume();
          break;
      }
      return;
    }
    auto s = any_session();
    if (!s) return;
    switch (what % 8) {
      case 0:
        s->close(static_cast<std::uint32_t>(r.u16()), "fuzz", {});
        break;
      case 1:
        s->open_bidi_stream([](const Error &e, std::shared_ptr<Stream> st) {
          if (!e && st) st->write(std::string_view("hello from the app"));
        });
        break;
      case 2:
        s->open_uni_stream([](const Error &e, std::shared_ptr<Stream> st) {
          if (!e && st) st->write_and_end(Bytes(100, 0x61));
        });
        break;
      case 3: {
        const auto payload = r.take(r.u8());
        (void)s->send_datagram(payload);
        break;
      }
      case 4:
        s->drain();
        break;
    }
  }

  void event(Reader &r) {
    const std::uint8_t op = r.u8();
    const auto sid = static_cast<std::int64_t>(r.u8());
    switch (op % 10) {
      case 0: {  // stream bytes
        const std::uint8_t flags = r.u8();
        std::size_t len = r.u8();
        if (len == 255) len = r.u16();
        stream_data(sid, (flags & 1) != 0, r.take(len));
        break;
      }
      case 1: {  // datagram (the id byte is its length)
        const auto d = r.take(static_cast<std::size_t>(sid));
        if (!closed()) h3->on_datagram(d.empty() ? nullptr : d.data(), d.size());
        break;
      }
      case 2:  // RESET_STREAM from the peer
        if (!closed() && !(quic.is_local(sid) && ((sid & 2) != 0 || !quic.known(sid)))) {
          auto &st = quic.stream(sid);
          if (!st.closed && !st.reset_received) {
            st.reset_received = true;
            // A final size at or past what was delivered (RFC 9000 4.5); the
            // excess comes from the code's low bits so the corpora keep
            // their meaning (no extra input byte is taken).
            const auto code = pick_code(r);
            h3->on_stream_reset(sid, st.received + (code & 0x3ff), code);
          }
        }
        break;
      case 3:  // STOP_SENDING from the peer: only for streams we can write
        if (!closed() && quic.known(sid) && ((sid & 2) == 0 || quic.is_local(sid)) && !quic.stream(sid).closed) {
          quic.stream(sid).write_shut = true;
          h3->on_stop_sending(sid, pick_code(r));
        }
        break;
      case 4:
        if (!closed()) close_stream(sid, (r.u8() & 1) != 0, pick_code(r));
        break;
      case 5:
        pump(static_cast<std::size_t>(r.u8()) * 16, (r.u8() & 1) == 0);
        break;
      case 6:
        if (!closed()) ack_all();
        break;
      case 7:
        if (closed()) break;
        if ((sid & 1) != 0)
          h3->on_extend_max_local_streams((sid & 2) == 0);
        else if (quic.known(sid))
          h3->on_extend_max_stream_data(sid);
        break;
      case 8:
        if (!closed()) app_action(r, sid);
        break;
      case 9:
        if (!closed() && quic.known(sid)) h3->on_stream_blocked(sid, false);
        break;
    }
    run_loop();
  }

  void teardown() {
    h3->on_quic_closed(quic.close_requested() ? quic.close_error() : Error(Errc::connection, "fuzz input ended"));
    client_session.reset();
    run_loop();
    h3.reset();
    run_loop();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  Reader r(std::span<const std::uint8_t>(data, size));
  const std::uint8_t head = r.u8();
  Harness h((head & 1) == 0);
  h.setup(static_cast<Dial>((head >> 2) & 3), (head & 2) != 0);
  for (int n = 0; !r.done() && n < 4096; ++n) h.event(r);
  if (!h.closed()) {
    h.pump(1 << 16, true);
    h.ack_all();
  }
  h.teardown();
  return 0;
}

namespace uvwt_fuzz {
std::vector<std::vector<std::uint8_t>> seeds() {
  std::vector<std::vector<std::uint8_t>> s;
  auto stream = [](Bytes8 &out, std::uint8_t sid, bool fin, const Bytes8 &bytes) {
    out.insert(out.end(), {0, sid, static_cast<std::uint8_t>(fin ? 1 : 0)});
    if (bytes.size() >= 255) {
      out.insert(out.end(),
                 {255, static_cast<std::uint8_t>(bytes.size() >> 8), static_cast<std::uint8_t>(bytes.size())});
    } else {
      out.push_back(static_cast<std::uint8_t>(bytes.size()));
    }
    out.insert(out.end(), bytes.begin(), bytes.end());
  };
  for (std::uint8_t role = 0; role < 2; ++role) {
    for (std::uint8_t d = 0; d < 4; ++d) {
      const std::uint8_t head = static_cast<std::uint8_t>(role | 2 | d << 2);
      const std::uint8_t bidi = role == 0 ? 4 : 1, uni = role == 0 ? 14 : 15;
      Bytes8 in = {head};
      // A WebTransport bidi stream of session 0 with data and FIN, a uni one, a datagram.
      // 0x41 and 0x54 are two-byte varints (0x40 0x41, 0x40 0x54), then the session id.
      stream(in, bidi, true, {0x40, 0x41, 0x00, 'p', 'i', 'n', 'g'});
      stream(in, uni, false, {0x40, 0x54, 0x00, 'u', 'n', 'i'});
      in.insert(in.end(), {1, 4, 0x00, 'd', 'g', '!'});
      in.insert(in.end(), {5, 0, 0xff, 0});  // pump
      in.insert(in.end(), {6, 0});           // ack
      // A capsule on the CONNECT stream (DATA frame), then the app acts.
      Bytes8 cap, data;
      put_varint(cap, kCapsuleMaxData);
      put_varint(cap, 1);
      put_varint(cap, 9);
      put_frame(data, kFrameData, cap);
      stream(in, 0, false, data);
      in.insert(in.end(), {8, 0, 1, 8, 0, 2, 8, 0, 3, 2, 'h', 'i'});
      in.insert(in.end(), {5, 0, 0x10, 0, 6, 0});
      s.push_back(in);
      // WT_CLOSE_SESSION then FIN on the CONNECT stream.
      Bytes8 close_in = {head}, close_cap, close_data;
      put_varint(close_cap, kCapsuleCloseSession);
      put_varint(close_cap, 6);
      close_cap.insert(close_cap.end(), {0, 0, 0, 7, 'b', 'y'});
      put_frame(close_data, kFrameData, close_cap);
      stream(close_in, 0, true, close_data);
      close_in.insert(close_in.end(), {5, 0, 0xff, 0, 4, 0, 1, 1});
      s.push_back(close_in);
      // Early streams and datagrams for a session that is not there yet.
      Bytes8 early = {static_cast<std::uint8_t>(role | d << 2)};
      stream(early, bidi, false, {0x40, 0x41, 0x08, 'e'});
      early.insert(early.end(), {1, 2, 0x02, 'x'});
      s.push_back(early);
    }
  }
  // GOAWAY on the peer's control stream, and a reset of a request stream.
  Bytes8 goaway = {2}, g;
  put_frame(g, kFrameGoaway, {0x04});
  stream(goaway, 2, false, g);
  goaway.insert(goaway.end(), {2, 0, 3});
  s.push_back(goaway);
  return s;
}
}  // namespace uvwt_fuzz
