// The handshake limit bookkeeping and the stateless-answer token bucket,
// without sockets.

#include "catch.hpp"
#include "quic/handshake_limits.hpp"
#include "quic/impairment.hpp"
#include "quic/token_bucket.hpp"

using namespace uvwt;
using namespace uvwt::detail;
using V = HandshakeLimits::Verdict;

namespace {
SockAddr addr(const char *ip, std::uint16_t port) { return *SockAddr::parse(ip, port); }
constexpr std::uint64_t kSec = 1'000'000'000;
}  // namespace

TEST_CASE("token bucket: a burst, then the rate, never more", "[quic][limits]") {
  TokenBucket b(100, 10);
  std::uint64_t t = 5 * kSec;
  int got = 0;
  for (int i = 0; i < 50; ++i) got += b.take(t) ? 1 : 0;
  CHECK(got == 10);
  t += kSec / 10;  // 100 ms: 10 tokens
  got = 0;
  for (int i = 0; i < 50; ++i) got += b.take(t) ? 1 : 0;
  CHECK(got == 10);
  // Fractions accrue: 15 ms then 5 ms are two tokens, not one and a loss.
  t += 15'000'000;
  CHECK(b.take(t));
  CHECK_FALSE(b.take(t));
  t += 5'000'000;
  CHECK(b.take(t));
  // A long quiet spell refills to the burst only.
  t += 100 * kSec;
  CHECK(b.available(t) == 10);
}

TEST_CASE("token bucket: rate 0 answers nothing after the burst", "[quic][limits]") {
  TokenBucket b(0, 0);
  CHECK_FALSE(b.take(kSec));
  CHECK_FALSE(b.take(100 * kSec));
}

TEST_CASE("handshake limits: Retry beyond the unvalidated cap, refusal beyond the total", "[quic][limits]") {
  HandshakeLimits l;
  HandshakeLimitsConfig cfg;
  cfg.max_unvalidated = 2;
  cfg.max_total = 3;
  cfg.max_per_address = 10;
  l.configure(cfg);
  const auto a = addr("192.0.2.1", 1000);
  CHECK(l.judge(a, false) == V::accept);
  std::vector<HandshakeLimits::Slot> slots;
  slots.push_back(l.open(a));
  slots.push_back(l.open(addr("192.0.2.2", 1)));
  CHECK(l.in_progress() == 2);
  CHECK(l.judge(a, false) == V::retry);
  CHECK(l.judge(a, true) == V::accept);
  slots.push_back(l.open(a));
  CHECK(l.judge(a, true) == V::refuse);
  CHECK(l.judge(a, false) == V::retry);
  slots.pop_back();
  slots.front().release();
  CHECK(l.in_progress() == 1);
  CHECK(l.judge(a, false) == V::accept);
  slots.clear();
  CHECK(l.in_progress() == 0);
  CHECK(l.in_progress_from(a) == 0);
}

TEST_CASE("handshake limits: per source address, ports ignored", "[quic][limits]") {
  HandshakeLimits l;
  HandshakeLimitsConfig cfg;
  cfg.max_per_address = 2;
  l.configure(cfg);
  auto s1 = l.open(addr("::1", 1));
  auto s2 = l.open(addr("::1", 2));
  CHECK(l.in_progress_from(addr("::1", 3)) == 2);
  CHECK(l.judge(addr("::1", 3), false) == V::retry);
  CHECK(l.judge(addr("::1", 3), true) == V::refuse);
  CHECK(l.judge(addr("127.0.0.1", 3), false) == V::accept);
  HandshakeLimits::Slot moved = std::move(s1);
  CHECK(l.in_progress() == 2);  // a move keeps the count
  moved.release();
  moved.release();  // once only
  CHECK(l.in_progress() == 1);
  CHECK(l.judge(addr("::1", 3), true) == V::accept);
}

TEST_CASE("handshake limits: always_retry asks every token-less Initial", "[quic][limits]") {
  HandshakeLimits l;
  HandshakeLimitsConfig cfg;
  cfg.always_retry = true;
  l.configure(cfg);
  CHECK(l.judge(addr("127.0.0.1", 1), false) == V::retry);
  CHECK(l.judge(addr("127.0.0.1", 1), true) == V::accept);
}

TEST_CASE("impairment: corruption flips one byte of a held copy, on its own random stream", "[quic][impairment]") {
  ImpairmentConfig cfg;
  cfg.enabled = true;
  cfg.loss = 0.3;
  cfg.seed = 42;
  Impairment plain(cfg);
  cfg.corrupt = 0.5;
  Impairment corrupting(cfg);
  int corrupted = 0;
  const auto remote = addr("127.0.0.1", 1);
  for (int i = 0; i < 400; ++i) {
    const auto a = plain.judge();
    const auto b = corrupting.judge();
    REQUIRE(a.drop == b.drop);  // the loss pattern of the seed is unchanged
    if (b.drop || b.corrupt == 0) continue;
    ++corrupted;
    const std::vector<std::uint8_t> data(100, 0x55);
    REQUIRE(corrupting.hold(0, 0, ImpairDirection::send, remote, nullptr, 0, data, b.corrupt));
    std::vector<HeldPacket> out;
    corrupting.take_due(0, out);
    REQUIRE(out.size() == 1);
    int diff = 0;
    for (std::size_t k = 0; k < data.size(); ++k) diff += out[0].data[k] != data[k] ? 1 : 0;
    CHECK(diff == 1);
  }
  CHECK(corrupted > 100);
  CHECK(corrupting.counters().corrupted == static_cast<std::uint64_t>(corrupted));
}

TEST_CASE("impairment: a receive blackhole drops only what arrives", "[quic][impairment]") {
  ImpairmentConfig cfg;
  cfg.enabled = true;
  cfg.receive_blackhole = true;
  Impairment im(cfg);
  CHECK(im.judge(ImpairDirection::receive).drop);
  CHECK_FALSE(im.judge(ImpairDirection::send).drop);
  CHECK(im.blackhole(ImpairDirection::receive));
  CHECK_FALSE(im.blackhole(ImpairDirection::send));
}
