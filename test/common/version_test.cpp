#include <uvwt/uvwt.hpp>

#include <algorithm>
#include <string>

#include "catch.hpp"

TEST_CASE("version strings are well formed", "[common]") {
  const std::string v{uvwt::version()};
  REQUIRE(std::count(v.begin(), v.end(), '.') == 2);
  REQUIRE(v.front() >= '0');
  const std::string q{uvwt::ngtcp2_version()};
  const std::string h{uvwt::nghttp3_version()};
  // The runtime libraries must be the 1.x APIs uvwt targets.
  REQUIRE(q.rfind("1.", 0) == 0);
  REQUIRE(h.rfind("1.", 0) == 0);
}

TEST_CASE("catch2 shim reports its major version", "[common]") {
  STATIC_REQUIRE((UVWT_CATCH_MAJOR == 2 || UVWT_CATCH_MAJOR == 3));
}

TEST_CASE("the ABI and version macros match the library as built", "[common]") {
  // A header/library mismatch (an application built against other headers)
  // shows here; meson.build ties the soname to UVWT_ABI_VERSION.
  CHECK(uvwt::abi_version() == UVWT_ABI_VERSION);
  CHECK(UVWT_ABI_VERSION >= 1);
  const std::string expected = std::to_string(UVWT_VERSION_MAJOR) + "." + std::to_string(UVWT_VERSION_MINOR) + "." +
                               std::to_string(UVWT_VERSION_PATCH);
  CHECK(std::string(uvwt::version()) == expected);
}
