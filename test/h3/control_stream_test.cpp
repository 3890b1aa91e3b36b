#include "h3/control_stream.hpp"

#include <nghttp3/nghttp3.h>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "catch.hpp"
#include "h3/varint.hpp"
#include "h3/wt_codes.hpp"

using namespace uvwt::detail;

namespace {

using Bytes = std::vector<std::uint8_t>;
using Pairs = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

void put(Bytes &b, std::uint64_t v) {
  std::uint8_t tmp[8];
  b.insert(b.end(), tmp, varint_write(tmp, v));
}

Bytes frame(std::uint64_t type, const Bytes &payload) {
  Bytes b;
  put(b, type);
  put(b, payload.size());
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes settings_payload(const Pairs &pairs) {
  Bytes b;
  for (auto [id, v] : pairs) {
    put(b, id);
    put(b, v);
  }
  return b;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const auto &p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}

// An independent reading of a control stream: stream type, then frames.
struct Parsed {
  std::uint64_t stream_type = ~0ull;
  std::vector<std::pair<std::uint64_t, Bytes>> frames;
};

Parsed parse_stream(const Bytes &b) {
  Parsed p;
  std::span<const std::uint8_t> rest(b);
  auto t = varint_read(rest);
  REQUIRE(t);
  p.stream_type = t->value;
  rest = rest.subspan(t->len);
  while (!rest.empty()) {
    auto type = varint_read(rest);
    REQUIRE(type);
    rest = rest.subspan(type->len);
    auto len = varint_read(rest);
    REQUIRE(len);
    rest = rest.subspan(len->len);
    REQUIRE(rest.size() >= len->value);
    p.frames.emplace_back(type->value, Bytes(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(len->value)));
    rest = rest.subspan(len->value);
  }
  return p;
}

std::map<std::uint64_t, std::uint64_t> pairs_of(const Bytes &payload) {
  std::map<std::uint64_t, std::uint64_t> m;
  std::span<const std::uint8_t> rest(payload);
  while (!rest.empty()) {
    auto id = varint_read(rest);
    REQUIRE(id);
    rest = rest.subspan(id->len);
    auto v = varint_read(rest);
    REQUIRE(v);
    rest = rest.subspan(v->len);
    REQUIRE(m.count(id->value) == 0);  // never a repeated id
    m[id->value] = v->value;
  }
  return m;
}

std::uint64_t feed_pieces(ControlStreamReader &r, const Bytes &b, const std::vector<std::size_t> &cuts) {
  std::size_t at = 0;
  std::uint64_t rc = 0;
  for (std::size_t cut : cuts) {
    rc = r.feed(std::span(b).subspan(at, cut - at));
    if (rc != 0) return rc;
    at = cut;
  }
  return r.feed(std::span(b).subspan(at));
}

Bytes rewrite_pieces(const Bytes &in, const std::vector<std::size_t> &cuts, const LocalWtSettings &local = {}) {
  ControlStreamRewriter w;
  w.set_local_settings(local);
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    w.feed(std::span(in).subspan(at, cut - at));
    at = cut;
  }
  w.feed(std::span(in).subspan(at));
  REQUIRE(w.nghttp3_bytes_fed() == in.size());
  const Bytes out = w.take();
  REQUIRE(out.size() == w.wire_bytes_produced());
  return out;
}

const Pairs kPeerPairs = {{0x06, 16384},   {0x08, 1},       {0x33, 1},       {0x2b603742, 1},
                          {0xc671706a, 8}, {0x14e9cd29, 8}, {0x2c7cf000, 1}, {0x1f * 3 + 0x21, 77},
                          {0x777777, 5},   {0x2b61, 65536}, {0x2b64, 10},    {0x2b65, 11}};

void check_peer_settings(const ControlStreamReader &r) {
  REQUIRE(r.settings_received());
  const PeerSettings &s = r.settings();
  CHECK(s.enable_connect_protocol);
  CHECK(s.h3_datagram);
  CHECK(s.enable_webtransport_draft02 == 1);
  CHECK(s.wt_max_sessions_draft07 == 8);
  CHECK(s.wt_max_sessions_draft13 == 8);
  CHECK(s.wt_enabled == 1);
  CHECK(s.wt_initial_max_data == 65536);
  CHECK(s.wt_initial_max_streams_uni == 10);
  CHECK(s.wt_initial_max_streams_bidi == 11);
  CHECK(negotiate_dialect(LocalWtSettings{}, s, PeerRole::server) == Dialect::draft15);
}

}  // namespace

