// White-box loopback tests of the Happy Eyeballs dialer: a silent first
// address hands over after 250 ms, a refused one at once; the loser is
// abandoned; the most telling error is reported when all fail.

#include <uvwt/uvwt.hpp>

#include <chrono>

#include "catch.hpp"
#include "client/client_fixture.hpp"
#include "connection/dialer.hpp"
#include "connection/connection_impl.hpp"
#include "quic/tls_context.hpp"

using namespace uvwt;
using namespace uvwt::test;
using detail::SockAddr;

namespace {
std::shared_ptr<detail::TlsClientContext> pinned_tls() {
  detail::TlsClientOptions o;
  o.pinned_sha256 = {test_certificate().sha256};
  Error err;
  auto tls = detail::TlsClientContext::create(o, err);
  REQUIRE(tls);
  return tls;
}

// A bound UDP socket that never reads: packets vanish without an ICMP error.
struct SilentPort {
  uv_udp_t udp{};
  std::uint16_t port = 0;
  explicit SilentPort(TestLoop &tl, const std::string &host = "127.0.0.1") {
    uv_udp_init(&tl.loop, &udp);
    auto a = SockAddr::parse(host, 0);
    REQUIRE(a);
    REQUIRE(uv_udp_bind(&udp, a->sa(), 0) == 0);
    sockaddr_storage ss{};
    int len = sizeof ss;
    uv_udp_getsockname(&udp, reinterpret_cast<sockaddr *>(&ss), &len);
    port = SockAddr::from(reinterpret_cast<sockaddr *>(&ss), static_cast<socklen_t>(len)).port();
  }
  void close() { uv_close(reinterpret_cast<uv_handle_t *>(&udp), nullptr); }
};

struct DialResult {
  Error err;
  std::shared_ptr<detail::ConnectionImpl> conn;
  bool done = false;
  std::vector<std::shared_ptr<detail::ConnectionImpl>> attempts;
  std::chrono::steady_clock::duration took{};
};

DialResult dial(TestLoop &tl, std::vector<SockAddr> addrs, const ClientConfig &cfg = client_config()) {
  auto r = std::make_shared<DialResult>();
  const auto t0 = std::chrono::steady_clock::now();
  auto d = detail::Dialer::start_with(
      std::make_shared<detail::Deferred>(&tl.loop), cfg, pinned_tls(), "localhost", std::move(addrs),
      [r](const std::shared_ptr<detail::ConnectionImpl> &c) { r->attempts.push_back(c); },
      [r, t0](const Error &e, std::shared_ptr<detail::ConnectionImpl> c) {
        r->err = e;
        r->conn = std::move(c);
        r->took = std::chrono::steady_clock::now() - t0;
        r->done = true;
      });
  REQUIRE(tl.run_until([&] { return r->done; }, 10'000));
  return *r;
}

void close_attempts(TestLoop &tl, const DialResult &r) {
  for (auto &c : r.attempts) c->close(0, "test done", {});
  REQUIRE(tl.run_until(
      [&] {
        for (auto &c : r.attempts)
          if (!c->is_closed()) return false;
        return true;
      },
      5'000));
}
}  // namespace

TEST_CASE("Happy Eyeballs: a silent address hands over after 250 ms and is abandoned", "[client][loop][dialer]") {
  TestLoop tl;
  auto server = start_server(tl);
  SilentPort silent(tl);
  auto r = dial(tl, {*SockAddr::parse("127.0.0.1", silent.port), *SockAddr::parse("127.0.0.1", server->port())});
  REQUIRE(r.err.ok());
  REQUIRE(r.conn);
  CHECK(r.conn->is_connected());
  CHECK(r.conn->remote_address()->port == server->port());
  REQUIRE(r.attempts.size() == 2);
  CHECK(r.took >= std::chrono::milliseconds(240));
  CHECK(r.took < std::chrono::milliseconds(2'000));
  REQUIRE(tl.run_until([&] { return r.attempts[0]->is_closed(); }, 2'000));  // the loser
  close_attempts(tl, r);
  silent.close();
  close_server(tl, server);
}

TEST_CASE("Happy Eyeballs: a refused address hands over at once; all failing reports the telling error",
          "[client][loop][dialer]") {
  TestLoop tl;
  auto server = start_server(tl);
  const auto refused_port = closed_port(tl);
  auto r = dial(tl, {*SockAddr::parse("127.0.0.1", refused_port), *SockAddr::parse("127.0.0.1", server->port())});
  REQUIRE(r.err.ok());
  CHECK(r.attempts.size() == 2);
  // The precondition, asserted rather than assumed: the first attempt was
  // refused (ICMP port unreachable; loopback is exempt from the kernel's
  // per-destination ICMP rate limit). Without it the timing proves nothing.
  INFO("first attempt ended with: " << r.attempts[0]->close_error().to_string());
  REQUIRE(r.attempts[0]->close_error().errc == Errc::refused);
  CHECK(r.took < std::chrono::milliseconds(240));
  close_attempts(tl, r);

  ClientConfig unpinned = client_config();
  unpinned.handshake_timeout = Duration(500);  // an unanswered attempt gives up soon
  auto wrong_pin = [&] {
    detail::TlsClientOptions o;
    o.pinned_sha256 = {std::array<std::uint8_t, 32>{}};
    Error err;
    return detail::TlsClientContext::create(o, err);
  }();
  auto all_fail = std::make_shared<DialResult>();
  auto d = detail::Dialer::start_with(
      std::make_shared<detail::Deferred>(&tl.loop), unpinned, wrong_pin, "localhost",
      {*SockAddr::parse("127.0.0.1", closed_port(tl)), *SockAddr::parse("127.0.0.1", server->port())},
      [all_fail](const std::shared_ptr<detail::ConnectionImpl> &c) { all_fail->attempts.push_back(c); },
      [all_fail](const Error &e, std::shared_ptr<detail::ConnectionImpl> c) {
        all_fail->err = e;
        all_fail->conn = std::move(c);
        all_fail->done = true;
      });
  REQUIRE(tl.run_until([&] { return all_fail->done; }, 10'000));
  CHECK(all_fail->conn == nullptr);
  CHECK(all_fail->err.errc == Errc::certificate);  // beats the refusal
  close_attempts(tl, *all_fail);

  // Cancel: no callback, attempts abandoned.
  SilentPort silent(tl);
  bool called = false;
  std::vector<std::shared_ptr<detail::ConnectionImpl>> started;
  auto c = detail::Dialer::start_with(
      std::make_shared<detail::Deferred>(&tl.loop), client_config(), pinned_tls(), "localhost",
      {*SockAddr::parse("127.0.0.1", silent.port)},
      [&](const std::shared_ptr<detail::ConnectionImpl> &conn) { started.push_back(conn); },
      [&](const Error &, std::shared_ptr<detail::ConnectionImpl>) { called = true; });
  REQUIRE(tl.run_until([&] { return started.size() == 1; }, 2'000));
  c->cancel(Error(Errc::cancelled, "test"));
  REQUIRE(tl.run_until([&] { return started[0]->is_closed(); }, 2'000));
  tl.run_for(20);
  CHECK_FALSE(called);
  silent.close();
  close_server(tl, server);
}

TEST_CASE("Happy Eyeballs across families: a silent address hands over to the other family after 250 ms",
          "[client][loop][dialer][ipv6]") {
  TestLoop tl;
  struct Case {
    std::string silent_host, live_host;
  };
  for (const Case &c : {Case{"::1", "127.0.0.1"}, Case{"127.0.0.1", "::1"}}) {
    INFO("silent " << c.silent_host << ", live " << c.live_host);
    auto server = start_server(tl, server_config(), c.live_host);
    SilentPort silent(tl, c.silent_host);
    auto r = dial(tl, {*SockAddr::parse(c.silent_host, silent.port), *SockAddr::parse(c.live_host, server->port())});
    REQUIRE(r.err.ok());
    REQUIRE(r.conn);
    CHECK(r.conn->remote_address()->host == c.live_host);
    REQUIRE(r.attempts.size() == 2);
    CHECK(r.attempts[0]->remote_address()->host == c.silent_host);
    // The second family waits out the 250 ms stagger: nothing told the
    // dialer that the first attempt had failed.
    CHECK(r.took >= std::chrono::milliseconds(240));
    CHECK(r.took < std::chrono::milliseconds(3'000));
    REQUIRE(tl.run_until([&] { return r.attempts[0]->is_closed(); }, 2'000));  // the loser
    close_attempts(tl, r);
    silent.close();
    close_server(tl, server);
  }
}

TEST_CASE("Happy Eyeballs across families: a closed [::1] port, a live 127.0.0.1, interleaved order",
          "[client][loop][dialer][ipv6]") {
  TestLoop tl;
  auto server = start_server(tl);
  // A closed port on ::1: bound, then released.
  std::uint16_t refused_port = 0;
  {
    SilentPort tmp(tl, "::1");
    refused_port = tmp.port;
    tmp.close();
    uv_run(&tl.loop, UV_RUN_NOWAIT);
  }
  SilentPort silent6(tl, "::1");
  // Two IPv6 addresses first: interleaving makes IPv4 the second attempt.
  auto r = dial(tl, {*SockAddr::parse("::1", refused_port), *SockAddr::parse("::1", silent6.port),
                     *SockAddr::parse("127.0.0.1", server->port())});
  REQUIRE(r.err.ok());
  CHECK(r.conn->remote_address()->host == "127.0.0.1");
  REQUIRE(r.attempts.size() >= 2);
  CHECK(r.attempts[0]->remote_address()->host == "::1");
  CHECK(r.attempts[1]->remote_address()->host == "127.0.0.1");
  // The precondition, asserted rather than assumed: the first attempt was
  // refused (ICMP port unreachable; loopback is exempt from the kernel's
  // per-destination ICMP rate limit). Without it the timing proves nothing.
  INFO("first attempt ended with: " << r.attempts[0]->close_error().to_string());
  REQUIRE(r.attempts[0]->close_error().errc == Errc::refused);
  CHECK(r.took < std::chrono::milliseconds(240));
  close_attempts(tl, r);
  silent6.close();
  close_server(tl, server);
}
