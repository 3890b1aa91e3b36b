#include "h3/dialect.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "catch.hpp"
#include "h3/varint.hpp"
#include "h3/wt_codes.hpp"

using namespace uvwt::detail;

namespace {

PeerSettings settings(std::initializer_list<std::pair<std::uint64_t, std::uint64_t>> pairs) {
  PeerSettings s;
  for (auto [id, v] : pairs) s.apply(id, v);
  s.received = true;
  return s;
}

std::map<std::uint64_t, std::uint64_t> decode_pairs(const std::uint8_t *p, std::size_t n) {
  std::map<std::uint64_t, std::uint64_t> out;
  std::span<const std::uint8_t> rest(p, n);
  while (!rest.empty()) {
    auto id = varint_read(rest);
    REQUIRE(id);
    rest = rest.subspan(id->len);
    auto v = varint_read(rest);
    REQUIRE(v);
    rest = rest.subspan(v->len);
    REQUIRE(out.count(id->value) == 0);
    out[id->value] = v->value;
  }
  return out;
}

}  // namespace

TEST_CASE("best_dialect follows the docs/protocol.md table", "[h3][dialect]") {
  CHECK(PeerSettings{}.best_dialect() == Dialect::none);

  // Stock Chromium / Firefox: draft-02 (0x08 not required).
  CHECK(settings({{0x2b603742, 1}, {0x33, 1}}).best_dialect() == Dialect::draft02);
  CHECK(settings({{0x2b603742, 1}, {0xffd277, 1}}).best_dialect() == Dialect::draft02);
  CHECK(settings({{0x2b603742, 1}}).best_dialect() == Dialect::none);             // no datagrams
  CHECK(settings({{0x2b603742, 2}, {0x33, 1}}).best_dialect() == Dialect::none);  // must be exactly 1

  // Chromium with draft-07.
  CHECK(settings({{0xc671706a, 4}, {0x08, 1}, {0x33, 1}}).best_dialect() == Dialect::draft07);
  CHECK(settings({{0xc671706a, 4}, {0x33, 1}}).best_dialect() == Dialect::none);
  CHECK(settings({{0xc671706a, 0}, {0x08, 1}, {0x33, 1}}).best_dialect() == Dialect::none);

  // Safari-style draft-13.
  CHECK(settings({{0x14e9cd29, 1}, {0xc671706a, 1}, {0x08, 1}, {0x33, 1}}).best_dialect() == Dialect::draft13);
  CHECK(settings({{0x14e9cd29, 1}, {0x08, 1}}).best_dialect() == Dialect::none);

  // Latest draft.
  CHECK(settings({{0x2c7cf000, 1}, {0x08, 1}, {0x33, 1}}).best_dialect() == Dialect::draft15);
  CHECK(settings({{0x2c7cf000, 2}, {0x08, 1}, {0x33, 1}}).best_dialect() == Dialect::none);
  CHECK(settings({{0x2c7cf000, 1}, {0x08, 1}, {0xffd277, 1}}).best_dialect() == Dialect::draft15);

  // A peer announcing every generation (uvwt's own policy) gets the newest.
  auto all = settings({{0x08, 1}, {0x33, 1}, {0x2b603742, 1}, {0xc671706a, 16}, {0x14e9cd29, 16}, {0x2c7cf000, 1}});
  CHECK(all.best_dialect() == Dialect::draft15);
  all.apply(0x2c7cf000, 0);
  CHECK(all.best_dialect() == Dialect::draft13);
  all.apply(0x14e9cd29, 0);
  CHECK(all.best_dialect() == Dialect::draft07);
  all.apply(0xc671706a, 0);
  CHECK(all.best_dialect() == Dialect::draft02);
  all.apply(0x33, 0);
  CHECK(all.best_dialect() == Dialect::none);
  all.apply(0xffd277, 1);
  CHECK(all.best_dialect() == Dialect::draft02);
}

TEST_CASE("PeerSettings::apply keeps raw values and ignores the rest", "[h3][dialect]") {
  PeerSettings s;
  s.apply(0x2b61, 1000);
  s.apply(0x2b64, 7);
  s.apply(0x2b65, 9);
  s.apply(0x21, 5);      // GREASE
  s.apply(0x123456, 5);  // unknown
  s.apply(0x06, 16384);  // nghttp3's business
  CHECK(s.wt_initial_max_data == 1000);
  CHECK(s.wt_initial_max_streams_uni == 7);
  CHECK(s.wt_initial_max_streams_bidi == 9);
  CHECK_FALSE(s.enable_connect_protocol);
  CHECK_FALSE(s.h3_datagram);
  s.apply(0x08, 1);
  s.apply(0xffd277, 1);
  CHECK(s.enable_connect_protocol);
  CHECK(s.h3_datagram);
  CHECK(s.h3_datagram_draft04 == 1);
  CHECK_FALSE(s.received);  // only the control stream reader sets it
}

