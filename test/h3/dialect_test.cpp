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

namespace {

// What uvwt's own SETTINGS frame says (encode_wt_settings plus nghttp3's 0x08/0x33).
PeerSettings uvwt_peer(const LocalWtSettings &local, bool server) {
  std::uint8_t buf[kWtSettingsMaxSize];
  PeerSettings s;
  for (auto [id, v] : decode_pairs(buf, encode_wt_settings(local, buf, sizeof buf))) s.apply(id, v);
  s.apply(0x33, 1);
  if (server) s.apply(0x08, 1);
  s.received = true;
  return s;
}

LocalWtSettings only(std::initializer_list<Dialect> ds) {
  LocalWtSettings l;
  l.dialects = 0;
  for (Dialect d : ds) l.dialects |= 1u << static_cast<unsigned>(d);
  return l;
}

}  // namespace

TEST_CASE("supports: what each draft asks of a server", "[h3][dialect]") {
  const auto srv = PeerRole::server;
  CHECK_FALSE(PeerSettings{}.supports(Dialect::draft02, srv));
  CHECK_FALSE(settings({{0x2b603742, 1}, {0x33, 1}}).supports(Dialect::none, srv));
  // draft-02 §3.1: 0x2b603742 = 1 and datagrams; 0x08 not asked.
  CHECK(settings({{0x2b603742, 1}, {0x33, 1}}).supports(Dialect::draft02, srv));
  CHECK(settings({{0x2b603742, 1}, {0xffd277, 1}}).supports(Dialect::draft02, srv));
  CHECK_FALSE(settings({{0x2b603742, 1}}).supports(Dialect::draft02, srv));             // no datagrams
  CHECK_FALSE(settings({{0x2b603742, 2}, {0x33, 1}}).supports(Dialect::draft02, srv));  // must be exactly 1
  // draft-07 §3.2: a server sends 0xc671706a > 0 and 0x08 = 1.
  CHECK(settings({{0xc671706a, 4}, {0x08, 1}, {0x33, 1}}).supports(Dialect::draft07, srv));
  CHECK_FALSE(settings({{0xc671706a, 4}, {0x33, 1}}).supports(Dialect::draft07, srv));
  CHECK_FALSE(settings({{0xc671706a, 0}, {0x08, 1}, {0x33, 1}}).supports(Dialect::draft07, srv));
  // draft-14 §3.1: 0x14e9cd29 > 0, 0x08 = 1, datagrams.
  CHECK(settings({{0x14e9cd29, 1}, {0x08, 1}, {0x33, 1}}).supports(Dialect::draft13, srv));
  CHECK_FALSE(settings({{0x14e9cd29, 1}, {0x08, 1}}).supports(Dialect::draft13, srv));
  CHECK_FALSE(settings({{0x14e9cd29, 1}, {0x33, 1}}).supports(Dialect::draft13, srv));
  // draft-15 §3.1: 0x2c7cf000 = 1, 0x08 = 1, datagrams.
  CHECK(settings({{0x2c7cf000, 1}, {0x08, 1}, {0x33, 1}}).supports(Dialect::draft15, srv));
  CHECK(settings({{0x2c7cf000, 1}, {0x08, 1}, {0xffd277, 1}}).supports(Dialect::draft15, srv));
  CHECK_FALSE(settings({{0x2c7cf000, 2}, {0x08, 1}, {0x33, 1}}).supports(Dialect::draft15, srv));
  CHECK_FALSE(settings({{0x2c7cf000, 1}, {0x33, 1}}).supports(Dialect::draft15, srv));
}

TEST_CASE("supports: clients never need 0x08", "[h3][dialect]") {
  const auto cli = PeerRole::client;
  // Stock Chromium and Firefox: draft-02 only.
  const auto chromium = settings({{0x2b603742, 1}, {0x33, 1}, {0xffd277, 1}});
  CHECK(chromium.supports(Dialect::draft02, cli));
  CHECK_FALSE(chromium.supports(Dialect::draft07, cli));
  // Chromium with EnableWebTransportDraft07: both of quiche's generations, no 0x08.
  const auto chromium07 = settings({{0x2b603742, 1}, {0xc671706a, 16}, {0x33, 1}, {0xffd277, 1}});
  CHECK(chromium07.supports(Dialect::draft02, cli));
  CHECK(chromium07.supports(Dialect::draft07, cli));
  CHECK_FALSE(chromium07.supports(Dialect::draft13, cli));
  // draft-14 §3.1 client: 0x14e9cd29 > 0 and datagrams.
  CHECK(settings({{0x14e9cd29, 1}, {0x33, 1}}).supports(Dialect::draft13, cli));
  // draft-15 §3.1/§7.1 draft-version client: 0x2c7cf000 = 1 and datagrams.
  CHECK(settings({{0x2c7cf000, 1}, {0x33, 1}}).supports(Dialect::draft15, cli));
  // Datagrams are asked of clients too.
  CHECK_FALSE(settings({{0x2b603742, 1}, {0xc671706a, 16}}).supports(Dialect::draft07, cli));
  CHECK_FALSE(settings({{0x2b603742, 1}, {0xc671706a, 16}}).supports(Dialect::draft02, cli));
}

