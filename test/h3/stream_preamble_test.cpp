#include "h3/stream_preamble.hpp"

#include <cstdint>
#include <vector>

#include "catch.hpp"
#include "h3/varint.hpp"
#include "h3/wt_codes.hpp"

using namespace uvwt::detail;

namespace {

using Bytes = std::vector<std::uint8_t>;

void put(Bytes &b, std::uint64_t v) {
  std::uint8_t tmp[8];
  b.insert(b.end(), tmp, varint_write(tmp, v));
}

// How a caller uses the parser: feed pieces until decided, then split the
// stream into "preamble" and "what goes on" (payload, or replay to nghttp3).
struct Outcome {
  PreambleState state = PreambleState::need_more;
  std::uint64_t session_id = 0;
  std::size_t header_len = 0;
  std::uint64_t first = 0;
  std::uint64_t error_code = 0;
  Bytes rest;  // webtransport: payload; http3: every byte, replayed
};

Outcome run(bool bidi, const Bytes &in, const std::vector<std::size_t> &cuts, bool wt_only = false) {
  StreamPreambleParser p(bidi, wt_only);
  Outcome o;
  std::size_t at = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(in.size());
  for (std::size_t end : ends) {
    const auto piece = std::span(in).subspan(at, end - at);
    at = end;
    if (o.state == PreambleState::need_more) {
      const auto r = p.feed(piece);
      REQUIRE(r.state == p.state());
      o.state = r.state;
      if (r.state == PreambleState::need_more) {
        REQUIRE(r.consumed == piece.size());
        continue;
      }
      o.first = p.first_varint();
      if (r.state == PreambleState::webtransport) {
        o.session_id = p.session_id();
        o.header_len = p.header_len();
        o.rest.assign(piece.begin() + static_cast<std::ptrdiff_t>(r.consumed), piece.end());
      } else if (r.state == PreambleState::http3) {
        REQUIRE(r.consumed == 0);
        o.rest.assign(p.held().begin(), p.held().end());
        o.rest.insert(o.rest.end(), piece.begin(), piece.end());
      } else {
        o.error_code = r.error_code;
        REQUIRE(r.error_code == p.error_code());
        return o;
      }
      // Decided: later calls change nothing.
      const auto again = p.feed(piece);
      REQUIRE(again.state == o.state);
      REQUIRE(again.consumed == 0);
    } else {
      o.rest.insert(o.rest.end(), piece.begin(), piece.end());
    }
  }
  return o;
}

template <class F>
void for_every_split(const Bytes &in, F &&check) {
  check(std::vector<std::size_t>{});
  for (std::size_t a = 0; a <= in.size(); ++a) check(std::vector<std::size_t>{a});
  for (std::size_t a = 0; a <= in.size(); ++a)
    for (std::size_t b = a; b <= in.size(); ++b) check(std::vector<std::size_t>{a, b});
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < in.size(); ++i) every.push_back(i);
  check(every);
}

}  // namespace

TEST_CASE("WebTransport bidi preamble, split anywhere", "[h3][preamble]") {
  for (std::uint64_t session : std::initializer_list<std::uint64_t>{0, 4, 64, 16384, 1ull << 40, kVarintMax - 3}) {
    Bytes in(kWtPreambleMaxSize);
    in.resize(encode_wt_bidi_preamble(session, in.data()));
    const std::size_t header = in.size();
    const Bytes payload = {'h', 'e', 'l', 'l', 'o'};
    in.insert(in.end(), payload.begin(), payload.end());
    for_every_split(in, [&](const std::vector<std::size_t> &cuts) {
      const Outcome o = run(true, in, cuts);
      REQUIRE(o.state == PreambleState::webtransport);
      REQUIRE(o.session_id == session);
      REQUIRE(o.header_len == header);
      REQUIRE(o.rest == payload);
    });
  }
}

TEST_CASE("WebTransport uni preamble, split anywhere", "[h3][preamble]") {
  Bytes in(kWtPreambleMaxSize);
  in.resize(encode_wt_uni_preamble(0x1234 * 4, in.data()));
  CHECK(in[0] == 0x40);
  CHECK(in[1] == 0x54);
  const Bytes payload(20, 0x7e);
  in.insert(in.end(), payload.begin(), payload.end());
  for_every_split(in, [&](const std::vector<std::size_t> &cuts) {
    const Outcome o = run(false, in, cuts);
    REQUIRE(o.state == PreambleState::webtransport);
    REQUIRE(o.session_id == 0x1234 * 4);
    REQUIRE(o.header_len == 6);  // 2-byte type, 4-byte id
    REQUIRE(o.rest == payload);
  });
}

TEST_CASE("a preamble with nothing after it", "[h3][preamble]") {
  Bytes in(kWtPreambleMaxSize);
  in.resize(encode_wt_bidi_preamble(8, in.data()));
  StreamPreambleParser p(true);
  const auto r = p.feed(in);
  CHECK(r.state == PreambleState::webtransport);
  CHECK(r.consumed == in.size());
  CHECK(Bytes(p.held().begin(), p.held().end()) == in);
}

