#include "h3/wt_send_scheduler.hpp"

#include <cstdint>
#include <map>
#include <string>

#include "catch.hpp"

using namespace uvwt::detail;

namespace {
// Serves `turns` writes; a stream in `once` has data for one write only.
std::string serve(WtSendScheduler &s, int turns, const std::map<std::int64_t, int> &budget = {}) {
  std::map<std::int64_t, int> left = budget;
  std::string order;
  for (int i = 0; i < turns; ++i) {
    const auto sid = s.next();
    if (!sid) break;
    order += std::to_string(*sid);
    bool more = true;
    if (auto it = left.find(*sid); it != left.end()) more = --it->second > 0;
    s.served(*sid, more);
  }
  return order;
}
}  // namespace

// W3C WebTransport, WebTransportSendStream sendOrder: within a send group,
// bytes of a higher sendOrder go before any bytes of a lower one.
TEST_CASE("send scheduler serves the highest send order first", "[h3][send_order]") {
  WtSendScheduler s;
  s.push(1, 0, 0);
  s.push(2, 5, 0);
  s.push(3, -1, 0);
  // Stream 2 until it runs dry (3 writes), then 1 (2 writes), then 3.
  CHECK(serve(s, 10, {{1, 2}, {2, 3}, {3, 1}}) == "222113");
  CHECK(s.empty());
}

TEST_CASE("send scheduler shares equal send orders round robin", "[h3][send_order]") {
  WtSendScheduler s;
  s.push(1, 7, 0);
  s.push(2, 7, 0);
  s.push(3, 7, 0);
  CHECK(serve(s, 6) == "123123");
}

// W3C: send groups are treated as equals for bandwidth; a group of three
// streams gets no more turns than a group of one.
TEST_CASE("send scheduler shares fairly between send groups", "[h3][send_group]") {
  WtSendScheduler s;
  s.push(1, 0, 1);
  s.push(2, 0, 1);
  s.push(3, 0, 1);
  s.push(4, 0, 2);
  const std::string got = serve(s, 8);
  CHECK(got == "14243414");
  // A high order in one group does not starve another group.
  WtSendScheduler t;
  t.push(1, 100, 1);
  t.push(2, 0, 2);
  CHECK(serve(t, 4) == "1212");
}

TEST_CASE("send scheduler forgets removed streams", "[h3][send_order]") {
  WtSendScheduler s;
  s.push(1, 9, 0);
  s.push(2, 0, 3);
  s.remove(1);
  CHECK_FALSE(s.contains(1));
  CHECK(s.next() == 2);
  s.remove(2);
  CHECK(s.empty());
  CHECK_FALSE(s.next().has_value());
  // A group emptied and made again keeps working.
  s.push(5, 0, 3);
  CHECK(serve(s, 2, {{5, 1}}) == "5");
}