TEST_CASE("negotiate_dialect: the newest both sides announce", "[h3][dialect]") {
  const LocalWtSettings all;
  const auto chromium = settings({{0x2b603742, 1}, {0x33, 1}, {0xffd277, 1}});
  const auto chromium07 = settings({{0x2b603742, 1}, {0xc671706a, 16}, {0x33, 1}, {0xffd277, 1}});
  CHECK(negotiate_dialect(all, chromium, PeerRole::client) == Dialect::draft02);
  CHECK(negotiate_dialect(all, chromium07, PeerRole::client) == Dialect::draft07);
  CHECK(negotiate_dialect(all, PeerSettings{}, PeerRole::client) == Dialect::none);
  // Our side limits it too.
  CHECK(negotiate_dialect(only({Dialect::draft02}), chromium07, PeerRole::client) == Dialect::draft02);
  CHECK(negotiate_dialect(only({Dialect::draft13, Dialect::draft15}), chromium07, PeerRole::client) == Dialect::none);
  LocalWtSettings off;
  off.max_sessions = 0;
  CHECK(negotiate_dialect(off, chromium07, PeerRole::client) == Dialect::none);

  // uvwt against uvwt: each side's real SETTINGS, each announce set.
  const Dialect ds[] = {Dialect::draft02, Dialect::draft07, Dialect::draft13, Dialect::draft15};
  for (Dialect d : ds) {
    const auto server = only({d});
    CHECK(negotiate_dialect(all, uvwt_peer(server, true), PeerRole::server) == d);
    CHECK(negotiate_dialect(server, uvwt_peer(all, false), PeerRole::client) == d);
  }
  CHECK(negotiate_dialect(all, uvwt_peer(all, true), PeerRole::server) == Dialect::draft15);
  CHECK(negotiate_dialect(all, uvwt_peer(all, false), PeerRole::client) == Dialect::draft15);
  // Stepping down generation by generation, as the peer announces less.
  auto peer = uvwt_peer(all, true);
  peer.apply(0x2c7cf000, 0);
  CHECK(negotiate_dialect(all, peer, PeerRole::server) == Dialect::draft13);
  peer.apply(0x14e9cd29, 0);
  CHECK(negotiate_dialect(all, peer, PeerRole::server) == Dialect::draft07);
  peer.apply(0xc671706a, 0);
  CHECK(negotiate_dialect(all, peer, PeerRole::server) == Dialect::draft02);
  peer.apply(0x33, 0);
  peer.apply(0xffd277, 0);
  CHECK(negotiate_dialect(all, peer, PeerRole::server) == Dialect::none);
}

TEST_CASE("negotiate_request_dialect: SETTINGS and the :protocol token", "[h3][dialect]") {
  const LocalWtSettings all;
  const auto chromium = settings({{0x2b603742, 1}, {0x33, 1}, {0xffd277, 1}});
  const auto chromium07 = settings({{0x2b603742, 1}, {0xc671706a, 16}, {0x33, 1}, {0xffd277, 1}});
  // Chromium sends the draft02 header either way; the SETTINGS decide.
  CHECK(negotiate_request_dialect(all, chromium, "webtransport") == Dialect::draft02);
  CHECK(negotiate_request_dialect(all, chromium07, "webtransport") == Dialect::draft07);
  CHECK(negotiate_request_dialect(only({Dialect::draft02}), chromium07, "webtransport") == Dialect::draft02);
  // No WebTransport SETTINGS from the client, or a token no common dialect uses.
  CHECK(negotiate_request_dialect(all, settings({{0x33, 1}}), "webtransport") == Dialect::none);
  CHECK(negotiate_request_dialect(all, chromium07, "webtransport-h3") == Dialect::draft15);  // token + datagrams
  CHECK(negotiate_request_dialect(all, settings({{0x33, 1}}), "webtransport-h3") == Dialect::draft15);
  CHECK(negotiate_request_dialect(all, settings({{0x2c7cf000, 1}}), "webtransport-h3") == Dialect::none);
  CHECK(negotiate_request_dialect(all, settings({{0x33, 1}, {0x2c7cf000, 2}}), "webtransport-h3") == Dialect::none);
  CHECK(negotiate_request_dialect(only({Dialect::draft13}), settings({{0x33, 1}}), "webtransport-h3") == Dialect::none);
  CHECK(negotiate_request_dialect(all, chromium07, "") == Dialect::none);
  CHECK(negotiate_request_dialect(all, chromium07, "connect-udp") == Dialect::none);
  // A client that speaks draft-15 and draft-13 picks by token.
  const auto both = uvwt_peer(all, false);
  CHECK(negotiate_request_dialect(all, both, "webtransport-h3") == Dialect::draft15);
  CHECK(negotiate_request_dialect(all, both, "webtransport") == Dialect::draft13);
  CHECK(negotiate_request_dialect(only({Dialect::draft07}), both, "webtransport") == Dialect::draft07);
  CHECK(negotiate_request_dialect(only({Dialect::draft15}), both, "webtransport") == Dialect::none);
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
