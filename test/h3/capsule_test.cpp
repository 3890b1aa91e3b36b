#include "h3/capsule.hpp"

#include <cstdint>
#include <string>
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

Bytes capsule(std::uint64_t type, const Bytes &value) {
  Bytes b;
  put(b, type);
  put(b, value.size());
  b.insert(b.end(), value.begin(), value.end());
  return b;
}

struct Seen {
  std::uint64_t type;
  Bytes value;
  bool operator==(const Seen &o) const { return type == o.type && value == o.value; }
};

// Feeds `in` cut at `cuts`; returns the capsules and the error (if any).
std::pair<std::vector<Seen>, uvwt::Error> parse(const Bytes &in, const std::vector<std::size_t> &cuts = {}) {
  CapsuleParser p;
  std::vector<Seen> seen;
  auto on = [&](std::uint64_t t, std::span<const std::uint8_t> v) { seen.push_back({t, Bytes(v.begin(), v.end())}); };
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    auto err = p.feed(std::span(in).subspan(at, cut - at), on);
    if (err) return {seen, err};
    at = cut;
  }
  auto err = p.feed(std::span(in).subspan(at), on);
  if (!err) err = p.finish();
  return {seen, err};
}

Bytes enc_close(std::uint32_t code, std::string_view reason) {
  Bytes b(capsule_max_size);
  b.resize(encode_close_session(code, reason, b.data(), b.size()));
  return b;
}

}  // namespace

TEST_CASE("capsule encoders and decoders round trip", "[h3][capsule]") {
  SECTION("WT_CLOSE_SESSION") {
    const Bytes b = enc_close(0xdeadbeef, "bye now");
    auto [seen, err] = parse(b);
    REQUIRE_FALSE(err);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].type == kCapsuleCloseSession);
    CloseSession cs;
    REQUIRE(decode_close_session(seen[0].value, cs));
    CHECK(cs.code == 0xdeadbeef);
    CHECK(cs.reason == "bye now");
    // type 0x2843 on 2 bytes, length, 4-byte code, reason
    CHECK(b == Bytes{0x68, 0x43, 0x0b, 0xde, 0xad, 0xbe, 0xef, 'b', 'y', 'e', ' ', 'n', 'o', 'w'});
  }
  SECTION("WT_CLOSE_SESSION with an empty reason") {
    auto [seen, err] = parse(enc_close(0, ""));
    REQUIRE_FALSE(err);
    CloseSession cs;
    cs.reason = "old";
    REQUIRE(decode_close_session(seen.at(0).value, cs));
    CHECK(cs.code == 0);
    CHECK(cs.reason.empty());
  }
  SECTION("WT_DRAIN_SESSION") {
    Bytes b(16);
    b.resize(encode_drain_session(b.data(), b.size()));
    CHECK(b == Bytes{0x80, 0x00, 0x78, 0xae, 0x00});
    auto [seen, err] = parse(b);
    REQUIRE_FALSE(err);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].type == kCapsuleDrainSession);
    CHECK(seen[0].value.empty());
  }
  SECTION("flow control capsules") {
    Bytes all;
    std::uint8_t tmp[32];
    auto add = [&](std::size_t n) {
      REQUIRE(n > 0);
      all.insert(all.end(), tmp, tmp + n);
    };
    add(encode_max_data(kVarintMax, tmp, sizeof tmp));
    add(encode_max_streams(true, 100, tmp, sizeof tmp));
    add(encode_max_streams(false, kMaxStreamsLimit, tmp, sizeof tmp));
    add(encode_data_blocked(65536, tmp, sizeof tmp));
    add(encode_streams_blocked(true, 0, tmp, sizeof tmp));
    add(encode_streams_blocked(false, 7, tmp, sizeof tmp));
    auto [seen, err] = parse(all);
    REQUIRE_FALSE(err);
    REQUIRE(seen.size() == 6);
    const std::uint64_t types[] = {kCapsuleMaxData,     kCapsuleMaxStreamsBidi,     kCapsuleMaxStreamsUni,
                                   kCapsuleDataBlocked, kCapsuleStreamsBlockedBidi, kCapsuleStreamsBlockedUni};
    const std::uint64_t values[] = {kVarintMax, 100, kMaxStreamsLimit, 65536, 0, 7};
    for (std::size_t i = 0; i < 6; ++i) {
      CHECK(seen[i].type == types[i]);
      CHECK(decode_capsule_varint(seen[i].value) == values[i]);
    }
  }
}

