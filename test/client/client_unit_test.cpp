// Pure tests of the client layer: URL parsing, header merging, statistics,
// diagnostics rules, reconnect backoff and Happy Eyeballs ordering.

#include <uvwt/client.hpp>
#include <uvwt/log.hpp>
#include <uvwt/version.hpp>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "support/bounded_run.hpp"
#include "connection/dialer.hpp"
#include "connection/connect_headers.hpp"

using namespace uvwt;

namespace {
WebTransportUrl parse_ok(const std::string &s) {
  WebTransportUrl u;
  const Error e = parse_webtransport_url(s, u);
  INFO(s << " -> " << e.to_string());
  REQUIRE(e.ok());
  return u;
}
Error parse_err(const std::string &s) {
  WebTransportUrl u;
  return parse_webtransport_url(s, u);
}
}  // namespace

TEST_CASE("WebTransport URLs: host, default port, path and query", "[client][url]") {
  auto u = parse_ok("https://example.com/chat?room=1&x=y");
  CHECK(u.host == "example.com");
  CHECK(u.port == 443);
  CHECK(u.path == "/chat?room=1&x=y");
  CHECK(u.authority() == "example.com");

  u = parse_ok("HTTPS://Example.COM:4433");
  CHECK(u.host == "example.com");
  CHECK(u.port == 4433);
  CHECK(u.path == "/");
  CHECK(u.authority() == "example.com:4433");

  u = parse_ok("https://[::1]:4433/echo");
  CHECK(u.host == "::1");
  CHECK(u.port == 4433);
  CHECK(u.authority() == "[::1]:4433");

  u = parse_ok("https://[2001:DB8::1]/");
  CHECK(u.host == "2001:db8::1");
  CHECK(u.authority() == "[2001:db8::1]");

  u = parse_ok("https://127.0.0.1:8443?q");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.path == "/?q");

  u = parse_ok("https://host:/x");  // empty port: the default
  CHECK(u.port == 443);
}

TEST_CASE("WebTransport URLs: clear errors for anything else", "[client][url]") {
  for (const char *bad :
       {"", "example.com/x", "http://example.com/", "wss://example.com/", "https://", "https:///path", "https://:443/",
        "https://user@example.com/", "https://example.com/#frag", "https://exa mple.com/", "https://::1/",
        "https://[::1/", "https://[nope]/", "https://[::1]x/", "https://host:0/", "https://host:65536/",
        "https://host:12ab/", "https://host:1234567/", "https://ex%61mple.com/"}) {
    const Error e = parse_err(bad);
    INFO(bad);
    CHECK(e.errc == Errc::invalid_url);
    CHECK(!e.message.empty());
  }
  CHECK(parse_err("http://example.com/").message.find("scheme") != std::string::npos);
  CHECK(parse_err("https:///x").message.find("no host") != std::string::npos);
}

TEST_CASE("CONNECT headers: defaults, then set_default_headers, then per call", "[client][headers]") {
  Headers out;
  const Error e = detail::merge_connect_headers("uvwt/1.2.3", {{"x-a", "config"}, {"x-b", "config"}, {"x-c", "config"}},
                                                {{"X-B", "default"}, {"x-c", "default"}}, {{"x-c", "call"}}, out);
  REQUIRE(e.ok());
  auto value = [&](const std::string &k) {
    std::vector<std::string> v;
    for (const auto &[n, x] : out)
      if (n == k) v.push_back(x);
    return v;
  };
  CHECK(value("x-a") == std::vector<std::string>{"config"});
  CHECK(value("x-b") == std::vector<std::string>{"default"});
  CHECK(value("x-c") == std::vector<std::string>{"call"});
  CHECK(value("user-agent") == std::vector<std::string>{"uvwt/1.2.3"});

  REQUIRE(detail::merge_connect_headers("uvwt/1", {}, {}, {{"user-agent", "mine"}}, out).ok());
  CHECK(out == Headers{{"user-agent", "mine"}});
  CHECK(detail::merge_connect_headers("uvwt/1", {}, {}, {{":path", "/x"}}, out).errc == Errc::configuration);
  CHECK(detail::merge_connect_headers("uvwt/1", {}, {{"", "x"}}, {}, out).errc == Errc::configuration);
}

TEST_CASE("ClientStats: averages and success rate as the reference", "[client][stats]") {
  ClientStats s;
  CHECK(s.avg_connect_time() == 0.0);
  CHECK(s.success_rate() == 1.0);
  CHECK(std::isinf(s.min_connect_time));
  s.connections_attempted = 4;
  s.connections_successful = 2;
  s.connections_failed = 2;
  s.total_connect_time = 3.0;
  CHECK(s.avg_connect_time() == 1.5);
  CHECK(s.success_rate() == 0.5);
}

