#include <cstring>
#include <unordered_set>

#include "catch.hpp"
#include "quic/socket_addr.hpp"

using uvwt::detail::SockAddr;

TEST_CASE("SockAddr parses and prints IPv4 and IPv6", "[quic][sockaddr]") {
  auto v4 = SockAddr::parse("127.0.0.1", 443);
  REQUIRE(v4);
  CHECK(v4->is_v4());
  CHECK(v4->family() == AF_INET);
  CHECK(v4->len == sizeof(sockaddr_in));
  CHECK(v4->host() == "127.0.0.1");
  CHECK(v4->port() == 443);
  CHECK(v4->to_string() == "127.0.0.1:443");

  auto v6 = SockAddr::parse("::1", 443);
  REQUIRE(v6);
  CHECK(v6->is_v6());
  CHECK(v6->len == sizeof(sockaddr_in6));
  CHECK(v6->host() == "::1");
  CHECK(v6->to_string() == "[::1]:443");

  auto bracketed = SockAddr::parse("[::1]", 80);
  REQUIRE(bracketed);
  CHECK(bracketed->to_string() == "[::1]:80");

  auto scoped = SockAddr::parse("fe80::1%7", 1);
  REQUIRE(scoped);
  CHECK(scoped->v6().sin6_scope_id == 7);
  CHECK(scoped->host() == "fe80::1%7");

  CHECK(SockAddr::parse("0.0.0.0", 0)->is_unspecified());
  CHECK(SockAddr::parse("::", 0)->is_unspecified());
  CHECK_FALSE(v4->is_unspecified());
  CHECK(SockAddr::any(AF_INET6, 9).to_string() == "[::]:9");
  CHECK(SockAddr::any(AF_INET, 9).to_string() == "0.0.0.0:9");

  auto a = v4->to_address();
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 443);
}

TEST_CASE("SockAddr rejects what is not a numeric address", "[quic][sockaddr]") {
  CHECK_FALSE(SockAddr::parse("", 1));
  CHECK_FALSE(SockAddr::parse("localhost", 1));
  CHECK_FALSE(SockAddr::parse("256.1.1.1", 1));
  CHECK_FALSE(SockAddr::parse("1.2.3", 1));
  CHECK_FALSE(SockAddr::parse("::g", 1));
  CHECK_FALSE(SockAddr::parse("[::1", 1));
  CHECK_FALSE(SockAddr::parse("fe80::1%", 1));
  CHECK_FALSE(SockAddr::parse("fe80::1%no-such-interface0", 1));
  SockAddr empty;
  CHECK(empty.empty());
  CHECK(empty.to_string().empty());
  CHECK(empty.port() == 0);
}

TEST_CASE("SockAddr equality and hash ignore padding and port changes are seen", "[quic][sockaddr]") {
  auto a = *SockAddr::parse("10.0.0.1", 1000);
  SockAddr b = a;
  // Bytes beyond the address must not matter (the kernel leaves them as is).
  std::memset(reinterpret_cast<unsigned char *>(&b.ss) + sizeof(sockaddr_in), 0xab, sizeof b.ss - sizeof(sockaddr_in));
  CHECK(a == b);
  CHECK(std::hash<SockAddr>{}(a) == std::hash<SockAddr>{}(b));

  b.set_port(1001);
  CHECK(b.port() == 1001);
  CHECK_FALSE(a == b);
  CHECK_FALSE(a == *SockAddr::parse("10.0.0.2", 1000));
  CHECK_FALSE(*SockAddr::parse("::1", 1) == *SockAddr::parse("127.0.0.1", 1));

  auto c = *SockAddr::parse("::1", 5);
  auto d = SockAddr::from(c.sa(), c.len);
  CHECK(c == d);
  d.ss.ss_family = AF_UNIX;  // unknown families are refused by from()
  CHECK(SockAddr::from(d.sa(), d.len).empty());

  std::unordered_set<SockAddr> set;
  for (std::uint16_t p = 1; p <= 100; ++p) {
    set.insert(*SockAddr::parse("127.0.0.1", p));
    set.insert(*SockAddr::parse("::1", p));
  }
  set.insert(*SockAddr::parse("127.0.0.1", 7));
  CHECK(set.size() == 200);
  CHECK(set.count(*SockAddr::parse("::1", 42)) == 1);
}
