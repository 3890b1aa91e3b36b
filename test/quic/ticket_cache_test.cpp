// TicketCache bounds, expiry and single use, and the NewSessionTicket
// fields read from the wire (RFC 8446, 4.6.1).

#include <chrono>
#include <vector>

#include "catch.hpp"
#include "quic/ticket_cache.hpp"
#include "quic/ticket_fields.hpp"

using namespace uvwt;
using namespace uvwt::detail;

namespace {

struct FakeClock {
  std::shared_ptr<std::chrono::system_clock::time_point> now = std::make_shared<std::chrono::system_clock::time_point>(
      std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 50));
  TicketCache::Clock fn() const {
    return [n = now] { return *n; };
  }
};

ResumptionTicket ticket(const FakeClock &clock, std::uint8_t tag, std::chrono::seconds lifetime) {
  ResumptionTicket t;
  t.tls_data = {tag};
  t.expires = *clock.now + lifetime;
  return t;
}

}  // namespace

TEST_CASE("ticket cache: newest first, each ticket used once", "[resumption][quic]") {
  FakeClock clock;
  TicketCacheImpl cache(16, 4, clock.fn());
  cache.store("a", ticket(clock, 1, std::chrono::seconds(100)));
  cache.store("a", ticket(clock, 2, std::chrono::seconds(100)));
  CHECK(cache.size() == 2);
  auto t = cache.take("a");
  REQUIRE(t);
  CHECK(t->tls_data == Bytes{2});
  CHECK(cache.take("a")->tls_data == Bytes{1});
  CHECK_FALSE(cache.take("a"));
  CHECK_FALSE(cache.take("b"));
  CHECK(cache.stats().used == 2);
  CHECK(cache.stats().stored == 2);
}

TEST_CASE("ticket cache: bounded per authority and in total, oldest evicted", "[resumption][quic]") {
  FakeClock clock;
  TicketCacheImpl cache(5, 2, clock.fn());
  for (std::uint8_t i = 1; i <= 3; ++i) cache.store("a", ticket(clock, i, std::chrono::seconds(100)));
  CHECK(cache.size() == 2);
  CHECK(cache.stats().evicted == 1);
  for (std::uint8_t i = 10; i < 14; ++i)
    cache.store(std::string(1, static_cast<char>('b' + i)), ticket(clock, i, std::chrono::seconds(100)));
  CHECK(cache.size() == 5);
  CHECK(cache.stats().evicted == 2);
  // The oldest of all was "a"'s ticket 2; ticket 3 is still there.
  auto t = cache.take("a");
  REQUIRE(t);
  CHECK(t->tls_data == Bytes{3});
  CHECK_FALSE(cache.take("a"));
  cache.clear();
  CHECK(cache.size() == 0);
}

TEST_CASE("ticket cache: expired tickets are dropped, lifetimes capped at 7 days", "[resumption][quic]") {
  FakeClock clock;
  TicketCacheImpl cache(16, 4, clock.fn());
  cache.store("a", ticket(clock, 1, std::chrono::seconds(10)));
  cache.store("b", ticket(clock, 2, std::chrono::hours(24 * 30)));  // the server overstated it
  cache.store("c", ticket(clock, 3, std::chrono::seconds(0)));      // already over: not kept
  CHECK(cache.size() == 2);
  *clock.now += std::chrono::seconds(10);
  CHECK_FALSE(cache.take("a"));
  CHECK(cache.stats().expired == 1);
  *clock.now += std::chrono::hours(24 * 7);
  CHECK_FALSE(cache.take("b"));
  CHECK(cache.stats().expired == 2);
}

TEST_CASE("ticket authority keys tell name, port and ALPN apart", "[resumption][quic]") {
  const auto k = ticket_authority("example.com", 443, {"h3"});
  CHECK(k != ticket_authority("example.com", 4433, {"h3"}));
  CHECK(k != ticket_authority("example.net", 443, {"h3"}));
  CHECK(k != ticket_authority("example.com", 443, {"h3", "h3-29"}));
  CHECK(ticket_authority("a", 1, {"b/c"}) != ticket_authority("a", 1, {"b", "c"}));
}

TEST_CASE("NewSessionTicket fields are read from the wire", "[resumption][quic][wire]") {
  // RFC 8446 4.6.1: lifetime 7200, age_add, nonce(1), ticket(3), extensions
  // with early_data (type 42, RFC 8446 4.2.10) max_early_data_size 0xffffffff
  // as QUIC requires (RFC 9001, 4.6.1).
  const std::vector<std::uint8_t> with_early = {0x00, 0x00, 0x1c, 0x20, 0x01, 0x02, 0x03, 0x04, 0x01,
                                                0xaa, 0x00, 0x03, 0x10, 0x11, 0x12, 0x00, 0x08, 0x00,
                                                0x2a, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff};
  auto f = parse_new_session_ticket(with_early);
  REQUIRE(f);
  CHECK(f->lifetime_s == 7200);
  CHECK(f->early_data);
  CHECK(f->max_early_data_size == 0xffffffffu);

  const std::vector<std::uint8_t> without = {0x00, 0x00, 0x00, 0x3c, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x55, 0x00, 0x00};
  f = parse_new_session_ticket(without);
  REQUIRE(f);
  CHECK(f->lifetime_s == 60);
  CHECK_FALSE(f->early_data);

  SECTION("malformed bodies are refused") {
    auto cut = with_early;
    cut.pop_back();
    CHECK_FALSE(parse_new_session_ticket(cut));
    auto trailing = without;
    trailing.push_back(0);
    CHECK_FALSE(parse_new_session_ticket(trailing));
    auto empty_ticket = without;
    empty_ticket[10] = 0x00;  // ticket<1..2^16-1> of length 0
    empty_ticket.erase(empty_ticket.begin() + 11);
    CHECK_FALSE(parse_new_session_ticket(empty_ticket));
    CHECK_FALSE(parse_new_session_ticket({}));
  }
}
