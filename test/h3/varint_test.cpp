#include "h3/varint.hpp"

#include <cstdint>
#include <random>
#include <vector>

#include "catch.hpp"

using namespace uvwt::detail;

namespace {

std::vector<std::uint8_t> encode(std::uint64_t v) {
  std::vector<std::uint8_t> b(8);
  b.resize(static_cast<std::size_t>(varint_write(b.data(), v) - b.data()));
  return b;
}

}  // namespace

TEST_CASE("varint sizes follow the length boundaries", "[h3][varint]") {
  STATIC_REQUIRE(varint_size(0) == 1);
  STATIC_REQUIRE(varint_size(63) == 1);
  STATIC_REQUIRE(varint_size(64) == 2);
  STATIC_REQUIRE(varint_size(16383) == 2);
  STATIC_REQUIRE(varint_size(16384) == 4);
  STATIC_REQUIRE(varint_size((1u << 30) - 1) == 4);
  STATIC_REQUIRE(varint_size(1u << 30) == 8);
  STATIC_REQUIRE(varint_size(kVarintMax) == 8);
  STATIC_REQUIRE(kVarintMax == 0x3fffffffffffffffull);
}

TEST_CASE("varint encodings match RFC 9000 appendix A examples", "[h3][varint]") {
  CHECK(encode(37) == std::vector<std::uint8_t>{0x25});
  CHECK(encode(15293) == std::vector<std::uint8_t>{0x7b, 0xbd});
  CHECK(encode(494878333) == std::vector<std::uint8_t>{0x9d, 0x7f, 0x3e, 0x7d});
  CHECK(encode(151288809941952652ull) == std::vector<std::uint8_t>{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c});
  CHECK(encode(0x41) == std::vector<std::uint8_t>{0x40, 0x41});
  CHECK(encode(0x54) == std::vector<std::uint8_t>{0x40, 0x54});

  const std::uint8_t two_byte_37[] = {0x40, 0x25};  // non-minimal is still valid
  auto r = varint_read(two_byte_37);
  REQUIRE(r);
  CHECK(r->value == 37);
  CHECK(r->len == 2);
}

TEST_CASE("varint round trips across every length", "[h3][varint]") {
  std::vector<std::uint64_t> values = {0, 1, 63, 64, 16383, 16384, (1ull << 30) - 1, 1ull << 30, kVarintMax};
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) values.push_back(rng() >> (2 + rng() % 62));
  for (auto v : values) {
    const auto b = encode(v);
    REQUIRE(b.size() == varint_size(v));
    const auto r = varint_read(b);
    REQUIRE(r);
    CHECK(r->value == v);
    CHECK(r->len == b.size());
    // Trailing bytes are not touched.
    auto longer = b;
    longer.push_back(0xff);
    CHECK(varint_read(longer)->len == b.size());
  }
}

TEST_CASE("varint_read reports incomplete input", "[h3][varint]") {
  CHECK_FALSE(varint_read({}));
  const auto b = encode(kVarintMax);
  for (std::size_t n = 0; n < b.size(); ++n) CHECK_FALSE(varint_read(std::span(b).first(n)));
  CHECK(varint_read(b));
}

TEST_CASE("VarintAssembler collects a varint split at every byte", "[h3][varint]") {
  for (std::uint64_t v : std::initializer_list<std::uint64_t>{0, 63, 64, 16384, 0x2b603742, kVarintMax}) {
    const auto b = encode(v);
    VarintAssembler a;
    CHECK_FALSE(a.done());
    for (std::size_t i = 0; i < b.size(); ++i) {
      CHECK_FALSE(a.done());
      REQUIRE(a.feed(std::span(b).subspan(i, 1)) == 1);
    }
    REQUIRE(a.done());
    CHECK(a.value() == v);
    CHECK(std::vector<std::uint8_t>(a.bytes().begin(), a.bytes().end()) == b);
    // A complete varint takes no more bytes.
    const std::uint8_t extra[] = {1, 2, 3};
    CHECK(a.feed(extra) == 0);
    a.reset();
    CHECK_FALSE(a.started());
    auto more = b;
    more.push_back(7);
    CHECK(a.feed(more) == b.size());
    CHECK(a.value() == v);
  }
}
