// RFC 9298 wire rules of lib/h3/connect_udp: template expansion (§2), the
// datagram payload (§5) and the capsule-protocol value (RFC 9297 §3.4).

#include "h3/connect_udp.hpp"

#include <cstdint>
#include <vector>

#include "catch.hpp"
#include "server/target_policy.hpp"

using namespace uvwt;
using namespace uvwt::detail;

TEST_CASE("connect-udp: default template expands to the well-known path (RFC 9298 §2, §3)", "[h3][connect-udp]") {
  std::string path;
  REQUIRE(expand_udp_template(kDefaultUdpTemplate, "192.0.2.6", 443, path).ok());
  CHECK(path == "/.well-known/masque/udp/192.0.2.6/443/");
  REQUIRE(expand_udp_template(kDefaultUdpTemplate, "example.com", 4433, path).ok());
  CHECK(path == "/.well-known/masque/udp/example.com/4433/");
}

TEST_CASE("connect-udp: IPv6 literals are percent-encoded (RFC 9298 §2)", "[h3][connect-udp]") {
  // The RFC's own example: 2001:db8::42 is sent as 2001%3Adb8%3A%3A42.
  std::string path;
  REQUIRE(expand_udp_template(kDefaultUdpTemplate, "2001:db8::42", 443, path).ok());
  CHECK(path == "/.well-known/masque/udp/2001%3Adb8%3A%3A42/443/");
  CHECK(percent_encode("a b/c%") == "a%20b%2Fc%25");
  CHECK(percent_encode("Az09-._~") == "Az09-._~");
  // ... and the proxy decodes what it matched.
  const auto t = match_udp_template(kDefaultUdpTemplate, "/.well-known/masque/udp/2001%3Adb8%3A%3A42/443/");
  REQUIRE(t);
  CHECK(t->host == "2001:db8::42");
  CHECK(t->port == 443);
}

TEST_CASE("connect-udp: URL templates, query form and bad templates", "[h3][connect-udp]") {
  std::string path;
  REQUIRE(
      expand_udp_template("https://proxy.example:4443/masque?h={target_host}&p={target_port}", "::1", 53, path).ok());
  CHECK(path == "/masque?h=%3A%3A1&p=53");
  REQUIRE(expand_udp_template("/m{?target_host,target_port}", "a.example", 9, path).ok());
  CHECK(path == "/m?target_host=a.example&target_port=9");
  // §2: both variables are required.
  CHECK(expand_udp_template("/udp/{target_host}/", "h", 1, path).errc == Errc::configuration);
  CHECK(expand_udp_template("/udp/{target_host}/{target_port}/{x}", "h", 1, path).errc == Errc::configuration);
  CHECK(expand_udp_template("/udp/{target_host/{target_port}", "h", 1, path).errc == Errc::configuration);
}

TEST_CASE("connect-udp: the proxy matches paths against its template", "[h3][connect-udp]") {
  CHECK_FALSE(match_udp_template(kDefaultUdpTemplate, "/.well-known/masque/udp/h/0/"));      // port 0
  CHECK_FALSE(match_udp_template(kDefaultUdpTemplate, "/.well-known/masque/udp/h/70000/"));  // too large
  CHECK_FALSE(match_udp_template(kDefaultUdpTemplate, "/.well-known/masque/udp/h/443"));     // missing slash
  CHECK_FALSE(match_udp_template(kDefaultUdpTemplate, "/.well-known/masque/udp//443/"));     // empty host
  CHECK_FALSE(match_udp_template(kDefaultUdpTemplate, "/.well-known/masque/udp/%zz/443/"));  // bad escape
  CHECK_FALSE(match_udp_template(kDefaultUdpTemplate, "/other/udp/h/443/"));
  const auto t = match_udp_template("/m?h={target_host}&p={target_port}", "/m?h=Example.COM&p=8443");
  REQUIRE(t);
  CHECK(t->host == "Example.COM");
  CHECK(t->port == 8443);
}

