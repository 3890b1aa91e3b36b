#include "h3/wt_codes.hpp"

#include <cstdint>
#include <random>

#include "catch.hpp"

using namespace uvwt::detail;

TEST_CASE("application error codes map to docs/protocol.md's check values", "[h3][codes]") {
  STATIC_REQUIRE(wt_app_to_h3(0) == 0x52e4a40fa8dbull);
  STATIC_REQUIRE(wt_app_to_h3(0x1d) == 0x52e4a40fa8f8ull);
  STATIC_REQUIRE(wt_app_to_h3(0x1e) == 0x52e4a40fa8faull);
  STATIC_REQUIRE(wt_app_to_h3(0xffffffffu) == 0x52e5ac983162ull);
  STATIC_REQUIRE(wt_app_to_h3(0xffffffffu) == kWtAppErrorLast);
  // The point skipped between 0x1d and 0x1e is a GREASE code.
  STATIC_REQUIRE(is_h3_grease(0x52e4a40fa8f9ull));
}

TEST_CASE("application error codes round trip", "[h3][codes]") {
  std::mt19937 rng(7);
  std::size_t bad = 0;
  for (std::uint64_t i = 0; i < 200000; ++i) {
    const std::uint32_t n = i < 100000 ? static_cast<std::uint32_t>(i) : static_cast<std::uint32_t>(rng());
    const std::uint64_t h3 = wt_app_to_h3(n);
    const auto back = wt_h3_to_app(h3);
    if (h3 < kWtAppErrorFirst || h3 > kWtAppErrorLast || is_h3_grease(h3) || !back || *back != n) ++bad;
  }
  REQUIRE(bad == 0);
  for (std::uint32_t n : {0u, 0x1du, 0x1eu, 0x1fu, 0x3cu, 0x3du, 0xfffffffeu, 0xffffffffu}) {
    REQUIRE(wt_h3_to_app(wt_app_to_h3(n)) == n);
  }
}

TEST_CASE("every HTTP/3 code near the range edges decodes or is rejected", "[h3][codes]") {
  // Walk whole stretches of the range: each code is either GREASE (rejected)
  // or decodes to an app code that maps straight back to it.
  for (std::uint64_t start : {kWtAppErrorFirst, kWtAppErrorLast - 5000, kWtAppErrorFirst + std::uint64_t{0x12345678}}) {
    std::uint64_t grease = 0, bad = 0;
    for (std::uint64_t h3 = start; h3 < start + 5000 && h3 <= kWtAppErrorLast; ++h3) {
      const auto app = wt_h3_to_app(h3);
      if (is_h3_grease(h3)) {
        grease += 1;
        bad += app ? 1 : 0;
      } else {
        bad += !app || wt_app_to_h3(*app) != h3 ? 1 : 0;
      }
    }
    CHECK(bad == 0);
    CHECK(grease >= 5000 / 0x1f - 1);
  }
  // The last code of the range decodes; one past it does not.
  CHECK(wt_h3_to_app(kWtAppErrorLast) == 0xffffffffu);
}

TEST_CASE("codes outside the application range carry no app code", "[h3][codes]") {
  CHECK_FALSE(wt_h3_to_app(0));
  CHECK_FALSE(wt_h3_to_app(kH3NoError));
  CHECK_FALSE(wt_h3_to_app(kWtSessionGone));
  CHECK_FALSE(wt_h3_to_app(kWtBufferedStreamRejected));
  CHECK_FALSE(wt_h3_to_app(kWtAppErrorFirst - 1));
  CHECK_FALSE(wt_h3_to_app(kWtAppErrorLast + 1));
  CHECK_FALSE(wt_h3_to_app(~0ull));
}