// ------------------------------------------------------------------ reader

TEST_CASE("ControlStreamReader reads SETTINGS split at every point", "[h3][control]") {
  Bytes goaway;
  put(goaway, 4);
  const Bytes stream = cat({frame(kFrameSettings, settings_payload(kPeerPairs)), frame(kFrameGoaway, goaway),
                            frame(0x21, Bytes(300, 0xab)), frame(kFrameMaxPushId, {0x05})});

  SECTION("in one piece") {
    ControlStreamReader r;
    REQUIRE(r.feed(stream) == 0);
    check_peer_settings(r);
  }
  SECTION("byte by byte") {
    ControlStreamReader r;
    for (std::size_t i = 0; i < stream.size(); ++i) REQUIRE(r.feed(std::span(stream).subspan(i, 1)) == 0);
    check_peer_settings(r);
  }
  SECTION("every two-piece split") {
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      ControlStreamReader r;
      REQUIRE(feed_pieces(r, stream, {cut}) == 0);
      check_peer_settings(r);
    }
  }
  SECTION("every three-piece split of the SETTINGS frame") {
    const std::size_t n = frame(kFrameSettings, settings_payload(kPeerPairs)).size() + 2;
    for (std::size_t a = 0; a <= n; ++a) {
      for (std::size_t b = a; b <= n; ++b) {
        ControlStreamReader r;
        REQUIRE(feed_pieces(r, stream, {a, b}) == 0);
        REQUIRE(r.settings_received());
        REQUIRE(r.settings().wt_initial_max_streams_bidi == 11);
      }
    }
  }
  SECTION("received only once the whole frame is in") {
    const Bytes f = frame(kFrameSettings, settings_payload(kPeerPairs));
    ControlStreamReader r;
    REQUIRE(r.feed(std::span(f).first(f.size() - 1)) == 0);
    CHECK_FALSE(r.settings_received());
    REQUIRE(r.feed(std::span(f).last(1)) == 0);
    CHECK(r.settings_received());
  }
}

TEST_CASE("ControlStreamReader accepts an empty SETTINGS frame", "[h3][control]") {
  ControlStreamReader r;
  const Bytes f = frame(kFrameSettings, {});
  REQUIRE(r.feed(f) == 0);
  CHECK(r.settings_received());
  CHECK(negotiate_dialect(LocalWtSettings{}, r.settings(), PeerRole::client) == Dialect::none);
}

TEST_CASE("ControlStreamReader streams past large frames", "[h3][control]") {
  // A 1 MiB unknown frame: its header says so, the payload is only counted.
  Bytes head;
  put(head, 0x1f * 10 + 0x21);
  put(head, 1 << 20);
  ControlStreamReader r;
  REQUIRE(r.feed(frame(kFrameSettings, settings_payload({{0x08, 1}}))) == 0);
  REQUIRE(r.feed(head) == 0);
  const Bytes chunk(4096, 0x5a);
  for (int i = 0; i < 256; ++i) REQUIRE(r.feed(chunk) == 0);
  // Back at a frame boundary: a second SETTINGS is now recognised as such.
  CHECK(r.feed(frame(kFrameSettings, {})) == kH3FrameUnexpected);
}