TEST_CASE("connect-udp: proxy URLs", "[h3][connect-udp]") {
  ProxyUrl u;
  REQUIRE(parse_proxy_url("https://proxy.example:4433", u).ok());
  CHECK(u.host == "proxy.example");
  CHECK(u.port == 4433);
  CHECK(u.tmpl == kDefaultUdpTemplate);
  CHECK(u.authority() == "proxy.example:4433");
  REQUIRE(parse_proxy_url("https://[::1]/x/{target_host}/{target_port}", u).ok());
  CHECK(u.host == "::1");
  CHECK(u.port == 443);
  CHECK(u.authority() == "[::1]");
  CHECK(parse_proxy_url("http://p:1", u).errc == Errc::configuration);
  CHECK(parse_proxy_url("https://user@p:1", u).errc == Errc::configuration);
  CHECK(parse_proxy_url("https://p:0", u).errc == Errc::configuration);
  CHECK(parse_proxy_url("https://p/{target_host}", u).errc == Errc::configuration);
}

TEST_CASE("connect-udp: datagram payload is context id 0 then the UDP payload (RFC 9298 §5)", "[h3][connect-udp]") {
  const std::vector<std::uint8_t> ok{0x00, 0xc0, 0xff, 0xee};
  const auto p = udp_payload_of(ok);
  REQUIRE(p);
  CHECK(p->size() == 3);
  CHECK((*p)[0] == 0xc0);
  // Another context (§4: only what was registered is understood): dropped.
  const std::vector<std::uint8_t> ctx2{0x02, 0xc0};
  CHECK_FALSE(udp_payload_of(ctx2));
  // A two-byte varint encoding of 0 is still context 0 (RFC 9000 §16).
  const std::vector<std::uint8_t> long_zero{0x40, 0x00, 0x11};
  REQUIRE(udp_payload_of(long_zero));
  CHECK(udp_payload_of(long_zero)->size() == 1);
  CHECK_FALSE(udp_payload_of(std::vector<std::uint8_t>{}));
}

TEST_CASE("connect-udp: capsule-protocol must be the boolean true (RFC 9297 §3.4)", "[h3][connect-udp]") {
  CHECK(capsule_protocol_true("?1"));
  CHECK(capsule_protocol_true(" ?1 "));
  CHECK(capsule_protocol_true("?1;a=b"));
  CHECK_FALSE(capsule_protocol_true("?0"));
  CHECK_FALSE(capsule_protocol_true("1"));
  CHECK_FALSE(capsule_protocol_true("?10"));
}

TEST_CASE("udp proxy policy: private targets and allow-lists", "[server][proxy-policy]") {
  for (const char *a : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.0.1", "100.64.0.1", "0.0.0.0",
                        "224.0.0.1", "255.255.255.255", "::1", "::", "fc00::1", "fd12::1", "fe80::1", "ff02::1",
                        "::ffff:127.0.0.1", "::ffff:10.0.0.1"})
    CHECK(is_private_address(*SockAddr::parse(a, 1)));
  for (const char *a : {"192.0.2.1", "8.8.8.8", "172.32.0.1", "2001:db8::1", "2606:4700::1", "::ffff:8.8.8.8"})
    CHECK_FALSE(is_private_address(*SockAddr::parse(a, 1)));
  UdpProxyPolicy p;
  CHECK(target_name_allowed(p, "anything", 1));
  p.allowed_hosts = {"Example.com", "*.cdn.example"};
  p.allowed_ports = {443};
  CHECK(target_name_allowed(p, "example.COM", 443));
  CHECK(target_name_allowed(p, "a.b.cdn.example", 443));
  CHECK_FALSE(target_name_allowed(p, "cdn.example", 443));
  CHECK_FALSE(target_name_allowed(p, "evilcdn.example", 443));
  CHECK_FALSE(target_name_allowed(p, "example.com", 444));
}
