// The small codecs behind the request rules: the HEADERS length guard
// (RFC 9114 4.2.2), the wt-protocol sf-string item (draft-ietf-webtrans-http3
// 3.3) and the per-dialect code of an over-2^60 stream limit.

#include "catch.hpp"
#include "h3/capsule.hpp"
#include "h3/header_size_guard.hpp"
#include "h3/sf_item.hpp"

namespace uvwt::detail {

TEST_CASE("HeaderSizeGuard refuses a HEADERS frame over the limit from its length, split anywhere", "[h3]") {
  // DATA (type 0, length 3), then HEADERS (type 1) announcing 20000 bytes (varint 0x80 0x00 0x4e 0x20).
  const std::uint8_t bytes[] = {0x00, 0x03, 'a', 'b', 'c', 0x01, 0x80, 0x00, 0x4e, 0x20, 0x00};
  for (std::size_t split = 0; split <= sizeof bytes; ++split) {
    HeaderSizeGuard g;
    const bool first = g.feed({bytes, split}, 16384);
    const bool second = g.feed({bytes + split, sizeof bytes - split}, 16384);
    CHECK_FALSE((first && second));
    CHECK(g.failed());
    CHECK(g.announced() == 20000u);
  }
  HeaderSizeGuard ok;
  CHECK(ok.feed({bytes, sizeof bytes}, 20000));  // exactly the limit is allowed
  CHECK_FALSE(ok.failed());
  // A large DATA frame is not a header section.
  const std::uint8_t data[] = {0x00, 0x80, 0x01, 0x00, 0x00};
  HeaderSizeGuard d;
  CHECK(d.feed({data, sizeof data}, 1024));
}

TEST_CASE("wt-protocol is an sf-string item or nothing", "[h3]") {
  CHECK(parse_sf_string_item("\"chat.v1\"") == "chat.v1");
  CHECK(parse_sf_string_item(" \"a\\\"b\";q=1") == "a\"b");
  CHECK_FALSE(parse_sf_string_item("chat.v1").has_value());       // a token
  CHECK_FALSE(parse_sf_string_item("\"a\", \"b\"").has_value());  // a list
  CHECK_FALSE(parse_sf_string_item("\"open").has_value());
  CHECK_FALSE(parse_sf_string_item("1").has_value());
  CHECK_FALSE(parse_sf_string_item("").has_value());
}

TEST_CASE("a stream limit over 2^60 fails the capsule parser with the code the session chose", "[h3]") {
  // WT_MAX_STREAMS (bidi) 0x190B4D3F, length 8, value 2^61.
  const std::uint8_t cap[] = {0x99, 0x0b, 0x4d, 0x3f, 0x08, 0xe0, 0, 0, 0, 0, 0, 0, 0};
  for (const std::uint64_t code : {std::uint64_t{0x10e}, std::uint64_t{0x045d4487}}) {
    CapsuleParser p;
    p.set_stream_limit_code(code);
    const Error e = p.feed({cap, sizeof cap}, [](std::uint64_t, std::span<const std::uint8_t>) { FAIL("no capsule"); });
    CHECK(e.errc == Errc::protocol);
    CHECK(e.code == code);
  }
}

}  // namespace uvwt::detail