TEST_CASE("ControlStreamReader errors", "[h3][control]") {
  ControlStreamReader r;
  SECTION("first frame is not SETTINGS") {
    Bytes goaway;
    put(goaway, 0);
    CHECK(r.feed(frame(kFrameGoaway, goaway)) == kH3MissingSettings);
  }
  SECTION("first frame type is known before its length") {
    const std::uint8_t unknown_type[] = {0x21};
    CHECK(r.feed(unknown_type) == kH3MissingSettings);
  }
  SECTION("second SETTINGS") {
    REQUIRE(r.feed(frame(kFrameSettings, {})) == 0);
    CHECK(r.feed(frame(kFrameSettings, {})) == kH3FrameUnexpected);
  }
  SECTION("request frames on the control stream") {
    REQUIRE(r.feed(frame(kFrameSettings, {})) == 0);
    for (std::uint64_t t : std::initializer_list<std::uint64_t>{kFrameData, kFrameHeaders, kFramePushPromise, 0x02ull,
                                                                0x06ull, 0x08ull, 0x09ull}) {
      ControlStreamReader r2;
      REQUIRE(r2.feed(frame(kFrameSettings, {})) == 0);
      CHECK(r2.feed(frame(t, {1, 2})) == kH3FrameUnexpected);
    }
  }
  SECTION("SETTINGS longer than the cap, refused from its header") {
    Bytes head;
    put(head, kFrameSettings);
    put(head, ControlStreamReader::kMaxSettingsSize + 1);
    CHECK(r.feed(head) == kH3SettingsError);
  }
  SECTION("SETTINGS of exactly the cap is fine") {
    Pairs many;
    // 2-byte ids and values: 4 bytes per pair.
    for (std::uint64_t i = 0; i < ControlStreamReader::kMaxSettingsSize / 4; ++i) many.emplace_back(0x1000 + i, 0x100);
    const Bytes f = frame(kFrameSettings, settings_payload(many));
    REQUIRE(f.size() == 1 + 4 + ControlStreamReader::kMaxSettingsSize);
    CHECK(r.feed(f) == 0);
    CHECK(r.settings_received());
  }
  SECTION("a pair cut off by the frame end") {
    // Length 1: only the id fits.
    const std::uint8_t only_id[] = {0x04, 0x01, 0x08};
    CHECK(r.feed(only_id) == kH3FrameError);
  }
  SECTION("a value varint running past the frame end") {
    const std::uint8_t short_value[] = {0x04, 0x02, 0x06, 0x40, 0x01};
    CHECK(r.feed(short_value) == kH3FrameError);
  }
  SECTION("a value cut off is noticed byte by byte too") {
    const std::uint8_t short_value[] = {0x04, 0x02, 0x06, 0x40, 0x01};
    std::uint64_t rc = 0;
    for (std::uint8_t b : short_value) {
      rc = r.feed(std::span<const std::uint8_t>(&b, 1));
      if (rc != 0) break;
    }
    CHECK(rc == kH3FrameError);
  }
  SECTION("a repeated id") {
    CHECK(r.feed(frame(kFrameSettings, settings_payload({{0x2b603742, 1}, {0x2b603742, 1}}))) == kH3SettingsError);
  }
  SECTION("HTTP/2-only ids") {
    for (std::uint64_t id : {0x02ull, 0x03ull, 0x04ull, 0x05ull}) {
      ControlStreamReader r2;
      CHECK(r2.feed(frame(kFrameSettings, settings_payload({{id, 0}}))) == kH3SettingsError);
    }
  }
  SECTION("boolean settings above 1") {
    CHECK(r.feed(frame(kFrameSettings, settings_payload({{0x08, 2}}))) == kH3SettingsError);
    ControlStreamReader r2;
    CHECK(r2.feed(frame(kFrameSettings, settings_payload({{0x33, 7}}))) == kH3SettingsError);
  }
  SECTION("errors stick") {
    const std::uint8_t bad[] = {0x00, 0x00};
    REQUIRE(r.feed(bad) == kH3MissingSettings);
    CHECK(r.failed());
    CHECK(r.feed(frame(kFrameSettings, {})) == kH3MissingSettings);
    CHECK(r.error() == kH3MissingSettings);
    CHECK(r.on_fin() == kH3MissingSettings);
  }
  SECTION("the end of the stream is an error") {
    REQUIRE(r.feed(frame(kFrameSettings, {})) == 0);
    CHECK(r.on_fin() == kH3ClosedCriticalStream);
    CHECK(r.error() == kH3ClosedCriticalStream);
  }
}