TEST_CASE("capsule encoders refuse what cannot be sent", "[h3][capsule]") {
  std::uint8_t buf[capsule_max_size];
  CHECK(encode_max_streams(true, kMaxStreamsLimit + 1, buf, sizeof buf) == 0);
  CHECK(encode_streams_blocked(false, kMaxStreamsLimit + 1, buf, sizeof buf) == 0);
  CHECK(encode_max_data(kVarintMax + 1, buf, sizeof buf) == 0);
  CHECK(encode_drain_session(buf, 4) == 0);
  CHECK(encode_drain_session(buf, 5) == 5);
  CHECK(encode_close_session(1, "abc", buf, 9) == 0);  // 2 + 1 + 4 + 3 bytes
  CHECK(encode_close_session(1, "abc", buf, 10) == 10);
  CHECK(encode_max_data(1, buf, 5) == 0);
}

TEST_CASE("WT_CLOSE_SESSION reason is cut at a UTF-8 boundary", "[h3][capsule]") {
  std::string reason(1023, 'a');
  reason += "\xc3\xa9";  // 2-byte e-acute straddling the 1024 limit
  auto [seen, err] = parse(enc_close(5, reason));
  REQUIRE_FALSE(err);
  CloseSession cs;
  REQUIRE(decode_close_session(seen.at(0).value, cs));
  CHECK(cs.reason == std::string(1023, 'a'));

  std::string exact(1022, 'b');
  exact += "\xc3\xa9";
  const Bytes b = enc_close(5, exact);
  CHECK(b.size() == capsule_max_size);
  auto [seen2, err2] = parse(b);
  REQUIRE_FALSE(err2);
  REQUIRE(decode_close_session(seen2.at(0).value, cs));
  CHECK(cs.reason == exact);

  // Invalid input is cut before the first bad byte, so the result is valid.
  auto [seen3, err3] = parse(enc_close(5, "ok\xff tail"));
  REQUIRE_FALSE(err3);
  REQUIRE(decode_close_session(seen3.at(0).value, cs));
  CHECK(cs.reason == "ok");
  CHECK(enc_close(1, std::string(5000, 'x')).size() == capsule_max_size);
}

