#include "h3/datagram.hpp"

#include <cstdint>
#include <vector>

#include "catch.hpp"

using namespace uvwt::detail;

TEST_CASE("datagram prefix is the quarter stream id", "[h3][datagram]") {
  for (std::uint64_t session :
       std::initializer_list<std::uint64_t>{0, 4ull, 252ull, 256ull, 65532ull, 65536ull, (kMaxQuarterStreamId)*4}) {
    std::uint8_t buf[16] = {};
    const std::size_t n = encode_datagram_prefix(session, buf);
    REQUIRE(n == datagram_prefix_size(session));
    REQUIRE(n == varint_size(session / 4));
    buf[n] = 0xaa;  // payload
    const auto d = decode_datagram_prefix(std::span<const std::uint8_t>(buf, n + 1));
    REQUIRE(d);
    CHECK(d->first == session);
    CHECK(d->second == n);
  }
  std::uint8_t b[8];
  CHECK(encode_datagram_prefix(4, b) == 1);
  CHECK(b[0] == 0x01);
  CHECK(encode_datagram_prefix(256, b) == 2);
  CHECK(b[0] == 0x40);
  CHECK(b[1] == 0x40);
}

TEST_CASE("bad datagram prefixes are refused", "[h3][datagram]") {
  CHECK_FALSE(decode_datagram_prefix({}));
  const std::uint8_t cut[] = {0x40};
  CHECK_FALSE(decode_datagram_prefix(cut));
  // Quarter stream id 2^60 names a stream id past 2^62.
  std::uint8_t big[8];
  varint_write(big, kMaxQuarterStreamId + 1);
  CHECK_FALSE(decode_datagram_prefix(big));
  varint_write(big, kMaxQuarterStreamId);
  CHECK(decode_datagram_prefix(big));
  // A datagram with no payload after the prefix is still a datagram.
  const std::uint8_t only_prefix[] = {0x02};
  const auto d = decode_datagram_prefix(only_prefix);
  REQUIRE(d);
  CHECK(d->first == 8);
  CHECK(d->second == 1);
}