TEST_CASE("GREASE codepoints are 0x1f * N + 0x21", "[h3][codes]") {
  CHECK(is_h3_grease(0x21));
  CHECK(is_h3_grease(0x40));
  CHECK(is_h3_grease(0x1f * 1000ull + 0x21));
  CHECK(is_h3_grease(0x1f * 0x210842108421083ull + 0x21));
  CHECK_FALSE(is_h3_grease(0));
  CHECK_FALSE(is_h3_grease(0x20));
  CHECK_FALSE(is_h3_grease(0x22));
  CHECK_FALSE(is_h3_grease(kSettingsEnableWebtransport));
  CHECK_FALSE(is_h3_grease(kFrameWebtransportStream));
}

TEST_CASE("codepoints match docs/protocol.md", "[h3][codes]") {
  STATIC_REQUIRE(kSettingsEnableConnectProtocol == 0x08);
  STATIC_REQUIRE(kSettingsH3Datagram == 0x33);
  STATIC_REQUIRE(kSettingsH3DatagramDraft04 == 0xffd277);
  STATIC_REQUIRE(kSettingsEnableWebtransport == 0x2b603742);
  STATIC_REQUIRE(kSettingsWebtransportMaxSessionsDraft07 == 0xc671706a);
  STATIC_REQUIRE(kSettingsWtMaxSessions == 0x14e9cd29);
  STATIC_REQUIRE(kSettingsWtEnabled == 0x2c7cf000);
  STATIC_REQUIRE(kStreamTypeWebtransport == 0x54);
  STATIC_REQUIRE(kFrameWebtransportStream == 0x41);
  STATIC_REQUIRE(kCapsuleCloseSession == 0x2843);
  STATIC_REQUIRE(kCapsuleDrainSession == 0x78ae);
  STATIC_REQUIRE(kWtBufferedStreamRejected == 0x3994bd84);
  STATIC_REQUIRE(kWtSessionGone == 0x170d7b68);
  STATIC_REQUIRE(kH3NoError == 0x100);
  STATIC_REQUIRE(kH3VersionFallback == 0x110);
  STATIC_REQUIRE(kH3DatagramError == 0x33);
}

TEST_CASE("resets without an application code name the peer's code in messages", "[h3][codes]") {
  CHECK(h3_code_name(kWtSessionGone) == "WT_SESSION_GONE");
  CHECK(h3_code_name(kWtBufferedStreamRejected) == "WT_BUFFERED_STREAM_REJECTED");
  CHECK(h3_code_name(kH3NoError) == "H3_NO_ERROR");
  CHECK(h3_code_name(0x1234).empty());
  CHECK(wt_code_suffix(kWtSessionGone) == " (WT_SESSION_GONE)");
  CHECK(wt_code_suffix(0x1234) == " (code 0x1234)");
  // Application codes travel in Error::code; the message stays plain.
  CHECK(wt_code_suffix(wt_app_to_h3(7)).empty());
  // A GREASE point inside the range carries no application code: it is named by value.
  CHECK(wt_code_suffix(0x52e4a40fa8f9ull) == " (code 0x52e4a40fa8f9)");
}

TEST_CASE("a code received on a reset lands in its own code space", "[h3][codes]") {
  using uvwt::CodeSpace;
  using uvwt::Errc;
  // draft-ietf-webtrans-http3 (application error codes): the HTTP/3 range
  // carries a 32-bit application code, reported decoded.
  const auto app = wire_code_error(Errc::stream, "reset", wt_app_to_h3(7));
  CHECK(app.space == CodeSpace::application);
  CHECK(app.code == 7);
  const auto gone = wire_code_error(Errc::stream, "reset", kWtSessionGone);
  CHECK(gone.space == CodeSpace::webtransport);
  CHECK(gone.code == kWtSessionGone);
  const auto h3 = wire_code_error(Errc::stream, "reset", kH3RequestCancelled);
  CHECK(h3.space == CodeSpace::h3);
  CHECK(h3.code == kH3RequestCancelled);
  // A GREASE point inside the application range is no application code.
  const auto grease = wire_code_error(Errc::stream, "reset", 0x52e4a40fa8f9ull);
  CHECK(grease.space == CodeSpace::h3);
  CHECK(grease.code == 0x52e4a40fa8f9ull);
}