TEST_CASE("non-minimal varints in a preamble", "[h3][preamble]") {
  // 0x41 on 4 bytes, session 4 on 8 bytes: 12 bytes, still fine.
  const Bytes in = {0x80, 0, 0, 0x41, 0xc0, 0, 0, 0, 0, 0, 0, 4, 'x'};
  for_every_split(in, [&](const std::vector<std::size_t> &cuts) {
    const Outcome o = run(true, in, cuts);
    REQUIRE(o.state == PreambleState::webtransport);
    REQUIRE(o.session_id == 4);
    REQUIRE(o.header_len == 12);
    REQUIRE(o.rest == Bytes{'x'});
  });
}

TEST_CASE("HTTP/3 streams are left whole for nghttp3", "[h3][preamble]") {
  SECTION("uni control, QPACK and unknown stream types") {
    for (std::uint64_t type : {0x00ull, 0x02ull, 0x03ull, 0x01ull, 0x21ull, 0x41ull, 0x12345678ull}) {
      Bytes in;
      put(in, type);
      in.insert(in.end(), {0x04, 0x00, 0x07, 0x01, 0x00});
      for_every_split(in, [&](const std::vector<std::size_t> &cuts) {
        const Outcome o = run(false, in, cuts);
        REQUIRE(o.state == PreambleState::http3);
        REQUIRE(o.first == type);
        REQUIRE(o.rest == in);  // every byte replayed, in order
      });
      StreamPreambleParser p(false);
      (void)p.feed(in);
      CHECK(p.uni_type() == type);
      CHECK(p.type_len() == varint_size(type));
    }
  }
  SECTION("bidi request streams") {
    Bytes in = {0x01, 0x05, 1, 2, 3, 4, 5};  // HEADERS
    for_every_split(in, [&](const std::vector<std::size_t> &cuts) {
      const Outcome o = run(true, in, cuts);
      REQUIRE(o.state == PreambleState::http3);
      REQUIRE(o.rest == in);
    });
    Bytes uni_type_on_bidi;
    put(uni_type_on_bidi, 0x54);  // 0x54 means nothing on a bidi stream
    put(uni_type_on_bidi, 0);
    CHECK(run(true, uni_type_on_bidi, {}).state == PreambleState::http3);
  }
}

TEST_CASE("preamble errors", "[h3][preamble]") {
  SECTION("session id that is not a client bidi stream") {
    for (std::uint64_t bad : {1ull, 2ull, 3ull, 5ull, 0x1003ull}) {
      Bytes in(kWtPreambleMaxSize);
      in.resize(encode_wt_bidi_preamble(bad, in.data()));
      for_every_split(in, [&](const std::vector<std::size_t> &cuts) {
        const Outcome o = run(true, in, cuts);
        REQUIRE(o.state == PreambleState::error);
        REQUIRE(o.error_code == kH3IdError);
      });
      in.resize(encode_wt_uni_preamble(bad, in.data()));
      CHECK(run(false, in, {}).error_code == kH3IdError);
    }
  }
  SECTION("a server-initiated bidi stream must be WebTransport") {
    const Bytes in = {0x01, 0x00};
    const Outcome o = run(true, in, {1}, true);
    CHECK(o.state == PreambleState::error);
    CHECK(o.error_code == kH3StreamCreationError);
    Bytes wt(kWtPreambleMaxSize);
    wt.resize(encode_wt_bidi_preamble(0, wt.data()));
    CHECK(run(true, wt, {}, true).state == PreambleState::webtransport);
  }
}

TEST_CASE("held bytes stay bounded while waiting", "[h3][preamble]") {
  // The longest undecided input: 0x41 on 8 bytes and 7 bytes of an 8-byte id.
  const Bytes in = {0xc0, 0, 0, 0, 0, 0, 0, 0x41, 0xc0, 0, 0, 0, 0, 0, 0};
  StreamPreambleParser p(true);
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto r = p.feed(std::span(in).subspan(i, 1));
    REQUIRE(r.state == PreambleState::need_more);
    REQUIRE(p.held().size() == i + 1);
  }
  REQUIRE(p.held().size() == 15);
  const std::uint8_t last[] = {8, 'p'};
  const auto r = p.feed(last);
  CHECK(r.state == PreambleState::webtransport);
  CHECK(r.consumed == 1);
  CHECK(p.session_id() == 8);
  CHECK(p.header_len() == 16);
}

TEST_CASE("preamble encoders", "[h3][preamble]") {
  std::uint8_t b[kWtPreambleMaxSize];
  CHECK(encode_wt_bidi_preamble(0, b) == 3);
  CHECK(b[0] == 0x40);
  CHECK(b[1] == 0x41);
  CHECK(b[2] == 0x00);
  CHECK(encode_wt_uni_preamble(kVarintMax - 3, b) == kWtPreambleMaxSize);
}
