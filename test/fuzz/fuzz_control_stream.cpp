// Control streams. The input is a whole control stream (type varint first).
// Reader: fed the bytes after the type, it must reach the same verdict and
// settings whatever the split. Rewriter: fed the input as nghttp3 output in
// random pieces, it must produce the same wire bytes, pass everything but the
// SETTINGS frame one for one, credit nghttp3 monotonically and in full, and
// keep a valid control stream valid.

#include <algorithm>

#include "fuzz_support.hpp"
#include "h3/control_stream.hpp"
#include "h3/varint.hpp"

using namespace uvwt::detail;

namespace {

bool same(const PeerSettings &a, const PeerSettings &b) {
  return a.received == b.received && a.enable_connect_protocol == b.enable_connect_protocol &&
         a.h3_datagram == b.h3_datagram && a.h3_datagram_rfc == b.h3_datagram_rfc &&
         a.h3_datagram_draft04 == b.h3_datagram_draft04 &&
         a.enable_webtransport_draft02 == b.enable_webtransport_draft02 &&
         a.wt_max_sessions_draft07 == b.wt_max_sessions_draft07 &&
         a.wt_max_sessions_draft13 == b.wt_max_sessions_draft13 && a.wt_enabled == b.wt_enabled &&
         a.wt_initial_max_data == b.wt_initial_max_data &&
         a.wt_initial_max_streams_uni == b.wt_initial_max_streams_uni &&
         a.wt_initial_max_streams_bidi == b.wt_initial_max_streams_bidi;
}

std::uint64_t read_all(ControlStreamReader &r, std::span<const std::uint8_t> in, const std::vector<std::size_t> &cuts) {
  std::uint64_t rc = 0;
  uvwt_fuzz::for_pieces(in, cuts, [&](std::span<const std::uint8_t> piece) {
    const std::uint64_t now = r.feed(piece);
    if (rc != 0) FUZZ_CHECK(now == rc);  // errors stick
    rc = now;
  });
  return rc;
}

std::vector<std::uint8_t> rewrite(ControlStreamRewriter &w, std::span<const std::uint8_t> in,
                                  const std::vector<std::size_t> &cuts) {
  std::vector<std::uint8_t> out;
  uvwt_fuzz::for_pieces(in, cuts, [&](std::span<const std::uint8_t> piece) {
    w.feed(piece);
    // Mix the two output interfaces.
    if (piece.size() % 2 == 0) {
      const auto p = w.pending();
      out.insert(out.end(), p.begin(), p.end());
      w.consume(p.size());
    } else {
      const auto t = w.take();
      out.insert(out.end(), t.begin(), t.end());
    }
  });
  FUZZ_CHECK(w.pending().empty());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const auto type = varint_read(in);

  // ---- reader
  const auto body = type ? in.subspan(type->len) : in;
  ControlStreamReader whole;
  const std::uint64_t rc = read_all(whole, body, {});
  FUZZ_CHECK(rc == whole.error());
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < body.size() && body.size() <= 1024; ++i) bytewise.push_back(i);
  for (const auto &cuts : {uvwt_fuzz::cuts_for(body, 3), bytewise}) {
    ControlStreamReader r;
    FUZZ_CHECK(read_all(r, body, cuts) == rc);
    FUZZ_CHECK(same(r.settings(), whole.settings()));
  }

  // ---- rewriter
  LocalWtSettings local;
  std::uint64_t h = 0;
  for (std::uint8_t b : in) h = h * 31 + b;
  local.max_sessions = h % 5 == 0 ? 0 : (h % 100) + 1;
  local.flow_control = (h & 0x100) != 0;
  local.h3_datagram_draft04 = (h & 0x200) == 0;

  ControlStreamRewriter w1, w2;
  w1.set_local_settings(local);
  w2.set_local_settings(local);
  const auto out = rewrite(w1, in, {});
  FUZZ_CHECK(rewrite(w2, in, uvwt_fuzz::cuts_for(in, 4)) == out);
  FUZZ_CHECK(w1.nghttp3_bytes_fed() == size && w1.wire_bytes_produced() == out.size());
  FUZZ_CHECK(w1.settings_done() == w2.settings_done() && w1.settings_rewritten() == w2.settings_rewritten());
  if (!w1.settings_rewritten()) {
    if (w1.settings_done())
      FUZZ_CHECK(out == std::vector<std::uint8_t>(in.begin(), in.end()));
    else
      FUZZ_CHECK(out.size() <= size && std::equal(out.begin(), out.end(), in.begin()));
  }

  // Ack translation: monotonic, never past what nghttp3 wrote, complete at
  // the end, and wherever it advances one for one the bytes are the same.
  const std::size_t step = out.size() > 4096 ? out.size() / 1024 : 1;
  std::uint64_t prev = 0;
  for (std::uint64_t W = 0; W <= out.size(); W += step) {
    const std::uint64_t off = w1.nghttp3_offset_for_wire_acked(W);
    FUZZ_CHECK(off >= prev && off <= size);
    FUZZ_CHECK(w2.nghttp3_offset_for_wire_acked(W) == off);
    if (step == 1 && W < out.size() && w1.nghttp3_offset_for_wire_acked(W + 1) == off + 1) {
      FUZZ_CHECK(out[W] == in[off]);
    }
    prev = off;
  }
  if (w1.settings_done()) FUZZ_CHECK(w1.nghttp3_offset_for_wire_acked(out.size()) == size);

  // A valid control stream stays valid, with the peer's SETTINGS intact.
  if (type && type->value == 0 && rc == 0 && w1.settings_done()) {
    ControlStreamReader r;
    const auto out_type = varint_read(out);
    FUZZ_CHECK(out_type && out_type->len == type->len);
    FUZZ_CHECK(r.feed(std::span(out).subspan(out_type->len)) == 0);
    FUZZ_CHECK(r.settings_received() == whole.settings_received());
    FUZZ_CHECK(r.settings().enable_connect_protocol == whole.settings().enable_connect_protocol);
    FUZZ_CHECK(r.settings().h3_datagram_rfc == whole.settings().h3_datagram_rfc);
    if (w1.settings_rewritten())
      FUZZ_CHECK(r.settings().wt_max_sessions_draft13 != 0 || whole.settings().wt_max_sessions_draft13 == 0);
  }
  return 0;
}

namespace uvwt_fuzz {
std::vector<std::vector<std::uint8_t>> seeds() {
  return {
      // nghttp3 1.8 client control stream, then its GOAWAY.
      {0x00, 0x04, 0x0f, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xff, 0x01, 0x00, 0x07, 0x00, 0x33, 0x01, 0x07, 0x01, 0x00},
      // A server's, with connect protocol and a GREASE setting and frame.
      {0x00, 0x04, 0x0b, 0x01, 0x50, 0x00, 0x07, 0x40, 0x64, 0x08, 0x01, 0x33, 0x01, 0x21, 0x00, 0x21, 0x02, 0xaa,
       0xbb},
      // A browser's, already announcing WebTransport.
      {0x00, 0x04, 0x14, 0x08, 0x01, 0x33, 0x01, 0x80, 0x2b, 0x60, 0x37, 0x42, 0x01,
       0xc0, 0x00, 0x00, 0x00, 0xc6, 0x71, 0x70, 0x6a, 0x04, 0x07, 0x01, 0x04},
      {0x00, 0x04, 0x00},        // empty SETTINGS
      {0x00, 0x07, 0x01, 0x00},  // GOAWAY first
      {0x02, 0x04, 0x00},        // not a control stream
  };
}
}  // namespace uvwt_fuzz