// ---------------------------------------------------------------- rewriter

namespace {

// What nghttp3 writes: stream type, SETTINGS with its own ids, later a GOAWAY.
Bytes nghttp3_like_stream(Bytes *goaway_frame = nullptr) {
  Bytes goaway_payload;
  put(goaway_payload, 0x1234);
  const Bytes goaway = frame(kFrameGoaway, goaway_payload);
  if (goaway_frame != nullptr) *goaway_frame = goaway;
  return cat({{0x00},
              frame(kFrameSettings, settings_payload({{0x06, 65536}, {0x01, 4096}, {0x07, 100}, {0x08, 1}, {0x33, 1}})),
              goaway});
}

void check_rewritten(const Bytes &wire, const Bytes &goaway, const LocalWtSettings &local) {
  const Parsed p = parse_stream(wire);
  REQUIRE(p.stream_type == 0x00);
  REQUIRE(p.frames.size() == 2);
  REQUIRE(p.frames[0].first == kFrameSettings);
  const auto pairs = pairs_of(p.frames[0].second);
  // nghttp3's own first, untouched and in order.
  CHECK(pairs.at(0x06) == 65536);
  CHECK(pairs.at(0x01) == 4096);
  CHECK(pairs.at(0x07) == 100);
  CHECK(pairs.at(0x08) == 1);
  CHECK(pairs.at(0x33) == 1);
  CHECK(pairs.at(0x2b603742) == 1);
  CHECK(pairs.at(0xc671706a) == local.max_sessions);
  CHECK(pairs.at(0x14e9cd29) == local.max_sessions);
  CHECK(pairs.at(0x2c7cf000) == 1);
  CHECK(pairs.at(0xffd277) == 1);
  CHECK(pairs.count(0x2b61) == (local.flow_control ? 1u : 0u));
  CHECK(p.frames[1].first == kFrameGoaway);
  // Later frames pass byte for byte.
  REQUIRE(wire.size() >= goaway.size());
  CHECK(Bytes(wire.end() - static_cast<std::ptrdiff_t>(goaway.size()), wire.end()) == goaway);
  // And our own reader finds a draft15 peer in it.
  ControlStreamReader r;
  REQUIRE(r.feed(std::span(wire).subspan(1)) == 0);
  REQUIRE(r.settings_received());
  CHECK(negotiate_dialect(LocalWtSettings{}, r.settings(), PeerRole::server) == Dialect::draft15);
}

}  // namespace

TEST_CASE("ControlStreamRewriter extends SETTINGS whatever the split", "[h3][control]") {
  Bytes goaway;
  const Bytes in = nghttp3_like_stream(&goaway);
  LocalWtSettings local;
  local.max_sessions = 9;
  const Bytes whole = rewrite_pieces(in, {}, local);
  check_rewritten(whole, goaway, local);

  SECTION("every two-piece split gives the same bytes") {
    for (std::size_t a = 0; a <= in.size(); ++a) REQUIRE(rewrite_pieces(in, {a}, local) == whole);
  }
  SECTION("every three-piece split gives the same bytes") {
    for (std::size_t a = 0; a <= in.size(); ++a)
      for (std::size_t b = a; b <= in.size(); ++b) REQUIRE(rewrite_pieces(in, {a, b}, local) == whole);
  }
  SECTION("byte by byte") {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
    REQUIRE(rewrite_pieces(in, cuts, local) == whole);
  }
  SECTION("with flow control settings") {
    local.flow_control = true;
    check_rewritten(rewrite_pieces(in, {3, 7}, local), goaway, local);
  }
}