TEST_CASE("ClientDiagnostics::issues: exactly the reference rules", "[client][stats]") {
  ClientDiagnostics d;
  CHECK(d.issues().empty());
  d.stats.connections_attempted = 10;  // not more than 10: no rate issue
  d.stats.connections_successful = 1;
  CHECK(d.issues().empty());
  d.stats.connections_attempted = 11;
  d.stats.connections_successful = 5;
  REQUIRE(d.issues().size() == 1);
  CHECK(d.issues()[0] == "Low connection success rate: 45.45%");
  d.stats.connections_successful = 10;  // 90.91 %: fine
  CHECK(d.issues().empty());
  d.stats.total_connect_time = 52.0;  // 10 successes: 5.2 s average
  REQUIRE(d.issues().size() == 1);
  CHECK(d.issues()[0] == "Slow average connection time: 5.20s");
  d.stats.connections_successful = 5;
  d.stats.total_connect_time = 25.05;
  const auto both = d.issues();
  REQUIRE(both.size() == 2);
  CHECK(both[0] == "Low connection success rate: 45.45%");
  CHECK(both[1] == "Slow average connection time: 5.01s");
  d.stats.total_connect_time = 25.0;  // exactly 5 s is not slow
  CHECK(d.issues().size() == 1);
}

TEST_CASE("reconnect_delay: exponential, capped, then jittered", "[client][reconnect]") {
  ClientConfig c;
  c.retry_delay = Duration(100);
  c.retry_backoff = 2.0;
  c.max_retry_delay = Duration(1'000);
  c.retry_jitter = true;
  CHECK(reconnect_delay(c, 1) == Duration(100));
  CHECK(reconnect_delay(c, 2) == Duration(200));
  CHECK(reconnect_delay(c, 4) == Duration(800));
  CHECK(reconnect_delay(c, 5) == Duration(1'000));
  CHECK(reconnect_delay(c, 100000) == Duration(1'000));
  CHECK(reconnect_delay(c, 1, 0.5) == Duration(50));
  CHECK(reconnect_delay(c, 5, 1.49) == Duration(1'490));  // the cap applies before the jitter
  c.retry_jitter = false;
  CHECK(reconnect_delay(c, 2, 0.5) == Duration(200));
}

TEST_CASE("Happy Eyeballs: families interleaved from the first; the telling error wins", "[client][dialer]") {
  using detail::SockAddr;
  std::vector<SockAddr> in{*SockAddr::parse("::1", 1), *SockAddr::parse("::2", 1), *SockAddr::parse("10.0.0.1", 1),
                           *SockAddr::parse("10.0.0.2", 1), *SockAddr::parse("::3", 1)};
  auto out = detail::Dialer::interleave(in);
  REQUIRE(out.size() == 5);
  CHECK(out[0].host() == "::1");
  CHECK(out[1].host() == "10.0.0.1");
  CHECK(out[2].host() == "::2");
  CHECK(out[3].host() == "10.0.0.2");
  CHECK(out[4].host() == "::3");
  CHECK(detail::Dialer::more_telling(Error(Errc::certificate, "x"), Error(Errc::refused, "y")));
  CHECK(detail::Dialer::more_telling(Error(Errc::timeout, "x"), Error(Errc::refused, "y")));
  CHECK_FALSE(detail::Dialer::more_telling(Error(Errc::refused, "x"), Error(Errc::timeout, "y")));
  CHECK(detail::Dialer::more_telling(Error(Errc::refused, "x"), Error()));
}

TEST_CASE("Client::create validates the config and names the field", "[client]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  ClientConfig c;
  c.connect_timeout = Duration(0);
  Error err;
  CHECK(Client::create(&loop, c, err) == nullptr);
  CHECK(err.errc == Errc::configuration);
  CHECK(err.message.find("connect_timeout") != std::string::npos);
  c = ClientConfig();
  c.ca_file = "/nonexistent/ca.pem";
  CHECK(Client::create(&loop, c, err) == nullptr);
  CHECK(err.errc == Errc::configuration);
  {
    auto client = Client::create(&loop, ClientConfig(), err);
    REQUIRE(err.ok());
    REQUIRE(client);
    CHECK(!client->is_closed());
    CHECK(client->config().max_retries == 3);
    CHECK(client->stats().connections_attempted == 0);
    client->set_default_headers({{"X-Key", "v"}});
    CHECK(client->default_headers() == Headers{{"x-key", "v"}});
  }
  uvwt::test::require_drained(&loop);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("ClientConfig::development warns loudly; production keeps verification on", "[client]") {
  std::vector<std::pair<LogLevel, std::string>> seen;
  const auto old = log_level();
  set_log_level(LogLevel::warning);
  set_log_hook([&](LogLevel l, std::string_view m) { seen.emplace_back(l, std::string(m)); });
  const ClientConfig dev = ClientConfig::development();
  set_log_hook(nullptr);
  set_log_level(old);
  CHECK_FALSE(dev.verify_peer);
  CHECK(dev.connect_timeout == Duration(10'000));
  CHECK(dev.retry_delay == Duration(500));
  CHECK(dev.validate().ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].first == LogLevel::warning);
  CHECK(seen[0].second.find("verification is OFF") != std::string::npos);

  const ClientConfig prod = ClientConfig::production();
  CHECK(prod.verify_peer);
  CHECK(prod.use_system_trust);
  CHECK(prod.connect_timeout == Duration(30'000));
  CHECK(prod.max_retries == 5);
  CHECK(prod.retry_delay == Duration(1'000));
  CHECK(prod.max_retry_delay == Duration(30'000));
  CHECK(prod.keep_alive_interval == Duration(20'000));
  CHECK(prod.retry_jitter);
  CHECK(prod.validate().ok());

  ClientConfig c;
  c.max_streams = 0;
  CHECK(c.validate().message.find("max_streams") != std::string::npos);
}