TEST_CASE("UTF-8 validation is strict", "[h3][capsule]") {
  CHECK(utf8_valid(""));
  CHECK(utf8_valid("plain"));
  CHECK(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // e-acute, euro, emoji
  CHECK(utf8_valid("\xf4\x8f\xbf\xbf"));                      // U+10FFFF
  CHECK_FALSE(utf8_valid("\xc0\x80"));                        // overlong NUL
  CHECK_FALSE(utf8_valid("\xe0\x80\xaf"));                    // overlong '/'
  CHECK_FALSE(utf8_valid("\xed\xa0\x80"));                    // surrogate
  CHECK_FALSE(utf8_valid("\xf4\x90\x80\x80"));                // past U+10FFFF
  CHECK_FALSE(utf8_valid("\xf8\x88\x80\x80\x80"));            // 5-byte form
  CHECK_FALSE(utf8_valid("\x80"));                            // lone continuation
  CHECK_FALSE(utf8_valid("\xe2\x82"));                        // cut short
  CHECK_FALSE(utf8_valid("\xe2\x28\xa1"));                    // bad continuation
  CHECK(utf8_valid_prefix("ab\xe2\x82\xac", 4) == 2);
  CHECK(utf8_valid_prefix("ab\xe2\x82\xac", 5) == 5);
  CHECK(utf8_valid_prefix("ab\xe2\x82\xac", 100) == 5);
}

TEST_CASE("capsules split at every point parse the same", "[h3][capsule]") {
  std::uint8_t tmp[16];
  Bytes stream = enc_close(42, "split me \xe2\x82\xac");
  stream.insert(stream.end(), tmp, tmp + encode_max_data(1 << 20, tmp, sizeof tmp));
  const Bytes unknown = capsule(0x1f * 7 + 0x21, Bytes(40, 0x33));
  stream.insert(stream.end(), unknown.begin(), unknown.end());
  stream.insert(stream.end(), tmp, tmp + encode_drain_session(tmp, sizeof tmp));
  const Bytes empty_unknown = capsule(0x12345, {});
  stream.insert(stream.end(), empty_unknown.begin(), empty_unknown.end());
  stream.insert(stream.end(), tmp, tmp + encode_streams_blocked(false, 9, tmp, sizeof tmp));

  auto [expected, err] = parse(stream);
  REQUIRE_FALSE(err);
  REQUIRE(expected.size() == 4);  // the unknown ones are skipped
  CHECK(expected[0].type == kCapsuleCloseSession);
  CHECK(expected[1].type == kCapsuleMaxData);
  CHECK(expected[2].type == kCapsuleDrainSession);
  CHECK(expected[3].type == kCapsuleStreamsBlockedUni);

  for (std::size_t a = 0; a <= stream.size(); ++a) {
    auto [seen, e] = parse(stream, {a});
    REQUIRE_FALSE(e);
    REQUIRE(seen == expected);
  }
  for (std::size_t a = 0; a <= stream.size(); a += 3) {
    for (std::size_t b = a; b <= stream.size(); ++b) {
      auto [seen, e] = parse(stream, {a, b});
      REQUIRE_FALSE(e);
      REQUIRE(seen == expected);
    }
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  auto [seen, e] = parse(stream, every);
  REQUIRE_FALSE(e);
  CHECK(seen == expected);
}

TEST_CASE("a large unknown capsule is streamed past", "[h3][capsule]") {
  Bytes head;
  put(head, 0xabcdef);  // unknown type
  put(head, 1 << 20);
  CapsuleParser p;
  int calls = 0;
  auto on = [&](std::uint64_t, std::span<const std::uint8_t>) { ++calls; };
  REQUIRE_FALSE(p.feed(head, on));
  const Bytes chunk(8192, 0x11);
  for (int i = 0; i < 128; ++i) {
    CHECK_FALSE(p.at_boundary());
    REQUIRE_FALSE(p.feed(chunk, on));
  }
  CHECK(p.at_boundary());
  std::uint8_t tmp[16];
  REQUIRE_FALSE(p.feed(std::span(tmp, encode_drain_session(tmp, sizeof tmp)), on));
  CHECK(calls == 1);
  CHECK(p.at_boundary());
  CHECK_FALSE(p.finish());
}

TEST_CASE("the pull interface hands out values without copying when it can", "[h3][capsule]") {
  const Bytes b = enc_close(1, "zero copy");
  CapsuleParser p;
  std::span<const std::uint8_t> in(b);
  Capsule c{};
  REQUIRE(p.next(in, c) == CapsuleParser::Step::capsule);
  CHECK(c.value.data() >= b.data());
  CHECK(c.value.data() < b.data() + b.size());
  CHECK(in.empty());
  CHECK(p.next(in, c) == CapsuleParser::Step::need_more);
}

TEST_CASE("capsule errors", "[h3][capsule]") {
  SECTION("close with a too short value") {
    auto [seen, err] = parse(capsule(kCapsuleCloseSession, {0, 0, 1}));
    CHECK(err.errc == uvwt::Errc::protocol);
    CHECK(err.code == kH3MessageError);
    CHECK(seen.empty());
  }
  SECTION("close with a reason over 1024 bytes") {
    Bytes v = {0, 0, 0, 1};
    v.resize(4 + 1025, 'x');
    auto [seen, err] = parse(capsule(kCapsuleCloseSession, v));
    CHECK(err);
    // refused from the header: the value is not waited for
    Bytes head;
    put(head, kCapsuleCloseSession);
    put(head, 4 + 1025);
    CapsuleParser p;
    CHECK(p.feed(head, [](auto, auto) {}));
  }
  SECTION("close with invalid UTF-8") {
    auto [seen, err] = parse(capsule(kCapsuleCloseSession, {0, 0, 0, 1, 0xc0, 0x80}));
    CHECK(err);
    CHECK(seen.empty());
    CloseSession cs;
    CHECK_FALSE(decode_close_session(Bytes{0, 0, 0, 1, 0xc0, 0x80}, cs));
  }
  SECTION("drain with a value") {
    auto [seen, err] = parse(capsule(kCapsuleDrainSession, {1}));
    CHECK(err);
  }
  SECTION("flow control capsule with trailing bytes") {
    auto [seen, err] = parse(capsule(kCapsuleMaxData, {0x01, 0x02}));
    CHECK(err);
    CHECK_FALSE(decode_capsule_varint(Bytes{0x01, 0x02}));
  }
  SECTION("flow control capsule with a short varint") {
    auto [seen, err] = parse(capsule(kCapsuleMaxData, {0x40}));
    CHECK(err);
  }
  SECTION("flow control capsule with an empty value") {
    auto [seen, err] = parse(capsule(kCapsuleDataBlocked, {}));
    CHECK(err);
  }
  SECTION("flow control capsule too long") {
    auto [seen, err] = parse(capsule(kCapsuleMaxData, Bytes(9, 0)));
    CHECK(err);
  }
  SECTION("stream limit above 2^60") {
    Bytes v;
    put(v, kMaxStreamsLimit + 1);
    auto [seen, err] = parse(capsule(kCapsuleMaxStreamsUni, v));
    CHECK(err);
  }
  SECTION("stream ends inside a capsule") {
    const Bytes b = enc_close(1, "cut");
    for (std::size_t n = 1; n < b.size(); ++n) {
      auto [seen, err] = parse(Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)));
      CHECK(err);
      CHECK(seen.empty());
    }
    Bytes unknown_head;
    put(unknown_head, 0x99);
    put(unknown_head, 10);
    auto [seen, err] = parse(unknown_head);
    CHECK(err);
  }
  SECTION("errors stick") {
    CapsuleParser p;
    auto on = [](auto, auto) {};
    REQUIRE(p.feed(capsule(kCapsuleDrainSession, {1}), on));
    CHECK(p.feed(enc_close(1, "x"), on));
    CHECK(p.finish());
    CHECK(p.error().code == kH3MessageError);
  }
}