TEST_CASE("ControlStreamRewriter never repeats an id nghttp3 wrote", "[h3][control]") {
  const Bytes in = cat({{0x00}, frame(kFrameSettings, settings_payload({{0x08, 1}, {0xffd277, 0}, {0x2c7cf000, 1}}))});
  const Bytes out = rewrite_pieces(in, {});
  const Parsed p = parse_stream(out);
  const auto pairs = pairs_of(p.frames.at(0).second);
  CHECK(pairs.at(0xffd277) == 0);  // nghttp3's value wins
  CHECK(pairs.at(0x2c7cf000) == 1);
  CHECK(pairs.at(0x2b603742) == 1);
  ControlStreamReader r;
  CHECK(r.feed(std::span(out).subspan(1)) == 0);
}

TEST_CASE("ControlStreamRewriter passes through what it must not touch", "[h3][control]") {
  SECTION("first frame not SETTINGS") {
    const Bytes in = cat({{0x00}, frame(kFrameGoaway, {0x00}), frame(kFrameSettings, {})});
    ControlStreamRewriter w;
    w.feed(in);
    CHECK(w.take() == in);
    CHECK(w.settings_done());
    CHECK_FALSE(w.settings_rewritten());
  }
  SECTION("not a control stream") {
    const Bytes in = cat({{0x02}, frame(kFrameSettings, {})});
    CHECK(rewrite_pieces(in, {1, 2}) == in);
  }
  SECTION("SETTINGS too large to rewrite") {
    const Bytes in = cat({{0x00}, frame(kFrameSettings, Bytes(ControlStreamRewriter::kMaxRewriteSize + 1, 0x01))});
    CHECK(rewrite_pieces(in, {5}) == in);
  }
  SECTION("malformed SETTINGS payload") {
    const Bytes in = cat({{0x00}, frame(kFrameSettings, {0x06, 0x40}), frame(kFrameGoaway, {0x00})});
    CHECK(rewrite_pieces(in, {3}) == in);
  }
  SECTION("nothing to add") {
    LocalWtSettings none;
    none.max_sessions = 0;
    const Bytes in = nghttp3_like_stream();
    CHECK(rewrite_pieces(in, {4}, none) == in);
  }
  SECTION("translation is the identity when nothing was rewritten") {
    const Bytes in = cat({{0x00}, frame(kFrameGoaway, {0x00})});
    ControlStreamRewriter w;
    w.feed(in);
    for (std::uint64_t W = 0; W <= in.size(); ++W) CHECK(w.nghttp3_offset_for_wire_acked(W) == W);
  }
}

TEST_CASE("ControlStreamRewriter keeps a non-minimal frame type", "[h3][control]") {
  // SETTINGS type written on 2 bytes, length on 4: both legal.
  const Bytes in = {0x00, 0x40, 0x04, 0x80, 0x00, 0x00, 0x02, 0x08, 0x01};
  const Bytes out = rewrite_pieces(in, {2});
  REQUIRE(out.size() > in.size());
  CHECK(out[1] == 0x40);
  CHECK(out[2] == 0x04);
  ControlStreamReader r;
  REQUIRE(r.feed(std::span(out).subspan(1)) == 0);
  CHECK(r.settings().enable_webtransport_draft02 == 1);
  CHECK(r.settings().enable_connect_protocol);
}