TEST_CASE("protocol tokens and names", "[h3][dialect]") {
  CHECK(protocol_token(Dialect::none).empty());
  CHECK(protocol_token(Dialect::draft02) == "webtransport");
  CHECK(protocol_token(Dialect::draft07) == "webtransport");
  CHECK(protocol_token(Dialect::draft13) == "webtransport");
  CHECK(protocol_token(Dialect::draft15) == "webtransport-h3");
  CHECK(std::string(dialect_name(Dialect::none)) == "none");
  CHECK(std::string(dialect_name(Dialect::draft02)) == "draft02");
  CHECK(std::string(dialect_name(Dialect::draft07)) == "draft07");
  CHECK(std::string(dialect_name(Dialect::draft13)) == "draft13");
  CHECK(std::string(dialect_name(Dialect::draft15)) == "draft15");
  CHECK(Dialect::draft15 > Dialect::draft13);
  CHECK(Dialect::draft02 > Dialect::none);
}

TEST_CASE("encode_wt_settings writes the interoperable policy", "[h3][dialect]") {
  std::uint8_t buf[kWtSettingsMaxSize];
  LocalWtSettings local;
  local.max_sessions = 5;

  SECTION("without flow control") {
    const std::size_t n = encode_wt_settings(local, buf, sizeof buf);
    REQUIRE(n == wt_settings_size(local));
    const auto pairs = decode_pairs(buf, n);
    CHECK(pairs == std::map<std::uint64_t, std::uint64_t>{
                       {0x2b603742, 1}, {0xc671706a, 5}, {0x14e9cd29, 5}, {0x2c7cf000, 1}, {0xffd277, 1}});
  }
  SECTION("with flow control") {
    local.flow_control = true;
    local.initial_max_data = 123456;
    local.initial_max_streams_uni = 3;
    local.initial_max_streams_bidi = 4;
    const std::size_t n = encode_wt_settings(local, buf, sizeof buf);
    const auto pairs = decode_pairs(buf, n);
    CHECK(pairs.size() == 8);
    CHECK(pairs.at(0x2b61) == 123456);
    CHECK(pairs.at(0x2b64) == 3);
    CHECK(pairs.at(0x2b65) == 4);
  }
  SECTION("never 0x08 or 0x33: nghttp3 writes those") {
    local.flow_control = true;
    const auto pairs = decode_pairs(buf, encode_wt_settings(local, buf, sizeof buf));
    CHECK(pairs.count(0x08) == 0);
    CHECK(pairs.count(0x33) == 0);
  }
  SECTION("ids already present are left out") {
    const std::uint64_t present[] = {0xffd277, 0x2b603742, 0x99};
    const std::size_t n = encode_wt_settings(local, buf, sizeof buf, present);
    REQUIRE(n == wt_settings_size(local, present));
    const auto pairs = decode_pairs(buf, n);
    CHECK(pairs == std::map<std::uint64_t, std::uint64_t>{{0xc671706a, 5}, {0x14e9cd29, 5}, {0x2c7cf000, 1}});
  }
  SECTION("legacy datagram setting can be left out") {
    local.h3_datagram_draft04 = false;
    const auto pairs = decode_pairs(buf, encode_wt_settings(local, buf, sizeof buf));
    CHECK(pairs.count(0xffd277) == 0);
  }
  SECTION("zero sessions announces nothing") {
    local.max_sessions = 0;
    CHECK(wt_settings_size(local) == 0);
    CHECK(encode_wt_settings(local, buf, sizeof buf) == 0);
  }
  SECTION("too small a buffer writes nothing") {
    const std::size_t need = wt_settings_size(local);
    std::vector<std::uint8_t> small(need - 1, 0xee);
    CHECK(encode_wt_settings(local, small.data(), small.size()) == 0);
    CHECK(small == std::vector<std::uint8_t>(need - 1, 0xee));
    CHECK(encode_wt_settings(local, buf, need) == need);
  }
  SECTION("the largest output fits kWtSettingsMaxSize") {
    local.flow_control = true;
    local.max_sessions = kVarintMax;
    local.initial_max_data = kVarintMax;
    local.initial_max_streams_uni = kVarintMax;
    local.initial_max_streams_bidi = kVarintMax;
    CHECK(wt_settings_size(local) <= kWtSettingsMaxSize);
    CHECK(encode_wt_settings(local, buf, sizeof buf) == wt_settings_size(local));
  }
}