TEST_CASE("ControlStreamRewriter ack offset translation", "[h3][control]") {
  Bytes goaway;
  const Bytes in = nghttp3_like_stream(&goaway);
  ControlStreamRewriter w;
  const std::uint64_t P = 1;
  const std::uint64_t N = in.size() - P - goaway.size();

  SECTION("before the SETTINGS frame is complete only the prefix is out") {
    w.feed(std::span(in).first(4));
    CHECK(w.pending().size() == 1);  // the stream type only; SETTINGS is held
    CHECK(w.nghttp3_bytes_fed() == 4);
    CHECK(w.nghttp3_offset_for_wire_acked(0) == 0);
    CHECK(w.nghttp3_offset_for_wire_acked(1) == 1);
  }
  SECTION("the formula at every acked wire offset") {
    w.feed(in);
    const Bytes out = w.take();
    const std::uint64_t M = out.size() - P - goaway.size();
    REQUIRE(M > N);
    std::uint64_t prev = 0;
    for (std::uint64_t W = 0; W <= out.size(); ++W) {
      const std::uint64_t h = w.nghttp3_offset_for_wire_acked(W);
      std::uint64_t expect;
      if (W <= P)
        expect = W;
      else if (W < P + M)
        expect = P;
      else
        expect = W - M + N;
      REQUIRE(h == expect);
      REQUIRE(h >= prev);  // monotonic
      prev = h;
    }
    CHECK(prev == in.size());  // all acked: everything nghttp3 wrote is credited
    // docs/protocol.md's form, counting the prefix on both sides.
    const std::uint64_t Wp = out.size() - P;
    CHECK(w.nghttp3_offset_for_wire_acked(out.size()) - P == (Wp >= M ? Wp - M + N : 0));
  }
}

TEST_CASE("ControlStreamRewriter output API", "[h3][control]") {
  const Bytes in = nghttp3_like_stream();
  ControlStreamRewriter w;
  w.feed(in);
  const Bytes all(w.pending().begin(), w.pending().end());
  REQUIRE(all.size() == w.wire_bytes_produced());
  w.consume(5);
  CHECK(Bytes(w.pending().begin(), w.pending().end()) == Bytes(all.begin() + 5, all.end()));
  const Bytes rest = w.take();
  CHECK(rest == Bytes(all.begin() + 5, all.end()));
  CHECK(w.pending().empty());
  w.feed(std::vector<std::uint8_t>{0x07, 0x01, 0x00});  // another GOAWAY
  CHECK(w.take() == Bytes{0x07, 0x01, 0x00});
  w.feed(std::vector<std::uint8_t>{0x07, 0x01, 0x04});
  w.consume(100);  // more than pending: clamps
  CHECK(w.pending().empty());
  CHECK(w.wire_bytes_produced() == all.size() + 6);
}

// ------------------------------------------------------- against nghttp3

namespace {

struct Nghttp3Client {
  nghttp3_conn *conn = nullptr;
  Nghttp3Client() {
    nghttp3_callbacks cb{};
    nghttp3_settings s;
    nghttp3_settings_default(&s);
    s.enable_connect_protocol = 1;
    s.h3_datagram = 1;
    s.qpack_max_dtable_capacity = 4096;
    s.qpack_blocked_streams = 100;
    REQUIRE(nghttp3_conn_client_new(&conn, &cb, &s, nghttp3_mem_default(), this) == 0);
    REQUIRE(nghttp3_conn_bind_control_stream(conn, 2) == 0);
    REQUIRE(nghttp3_conn_bind_qpack_streams(conn, 6, 10) == 0);
  }
  ~Nghttp3Client() { nghttp3_conn_del(conn); }
  Nghttp3Client(const Nghttp3Client &) = delete;
  Nghttp3Client &operator=(const Nghttp3Client &) = delete;

  // Everything nghttp3 wants to write on the control stream now, as the
  // vectors it returned; credits nghttp3 for all of it.
  std::vector<Bytes> drain_control() {
    std::vector<Bytes> out;
    for (;;) {
      nghttp3_vec vec[16];
      std::int64_t sid = -1;
      int fin = 0;
      const nghttp3_ssize n = nghttp3_conn_writev_stream(conn, &sid, &fin, vec, 16);
      REQUIRE(n >= 0);
      if (sid < 0) break;
      std::size_t total = 0;
      for (nghttp3_ssize i = 0; i < n; ++i) {
        if (sid == 2) out.emplace_back(vec[i].base, vec[i].base + vec[i].len);
        total += vec[i].len;
      }
      REQUIRE(nghttp3_conn_add_write_offset(conn, sid, total) == 0);
      if (total == 0 && fin == 0) break;
    }
    return out;
  }
};

}  // namespace

TEST_CASE("ControlStreamRewriter on nghttp3's real control stream", "[h3][control][nghttp3]") {
  Nghttp3Client c;
  const std::vector<Bytes> vecs = c.drain_control();
  REQUIRE_FALSE(vecs.empty());
  Bytes original;
  for (const auto &v : vecs) original.insert(original.end(), v.begin(), v.end());

  const Parsed orig = parse_stream(original);
  REQUIRE(orig.stream_type == 0x00);
  REQUIRE(orig.frames.at(0).first == kFrameSettings);
  const auto nghttp3_pairs = pairs_of(orig.frames[0].second);
  CHECK(nghttp3_pairs.at(0x33) == 1);

  LocalWtSettings local;
  local.max_sessions = 12;
  ControlStreamRewriter w;
  w.set_local_settings(local);
  for (const auto &v : vecs) w.feed(v);  // as nghttp3 handed them out
  const Bytes wire = w.take();
  REQUIRE(w.settings_rewritten());

  const Parsed rewritten = parse_stream(wire);
  REQUIRE(rewritten.stream_type == 0x00);
  REQUIRE(rewritten.frames.size() == orig.frames.size());
  const auto wire_pairs = pairs_of(rewritten.frames[0].second);
  for (auto [id, v] : nghttp3_pairs) CHECK(wire_pairs.at(id) == v);  // nghttp3's own preserved
  CHECK(wire_pairs.at(0x2b603742) == 1);
  CHECK(wire_pairs.at(0xc671706a) == 12);
  CHECK(wire_pairs.at(0x14e9cd29) == 12);
  CHECK(wire_pairs.at(0x2c7cf000) == 1);
  CHECK(wire_pairs.at(0xffd277) == 1);
  for (std::size_t i = 1; i < orig.frames.size(); ++i) CHECK(rewritten.frames[i] == orig.frames[i]);

  ControlStreamReader r;
  REQUIRE(r.feed(std::span(wire).subspan(1)) == 0);
  REQUIRE(r.settings_received());
  CHECK(r.settings().enable_webtransport_draft02 == 1);
  CHECK(r.settings().wt_max_sessions_draft13 == 12);
  CHECK(r.settings().h3_datagram);
  // A client does not send 0x08 and need not: its WT_ENABLED says draft-15.
  CHECK(negotiate_dialect(LocalWtSettings{}, r.settings(), PeerRole::client) == Dialect::draft15);

  SECTION("split anywhere") {
    for (std::size_t a = 0; a <= original.size(); ++a) {
      for (std::size_t b = a; b <= original.size(); ++b) {
        REQUIRE(rewrite_pieces(original, {a, b}, local) == wire);
      }
    }
  }
  SECTION("later frames shift by M - N and acks credit nghttp3 exactly") {
    REQUIRE(nghttp3_conn_shutdown(c.conn) == 0);  // queues a GOAWAY
    const std::vector<Bytes> later = c.drain_control();
    REQUIRE_FALSE(later.empty());
    Bytes later_bytes;
    for (const auto &v : later) {
      w.feed(v);
      later_bytes.insert(later_bytes.end(), v.begin(), v.end());
    }
    const Bytes wire2 = w.take();
    CHECK(wire2 == later_bytes);

    // Acknowledge the wire in random steps; pass nghttp3 the translated deltas.
    const std::uint64_t wire_total = wire.size() + wire2.size();
    REQUIRE(w.wire_bytes_produced() == wire_total);
    std::mt19937 rng(3);
    std::uint64_t acked = 0, credited = 0;
    while (acked < wire_total) {
      acked = std::min<std::uint64_t>(wire_total, acked + 1 + rng() % 7);
      const std::uint64_t h = w.nghttp3_offset_for_wire_acked(acked);
      REQUIRE(h >= credited);
      REQUIRE(nghttp3_conn_add_ack_offset(c.conn, 2, h - credited) == 0);
      credited = h;
    }
    CHECK(credited == w.nghttp3_bytes_fed());
    CHECK(credited == original.size() + later_bytes.size());
  }
}
